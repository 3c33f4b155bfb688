"""Pipeline stages on a tiny simulated cohort: detector, fusion, scoring, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vitalsentry.bundle import load_bundle
from vitalsentry.config import (
    DataConfig,
    DetectorConfig,
    FusionConfig,
    ModelConfig,
    TrainConfig,
    WindowConfig,
)
from vitalsentry.data.prepared import PreparedData, prepare
from vitalsentry.data.readings import Readings, validate_frame
from vitalsentry.data.simulate import SimulationConfig, simulate_cohort
from vitalsentry.errors import BundleError, DataError
from vitalsentry.evaluation.evaluate import label_events, write_evaluation
from vitalsentry.pipeline import VitalRiskPipeline, fit_detector, fit_fusion
from vitalsentry.risk.multiview import VIEW_NAMES
from vitalsentry.training.pretrain import pretrain

WINDOW = WindowConfig(length=64, stride=32)


@pytest.fixture(scope="module")
def cohort() -> Readings:
    frame, events = simulate_cohort(SimulationConfig(patients=9, hours=1.0, seed=3))
    static = frame.groupby("patient_id")[["age", "sex", "bmi"]].first()
    frame = frame.drop(columns=["age", "sex", "bmi"])
    return Readings(validate_frame(frame, "cohort"), static, "tidy", False, "cohort", events=events)


def _train(data: PreparedData, out: Path) -> Path:
    model = ModelConfig(
        input_channels=data.windows.shape[1], seq_len=64, lstm_hidden=16, latent_dim=8
    )
    pretrain(
        data,
        model,
        TrainConfig(max_epochs=1, batch_size=64),
        out,
        accelerator="cpu",
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def stages(cohort: Readings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("stages")
    cardio = prepare(cohort, DataConfig(channels=("heart_rate", "spo2")), WINDOW)
    resp = prepare(cohort, DataConfig(channels=("respiratory_rate", "spo2")), WINDOW)
    _train(cardio, root / "cardio")
    _train(resp, root / "resp")
    summary = fit_detector(
        root / "cardio", cardio, root / "detector", DetectorConfig(n_estimators=50)
    )
    fit_fusion(root / "detector", root / "resp", cardio, resp, root / "final", FusionConfig())
    return {"root": root, "cardio": cardio, "resp": resp, "summary": summary}


def test_detector_stage_records_threshold(stages: dict[str, object]) -> None:
    summary = stages["summary"]
    assert isinstance(summary, dict)
    assert summary["threshold_source"] == (
        "cross-fitted training patients + validation patients (split 1)"
    )
    assert 0.0 <= summary["val_fpr"] <= 0.03 + 1e-9
    assert summary["fold_fpr"]["folds"] == len(summary["fold_fpr"]["fpr"]) >= 2
    assert summary["views"] and summary["combine"] in ("mean", "max")
    bundle = load_bundle(Path(str(stages["root"])) / "final")
    assert {
        "detector.skops",
        "views.json",
        "view_embedding_knn.skops",
        "calibration.json",
        "fusion.skops",
        "resp_encoder.safetensors",
    } <= set(bundle.manifest["files"])


def test_score_frame_columns_and_consistency(stages: dict[str, object], cohort: Readings) -> None:
    pipe = VitalRiskPipeline.from_bundle(Path(str(stages["root"])) / "final")
    one = cohort.frame[cohort.frame["patient_id"] == "P0001"]
    table = pipe.score_frame(one)
    expected = {
        "patient_id",
        "window_start",
        "window_end",
        "risk",
        "level",
        "anomaly_score",
        "label",
    }
    assert expected <= set(table.columns)
    assert {"contribution_heart_rate", "contribution_spo2"} <= set(table.columns)
    assert {f"view_{v}" for v in VIEW_NAMES} <= set(table.columns)  # the "why" per view
    assert table["view_baseline_shift"].isna().iloc[0]  # no earlier window
    assert table["risk"].between(0, 1).all()
    np.testing.assert_allclose(
        table[["contribution_heart_rate", "contribution_spo2"]].sum(axis=1), 1.0
    )
    latest = pipe.score_frame(one, latest_only=True)
    assert len(latest) == 1
    mc = pipe.score_frame(one, mc_passes=4)
    assert (mc["risk_std"] >= 0).all()
    np.testing.assert_allclose(
        mc["risk"], table["risk"]
    )  # MC passes leave the point estimate alone


def test_scoring_refuses_missing_channels(stages: dict[str, object], cohort: Readings) -> None:
    pipe = VitalRiskPipeline.from_bundle(Path(str(stages["root"])) / "final")
    with pytest.raises(DataError, match="spo2"):
        pipe.score_frame(cohort.frame.drop(columns=["spo2"]))


def test_pipeline_needs_a_detector(stages: dict[str, object]) -> None:
    with pytest.raises(BundleError, match="fit-detector"):
        VitalRiskPipeline.from_bundle(Path(str(stages["root"])) / "cardio")


def test_fit_detector_refuses_other_channels(stages: dict[str, object], tmp_path: Path) -> None:
    resp = stages["resp"]
    assert isinstance(resp, PreparedData)
    with pytest.raises(BundleError, match="trained on features"):
        fit_detector(Path(str(stages["root"])) / "cardio", resp, tmp_path / "x", DetectorConfig())


def test_evaluation_report(stages: dict[str, object], cohort: Readings, tmp_path: Path) -> None:
    report = write_evaluation(
        {"simulated": (Path(str(stages["root"])) / "final", cohort, ("a finding",))},
        tmp_path,
        mc_passes=2,
    )
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["datasets"]["simulated"]["findings"] == ["a finding"]
    section = report["datasets"]["simulated"]
    for key in ("tier1", "tier2", "tier3", "baselines", "alarms", "ci95", "reasons"):
        assert key in section
    for name in ("news2", "iforest_raw", "gbm", "recon_error"):
        assert set(section["baselines"][name]) == {"roc_auc", "pr_auc"}
    for path, value in [(f"tier2.{k}", v) for k, v in section["tier2"].items()]:
        assert value is not None or path in section["reasons"]
    assert "fusion_ablation" in section
    assert (tmp_path / "report.md").read_text().startswith("# vitalsentry evaluation report")
    assert all(Path(p).is_file() for p in written["plots"])


def test_label_events_merges_short_gaps(cohort: Readings) -> None:
    events = label_events(cohort.frame, set(cohort.frame["patient_id"]))
    assert cohort.events is not None
    assert sum(len(v) for v in events.values()) == len(cohort.events)
