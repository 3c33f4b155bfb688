"""The sepsis benchmark end to end on a tiny synthetic cohort in the PhysioNet 2019 format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sepsis_cohort import write_cohort

pytest.importorskip("vitalsentry.data.physionet", reason="needs the physionet2019 reader")

from vitalsentry.bundle import load_stages
from vitalsentry.evaluation.sepsis.baselines import GbmConfig
from vitalsentry.evaluation.sepsis.benchmark import (
    SepsisBenchmarkConfig,
    run_benchmark,
)
from vitalsentry.evaluation.sepsis.model import AutoencoderSettings
from vitalsentry.stages import ContextHeadStage

SMALL = SepsisBenchmarkConfig(
    n_boot=20,
    autoencoder=AutoencoderSettings(epochs=2, max_windows=3000),
    gbm=GbmConfig(max_iter=40, min_samples_leaf=20),
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("sepsis")
    data = write_cohort(root / "train", 90, 0)
    out = root / "out"
    report = run_benchmark(data, out, config=SMALL)
    return out, report, data


def test_report_has_every_method_metric_and_plot(run: tuple[Path, dict[str, Any], Path]) -> None:
    out, report, _ = run
    assert set(report["results"]) == {
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
    saved = json.loads((out / "report.json").read_text())["results"]
    assert saved["risk"]["roc_auc"] == report["results"]["risk"]["roc_auc"]
    assert "| vitalsentry risk" in (out / "report.md").read_text()


def test_rerun_resumes_from_the_cache(run: tuple[Path, dict[str, Any], Path]) -> None:
    out, report, data = run
    assert len(list((out / "cache").rglob("*.skops"))) == 5
    again = run_benchmark(data, out, config=SMALL)
    assert again["results"]["risk"]["roc_auc"] == report["results"]["risk"]["roc_auc"]
    assert again["timings_s"]["autoencoder"] < report["timings_s"]["autoencoder"]


def test_each_risk_head_is_a_context_head_stage_saved_with_the_autoencoder(
    run: tuple[Path, dict[str, Any], Path],
) -> None:
    out, report, _ = run
    heads = sorted((out / "cache").rglob(ContextHeadStage.files[0]))
    assert [h.parent.name.split("-")[0] for h in heads] == [
        "risk",
        "risk_no_context",
        "risk_no_embeddings",
    ]
    for folder in (h.parent for h in heads):
        stages = load_stages(folder)
        assert list(stages.parts) == ["scaler", "encoder", "context_head"]
        head = stages.get(ContextHeadStage)
        assert head.meta["encoder"] == stages.identity()["weights_sha256"]
        # the risk and both ablations share the run's recipe, saved in bundle and report
        assert (
            head.meta["recipe"] == report["config"]["head"] == {"target": "utility", "floor": 0.05}
        )
        name = folder.name.rsplit("-", 1)[0]
        assert report["autoencoder"][f"{name}_calibration"] == head.meta["platt"]
        # boosting stopped early on the validation patients, within the configured cap
        assert 0 < report["autoencoder"][f"{name}_trees"] == head.model.n_iter_ <= 40


def test_risk_is_scored_end_to_end_and_timed(run: tuple[Path, dict[str, Any], Path]) -> None:
    _, report, _ = run
    ae = report["autoencoder"]
    assert ae["score_workers"] == 2 and len(ae["score_load_average"]) == 3
    assert ae["score_patient_hours_per_s"] > 0 and ae["score_patient_hours_per_cpu_s"] > 0
    assert report["timings_s"]["scoring"] >= 0


def test_external_test_file(run: tuple[Path, dict[str, Any], Path], tmp_path: Path) -> None:
    _, _, data = run
    other = write_cohort(tmp_path / "other", 30, 1)
    report = run_benchmark(data, tmp_path / "ext", test=other, config=SMALL)
    assert report["counts"]["test"]["patients"] == 30
    assert report["counts"]["train"]["patients"] + report["counts"]["validation"]["patients"] == 90


def test_cli_runs_and_bad_input_is_one_line(tmp_path: Path) -> None:
    data = write_cohort(tmp_path / "cli", 45, 2)
    cmd = [sys.executable, "-m", "vitalsentry.cli", "benchmark", "physionet2019"]
    ok = subprocess.run(
        [
            *cmd,
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--quiet",
            "--n-boot",
            "10",
            "--epochs",
            "1",
            "--trees",
            "20",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "risk: utility" in ok.stdout and (tmp_path / "o" / "report.md").is_file()
    bad = subprocess.run(
        [*cmd, str(tmp_path / "missing"), "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert len([line for line in bad.stderr.splitlines() if line.strip()]) == 1


def test_step_holds_each_fresh_prediction_until_the_next() -> None:
    import numpy as np

    from vitalsentry.evaluation.sepsis.benchmark import _hold
    from vitalsentry.evaluation.sepsis.features import Cohort

    patient = np.repeat(np.array(["a", "b"]), [5, 4])
    cohort = Cohort(
        patient,
        np.zeros((9, 1), np.float32),
        ("heart_rate",),
        np.zeros((9, 0), np.float32),
        (),
        np.zeros(9, np.int8),
    )
    held = _hold(np.arange(9.0), cohort, 2)
    np.testing.assert_array_equal(held, [0, 0, 2, 2, 4, 5, 5, 7, 7])
