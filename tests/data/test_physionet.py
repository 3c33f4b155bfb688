"""PhysioNet 2019 reader: every layout, the readings it gives, and one-line errors."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vitalsentry.data.physionet import (
    CONTEXT_COLUMNS,
    NO_CLOCK_EPOCH,
    load_physionet2019,
    read_physionet2019,
)
from vitalsentry.data.schema import PHYSIONET2019_COLUMNS, PHYSIONET2019_VITALS
from vitalsentry.data.sources import detect_source, read_readings
from vitalsentry.errors import DataError

SET_A = Path(__file__).resolve().parents[2] / "../shared/datasets/physionet2019"
HEADER = "|".join(PHYSIONET2019_COLUMNS)


def _stay(
    rng: np.random.Generator, hours: int, first: int = 1, septic: bool = False
) -> pd.DataFrame:
    """One stay in the official columns: plausible vitals with gaps, EtCO2 never measured."""
    frame = pd.DataFrame(np.nan, index=range(hours), columns=list(PHYSIONET2019_COLUMNS))
    for column, (low, high) in {
        "HR": (60, 120),
        "O2Sat": (88, 100),
        "Temp": (36, 39),
        "SBP": (90, 150),
        "MAP": (60, 100),
        "DBP": (40, 80),
        "Resp": (10, 30),
        "Lactate": (0.5, 4),
    }.items():
        values = np.round(rng.uniform(low, high, hours), 2)
        frame[column] = np.where(rng.random(hours) < 0.3, np.nan, values)
    frame["Age"] = float(rng.integers(20, 90))
    frame["Gender"] = float(rng.integers(0, 2))
    frame["Unit1"] = 1.0
    frame["Unit2"] = 0.0
    frame["HospAdmTime"] = -1.5
    frame["ICULOS"] = np.arange(first, first + hours, dtype=float)
    frame["SepsisLabel"] = (np.arange(hours) >= hours - 2).astype(float) if septic else 0.0
    return frame


def _psv_text(stay: pd.DataFrame) -> str:
    return stay.to_csv(sep="|", index=False, na_rep="NaN", lineterminator="\n")


@pytest.fixture
def stays() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(7)
    return {
        "p000001": _stay(rng, 5),
        "p000002": _stay(rng, 4, first=3, septic=True),
        "p000010": _stay(rng, 6),
    }


def _write_dir(root: Path, stays: dict[str, pd.DataFrame]) -> Path:
    folder = root / "training"
    folder.mkdir(parents=True, exist_ok=True)
    for patient, stay in stays.items():
        (folder / f"{patient}.psv").write_text(_psv_text(stay))
    return folder


def _write_tar(root: Path, files: dict[str, str], name: str = "set.tar.gz") -> Path:
    path = root / name
    with tarfile.open(path, "w:gz") as archive:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"training/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _texts(stays: dict[str, pd.DataFrame]) -> dict[str, str]:
    return {f"{patient}.psv": _psv_text(stay) for patient, stay in stays.items()}


def _merged(stays: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [stay.assign(patient_id=p, hour=range(len(stay))) for p, stay in stays.items()]
    merged = pd.concat(parts, ignore_index=True)
    return merged[["patient_id", "hour", *PHYSIONET2019_COLUMNS]]


# --- layouts --------------------------------------------------------------------------------


def test_every_layout_gives_the_same_table(tmp_path: Path, stays: dict[str, pd.DataFrame]) -> None:
    expected = _merged(stays).drop(columns="hour")
    folder = _write_dir(tmp_path, stays)
    zipped = tmp_path / "set.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for member, text in _texts(stays).items():
            archive.writestr(f"training/{member}", text)
    merged_csv = tmp_path / "merged.csv.gz"
    _merged(stays).to_csv(merged_csv, index=False)
    merged_parquet = tmp_path / "merged.parquet"
    _merged(stays).to_parquet(merged_parquet)
    for path in (
        folder,
        _write_tar(tmp_path, _texts(stays)),
        zipped,
        merged_csv,
        merged_parquet,
    ):
        table = load_physionet2019(path)
        pd.testing.assert_frame_equal(table, expected, check_dtype=False, obj=str(path))
        assert detect_source(path) == "physionet2019"
    single = load_physionet2019(folder / "p000002.psv")
    assert single["patient_id"].unique().tolist() == ["p000002"]


def test_readings_have_no_clock_and_carry_label_static_context(
    tmp_path: Path, stays: dict[str, pd.DataFrame]
) -> None:
    readings = read_readings(_write_tar(tmp_path, _texts(stays)))
    assert readings.source == "physionet2019"
    assert not readings.has_clock and readings.step_s == 3600.0
    frame = readings.frame
    assert set(readings.channels) == set(PHYSIONET2019_VITALS.values()) - {"etco2"}
    assert list(frame.columns) == ["patient_id", "timestamp", *readings.channels, "label"]
    assert any("EtCO2 is never measured" in note for note in readings.notes)
    two = frame[frame["patient_id"] == "p000002"]
    hours = (two["timestamp"] - NO_CLOCK_EPOCH) / pd.Timedelta(hours=1)
    assert hours.tolist() == [3.0, 4.0, 5.0, 6.0]
    assert two["label"].tolist() == [0, 0, 1, 1]
    assert readings.context is not None
    assert list(readings.context.columns) == list(CONTEXT_COLUMNS)
    assert readings.context.index.equals(frame.index)
    assert (
        readings.context["ICULOS"].to_numpy()
        == (frame["timestamp"] - NO_CLOCK_EPOCH) / pd.Timedelta(hours=1)
    ).all()
    np.testing.assert_allclose(
        frame["map"].to_numpy(), _merged(stays)["MAP"].to_numpy(), equal_nan=True
    )
    assert readings.static.loc["p000010", "age"] == stays["p000010"]["Age"].iloc[0]
    assert readings.static.loc["p000002", "sex"] == stays["p000002"]["Gender"].iloc[0]


def test_unsorted_archive_is_sorted_with_rows_still_located(
    tmp_path: Path, stays: dict[str, pd.DataFrame]
) -> None:
    texts = dict(reversed(list(_texts(stays).items())))
    table = load_physionet2019(_write_tar(tmp_path, texts))
    assert table["patient_id"].is_monotonic_increasing
    bad = stays["p000001"].copy()
    bad.loc[2, "O2Sat"] = 20.0
    texts["p000001.psv"] = _psv_text(bad)
    path = _write_tar(tmp_path, texts, "bad.tar.gz")
    with pytest.raises(DataError) as info:
        read_physionet2019(path, strict=True)
    member = f"{path}:training/p000001.psv"
    assert (info.value.file, info.value.column, info.value.row) == (member, "O2Sat", 3)
    readings = read_physionet2019(path)
    (entry,) = readings.quarantine.entries
    assert (entry.channel, entry.reason, entry.count) == ("spo2", "below range", 1)
    assert (entry.first_file, entry.first_row, entry.first_value) == (member, 3, 20.0)
    assert any(f"first {member} row 3: 20" in note for note in readings.notes)
    one = readings.frame[readings.frame["patient_id"] == "p000001"]
    assert np.isnan(one["spo2"].iloc[2]) and one["heart_rate"].notna().sum() > 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hours=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    missing=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_tar_round_trip(hours: list[int], missing: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    stays = {}
    for k, n in enumerate(hours):
        stay = _stay(rng, n)
        vitals = list(PHYSIONET2019_VITALS)
        stay[vitals] = stay[vitals].mask(rng.random((n, len(vitals))) < missing)
        stays[f"p{k:06d}"] = stay
    with tempfile.TemporaryDirectory() as tmp:
        table = load_physionet2019(_write_tar(Path(tmp), _texts(stays)))
    pd.testing.assert_frame_equal(table, _merged(stays).drop(columns="hour"), check_dtype=False)


# --- bad input ------------------------------------------------------------------------------


def _error(path: Path) -> DataError:
    with pytest.raises(DataError) as info:
        read_physionet2019(path)
    return info.value


def test_truncated_psv_names_file_row_and_column(
    tmp_path: Path, stays: dict[str, pd.DataFrame]
) -> None:
    texts = _texts(stays)
    cut = texts["p000002.psv"]
    texts["p000002.psv"] = cut[: cut.rstrip("\n").rfind("|", 0, len(cut) - 40)]
    err = _error(_write_tar(tmp_path, texts))
    assert err.file is not None and err.file.endswith("training/p000002.psv")
    assert err.row == 4 and err.column is not None
    assert "truncated row" in err.reason


def test_missing_column_names_it(tmp_path: Path, stays: dict[str, pd.DataFrame]) -> None:
    folder = _write_dir(tmp_path, stays)
    (folder / "p000010.psv").write_text(_psv_text(stays["p000010"].drop(columns="Resp")))
    err = _error(folder)
    assert (err.file, err.column) == (str(folder / "p000010.psv"), "Resp")


def test_non_numeric_cell_names_file_row_and_column(
    tmp_path: Path, stays: dict[str, pd.DataFrame]
) -> None:
    texts = _texts(stays)
    lines = texts["p000010.psv"].splitlines()
    fields = lines[5].split("|")
    fields[PHYSIONET2019_COLUMNS.index("Lactate")] = "high"
    lines[5] = "|".join(fields)
    texts["p000010.psv"] = "\n".join(lines) + "\n"
    err = _error(_write_tar(tmp_path, texts))
    assert err.file is not None and err.file.endswith(":training/p000010.psv")
    assert (err.column, err.row) == ("Lactate", 5)
    assert "'high' is not a number" in err.reason


def test_merged_file_errors_name_its_rows(tmp_path: Path, stays: dict[str, pd.DataFrame]) -> None:
    merged = _merged(stays)
    merged.loc[7, "SepsisLabel"] = 2.0
    path = tmp_path / "merged.csv"
    merged.to_csv(path, index=False)
    err = _error(path)
    assert (err.file, err.column, err.row) == (str(path), "SepsisLabel", 8)


def test_repeated_hour_is_reported_at_iculos(
    tmp_path: Path, stays: dict[str, pd.DataFrame]
) -> None:
    stay = stays["p000001"].copy()
    stay.loc[3, "ICULOS"] = 3.0
    err = _error(_write_tar(tmp_path, {**_texts(stays), "p000001.psv": _psv_text(stay)}))
    assert (err.column, err.row) == ("ICULOS", 4)


@pytest.mark.parametrize("kind", ["tar.gz", "zip", "dir"])
def test_empty_archive_or_directory(tmp_path: Path, kind: str) -> None:
    if kind == "tar.gz":
        path = _write_tar(tmp_path, {})
    elif kind == "zip":
        path = tmp_path / "empty.zip"
        zipfile.ZipFile(path, "w").close()
    else:
        path = tmp_path / "folder"
        path.mkdir()
    with pytest.raises(DataError, match=r"no \.psv files found"):
        load_physionet2019(path)


def test_corrupt_archive(tmp_path: Path, stays: dict[str, pd.DataFrame]) -> None:
    path = _write_tar(tmp_path, _texts(stays))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot read the archive"):
        load_physionet2019(path)


def test_cli_bad_archive_is_one_line_and_writes_nothing(
    tmp_path: Path, stays: dict[str, pd.DataFrame]
) -> None:
    texts = _texts(stays)
    texts["p000001.psv"] = texts["p000001.psv"].replace("|0.0\n", "|x\n", 1)
    out = tmp_path / "prepared"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vitalsentry.cli",
            "prepare",
            str(_write_tar(tmp_path, texts)),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "training/p000001.psv, column 'SepsisLabel', row 1: 'x' is not a number" in lines[0]
    assert not out.exists()


# --- the real set A -------------------------------------------------------------------------


@pytest.mark.skipif(not SET_A.is_dir(), reason="../shared/datasets/physionet2019 is absent")
def test_real_archive_matches_the_merged_file() -> None:
    from_tar = load_physionet2019(SET_A / "training_setA.tar.gz")
    merged = load_physionet2019(SET_A / "setA.csv.gz")
    assert from_tar.shape == (790_215, 42) and from_tar["patient_id"].nunique() == 20_336
    pd.testing.assert_frame_equal(from_tar, merged)
    septic = from_tar.groupby("patient_id")["SepsisLabel"].max().sum()
    assert septic == 1_790


def test_hours_out_of_order_keep_context_aligned(
    tmp_path: Path, stays: dict[str, pd.DataFrame]
) -> None:
    stay = stays["p000010"].iloc[::-1].reset_index(drop=True)
    readings = read_physionet2019(
        _write_tar(tmp_path, {**_texts(stays), "p000010.psv": _psv_text(stay)})
    )
    assert readings.context is not None
    hours = (readings.frame["timestamp"] - NO_CLOCK_EPOCH) / pd.Timedelta(hours=1)
    np.testing.assert_array_equal(readings.context["ICULOS"].to_numpy(), hours.to_numpy())
    ten = readings.frame["patient_id"] == "p000010"
    expected = stays["p000010"]["HR"].to_numpy()
    np.testing.assert_array_equal(readings.frame.loc[ten, "heart_rate"].to_numpy(), expected)
