"""Quarantine of implausible batch readings: counts, rows, notes and the transform's laws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.data.readings import Quarantine, QuarantineEntry, quarantine_implausible
from vitalsentry.data.schema import CHANNELS
from vitalsentry.data.sources import IOT_COLUMNS, SAMPLE_DIR, read_readings

VALUES = st.one_of(
    st.floats(min_value=-50.0, max_value=400.0),
    st.sampled_from([np.nan, np.inf, -np.inf, 20.0, 300.0, 50.0, 100.0]),
)


@settings(max_examples=60, deadline=None)
@given(
    hr=st.lists(VALUES, min_size=1, max_size=30),
    spo2=st.lists(VALUES, min_size=1, max_size=30),
)
def test_quarantine_sets_exactly_the_implausible_readings_missing(
    hr: list[float], spo2: list[float]
) -> None:
    n = min(len(hr), len(spo2))
    frame = pd.DataFrame({"heart_rate": hr[:n], "spo2": spo2[:n], "other": np.arange(n)})
    out, found = quarantine_implausible(frame)
    for name in ("heart_rate", "spo2"):
        before = frame[name].to_numpy()
        after = out[name].to_numpy()
        spec = CHANNELS[name]
        plausible = (before >= spec.low) & (before <= spec.high)
        assert np.array_equal(after[plausible], before[plausible])  # kept unchanged
        assert np.isnan(after[~plausible]).all()  # everything else missing
        set_missing = int((~plausible & ~np.isnan(before)).sum())
        assert sum(e.count for e in found.entries if e.channel == name) == set_missing
        for e in (e for e in found.entries if e.channel == name):
            value = before[e.first_row - 1]
            assert value == e.first_value or (np.isinf(value) and e.reason == "non-finite")
    assert out["other"].equals(frame["other"])
    again, none = quarantine_implausible(out)  # idempotent
    assert none.total == 0 and again.equals(out)


def test_merged_sums_counts_and_keeps_the_earliest_row() -> None:
    a = Quarantine((QuarantineEntry("spo2", "below range", 2, 9, 39.0),))
    b = Quarantine(
        (
            QuarantineEntry("heart_rate", "above range", 1, 50, 900.0),
            QuarantineEntry("spo2", "below range", 3, 4, 12.0),
        )
    )
    both = a.merged(b)
    assert [(e.channel, e.count, e.first_row) for e in both.entries] == [
        ("heart_rate", 1, 50),
        ("spo2", 5, 4),
    ]
    assert Quarantine.from_dict(both.to_dict()) == both
    assert Quarantine().notes() == ()


def test_vitals_file_with_artefacts_is_read_and_reported(tmp_path: Path) -> None:
    lines = (SAMPLE_DIR / "vitals2024_sample.csv").read_text().splitlines()[:11]
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    rows[2][header.index("Oxygen Saturation")] = "39"
    rows[6][header.index("Heart Rate")] = "900"
    rows[8][header.index("Oxygen Saturation")] = "inf"
    path = tmp_path / "v.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    readings = read_readings(path)
    q = readings.quarantine
    assert [(e.channel, e.reason, e.count, e.first_row) for e in q.entries] == [
        ("heart_rate", "above range", 1, 7),
        ("spo2", "non-finite", 1, 9),
        ("spo2", "below range", 1, 3),
    ]
    frame = readings.frame.set_index("patient_id")
    assert np.isnan(frame.loc[rows[2][0], "spo2"]) and np.isnan(frame.loc[rows[6][0], "heart_rate"])
    assert frame["spo2"].isna().sum() == 2 and len(frame) == 10
    assert any(n.startswith("quarantine: 3 implausible") for n in readings.notes)


def test_iot_artefact_rows_are_file_rows(tmp_path: Path) -> None:
    path = tmp_path / "iot.csv"
    path.write_text(
        ",".join(IOT_COLUMNS)
        + "\n2,2024-01-01 10:00:00,3,Heart Rate,36.6,150,95,71,90,120,80,Healthy,90"
        + "\n1,2024-01-01 10:00:00,1,Temperature,60,150,95,71,90,120,80,Healthy,90"
        + "\n1,2024-01-01 11:00:00,1,Temperature,37,150,95,71,90,120,80,Healthy,90\n"
    )
    q = read_readings(path, "iot").quarantine
    assert q.entries == (QuarantineEntry("temperature", "above range", 1, 2, 60.0),)
