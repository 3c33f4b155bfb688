from __future__ import annotations

import re

from fastapi.testclient import TestClient
from web_seed import T0, log_in, seed_patient

from vitalsentry.monitor.store import MonitorStore
from vitalsentry.web.pages import LAST_EPOCH_S, router
from vitalsentry.web.views import SPARSE_INTERVAL_S


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def _ward_ids(html: str) -> list[str]:
    return re.findall(r'data-patient="([^"]+)"', html)


def test_pages_need_a_session(make_web_client, store: MonitorStore, database_url: str) -> None:
    client = make_web_client(database_url=database_url)
    seed_patient(store, "p1", [0.1, 0.2])
    assert client.get("/").headers["location"].endswith("/login")
    assert client.get("/patients/p1").headers["location"].endswith("/login")
    assert client.get("/ward/rows").status_code == 401
    assert client.get("/patients/p1/live").status_code == 401
    data = client.get("/patients/p1/data", params={"start": T0, "end": T0 + 60})
    assert data.status_code == 401
    assert "p1" not in client.get("/login").text


def test_ward_lists_patients_in_the_store_order(
    web_client: TestClient, store: MonitorStore
) -> None:
    seed_patient(store, "calm", [0.1, 0.2])
    seed_patient(store, "worse", [0.3, 0.6])
    seed_patient(store, "alarmed", [0.5, 0.75, 0.72], alarm_from=1)
    page = web_client.get("/")
    assert page.status_code == 200
    expected = [s.patient_id for s in store.ward()]
    assert expected == ["alarmed", "worse", "calm"]
    assert _ward_ids(page.text) == expected
    rows = web_client.get("/ward/rows")
    assert _ward_ids(rows.text) == expected
    unchanged = web_client.get("/ward/rows", headers={"If-None-Match": rows.headers["etag"]})
    assert unchanged.status_code == 304
    seed_patient(store, "later", [0.2])
    changed = web_client.get("/ward/rows", headers={"If-None-Match": rows.headers["etag"]})
    assert changed.status_code == 200 and "later" in _ward_ids(changed.text)
    first_row = page.text.split('data-patient="alarmed"')[1].split("</tr>")[0]
    assert "Alarm</span> for" in first_row and "High" in first_row and "<polygon" in first_row
    assert re.search(r'aria-label="risk over the last [^":]+: 3 windows', first_row)


def test_acknowledging_an_alarm_records_the_key(
    web_client: TestClient, store: MonitorStore, web_keys
) -> None:
    seed_patient(store, "p1", [0.5, 0.8, 0.9], alarm_from=1)
    page = web_client.get("/patients/p1")
    assert page.status_code == 200 and "Acknowledge" in page.text
    alarm_id = re.search(r'action="[^"]*/alarms/(\d+)/ack"', page.text).group(1)
    refused = web_client.post(f"/alarms/{alarm_id}/ack", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert store.patient("p1").alarm.acked_at_s is None
    before = web_client.get("/ward/rows").headers["etag"]
    done = web_client.post(f"/alarms/{alarm_id}/ack", data={"csrf_token": _csrf(page.text)})
    assert done.status_code == 303 and "/patients/p1" in done.headers["location"]
    episode = store.patient("p1").alarm
    view_key_id = next(e for e in web_client.app.state.settings.api_keys if "view" in e.scopes)
    assert episode.acked_by == view_key_id.key_id and episode.acked_at_s is not None
    assert f"by key <code>{episode.acked_by}</code>" in web_client.get("/patients/p1").text
    rows = web_client.get("/ward/rows", headers={"If-None-Match": before})
    assert rows.status_code == 200 and "acknowledged" in rows.text


def test_unknown_patient_is_404(web_client: TestClient) -> None:
    assert web_client.get("/patients/nobody").status_code == 404
    assert web_client.get("/patients/nobody/live").status_code == 404


def test_the_patient_page_polls_its_state_and_alarms_revalidated_by_etag(
    web_client: TestClient, store: MonitorStore
) -> None:
    seed_patient(store, "p1", [0.5, 0.8, 0.9], alarm_from=1)
    page = web_client.get("/patients/p1")
    live = web_client.get("/patients/p1/live")
    assert live.status_code == 200 and live.headers["cache-control"] == "private, no-cache"
    assert 'id="patient-live"' in page.text and live.text.strip() in page.text
    etag = live.headers["etag"]
    assert web_client.get("/patients/p1/live", headers={"If-None-Match": etag}).status_code == 304
    alarm_id = re.search(r'action="[^"]*/alarms/(\d+)/ack"', live.text).group(1)
    web_client.post(f"/alarms/{alarm_id}/ack", data={"csrf_token": _csrf(page.text)})
    acked = web_client.get("/patients/p1/live", headers={"If-None-Match": etag})
    assert acked.status_code == 200 and "by key <code>" in acked.text
    seed_patient(store, "p1", [0.2], start=T0 + 3 * 64)  # one more window: a newer reading
    later = web_client.get("/patients/p1/live", headers={"If-None-Match": acked.headers["etag"]})
    assert later.status_code == 200
    last = [float(m) for m in re.findall(r'data-last="([^"]+)"', live.text + later.text)]
    assert last[1] > last[0]


def test_a_day_of_1hz_heart_rate_is_sent_as_min_max_per_column(
    web_client: TestClient, store: MonitorStore
) -> None:
    windows = 86_400 // 64
    seed_patient(store, "day", [0.2] * windows)
    answer = web_client.get(
        "/patients/day/data", params={"start": T0, "end": T0 + 86_401, "columns": 800}
    )
    assert answer.status_code == 200
    data = answer.json()
    vitals = {v["name"]: v for v in data["vitals"]}
    hr, spo2 = vitals["heart_rate"], vitals["spo2"]
    assert len(hr["t"]) <= 800 and not hr["sparse"]
    assert min(hr["lo"]) < 60.5 and max(hr["hi"]) > 79.5  # the extremes survive
    assert spo2["sparse"] and len(spo2["t"]) <= 800
    assert SPARSE_INTERVAL_S < 60.0
    assert len(data["scores"]["t"]) == windows
    band = list(zip(data["scores"]["lo"], data["scores"]["hi"], strict=True))
    assert all(lo < 0.2 < hi for lo, hi in band)


def test_patient_data_checks_the_range(web_client: TestClient, store: MonitorStore) -> None:
    seed_patient(store, "p1", [0.1])
    answer = web_client.get("/patients/p1/data", params={"start": T0 + 10, "end": T0})
    assert answer.status_code == 422 and "end" in answer.text


def test_bad_ranges_and_unknown_alarms_are_4xx(web_client: TestClient, store: MonitorStore) -> None:
    seed_patient(store, "p1", [0.1])
    for start, end in (("-inf", "1"), ("nan", "1"), ("1", "1e400")):
        answer = web_client.get("/patients/p1/data", params={"start": start, "end": end})
        assert answer.status_code == 422, (start, end)
    page = web_client.get("/")
    answer = web_client.post("/alarms/999/ack", data={"csrf_token": _csrf(page.text)})
    assert answer.status_code == 404 and "alarm_id" in answer.text


def test_every_page_name_resolves_to_its_own_route(web_client: TestClient) -> None:
    """``url_for`` resolves the first route of a name: no other route may shadow a page's."""
    for route in router.routes:
        params = {name: "1" for name in route.param_convertors}
        assert web_client.app.url_path_for(route.name, **params) == route.path.replace(
            "{alarm_id}", "1"
        ).replace("{patient_id}", "1")


SECRET_ID = "MRN-5566778"


def test_no_patient_id_reaches_a_client_without_a_session(
    make_web_client, store: MonitorStore, database_url: str
) -> None:
    client = make_web_client(database_url=database_url)
    seed_patient(store, SECRET_ID, [0.5, 0.8, 0.9], alarm_from=1)
    answers = [
        client.get("/"),
        client.get(f"/patients/{SECRET_ID}"),
        client.get(f"/patients/{SECRET_ID}/data", params={"start": T0, "end": T0 + 60}),
        client.get(f"/patients/{SECRET_ID}?x=1"),
        client.get("/ward/rows"),
        client.get(f"/patients/{SECRET_ID}/live"),
        client.post("/alarms/1/ack", data={"csrf_token": "x", "patient_id": SECRET_ID}),
        client.get("/login"),
    ]
    assert [a.status_code for a in answers] == [303, 303, 401, 422, 401, 401, 303, 200]
    assert not any(SECRET_ID in a.text + a.headers.get("location", "") for a in answers)


def test_the_login_form_is_bounded_and_failed_keys_are_rate_limited(make_web_client) -> None:
    client = make_web_client(failed_key_limit_per_minute=3)
    long_key = log_in(client, "k" * 10_000)
    assert long_key.status_code == 422 and "k" * 300 not in long_key.text
    assert "key" in long_key.json()["detail"][0]["msg"]
    not_a_form = client.post("/login", content=b"key=a", headers={"content-type": "text/plain"})
    assert not_a_form.status_code == 403
    huge = b"key=" + b"k" * 9_000_000
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert client.post("/login", content=huge, headers=form).status_code == 413
    many = client.post("/login", files={f"f{i}": ("a", b"x") for i in range(1100)})
    assert many.status_code == 400
    answers = [log_in(client, f"wrong-{i}") for i in range(5)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1 and "Too many" in answers[-1].text


def test_paths_and_chart_ranges_are_bounded(web_client: TestClient, store: MonitorStore) -> None:
    seed_patient(store, "p1", [0.1, 0.2])
    refused = {
        "/patients/" + "a" * 5000: "patient_id",
        "/patients/a%00b": "patient_id",
        "/patients/p1/data?start=-1e300&end=1e300": "start",
        "/patients/p1/data?start=0&end=inf": "end",
        "/patients/p1?from=1": "unknown query parameter",
    }
    for path, names in refused.items():
        answer = web_client.get(path)
        assert answer.status_code == 422, path
        assert names in answer.text and len(answer.text) < 400, path
    whole = web_client.get("/patients/p1/data", params={"start": 0, "end": LAST_EPOCH_S})
    assert whole.status_code == 200
    ack = web_client.post(f"/alarms/{2**63}/ack", data={"csrf_token": "x"})
    assert ack.status_code == 422 and "alarm_id" in ack.text
