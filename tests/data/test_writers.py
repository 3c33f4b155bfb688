from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vitalsentry.data.simulate import EVENT_COLUMNS, SimulationConfig, simulate_cohort
from vitalsentry.data.simulate_kaggle import simulate_iot, simulate_vitals2024
from vitalsentry.data.writers import write_cohort, write_table
from vitalsentry.errors import DataError


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    return simulate_cohort(SimulationConfig(patients=4, hours=2.0, seed=7))


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".pq"])
def test_write_cohort_round_trips(
    cohort: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path, suffix: str
) -> None:
    readings, events = cohort
    readings_path, events_path = write_cohort(readings, events, tmp_path / f"sim{suffix}")
    assert readings_path == tmp_path / f"sim{suffix}"
    assert events_path == tmp_path / "sim.events.csv"
    if suffix == ".csv":
        back = pd.read_csv(readings_path)
        first = readings_path.read_text().splitlines()[2]
        assert ",," in first and "Z," in first
        assert back["timestamp"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").all()
        back["timestamp"] = pd.to_datetime(back["timestamp"], utc=True).astype(
            "datetime64[ns, UTC]"
        )
    else:
        back = pd.read_parquet(readings_path)
    pd.testing.assert_frame_equal(back, readings, check_dtype=False)
    events_back = pd.read_csv(events_path)
    assert list(events_back.columns) == list(EVENT_COLUMNS)
    for column in ("onset", "end"):
        assert events_back[column].str.endswith("Z").all()
        parsed = pd.to_datetime(events_back[column], utc=True).astype("datetime64[ns, UTC]")
        pd.testing.assert_series_equal(parsed, events[column])


def test_write_cohort_rejects_unknown_suffix(
    cohort: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    with pytest.raises(DataError, match="unsupported output format"):
        write_cohort(*cohort, tmp_path / "sim.json")
    with pytest.raises(DataError, match="no suffix"):
        write_table(cohort[0], tmp_path / "sim")
    assert list(tmp_path.iterdir()) == []


def test_write_cohort_leaves_nothing_when_writing_fails(
    cohort: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def failing_to_csv(self: pd.DataFrame, path: object, **kwargs: object) -> None:
        calls.append(path)
        Path(str(path)).write_text("partial")
        if len(calls) == 2:
            raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing_to_csv)
    with pytest.raises(OSError, match="disk full"):
        write_cohort(*cohort, tmp_path / "sim.csv")
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_table_round_trips_schema_tables(tmp_path: Path, suffix: str) -> None:
    for name, frame in (("v", simulate_vitals2024(300)), ("i", simulate_iot(300))):
        path = write_table(frame, tmp_path / f"{name}{suffix}")
        back = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        pd.testing.assert_frame_equal(back, frame)
