"""Smoke test of `vitalsentry demo --quick` (what `make demo` runs, shrunk), then `score`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vitalsentry.bundle import load_bundle
from vitalsentry.evaluation.report import validate_report


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vitalsentry.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    proc = cli("demo", "--quick", "--out", str(out), "--keep-intermediate")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "seed metric table" in proc.stdout
    return out


@pytest.mark.slow
def test_demo_writes_bundle_and_valid_report(demo_out: Path) -> None:
    report = json.loads((demo_out / "report" / "report.json").read_text())
    validate_report(report)
    assert {"simulated", "vitals2024"} <= set(report["datasets"])
    assert (demo_out / "report" / "report.md").is_file()
    assert all(Path(p).is_file() for p in report["plots"])
    for bundle in ("bundle", "vitals2024_bundle"):
        files = load_bundle(demo_out / bundle).manifest["files"]
        assert {"encoder.safetensors", "detector.skops", "calibration.json", "fusion.skops"} <= set(
            files
        )
    kept = {p.name for p in (demo_out / "bundles").iterdir()}
    assert kept == {
        "simulated_pretrained",
        "simulated_respiratory",
        "simulated_detector",
        "vitals2024_pretrained",
        "vitals2024_respiratory",
        "iot_finetuned",
        "vitals2024_detector",
    }
    parent = load_bundle(demo_out / "bundles" / "iot_finetuned").manifest["parent"]
    assert (
        parent["manifest_sha256"]
        == load_bundle(demo_out / "bundles" / "vitals2024_pretrained").manifest_sha256
    )
    assert not list(demo_out.glob("*.ckpt"))
    vitals = report["datasets"]["vitals2024"]
    assert (
        vitals["alarms"]["per_patient_day"] is None
        and "alarms.per_patient_day" in vitals["reasons"]
    )


@pytest.mark.slow
def test_score_command_on_demo_bundle(demo_out: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    proc = cli(
        "score",
        str(demo_out / "bundle"),
        str(demo_out / "data" / "cohort.parquet"),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    table = pd.read_parquet(out)
    for column in (
        "patient_id",
        "window_start",
        "window_end",
        "risk",
        "level",
        "anomaly_score",
        "label",
    ):
        assert column in table.columns
    assert {"contribution_heart_rate", "contribution_spo2"} <= set(table.columns)
    assert table["level"].isin(["low", "medium", "high"]).all()


@pytest.mark.slow
def test_evaluate_refuses_bundle_without_detector(demo_out: Path, tmp_path: Path) -> None:
    proc = cli(
        "evaluate",
        str(demo_out / "bundles" / "simulated_pretrained"),
        str(demo_out / "data" / "cohort.parquet"),
        "--report",
        str(tmp_path / "r"),
    )
    assert proc.returncode == 2
    assert "fit-detector" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()
