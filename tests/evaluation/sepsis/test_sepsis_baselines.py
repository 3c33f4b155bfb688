"""The gradient-boosting baselines' fast paths give the classifier's own numbers."""

from __future__ import annotations

import numpy as np
import pytest

from vitalsentry.evaluation.sepsis import baselines
from vitalsentry.evaluation.sepsis.baselines import GbmConfig, fit_gbm, gbm_proba


def _table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.nan
    x[:, 3] = np.nan  # never measured
    y = (rng.random(3000) < 0.15 + 0.2 * (np.nan_to_num(x[:, 0]) > 0)).astype(np.int8)
    return x, y, rng.random(3000) < 0.7


def test_fit_on_column_blocks_equals_the_float32_table() -> None:
    x, y, rows = _table()
    config = GbmConfig(max_iter=30)
    plain = x[rows].copy()
    plain[:, 3] = 0.0
    expected = config.make().fit(plain, y[rows]).predict_proba(x)[:, 1]
    for blocks in ([x], [x[:, :2], x[:, 2:5], x[:, 5:]]):
        got = fit_gbm(blocks, y, rows, config).predict_proba(x)[:, 1]
        np.testing.assert_array_equal(got, expected)
    assert np.isnan(x[:, 3]).all()  # the input is left as it is


def test_chunked_prediction_equals_one_call_and_skips_other_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y, rows = _table()
    model = fit_gbm([x], y, rows, GbmConfig(max_iter=30))
    monkeypatch.setattr(baselines, "PREDICT_CHUNK", 128)
    got = gbm_proba(model, [x[:, :4], x[:, 4:]], ~rows)
    np.testing.assert_array_equal(got[~rows], model.predict_proba(x[~rows])[:, 1])
    assert np.isnan(got[rows]).all()
    np.testing.assert_array_equal(gbm_proba(model, [x]), model.predict_proba(x)[:, 1])


def test_early_stopping_on_validation_rows_only_when_given() -> None:
    x, y, rows = _table()
    config = GbmConfig(max_iter=400, learning_rate=0.3, n_iter_no_change=5)
    stopped = fit_gbm([x], y, rows, config, ~rows)
    assert stopped.n_iter_ < 400  # a noisy task overfits long before 400 trees at 0.3
    assert fit_gbm([x], y, rows, config).n_iter_ == 400
    assert fit_gbm([x], y, rows, GbmConfig(max_iter=60, n_iter_no_change=0), ~rows).n_iter_ == 60
