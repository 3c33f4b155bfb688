"""The stage contract: ownership of bundle files, composition, and bundles of the older layout."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vitalsentry.bundle import MANIFEST, load_bundle, load_stages, save_stages
from vitalsentry.config import DetectorConfig, ModelConfig, TrainConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.errors import BundleError, DataError, TrainingError
from vitalsentry.evaluation.sepsis.baselines import GbmConfig
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.stages import (
    CONTEXT_HEAD_META,
    STAGES,
    AlarmStage,
    ContextHeadStage,
    ContextInputs,
    DetectorStage,
    EncoderStage,
    FitInputs,
    owns,
    stage_order,
)
from vitalsentry.training.loop import TrainOptions

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_bundle_v1 import cohort_data

FIXTURE = Path(__file__).parent / "fixtures" / "bundle_v1.tar.gz"
"""A bundle written by the layout before the stage contract (commit 9a304a8, by
``fixtures/make_bundle_v1.py``), with the scores that code gave (``expected.npz``)."""
V1_STAGES = set(STAGES) - {ContextHeadStage.name}
"""The stages the older layout had (the context head came later)."""


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v1")
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(root, filter="data")
    return root


def _scores(pipe: VitalRiskPipeline, expected: np.lib.npyio.NpzFile) -> dict[str, np.ndarray]:
    s = pipe.score_windows(expected["windows"], where=(expected["patient"], expected["start_s"]))
    return {"anomaly_score": s.anomaly_score, "risk": s.risk, "embedding": s.embedding}


def test_a_bundle_of_the_older_layout_scores_as_it_did(v1: Path) -> None:
    expected = np.load(v1 / "expected.npz")
    pipe = VitalRiskPipeline.from_bundle(v1 / "bundle")
    for name, values in _scores(pipe, expected).items():
        np.testing.assert_array_equal(values, expected[name], err_msg=name)
    assert pipe.fusion is not None and set(pipe.stages.parts) == V1_STAGES


def test_saving_loaded_stages_gives_the_same_files_and_scores(v1: Path, tmp_path: Path) -> None:
    expected = np.load(v1 / "expected.npz")
    saved = save_stages(load_stages(v1 / "bundle"), tmp_path / "again")
    old, new = load_bundle(v1 / "bundle"), load_bundle(saved)
    assert set(old.manifest["files"]) == set(new.manifest["files"])
    same = {"config", "feature_names", "data", "training", "metrics", "parent", "detector_data"}
    assert {k: new.manifest[k] for k in same} == {k: old.manifest[k] for k in same}
    for name, values in _scores(VitalRiskPipeline(new), expected).items():
        np.testing.assert_array_equal(values, expected[name], err_msg=name)


def test_every_file_has_exactly_one_owner(v1: Path) -> None:
    files = [*load_bundle(v1 / "bundle").manifest["files"]]
    for name in files:
        owners = [kind.name for kind in STAGES.values() if owns(kind, name)]
        assert len(owners) == 1, (name, owners)
    fixed = [name for kind in STAGES.values() for name in kind.files]
    assert len(fixed) == len(set(fixed)) and MANIFEST not in fixed


def test_stage_names_are_checked_and_ordered() -> None:
    assert stage_order(["fusion", "scaler", "detector"]) == ("scaler", "detector", "fusion")
    with pytest.raises(TrainingError, match="unknown stage 'calibration'"):
        stage_order(["calibration"])


@pytest.fixture(scope="module")
def cardio() -> PreparedData:
    return cohort_data(("heart_rate", "spo2"))


def test_the_older_layouts_fusion_head_gives_its_probabilities(
    v1: Path, cardio: PreparedData
) -> None:
    pipe = VitalRiskPipeline.from_bundle(v1 / "bundle")
    assert pipe.fusion is not None
    resp = cohort_data(("respiratory_rate", "spo2"))
    fused = pipe.fusion.inputs(pipe, cardio, resp).matrix(pipe.fusion.config.use_static)
    expected = np.load(v1 / "expected.npz")["fusion"]
    np.testing.assert_array_equal(pipe.fusion.predict_proba(fused[:6]), expected)


def test_refitting_the_detector_in_memory_keeps_the_rest_and_saves_as_fitted(
    v1: Path, cardio: PreparedData, tmp_path: Path
) -> None:
    # the detector's rule has changed since the fixture (recency-weighted views, at least
    # two views combined), so its refit is checked against its own saved bundle
    loaded = load_stages(v1 / "bundle")
    config = DetectorConfig(n_estimators=5, cv_folds=2)
    refitted = loaded.fit(("detector", "alarm"), FitInputs(cardio, detector=config))
    assert refitted.origin is None and set(refitted.parts) == V1_STAGES
    assert refitted.parts["fusion"] is loaded.parts["fusion"]
    again = load_stages(save_stages(refitted, tmp_path / "again"))
    assert again.get(DetectorStage).calibration == refitted.get(DetectorStage).calibration
    assert again.get(AlarmStage).record == refitted.get(AlarmStage).record
    metrics = refitted.record["metrics"]
    assert json.loads(json.dumps(metrics)) == again.record["metrics"]
    recency = metrics["detector"]["selection"]["recency"]
    assert recency["chosen"] == again.get(DetectorStage).views.settings.recency
    assert len(metrics["detector"]["views"]) >= 2


def test_the_alarm_policy_needs_a_detector_fitted_in_the_same_run(
    v1: Path, cardio: PreparedData
) -> None:
    with pytest.raises(TrainingError, match="fit both together"):
        load_stages(v1 / "bundle").fit(("alarm",), FitInputs(cardio))


def test_partial_fit_freezes_conv_records_the_parent_and_refits_later_stages(
    v1: Path, cardio: PreparedData, tmp_path: Path
) -> None:
    pipe = VitalRiskPipeline.from_bundle(v1 / "bundle")
    with pytest.raises(TrainingError, match="TrainOptions"):
        pipe.stages.partial_fit(FitInputs(cardio, train=TrainConfig.finetune()))
    options = TrainOptions(tmp_path / "ckpt", accelerator="cpu", progress=False)
    train = TrainConfig.finetune().replace(max_epochs=1)
    detector = DetectorConfig(n_estimators=5, cv_folds=2)
    inputs = FitInputs(cardio, train=train, detector=detector, options=options)
    tuned = pipe.partial_fit(inputs, tmp_path / "tuned")
    assert list(tuned.stages.parts) == ["scaler", "encoder", "detector", "alarm"]
    assert tuned.fusion is None and not (tmp_path / "ckpt").exists()
    parent = tuned.bundle.manifest["parent"]
    assert parent["manifest_sha256"] == pipe.bundle.manifest_sha256
    assert parent["weights_sha256"] == pipe.stages.identity()["weights_sha256"]
    assert tuned.bundle.manifest["training"]["phase"] == "finetune"
    for a, b in zip(pipe.model.conv_modules(), tuned.model.conv_modules(), strict=True):
        for x, y in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(x, y)
    assert not torch.equal(pipe.model.encoder.head.weight, tuned.model.encoder.head.weight)
    assert np.isfinite(tuned.score_windows(cardio.windows[:4]).risk).all()


def test_a_pipeline_fits_from_scratch_in_one_call(cardio: PreparedData, tmp_path: Path) -> None:
    model = ModelConfig(input_channels=4, seq_len=32, lstm_hidden=4, latent_dim=3, lstm_layers=1)
    inputs = FitInputs(
        cardio,
        model=model,
        train=TrainConfig(max_epochs=1, batch_size=64),
        detector=DetectorConfig(n_estimators=5, cv_folds=2),
        options=TrainOptions(tmp_path / "ckpt", accelerator="cpu", progress=False),
    )
    with pytest.raises(BundleError, match="no encoder stage"):
        VitalRiskPipeline.fit(("detector",), inputs, tmp_path / "x")
    pipe = VitalRiskPipeline.fit(("scaler", "encoder", "detector", "alarm"), inputs, tmp_path / "b")
    assert pipe.bundle.manifest["training"]["phase"] == "pretrain"
    assert pipe.bundle.manifest["parent"] is None and not (tmp_path / "x").exists()
    assert np.isfinite(pipe.score_windows(cardio.windows[:4]).risk).all()


def _context_table(n: int = 600, seed: int = 0) -> ContextInputs:
    """Hourly rows whose label follows the first column; splits 0, 1 and 2 at random."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    z = rng.normal(size=(n, 2)).astype(np.float32)
    labels = (x[:, 0] + 0.5 * rng.normal(size=n) > 0.8).astype(np.int8)
    split = rng.choice(np.array([0, 1, 2], np.int8), n, p=[0.6, 0.2, 0.2])
    return ContextInputs([x, z], labels, split, GbmConfig(max_iter=20, min_samples_leaf=5))


def test_the_context_head_is_fitted_after_an_encoder_and_saved_with_it(
    v1: Path, tmp_path: Path
) -> None:
    table = _context_table()
    loaded = load_stages(v1 / "bundle")
    fitted = loaded.fit(("context_head",), FitInputs(context=table))
    assert set(fitted.parts) == set(STAGES) and fitted.parts["fusion"] is loaded.parts["fusion"]
    head = fitted.get(ContextHeadStage)
    assert fitted.record["metrics"]["context_head"]["train_rows"] == int((table.split == 0).sum())
    assert head.meta["encoder"] == loaded.identity()["weights_sha256"]
    test = table.split == 2
    risk = head.predict(table.blocks, test)
    assert np.isnan(risk[~test]).all() and ((risk[test] > 0) & (risk[test] < 1)).all()
    labels = table.labels[test]
    assert risk[test][labels == 1].mean() > risk[test][labels == 0].mean()
    again = load_stages(save_stages(fitted, tmp_path / "head")).get(ContextHeadStage)
    np.testing.assert_array_equal(again.predict(table.blocks, test), risk)
    assert again.platt == head.platt and again.meta == head.meta
    assert owns(ContextHeadStage, "context_head.skops") and owns(
        ContextHeadStage, CONTEXT_HEAD_META
    )


def test_the_context_head_refuses_missing_inputs_and_a_table_of_another_width(v1: Path) -> None:
    loaded = load_stages(v1 / "bundle")
    with pytest.raises(TrainingError, match=r"FitInputs\.context"):
        loaded.fit(("context_head",), FitInputs())
    with pytest.raises(TrainingError, match=r"FitInputs\.data"):
        loaded.fit(("detector",), FitInputs(context=_context_table()))
    table = _context_table()
    head = loaded.fit(("context_head",), FitInputs(context=table)).get(ContextHeadStage)
    with pytest.raises(DataError, match="takes 5 features, not 3"):
        head.predict(table.blocks[:1])


def test_the_context_heads_json_check_refuses_a_malformed_file(v1: Path) -> None:
    table = _context_table()
    fitted = load_stages(v1 / "bundle").fit(("context_head",), FitInputs(context=table))
    good = fitted.get(ContextHeadStage).meta
    check = ContextHeadStage.json_checks[CONTEXT_HEAD_META]
    check(good)
    for bad in (
        {k: v for k, v in good.items() if k != "platt"},
        good | {"platt": {"a": "1", "b": 0.0}},
        good | {"gbm": good["gbm"] | {"trees": 3}},
    ):
        with pytest.raises(BundleError, match="context head"):
            check(bad)


def test_refitting_the_scaler_drops_the_context_head(v1: Path, cardio: PreparedData) -> None:
    fitted = load_stages(v1 / "bundle").fit(("context_head",), FitInputs(context=_context_table()))
    refitted = fitted.fit(("scaler",), FitInputs(cardio))
    assert list(refitted.parts) == ["scaler", "encoder"]
    assert refitted.get(EncoderStage) is fitted.get(EncoderStage)
