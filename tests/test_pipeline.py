"""Pipeline stages on a tiny simulated cohort: detector, fusion, scoring, evaluation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from vitalsentry.bundle import load_bundle
from vitalsentry.cli import app
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
from vitalsentry.evaluation.evaluate import HeldOutSplit, label_events, write_evaluation
from vitalsentry.pipeline import VitalRiskPipeline, fit_detector, fit_fusion
from vitalsentry.risk.multiview import VIEW_NAMES
from vitalsentry.scoring import ScoreTable, score_readings
from vitalsentry.serve.app import create_app
from vitalsentry.serve.settings import Settings
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


def _dense(cohort: Readings) -> Readings:
    """The cohort with every channel measured at every reading (interpolated per patient).

    A window's values then depend on no reading after its end, so a patient's readings cut
    at a window's end give that window exactly.
    """
    frame = cohort.frame.copy()
    channels = ["spo2", "respiratory_rate"]
    frame[channels] = frame.groupby("patient_id")[channels].transform(
        lambda c: c.interpolate(limit_direction="both")
    )
    return dataclasses.replace(cohort, frame=frame)


def _service_body(rows: pd.DataFrame, static: pd.Series) -> dict[str, object]:
    readings = [
        {
            "timestamp": t.isoformat(),
            "heart_rate": hr,
            "spo2": spo2,
            "respiratory_rate": rr,
        }
        for t, hr, spo2, rr in rows[
            ["timestamp", "heart_rate", "spo2", "respiratory_rate"]
        ].itertuples(index=False)
    ]
    return {
        "patient_id": str(rows["patient_id"].iloc[0]),
        "readings": readings,
        "age": float(static["age"]),
        "sex": "male" if static["sex"] == 1 else "female",
        "bmi": float(static["bmi"]),
        "alarm_state": {"on": False},
    }


def test_cli_service_and_evaluation_score_the_same_readings_alike(
    stages: dict[str, object], cohort: Readings, tmp_path: Path
) -> None:
    """One scoring path: `vitalsentry score`, POST /v1/score and the evaluation agree."""
    bundle = Path(str(stages["root"])) / "final"
    pipe = VitalRiskPipeline.from_bundle(bundle)
    dense = _dense(cohort)
    evaluation = score_readings(pipe, HeldOutSplit(dense), history={})
    assert evaluation.fused_risk is not None and evaluation.alarm is not None
    patient = str(evaluation.patient[0])
    rows = dense.frame[dense.frame["patient_id"] == patient]
    static = dense.static.loc[patient]
    mine = evaluation.patient == patient
    first = int(np.flatnonzero(mine)[np.argmin(evaluation.start_s[mine])])
    end = pd.Timestamp(evaluation.end_s[first], unit="s", tz="UTC")

    def cli(part: pd.DataFrame, name: str) -> pd.DataFrame:
        csv, out = tmp_path / f"{name}.csv", tmp_path / f"{name}.parquet"
        part.assign(**{k: static[k] for k in ("age", "sex", "bmi")}).to_csv(csv, index=False)
        done = CliRunner().invoke(app, ["score", str(bundle), str(csv), "--out", str(out)])
        assert done.exit_code == 0, done.output
        return pd.read_parquet(out)

    # every window of the patient: the CLI's table is the evaluation's rows (views with history)
    whole = cli(rows, "whole")
    assert len(whole) == mine.sum()
    _assert_rows_equal(pipe, evaluation, np.flatnonzero(mine), whole)
    # the readings up to the patient's first window's end: CLI, service and evaluation
    part = rows[rows["timestamp"] <= end]
    first_cli = cli(part, "first")
    app_ = create_app(Settings(bundle=None, require_api_key=False), pipeline=pipe)
    with TestClient(app_) as client:
        api = client.post("/v1/score", json=_service_body(part, static)).json()
    assert len(first_cli) == 1
    _assert_rows_equal(pipe, evaluation, np.array([first]), first_cli)
    row = first_cli.iloc[0]
    assert pd.Timestamp(api["window_start"]) == row["window_start"]
    assert (api["risk"], api["level"], api["anomaly_score"]) == (
        row["risk"],
        row["level"],
        row["anomaly_score"],
    )
    assert api["contributions"] == {c: row[f"contribution_{c}"] for c in pipe.channels}
    assert api["fused_risk"] == row["fused_risk"] and api["fused_risk_note"] is None
    assert api["alarm"]["on"] == row["alarm_on"]
    assert api["views"] == {
        v: None if np.isnan(row[f"view_{v}"]) else row[f"view_{v}"] for v in api["views"]
    }


def _assert_rows_equal(
    pipe: VitalRiskPipeline, table: ScoreTable, rows: np.ndarray, frame: pd.DataFrame
) -> None:
    """The table's ``rows`` are the CLI frame's rows (in window order).

    Up to float32 rounding: the evaluation encodes many windows per batch, the CLI a few.
    """
    expected = table.frame(pipe.channels).iloc[rows]
    expected = expected.sort_values("window_start", ignore_index=True)
    got = frame.drop(columns="label").sort_values("window_start", ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-5, atol=1e-6)


def test_score_says_why_a_fused_risk_is_missing(
    stages: dict[str, object], cohort: Readings
) -> None:
    root = Path(str(stages["root"]))
    one = cohort.frame[cohort.frame["patient_id"] == "P0001"]
    fused = VitalRiskPipeline.from_bundle(root / "final")
    table = fused.score(one.drop(columns=["respiratory_rate"]))
    assert table.fused_risk is None and "respiratory_rate" in str(table.fused_note)
    assert "fused_risk" not in table.frame(fused.channels).columns
    plain = VitalRiskPipeline.from_bundle(root / "detector").score(one)
    assert plain.fused_risk is None and "no fusion head" in str(plain.fused_note)
    with_resp = fused.score(one, static=cohort.static, history={})
    assert with_resp.fused_risk is not None and with_resp.fused_note is None
    assert ((with_resp.fused_risk >= 0) & (with_resp.fused_risk <= 1)).all()
    assert with_resp.alarm is not None and len(with_resp.alarm) == len(with_resp)
