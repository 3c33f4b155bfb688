from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from vitalsentry.errors import VitalSentryError
from vitalsentry.monitor.db import default_url, make_engine, migrate
from vitalsentry.monitor.store import US, MonitorStore, UnknownAlarmError, WindowScore
from vitalsentry.monitor.tables import Base

T0 = 1_714_550_400 * US


def score(start_s: float, risk: float, level: str = "low") -> WindowScore:
    return WindowScore(
        start_s=start_s,
        end_s=start_s + 63,
        risk=risk,
        level=level,
        anomaly_score=risk - 0.5,
        top_vital="heart_rate",
        contributions={"heart_rate": 0.7, "spo2": 0.3},
        news2=None,
        news2_level=None,
        risk_mean=None,
        risk_std=None,
        alarm_on=False,
        model_version="test",
    )


def add_patient(store: MonitorStore, pid: str, risk: float, alarm: bool = False) -> None:
    with store.patient_transaction(pid) as tx:
        tx.insert([("heart_rate", T0 + k * US, 70.0 + k % 7) for k in range(100)])
        tx.state.score_id = tx.add_score(score(T0 / US, risk))
        tx.state.last_reading_us = T0 + 99 * US
        if alarm:
            tx.state.alarm_id = tx.open_alarm(T0 / US + 63, risk).id


def test_migrations_match_the_models(store: MonitorStore) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    tables = set(inspect(store.engine).get_table_names())
    assert {"readings", "window_scores", "alarm_episodes", "patient_state"} <= tables
    migrate(store.engine)  # idempotent


def test_sqlite_is_in_wal_mode(tmp_path) -> None:
    store = MonitorStore.open(f"sqlite:///{tmp_path / 'sub' / 'm.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    store.close()


def test_default_url_is_an_embedded_sqlite_file(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_url() == f"sqlite:///{tmp_path / 'vitalsentry' / 'monitor.sqlite3'}"


def test_unsupported_or_malformed_urls_are_refused() -> None:
    with pytest.raises(VitalSentryError, match="not supported"):
        make_engine("mysql://x@localhost/db")
    with pytest.raises(VitalSentryError, match="cannot parse"):
        make_engine("not a url")


def test_readings_key_makes_duplicates_visible(store: MonitorStore) -> None:
    with store.patient_transaction("p1") as tx:
        tx.insert([("heart_rate", T0, 70.0), ("spo2", T0, 97.0)])
    with store.patient_transaction("p1") as tx:
        assert tx.stored(T0, T0) == {("heart_rate", T0): 70.0, ("spo2", T0): 97.0}


def test_ward_orders_active_alarms_first_then_risk(store: MonitorStore) -> None:
    add_patient(store, "low", 0.1)
    add_patient(store, "high", 0.9)
    add_patient(store, "alarmed", 0.5, alarm=True)
    with store.patient_transaction("new"):
        pass
    ward = store.ward()
    assert [p.patient_id for p in ward] == ["alarmed", "high", "low", "new"]
    assert ward[0].alarm is not None and ward[0].alarm.active
    assert ward[1].latest is not None and ward[1].latest.risk == 0.9
    assert ward[3].latest is None
    assert store.active_alarms() == 1
    assert store.patient("nobody") is None


def test_timeline_downsamples_dense_channels_in_the_database(store: MonitorStore) -> None:
    add_patient(store, "p", 0.4)
    full = store.timeline("p", T0 / US, T0 / US + 1000, max_points=500)
    (hr,) = full.readings
    assert hr.bucket_s is None and len(hr.t_s) == 100 and hr.low == hr.high
    coarse = store.timeline("p", T0 / US, T0 / US + 100, max_points=10)
    (hr,) = coarse.readings
    assert hr.bucket_s == 10.0
    assert len(hr.t_s) == 10 and sum(hr.count) == 100
    assert hr.low[0] == 70.0 and hr.high[0] == 76.0
    assert len(coarse.scores) == 1 and coarse.scores[0].risk == 0.4


def test_ack_records_the_first_acknowledgement(store: MonitorStore) -> None:
    add_patient(store, "p", 0.9, alarm=True)
    alarm = store.ward()[0].alarm
    assert alarm is not None
    first = store.ack(alarm.id, "key-a", at_s=100.0)
    again = store.ack(alarm.id, "key-b", at_s=200.0)
    assert (
        (first.acked_by, first.acked_at_s) == ("key-a", 100.0) == (again.acked_by, again.acked_at_s)
    )
    with pytest.raises(UnknownAlarmError, match="alarm_id"):
        store.ack(alarm.id + 1000, "key-a")


def test_delete_patient_removes_every_row(store: MonitorStore) -> None:
    add_patient(store, "gone", 0.9, alarm=True)
    add_patient(store, "kept", 0.2)
    counts = store.delete_patient("gone")
    assert counts == {"readings": 100, "window_scores": 1, "alarm_episodes": 1, "patient_state": 1}
    assert [p.patient_id for p in store.ward()] == ["kept"]
    assert store.timeline("gone", 0, 2e9).readings == ()


def test_purge_keeps_recent_readings_current_scores_and_active_alarms(store: MonitorStore) -> None:
    add_patient(store, "p", 0.9, alarm=True)
    counts = store.purge(readings_before_s=T0 / US + 50, history_before_s=T0 / US + 1e6)
    assert counts == {"readings": 50, "window_scores": 0, "alarm_episodes": 0}
    (hr,) = store.timeline("p", 0, 2e9).readings
    assert min(hr.t_s) == T0 / US + 50
