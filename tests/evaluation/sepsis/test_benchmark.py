"""The sepsis benchmark end to end on a tiny synthetic cohort in the PhysioNet 2019 format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sepsis_cohort import write_cohort

pytest.importorskip("vitalsentry.data.physionet", reason="needs the physionet2019 reader")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vitalsentry.cli", "benchmark", "physionet2019", *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    root = tmp_path_factory.mktemp("sepsis")
    data = write_cohort(root / "train", 90, 0)
    out = root / "out"
    proc = _cli(str(data), "--out", str(out), "--quiet", "--n-boot", "20")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / "report.json").read_text()), data


def test_report_has_every_method_metric_and_plot(run: tuple[Path, dict, Path]) -> None:
    out, report, _ = run
    methods = set(report["results"])
    assert methods == {
        "news2",
        "qsofa",
        "sirs",
        "gbm_vitals",
        "gbm_all",
        "risk",
        "risk_no_embeddings",
        "risk_no_context",
    }
    for r in report["results"].values():
        assert -10 < r["utility"] <= 1.0 and 0.0 <= r["roc_auc"] <= 1.0
    # the synthetic drift is learnable: the supervised models beat chance clearly
    assert report["results"]["risk"]["roc_auc"] > 0.8
    assert report["counts"]["test"]["septic_patients"] >= 1
    for plot in report["plots"]:
        assert (out / plot).stat().st_size > 1000
    assert "| vitalsentry risk" in (out / "report.md").read_text()


def test_rerun_resumes_from_the_cache(run: tuple[Path, dict, Path]) -> None:
    out, report, data = run
    models = sorted(p.name for p in (out / "cache").rglob("*.skops"))
    assert len(models) == 5
    proc = _cli(str(data), "--out", str(out), "--quiet", "--n-boot", "20")
    assert proc.returncode == 0, proc.stderr
    again = json.loads((out / "report.json").read_text())
    assert again["results"]["risk"]["roc_auc"] == report["results"]["risk"]["roc_auc"]
    assert again["timings_s"]["autoencoder"] < report["timings_s"]["autoencoder"]


def test_external_test_file_and_bad_input(run: tuple[Path, dict, Path], tmp_path: Path) -> None:
    _, _, data = run
    other = write_cohort(tmp_path / "other", 30, 1)
    proc = _cli(
        str(data), "--out", str(tmp_path / "ext"), "--test", str(other), "--quiet", "--n-boot", "20"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "ext" / "report.json").read_text())
    assert report["counts"]["test"]["patients"] == 30
    assert report["counts"]["validation"]["patients"] > 0
    bad = _cli(str(tmp_path / "missing"), "--out", str(tmp_path / "x"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert len([line for line in bad.stderr.splitlines() if line.strip()]) == 1
