"""The web view in a real browser (headless Chromium from the OS packages, Selenium).

One server and one browser for the module, logged in by the fixture, so any subset of the
tests runs on its own (the login test clears the cookie and logs in through the form again).
Timings (first render, live-update delay) are written to ``test-artifacts/browser-metrics.json``
and reported, not asserted; screenshots of the ward and a patient page land there too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from web_browser import (
    ARTIFACTS,
    chromium,
    require_chromium,
    screenshot,
    serious_violations,
    serving,
    set_viewport,
    wait_for,
)
from web_seed import SPARSE_EVERY_S, T0, WINDOW_S, seed_patient

from vitalsentry.data.simulate import SimulationConfig, simulate_cohort
from vitalsentry.monitor.replay import Batch, arrival_batches
from vitalsentry.monitor.store import MonitorStore
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.serve.app import create_app
from vitalsentry.serve.settings import Settings

WARD_SIZE = 40
ALARMED = 6
COHORT_WINDOWS = 3 * 3600 // 64


@dataclass
class Site:
    url: str
    driver: Any
    store: MonitorStore
    api: httpx.Client
    view_key: str
    score_key: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def get(self, path: str, **params: Any) -> Any:
        """GET from the JSON API with the view key (the same key the browser logged in with)."""
        answer = self.api.get(path, params=params, headers={"X-API-Key": self.view_key})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def append(self, batch: Batch) -> Any:
        """POST one arrival batch to the streaming API with the score key; return the answer."""
        answer = self.api.post(
            f"/v1/patients/{batch.patient_id}/readings",
            json={"readings": batch.readings},
            headers={"X-API-Key": self.score_key},
        )
        assert answer.status_code == 200, answer.text
        return answer.json()


def seed_cohort(store: MonitorStore) -> None:
    """40 patients of 3 h (heart rate every 10 s; 6 with an alarm) and one of 24 h at 1 Hz."""
    rng = np.random.default_rng(7)
    n = COHORT_WINDOWS
    for k in range(WARD_SIZE):
        alarmed = k < ALARMED
        base = rng.uniform(0.4, 0.6) if alarmed else rng.uniform(0.05, 0.55)
        wave = 0.1 * np.sin(np.linspace(0, rng.uniform(2, 9), n) + rng.uniform(0, 6))
        trend = np.linspace(0, 0.35 * alarmed, n) ** 2 / max(1e-9, 0.35 * alarmed) if alarmed else 0
        risks = list(np.clip(base + wave + trend + rng.normal(0, 0.03, n), 0, 1))
        seed_patient(
            store, f"bed-{k:02d}", risks, alarm_from=n - 8 if alarmed else None, hr_every_s=10.0
        )
    day = 86_400 // 64
    seed_patient(store, "day", [0.2] * day, start=T0 - (day - n) * WINDOW_S)


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    web_pipeline: VitalRiskPipeline,
    web_settings: dict[str, Any],
    web_keys: dict[str, tuple[str, str]],
) -> Iterator[Site]:
    require_chromium()
    database = f"sqlite:///{tmp_path_factory.mktemp('web') / 'monitor.sqlite3'}"
    store = MonitorStore.open(database)  # a second engine on the app's database, for seeding
    seed_cohort(store)
    settings = Settings(**web_settings, database_url=database, purge_every_s=0)
    app = create_app(settings, pipeline=web_pipeline)
    with serving(app) as url, chromium() as driver, httpx.Client(base_url=url) as api:
        set_viewport(driver, 1366, 768)
        site = Site(url, driver, store, api, web_keys["view"][0], web_keys["all"][0])
        _log_in(driver, url, site.view_key)
        yield site
    store.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser-metrics.json").write_text(json.dumps(site.metrics, indent=2))


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def _ward_order(driver: Any) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#ward-rows tr[data-patient]')]"
        ".map(r => r.dataset.patient);"
    )


def _log_in(driver: Any, url: str, key: str) -> None:
    """Open the ward (redirected to the login form), submit ``key``, wait for the ward."""
    driver.get(url + "/")
    assert driver.current_url.endswith("/login")
    driver.find_element("id", "key").send_keys(key)
    driver.find_element("css selector", "form.login button").click()
    wait_for(driver, "document.getElementById('ward-rows')")


def test_login_then_the_ward_in_the_api_order(site: Site, record_property: Any) -> None:
    d = site.driver
    d.delete_all_cookies()
    _log_in(d, site.url, site.view_key)
    assert "key=" not in d.current_url
    assert not d.execute_script("return document.cookie")  # HttpOnly: invisible to scripts
    d.get(site.url + "/")  # a fresh navigation, timed
    render_ms = d.execute_script(
        "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;"
    )
    site.metrics["ward_first_render_ms"] = round(render_ms, 1)
    record_property("ward_first_render_ms", render_ms)
    order = _ward_order(d)
    assert order == [p["patient_id"] for p in site.get("/v1/patients")["patients"]]
    assert len(order) == WARD_SIZE + 1
    alarmed = d.execute_script(
        "return [...document.querySelectorAll('#ward-rows tr.alarm')].map(r => r.dataset.patient);"
    )
    assert alarmed == order[:ALARMED]
    levels = d.execute_script(
        "return [...document.querySelectorAll('#ward-rows .level')].map(e => e.textContent.trim());"
    )
    assert set(levels) <= {"High", "Medium", "Low"} and "High" in levels
    screenshot(d, "ward-1366x768")


def test_a_patient_page_draws_every_vital(site: Site, record_property: Any) -> None:
    d = site.driver
    d.get(site.url + "/")
    wait_for(d, "document.querySelector('#ward-rows tr[data-patient]')")
    first = _ward_order(d)[0]
    d.find_element("css selector", f'#ward-rows tr[data-patient="{first}"] a').click()
    wait_for(d, "window.vitalsentryPatient && window.vitalsentryPatient.loads >= 1")
    drawn = d.execute_script("return window.vitalsentryPatient.drawn;")
    assert set(drawn) == {"risk", "heart_rate", *SPARSE_EVERY_S}
    assert all(n > 0 for n in drawn.values()), drawn
    assert len(d.find_elements("css selector", "#charts canvas")) == len(drawn) + 1  # + NEWS2
    site.metrics["patient_first_draw_ms"] = round(
        d.execute_script("return window.vitalsentryPatient.firstDrawMs;"), 1
    )
    record_property("patient_first_draw_ms", site.metrics["patient_first_draw_ms"])
    screenshot(d, "patient-1366x768")
    d.find_element("css selector", "#table-view summary").click()
    rows = d.execute_script(
        "return [...document.querySelectorAll('#tables table')].map(t => t.tBodies[0].rows.length);"
    )
    assert rows == [drawn["risk"], *(drawn[v["name"]] for v in _vitals_in_page_order(d))]


def _vitals_in_page_order(driver: Any) -> list[dict[str, Any]]:
    return driver.execute_script("return window.vitalsentryPatient.vitals;")


def test_a_day_of_1hz_is_downsampled_and_zooms(site: Site) -> None:
    d = site.driver
    d.get(site.url + "/patients/day")
    wait_for(d, "window.vitalsentryPatient && window.vitalsentryPatient.loads >= 1")
    d.find_element("css selector", 'button[data-hours="24"]').click()
    wait_for(d, "window.vitalsentryPatient.loads >= 2")
    width = d.execute_script("return document.getElementById('charts').clientWidth;")
    drawn = d.execute_script("return window.vitalsentryPatient.drawn;")
    assert 0 < drawn["heart_rate"] <= width < 86_400
    site.metrics["day_of_1hz_points_sent"] = drawn["heart_rate"]
    before = d.execute_script("return window.vitalsentryPatient.range;")
    from selenium.webdriver import ActionChains

    over = d.find_element("css selector", "#charts .u-over")
    ActionChains(d).move_to_element_with_offset(over, -200, 0).click_and_hold().move_by_offset(
        150, 0
    ).release().perform()
    wait_for(d, "window.vitalsentryPatient.loads >= 3")
    after = d.execute_script("return window.vitalsentryPatient.range;")
    assert after[1] - after[0] < (before[1] - before[0]) / 3
    zoomed = d.execute_script("return window.vitalsentryPatient.drawn;")
    assert zoomed["heart_rate"] > 0


def test_acknowledging_an_alarm_shows_in_the_timeline(site: Site) -> None:
    d = site.driver
    patient = next(s for s in site.store.ward() if s.alarm is not None)
    d.get(f"{site.url}/patients/{patient.patient_id}")
    d.find_element("css selector", "form[action$='/ack'] button").click()
    wait_for(d, "document.body.textContent.includes('by key')")
    episode = site.store.patient(patient.patient_id).alarm
    assert episode is not None and episode.acked_at_s is not None and episode.acked_by
    timeline = site.get(f"/v1/patients/{patient.patient_id}/timeline")
    assert [(a["alarm_id"], a["acked_by"]) for a in timeline["alarms"]] == [
        (episode.id, episode.acked_by)
    ]
    wait_for(d, "window.vitalsentryPatient && window.vitalsentryPatient.loads >= 1")
    charted = d.execute_script(
        "return window.vitalsentryPatient.alarms.map(a => [a.id, a.acked_by]);"
    )
    assert charted == [[episode.id, episode.acked_by]]


def test_a_new_alarm_appears_without_reload(site: Site, record_property: Any) -> None:
    """Stream two simulated patients with events through the API until one alarms."""
    d = site.driver
    d.get(site.url + "/")
    wait_for(d, "window.vitalsentryWard")
    d.execute_script("window.notReloaded = true;")
    frame, _ = simulate_cohort(
        SimulationConfig(
            patients=2,
            hours=0.5,
            seed=3,
            event_fraction=1.0,
            start_spread_h=0.1,
            start=_iso(T0 + COHORT_WINDOWS * WINDOW_S - 1800),  # on the seeded ward's clock
        )
    )
    batches = arrival_batches(frame.drop(columns=["label", "age", "sex", "bmi"]), 60.0)
    alarmed, appended = None, 0.0
    for batch in batches:
        answer = site.append(batch)
        appended = time.time()
        if answer["patient"]["alarm"] is not None:
            alarmed = batch.patient_id
            break
    assert alarmed is not None, "no alarm raised by the streamed events"
    wait_for(d, f"document.querySelector('#ward-rows tr[data-patient=\"{alarmed}\"].alarm')")
    delay = d.execute_script("return window.vitalsentryWard.lastChange;") / 1000 - appended
    assert d.execute_script("return window.notReloaded === true;")
    site.metrics["live_update_delay_s"] = round(delay, 3)
    record_property("live_update_delay_s", delay)
    assert _ward_order(d) == [p["patient_id"] for p in site.get("/v1/patients")["patients"]]


def test_a_patient_page_follows_new_scores_without_reload(site: Site, record_property: Any) -> None:
    """Stream a simulated patient; its open page shows each new score and its charts follow."""
    d = site.driver
    frame, _ = simulate_cohort(
        SimulationConfig(
            patients=1, hours=0.5, seed=5, start=_iso(T0 + COHORT_WINDOWS * WINDOW_S - 1800)
        )
    )
    frame = frame.drop(columns=["label", "age", "sex", "bmi"]).assign(patient_id="followed")
    batches = iter(arrival_batches(frame, 60.0))

    def append_until_scored() -> float:
        for batch in batches:
            if site.append(batch)["windows_scored"]:
                return time.time()
        raise AssertionError("the stream ended without a scored window")

    append_until_scored()
    d.get(site.url + "/patients/followed")
    wait_for(d, "window.vitalsentryPatient && window.vitalsentryPatient.loads >= 1")
    d.execute_script("window.notReloaded = true;")
    shown = "document.querySelector('#patient-live time').getAttribute('datetime')"
    before = d.execute_script(f"return {shown};")
    appended = append_until_scored()
    wait_for(d, f"{shown} !== {before!r} && window.vitalsentryPatient.loads >= 2")
    assert d.execute_script("return window.notReloaded === true;")
    delay = d.execute_script("return window.vitalsentryPatient.lastChange;") / 1000 - appended
    site.metrics["patient_live_update_delay_s"] = round(delay, 3)
    record_property("patient_live_update_delay_s", delay)


@pytest.mark.parametrize("width,height", [(1366, 768), (768, 1024)])
def test_accessible_and_fits_the_screen(site: Site, width: int, height: int) -> None:
    d = site.driver
    set_viewport(d, width, height)
    first = site.store.ward()[0].patient_id
    for name, path in (("ward", "/"), ("patient", f"/patients/{first}")):
        d.get(site.url + path)
        if name == "patient":
            wait_for(d, "window.vitalsentryPatient && window.vitalsentryPatient.loads >= 1")
        assert serious_violations(d) == [], name
        overflow = d.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"
        )
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}px"
        if width != 1366:
            screenshot(d, f"{name}-{width}x{height}")
    set_viewport(d, 1366, 768)
