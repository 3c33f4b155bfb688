"""A seeded monitoring store for the web view's tests (written through the store's API)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from vitalsentry.monitor.store import US, MonitorStore, WindowScore

T0 = 1_714_550_400.0  # 2024-05-01T08:00:00Z
WINDOW_S = 64.0
SPARSE_EVERY_S = {
    "spo2": (60.0, 96.0),
    "respiratory_rate": (300.0, 16.0),
    "systolic_bp": (900.0, 121.0),
    "diastolic_bp": (900.0, 79.0),
    "temperature": (1800.0, 36.9),
}
"""Channels measured less often than heart rate: seconds between readings, value."""


def seed_patient(
    store: MonitorStore,
    patient_id: str,
    risks: list[float],
    *,
    alarm_from: int | None = None,
    hr_every_s: float = 1.0,
    start: float = T0,
) -> None:
    """Store a patient straight through the store's write API (no model).

    Heart rate every ``hr_every_s`` seconds, SpO2 once a minute, and the sparse channels
    of :data:`SPARSE_EVERY_S` over ``len(risks)`` windows of 64 s from ``start``; one score per window
    (risk as given, high from 0.7), and an alarm episode opened at window ``alarm_from``.
    """
    end = start + len(risks) * WINDOW_S
    hr_times = np.arange(start, end, hr_every_s)
    readings = [("heart_rate", int(t * US), 70.0 + 10 * np.sin(t / 600)) for t in hr_times]
    for channel, (every, value) in SPARSE_EVERY_S.items():
        readings += [(channel, int(t * US), value) for t in np.arange(start, end, every)]
    with store.patient_transaction(patient_id) as tx:
        tx.insert(readings)
        for k, risk in enumerate(risks):
            score_id = tx.add_score(
                WindowScore(
                    start_s=start + k * WINDOW_S,
                    end_s=start + (k + 1) * WINDOW_S,
                    risk=risk,
                    level="high" if risk >= 0.7 else "medium" if risk >= 0.4 else "low",
                    anomaly_score=risk - 0.5,
                    top_vital="heart_rate",
                    contributions={"heart_rate": 0.7, "spo2": 0.3},
                    news2=3,
                    news2_level="low",
                    risk_mean=risk,
                    risk_std=0.05,
                    alarm_on=alarm_from is not None and k >= alarm_from,
                    model_version="test",
                )
            )
        tx.state.score_id = score_id
        tx.state.last_reading_us = int(hr_times[-1] * US)
        if alarm_from is not None:
            tx.state.alarm_id = tx.open_alarm(start + (alarm_from + 1) * WINDOW_S, max(risks)).id


def log_in(client: Any, key: str) -> Any:
    """Fill the login form as a browser does (its token comes with the form); the answer."""
    form = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, form.text
    return client.post("/login", data={"key": key, "login_token": token.group(1)})
