"""The risk's whole scoring path and its patient chunks give the head's own numbers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.config import ModelConfig
from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.evaluation.sepsis import model
from vitalsentry.evaluation.sepsis.baselines import GbmConfig, fit_gbm
from vitalsentry.evaluation.sepsis.features import Cohort, causal_windows
from vitalsentry.stages import ContextHeadStage
from vitalsentry.training.loop import init_model


def _cohort(sizes: list[int], seed: int) -> Cohort:
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    patient = np.repeat([f"p{i:03d}" for i in range(len(sizes))], sizes)
    vitals = rng.normal(80, 10, size=(n, 2)).astype(np.float32)
    vitals[rng.random((n, 2)) < 0.4] = np.nan
    context = rng.normal(size=(n, 1)).astype(np.float32)
    context[rng.random((n, 1)) < 0.7] = np.nan
    label = (rng.random(n) < 0.2 + 0.3 * (np.nan_to_num(vitals[:, 0]) > 85)).astype(np.int8)
    return Cohort(patient, vitals, ("heart_rate", "spo2"), context, ("lab",), label)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=12), st.integers(1, 30))
def test_patient_chunks_cut_between_stays_and_cover_every_row(sizes: list[int], rows: int) -> None:
    c = _cohort(sizes, 0)
    parts = model.patient_chunks(c, rows)
    np.testing.assert_array_equal(np.concatenate([p.patient for p in parts]), c.patient)
    ends = [p.patient[-1] for p in parts[:-1]]
    assert all(e != p.patient[0] for e, p in zip(ends, parts[1:], strict=True))
    # a part only exceeds `rows` by the stay that crosses its nominal end
    assert all(len(p) < rows + max(sizes) for p in parts)


def _scorer(c: Cohort, trend_hours: int | None) -> model.RiskScorer:
    window = 4
    train = np.arange(len(c)) < len(c) // 2
    medians = model.training_medians(c, train)
    vitals = model.vital_inputs(c, medians)
    rows = np.arange(len(c), dtype=np.intp)
    scaler = ChannelScaler(vitals.names).fit(
        causal_windows(vitals.filled, vitals.observed, c.starts, rows, window)
    )
    ae = init_model(ModelConfig(input_channels=4, seq_len=window, latent_dim=4), 0).eval()
    inputs = model.RiskInputs(ae, scaler, medians, window, 3, trend_hours)
    blocks = inputs.blocks(c)
    gbm = fit_gbm(blocks, c.label, train, GbmConfig(max_iter=20, min_samples_leaf=5))
    width = sum(b.shape[1] for b in blocks)
    head = ContextHeadStage(gbm, model.PlattCalibration(0.8, -0.1), {"features": width})
    return model.RiskScorer(inputs, head)


@pytest.mark.parametrize("trend_hours", [None, 6])
def test_scoring_by_chunks_on_threads_equals_the_head_on_the_whole_table(
    monkeypatch: pytest.MonkeyPatch, trend_hours: int | None
) -> None:
    c = _cohort([int(h) for h in np.random.default_rng(1).integers(3, 40, 30)], 1)
    scorer = _scorer(c, trend_hours)
    expected = scorer.head.predict(scorer.inputs.blocks(c))
    monkeypatch.setattr(model, "SCORE_CHUNK", 50)
    for workers in (1, 2):
        np.testing.assert_allclose(scorer.score(c, workers=workers), expected, rtol=1e-6)
    assert len(model.patient_chunks(c, model.SCORE_CHUNK)) > 4
