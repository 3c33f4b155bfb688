"""CLI: data commands end to end, and one-line errors with a non-zero exit for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vitalsentry.data.sources import SAMPLE_DIR


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vitalsentry.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_simulate_audit_prepare(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort.parquet"
    assert run("simulate", "--out", str(cohort), "--patients", "4", "--hours", "1").returncode == 0
    assert cohort.is_file() and (tmp_path / "cohort.events.csv").is_file()
    audit = run("audit", str(cohort), "--json", str(tmp_path / "audit.json"))
    assert audit.returncode == 0, audit.stderr
    assert json.loads((tmp_path / "audit.json").read_text())["patients"] == 4
    prep = run("prepare", str(cohort), "--out", str(tmp_path / "prep"))
    assert prep.returncode == 0, prep.stderr
    manifest = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    assert manifest["shape"][1:] == [4, 256]
    assert "float32 = heart_rate, spo2, hour_sin, hour_cos" in prep.stdout


def test_simulate_schemas(tmp_path: Path) -> None:
    for schema in ("vitals2024", "iot"):
        out = tmp_path / f"{schema}.csv"
        proc = run("simulate", "--out", str(out), "--schema", schema, "--rows", "50")
        assert proc.returncode == 0, proc.stderr
        assert len(out.read_text().splitlines()) == 51


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("", ("empty",)),
        (
            "patient_id,timestamp,heart_rate\nP1,2024-01-01T00:00:00Z,70\n",
            ("spo2 not in the data",),
        ),
        ("patient_id,timestamp,heart_rate\nP1,2024-01-01T00:00:00Z,abc\n", ("heart_rate", "row 1")),
        ("patient_id,timestamp,heart_rate\nP1,2024-01-01T00:00:00Z,900\n", ("heart_rate", "900")),
        ("patient_id,timestamp,heart_rate\nP1,2024-01-01T00:00:00Z,-5\n", ("heart_rate",)),
        ("patient_id,timestamp,heart_rate\nP1,2024-01-01T00:00:00Z,inf\n", ("heart_rate",)),
        ("patient_id,timestamp,spo2\nP1,2024-01-01T00:00:00Z,140\n", ("spo2", "140")),
        (
            "patient_id,timestamp,heart_rate\nP1,2024-01-01T00:00:00Z,70\nP1,2024-01-01T00:00:00Z,71\n",
            ("duplicate",),
        ),
        (
            "patient_id,timestamp,heart_rate,spo2\n"
            + "".join(
                f"P{p},2024-01-01T00:00:{i:02d}Z,70,97\n" for p in range(3) for i in range(30)
            ),
            ("no complete window",),
        ),
    ],
)
def test_prepare_bad_input_is_one_line_and_leaves_nothing(
    tmp_path: Path, content: str, needles: tuple[str, ...]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    out = tmp_path / "out"
    proc = run("prepare", str(bad), "--out", str(out), "--source", "tidy", "--strict")
    assert_one_line_error(proc, "bad.csv", *needles)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_prepare_quarantines_an_artefact_unless_strict(tmp_path: Path) -> None:
    rows = "".join(
        f"P{p},2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z,{900 if (p, i) == (1, 5) else 70},97\n"
        for p in range(3)
        for i in range(300)
    )
    data = tmp_path / "artefact.csv"
    data.write_text("patient_id,timestamp,heart_rate,spo2\n" + rows)
    args = ("prepare", str(data), "--source", "tidy", "--window", "64", "--stride", "64")
    strict = run(*args, "--out", str(tmp_path / "strict"), "--strict")
    assert_one_line_error(strict, "artefact.csv", "heart_rate", "row 306", "900")
    proc = run(*args, "--out", str(tmp_path / "prep"))
    assert proc.returncode == 0, proc.stderr
    assert "quarantine: 1 implausible reading(s) set missing" in " ".join(proc.stdout.split())
    manifest = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    assert manifest["quarantine"] == {
        "total": 1,
        "entries": [
            {
                "channel": "heart_rate",
                "reason": "above range",
                "count": 1,
                "first_row": 306,
                "first_value": 900.0,
            }
        ],
    }


def test_prepare_one_recording_with_gap_and_time_options(tmp_path: Path) -> None:
    rows = "".join(
        f"P1,{i * 60},{70 + i % 7},{'' if i % 5 else 97}\n" for i in range(600)
    )  # one patient, no timestamps column: positions at --step, no wall clock
    data = tmp_path / "one.csv"
    data.write_text("patient_id,minute,heart_rate,spo2\n" + rows)
    out = tmp_path / "prep"
    proc = run(
        *("prepare", str(data), "--out", str(out), "--source", "tidy", "--step", "60"),
        *("--window", "16", "--stride", "8", "--split-by", "time", "--observed-mask"),
        *("--gap", "spo2=10min:5min"),
    )
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert (
        "auto chose stay" in text and "spo2: gaps ≤ 600 s interpolated, then carried 300 s" in text
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["time_features"] == "stay" and manifest["data"]["split_by"] == "time"
    assert manifest["data"]["gap_carry_s"] == [0.0, 300.0]
    assert manifest["feature_names"][-1] == "stay_log_hours"
    assert {c: manifest["counts"][c]["windows"] > 0 for c in ("train", "val", "test")} == {
        "train": True,
        "val": True,
        "test": True,
    }


def test_misspelt_column_and_unknown_source(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,timestamp,heart_rat\nP1,2024-01-01T00:00:00Z,70\n")
    assert_one_line_error(
        run("prepare", str(bad), "--out", str(tmp_path / "o"), "--source", "tidy"), "heart_rat"
    )
    assert_one_line_error(run("audit", str(bad), "--source", "nope"), "unknown source", "nope")


def test_real_sample_files_auto_detected(tmp_path: Path) -> None:
    proc = run("audit", str(SAMPLE_DIR / "vitals2024_sample.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "detected 'vitals2024'" in proc.stdout
    assert "No per-patient time series" in proc.stdout


def test_batch_splits_with_ddp_is_a_one_line_error(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort.parquet"
    assert run("simulate", "--out", str(cohort), "--patients", "4", "--hours", "1").returncode == 0
    assert run("prepare", str(cohort), "--out", str(tmp_path / "prep")).returncode == 0
    proc = run(
        "pretrain",
        str(tmp_path / "prep"),
        "--out",
        str(tmp_path / "b"),
        "--batch-splits",
        "2",
        "--devices",
        "2",
        "--accelerator",
        "cpu",
    )
    assert_one_line_error(proc, "batch_splits 2 needs accelerator cpu and one process")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("nosuch",), "No such command 'nosuch'"),
        (("score", "--nosuch"), "No such option: --nosuch"),
        (("simulate", "--patients", "abc"), "Invalid value for '--patients'"),
    ],
)
def test_usage_errors_without_traceback(args: tuple[str, ...], needle: str) -> None:
    proc = run(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert needle in proc.stderr
