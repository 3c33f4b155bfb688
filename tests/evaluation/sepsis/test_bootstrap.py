"""The vectorised patient bootstrap equals the resample-by-resample one of ``metrics``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.evaluation import metrics
from vitalsentry.evaluation.sepsis import bootstrap
from vitalsentry.evaluation.sepsis.bootstrap import PatientBootstrap
from vitalsentry.evaluation.sepsis.scoring import paired_auc_difference


def _cohort(seed: int, n_patients: int, levels: int) -> tuple[np.ndarray, ...]:
    """Rows of ``n_patients`` stays; scores on ``levels`` values (many ties when small)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 15, n_patients)
    patient = np.repeat(np.array([f"p{i:03d}" for i in rng.permutation(n_patients)]), sizes)
    septic = np.repeat(rng.random(n_patients) < 0.3, sizes)
    y = (septic & (rng.random(patient.size) < 0.6)).astype(np.int8)
    s = (
        np.round(y + rng.normal(size=patient.size), 0)
        if levels == 0
        else rng.integers(0, levels, patient.size) + 0.5 * y
    )
    return patient, y, s.astype(np.float64)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_patients=st.integers(2, 40),
    levels=st.sampled_from([0, 3, 1000]),
    n_boot=st.integers(1, 40),
)
def test_intervals_equal_the_resample_loop(
    seed: int, n_patients: int, levels: int, n_boot: int
) -> None:
    patient, y, s = _cohort(seed, n_patients, levels)
    boot = PatientBootstrap.draw(patient, n_boot, seed)
    for name, fast in (("roc_auc", boot.roc_auc), ("pr_auc", boot.pr_auc)):
        expected = metrics.bootstrap_ci(name, y, s, groups=patient, n_boot=n_boot, seed=seed)
        try:
            metrics.RANKING_METRICS[name](y, s)
        except metrics.NotComputableError:
            continue  # the benchmark computes the point estimate first and stops there
        got = boot.interval(fast(y, s))
        if expected is None:
            assert got is None
        else:
            assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("cells", [4_000_000, 1])  # all resamples at once, one at a time
def test_each_resample_equals_the_metric_on_its_rows(
    cells: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "CHUNK_CELLS", cells)
    patient, y, s = _cohort(3, 30, 5)
    boot = PatientBootstrap.draw(patient, 15, 7)
    draw = metrics._group_sampler(patient, y.size, np.random.default_rng(7))
    roc, pr = boot.roc_auc(y, s), boot.pr_auc(y, s)
    for b in range(15):
        idx = draw()
        assert roc[b] == pytest.approx(metrics.roc_auc(y[idx], s[idx]), abs=1e-12)
        assert pr[b] == pytest.approx(metrics.pr_auc(y[idx], s[idx]), abs=1e-12)


def test_paired_difference_equals_the_resample_loop() -> None:
    patient, y, a = _cohort(11, 60, 0)
    b = a + np.random.default_rng(1).normal(size=a.size)
    draw = metrics._group_sampler(patient, y.size, np.random.default_rng(4))
    diffs = []
    for _ in range(50):
        idx = draw()
        diffs.append(metrics.roc_auc(y[idx], a[idx]) - metrics.roc_auc(y[idx], b[idx]))
    got = paired_auc_difference(y, a, b, PatientBootstrap.draw(patient, 50, 4))
    assert got["ci"] == pytest.approx(list(np.quantile(diffs, [0.025, 0.975])), abs=1e-12)


def test_too_few_patients_is_not_computable() -> None:
    with pytest.raises(metrics.NotComputableError, match="at least 2"):
        PatientBootstrap.draw(np.array(["a", "a"]), 10, 0)
