"""The multi-view detector stage: inputs, cross-fitting, standardisation, choice, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.errors import BundleError, DataError
from vitalsentry.risk.multiview import (
    RECENCY,
    RECENCY_CANDIDATES,
    VIEW_NAMES,
    VIEWS_FILE,
    MultiViewDetector,
    ViewInputs,
    ViewSettings,
    baseline_deviation,
    candidates,
    choose_combination,
    choose_recency,
    combine,
    fit_multiview,
    fold_groups,
    recency_weights,
    step_news2,
    view_inputs,
)
from vitalsentry.risk.news2 import news2_score

SETTINGS = ViewSettings(n_estimators=30, folds=3)


def _cohort(
    seed: int, patients: int = 6, per: int = 30
) -> tuple[ViewInputs, np.ndarray, np.ndarray]:
    """Windows of ``patients`` patients; the last 5 windows of every other one are shifted."""
    rng = np.random.default_rng(seed)
    n = patients * per
    windows = rng.normal(size=(n, 3, 16)) + np.array([70.0, 97.0, 0.0])[None, :, None]
    labels = np.zeros(n, dtype=np.int8)
    for p in range(0, patients, 2):
        rows = slice(p * per + per - 5, p * per + per)
        windows[rows, 0] += 8.0
        labels[rows] = 1
    patient = np.repeat([f"P{p}" for p in range(patients)], per)
    start = np.tile(np.arange(per) * 16.0, patients)
    embedding = windows[:, :2].mean(axis=2) + rng.normal(scale=0.1, size=(n, 2))
    errors = np.abs(windows[:, :2] - windows[:, :2].mean(axis=2, keepdims=True))
    inputs = view_inputs(
        embedding,
        (errors.mean(axis=2), errors),
        windows,
        ("heart_rate", "spo2", "hour_sin"),
        patient=patient,
        start_s=start,
        span_s=16.0,
        lookback=4,
    )
    return inputs, labels, patient


def test_view_inputs_shapes_and_lone_windows_without_baseline() -> None:
    inputs, labels, patient = _cohort(0)
    assert inputs.baseline.shape == inputs.errors.shape == (labels.size, 2)
    first = np.r_[True, patient[1:] != patient[:-1]]
    assert np.isnan(inputs.baseline[first]).all()
    assert np.isfinite(inputs.baseline[~first]).all()
    for view in VIEW_NAMES:
        assert inputs.of(view).shape[0] == labels.size
    lone = view_inputs(
        inputs.embedding[:2],
        (inputs.mean_errors[:2], inputs.step_errors[:2]),
        np.zeros((2, 3, 16)),
        ("heart_rate", "spo2", "hour_sin"),
        patient=None,
        start_s=None,
        span_s=16.0,
        lookback=4,
    )
    assert np.isnan(lone.baseline).all()


@settings(max_examples=25, deadline=None)
@given(
    level=st.floats(-50, 50),
    shift=st.floats(-20, 20),
    history=st.integers(1, 6),
)
def test_baseline_deviation_is_the_shift_from_the_patients_earlier_level(
    level: float, shift: float, history: int
) -> None:
    levels = np.full((history + 1, 1), level)
    levels[-1] += shift
    start = np.arange(history + 1) * 10.0
    dev = baseline_deviation(levels, np.array(["a"] * (history + 1)), start, 10.0, 8)
    assert np.isnan(dev[0]).all()
    np.testing.assert_allclose(dev[1:-1], 0.0, atol=1e-9)
    np.testing.assert_allclose(dev[-1], shift, atol=1e-9)


def test_baseline_ignores_overlapping_and_other_patients_windows() -> None:
    levels = np.array([[0.0], [100.0], [5.0], [7.0]])
    patient = np.array(["a", "b", "a", "a"])
    dev = baseline_deviation(levels, patient, np.array([0.0, 0.0, 5.0, 10.0]), 10.0, 8)
    assert np.isnan(dev[2]).all()  # window at 5 s overlaps the one at 0 s
    np.testing.assert_allclose(dev[3], [7.0])  # only the window at 0 s ended before 10 s


def test_combine_skips_missing_views_and_refuses_rows_without_any() -> None:
    standard = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, np.nan])}
    np.testing.assert_allclose(combine(standard, ("a", "b"), "mean"), [2.0, 2.0])
    np.testing.assert_allclose(combine(standard, ("a", "b"), "max"), [3.0, 2.0])
    with pytest.raises(DataError, match="no score"):
        combine(standard, ("b",), "mean")


def test_candidates_are_nested_top_views_of_at_least_two() -> None:
    listed = candidates(["summary", "baseline_shift", "news2"])
    assert listed == [
        (("summary", "baseline_shift"), "mean"),
        (("summary", "baseline_shift"), "max"),
        (("summary", "baseline_shift", "news2"), "mean"),
        (("summary", "baseline_shift", "news2"), "max"),
    ]
    assert candidates(["summary"]) == [(("summary",), "mean")]  # the only view allowed
    assert candidates(["baseline_shift"]) == []  # an optional view never decides alone


def test_choice_prefers_the_view_that_separates() -> None:
    y = np.r_[np.zeros(50), np.ones(10)].astype(np.int8)
    rng = np.random.default_rng(0)
    good = rng.normal(size=60) + 4.0 * y
    standard = {"summary": good, "recon_error": rng.normal(size=60), "news2": -good}
    views, how, detail = choose_combination(standard, y)
    assert (views, how) == (("summary", "recon_error"), "max")  # the separating view leads
    assert detail["single_views"]["summary"] > 0.9
    assert detail["best_pr_auc"] > 0.9


def test_choice_falls_back_to_all_views_without_positives() -> None:
    standard = {"summary": np.arange(4.0), "recon_error": np.ones(4)}
    views, how, detail = choose_combination(standard, np.zeros(4, dtype=np.int8))
    assert (views, how) == (("recon_error", "summary"), "mean")
    assert detail["criterion"].startswith("default")


def test_fold_groups_are_time_blocks_for_one_recording() -> None:
    groups = fold_groups(np.array(["x"] * 10), np.arange(10.0)[::-1], 5)
    assert np.unique(groups).size == 5
    assert groups[0] == 4 and groups[-1] == 0  # latest windows in the last block


@pytest.fixture(scope="module")
def fitted():
    inputs, labels, patient = _cohort(1)
    fit = np.isin(patient, ["P0", "P1", "P2", "P3"])
    return (
        fit_multiview(
            (inputs.select(fit), labels[fit], patient[fit]),
            (inputs.select(~fit), labels[~fit]),
            SETTINGS,
        ),
        inputs,
        labels,
        fit,
    )


def test_fit_multiview_separates_shifted_windows_out_of_fold(fitted) -> None:
    result, inputs, labels, fit = fitted
    assert set(result.stage.detectors) == set(VIEW_NAMES)
    assert set(np.unique(result.fold)) == {0, 1, 2}
    oof, y = result.fit_scores, labels[fit]
    assert oof[y == 1].mean() > np.percentile(oof[y == 0], 90)
    assert result.stage.selection["abnormal"] == 15  # 2 out-of-fold + 1 validation patient
    score, views = result.stage.score(inputs.select(~fit))
    np.testing.assert_allclose(score, result.val_scores)
    assert set(views) == set(VIEW_NAMES)


def test_allowed_views_restrict_the_choice(fitted) -> None:
    _, inputs, labels, fit = fitted
    patient = np.repeat([f"P{p}" for p in range(6)], 30)
    only = fit_multiview(
        (inputs.select(fit), labels[fit], patient[fit]),
        (inputs.select(~fit), labels[~fit]),
        SETTINGS,
        allowed=("embedding_iforest",),
    )
    assert only.stage.views == ("embedding_iforest",)
    with pytest.raises(DataError, match="unknown view"):
        fit_multiview((inputs, labels, patient), (inputs, labels), SETTINGS, allowed=("nope",))


def test_save_and_load_give_identical_scores(fitted, tmp_path: Path) -> None:
    import json

    result, inputs, _, _ = fitted
    stage = result.stage

    def put_json(name: str, obj: object) -> None:
        (tmp_path / name).write_text(json.dumps(obj))

    def put_file(name: str, write) -> None:
        write(tmp_path / name)

    stage.save(put_json, put_file)
    meta = json.loads((tmp_path / VIEWS_FILE).read_text())
    loaded = MultiViewDetector.load(meta, lambda name: tmp_path / name)
    before, views_before = stage.score(inputs)
    after, views_after = loaded.score(inputs)
    np.testing.assert_array_equal(before, after)
    for view in VIEW_NAMES:
        np.testing.assert_array_equal(views_before[view], views_after[view])
    del meta["settings"]["recency"]  # a bundle fitted before the recency weights
    assert MultiViewDetector.load(meta, lambda name: tmp_path / name).settings.recency is None
    meta["views"] = ["not_a_view"]
    with pytest.raises(BundleError, match="inconsistent"):
        MultiViewDetector.load(meta, lambda name: tmp_path / name)


@settings(max_examples=40, deadline=None)
@given(length=st.integers(2, 300), recency=st.floats(0.01, 2.0))
def test_recency_weights_halve_every_half_life(length: int, recency: float) -> None:
    weights = recency_weights(length, recency)
    assert weights.shape == (length,) and np.isclose(weights.sum(), 1.0)
    assert np.all(np.diff(weights) > 0)  # the last step weighs most
    ratio = weights[-1] / weights[-2]
    np.testing.assert_allclose(ratio, 2.0 ** (1.0 / (recency * length)), rtol=1e-9)


def test_recency_weights_without_recency_are_equal_and_refuse_a_bad_half_life() -> None:
    np.testing.assert_allclose(recency_weights(4, None), [0.25] * 4)
    with pytest.raises(DataError, match="recency"):
        recency_weights(4, 0.0)


def _tail_and_head(length: int = 64) -> ViewInputs:
    """Two windows: an error burst and SpO2 88 % over the last 8 steps, or the first 8."""
    errors = np.zeros((2, 1, length))
    errors[0, 0, -8:] = errors[1, 0, :8] = 9.0
    windows = np.full((2, 3, length), 98.0)
    windows[:, 0], windows[:, 2] = 70.0, 0.0
    windows[0, 1, -8:] = windows[1, 1, :8] = 88.0
    names = ("heart_rate", "spo2", "hour_sin")
    return view_inputs(
        np.zeros((2, 2)),
        (errors.mean(axis=2), errors),
        windows,
        names,
        patient=None,
        start_s=None,
        span_s=1.0,
        lookback=4,
    )


def test_recency_weighs_an_event_in_the_tail_above_one_that_ended() -> None:
    inputs = _tail_and_head()
    uniform = inputs.with_recency(None)
    assert uniform.errors[0, 0] == uniform.errors[1, 0]  # the seed's mean over the window
    np.testing.assert_array_equal(uniform.news2, [[3.0], [0.0]])  # NEWS2 of the last step
    recent = inputs.with_recency(RECENCY)
    assert recent.errors[0, 0] > 4 * recent.errors[1, 0]
    assert recent.news2[0, 0] > 1.0 > 0.1 > recent.news2[1, 0]  # half the weight: last 8 steps
    assert recent.select(np.array([1])).recency == RECENCY


def test_step_news2_scores_each_step_with_the_chart() -> None:
    windows = np.stack([np.full((2, 5), 70.0), np.linspace(85.0, 99.0, 5)[None].repeat(2, 0)], 1)
    got = step_news2(windows, ("heart_rate", "spo2"))
    expected = news2_score(np.nan, windows[:, 1], np.nan, windows[:, 0], np.nan, allow_partial=True)
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(step_news2(windows, ("temperature_mask", "hour_sin"))).all()


def _short_events(seed: int) -> tuple[ViewInputs, np.ndarray, np.ndarray]:
    """Windows whose label is their last step: bursts in the last 2 steps are events; bursts
    that ended earlier in the window are not."""
    rng = np.random.default_rng(seed)
    n, length = 240, 32
    errors = rng.exponential(size=(n, 1, length))
    labels = (np.arange(n) % 6 == 0).astype(np.int8)
    ended = np.arange(n) % 6 == 3
    errors[labels == 1, 0, -2:] += 6.0
    errors[ended, 0, -16:-4] += 6.0
    windows = rng.normal(size=(n, 2, length)) + np.array([70.0, 0.0])[:, None]
    inputs = view_inputs(
        rng.normal(size=(n, 2)),
        (errors.mean(axis=2), errors),
        windows,
        ("heart_rate", "hour_sin"),
        patient=None,
        start_s=None,
        span_s=1.0,
        lookback=4,
    )
    return inputs, labels, np.repeat(np.arange(8), n // 8)


def test_choose_recency_prefers_short_half_lives_for_events_in_the_last_steps() -> None:
    inputs, labels, groups = _short_events(0)
    fit, val = groups < 6, groups >= 6
    recency, detail = choose_recency(
        (inputs.select(fit), labels[fit], groups[fit]),
        (inputs.select(val), labels[val]),
        SETTINGS,
    )
    assert recency == min(RECENCY_CANDIDATES)
    assert set(detail["candidates"]) == {str(r) for r in RECENCY_CANDIDATES}
    assert detail["candidates"][str(recency)] > detail["candidates"][str(RECENCY * 2)]
    unlabelled = np.zeros_like(labels)
    kept, why = choose_recency(
        (inputs.select(fit), unlabelled[fit], groups[fit]),
        (inputs.select(val), unlabelled[val]),
        SETTINGS,
    )
    assert kept == SETTINGS.recency and why["criterion"].startswith("default")
    result = fit_multiview(
        (inputs.select(fit), labels[fit], groups[fit]), (inputs.select(val), labels[val]), SETTINGS
    )
    assert result.stage.settings.recency == recency
    assert result.stage.selection["recency"]["chosen"] == recency
