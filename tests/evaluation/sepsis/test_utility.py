import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.errors import DataError
from vitalsentry.evaluation.sepsis.utility import CohortUtility, relative_hours, row_utilities


def _one(labels):
    y = np.asarray(labels)
    return row_utilities(relative_hours(np.zeros(y.size, int), y))


def test_relative_hours_onset_is_first_label_plus_six():
    y = np.r_[np.zeros(8, int), np.ones(12, int)]
    d = relative_hours(np.zeros(20, int), y)
    np.testing.assert_array_equal(d, np.arange(20) - 14.0)
    assert np.all(relative_hours(np.zeros(5, int), np.zeros(5, int)) == -np.inf)


@pytest.mark.parametrize(
    ("t", "u_pos", "u_neg"),
    [
        (0, -0.05, 0.0),  # 14 h before onset: too early, an alarm costs u_fp
        (1, -0.05, 0.0),  # 13 h before: (−13 + 12)/6 = −1/6 < −0.05
        (2, 0.0, 0.0),  # 12 h before: the reward starts at 0
        (5, 0.5, 0.0),  # 9 h before: half-way up the early ramp
        (8, 1.0, 0.0),  # 6 h before: the optimum; a miss costs nothing yet
        (11, 2.0 / 3.0, -2.0 / 3.0),  # 3 h before: (3 − d)/9 = 6/9; miss −2·3/9
        (14, 1.0 / 3.0, -4.0 / 3.0),  # at onset
        (17, 0.0, -2.0),  # 3 h after: reward gone, a miss costs the most
        (18, 0.0, 0.0),  # later hours count nothing
    ],
)
def test_septic_patient_regions(t, u_pos, u_neg):
    pos, neg = _one(np.r_[np.zeros(8, int), np.ones(12, int)])
    assert pos[t] == pytest.approx(u_pos)
    assert neg[t] == pytest.approx(u_neg)


def test_non_septic_false_alarm_and_true_negative():
    pos, neg = _one(np.zeros(6, int))
    np.testing.assert_allclose(pos, -0.05)
    np.testing.assert_allclose(neg, 0.0)


def test_patient_positive_from_hour_zero():
    pos, neg = _one(np.ones(5, int))  # onset at hour 6: hours are 6..2 h before it
    np.testing.assert_allclose(pos, [1.0, 8 / 9, 7 / 9, 6 / 9, 5 / 9])
    np.testing.assert_allclose(neg, [0.0, -2 / 9, -4 / 9, -6 / 9, -8 / 9])
    cohort = CohortUtility.of(np.zeros(5, int), np.ones(5, int))
    assert cohort.best == pytest.approx(35 / 9)
    assert cohort.inaction == pytest.approx(-20 / 9)


def test_official_docstring_example():
    cohort = CohortUtility.of(np.zeros(6, int), [0, 0, 0, 0, 1, 1])
    assert cohort.raw([0, 0, 1, 1, 1, 1]) == pytest.approx(3.388888888888889)


def test_normalisation_inaction_zero_ideal_one():
    patient = np.r_[np.zeros(20, int), np.ones(10, int)]
    labels = np.r_[np.zeros(8, int), np.ones(12, int), np.zeros(10, int)]
    cohort = CohortUtility.of(patient, labels)
    assert cohort.normalised(np.zeros(30, bool)) == 0.0
    ideal = np.r_[np.arange(20) >= 2, np.zeros(10, bool)]  # d in [−12, 3] = hours 2..17
    assert cohort.normalised(ideal) == pytest.approx(1.0)
    # always positive: septic rows sum to −0.05·2 + (0 + … + 1) + (8/9 … 0) + 0·2,
    # the non-septic patient costs 10 · 0.05
    septic_pos = -0.1 + sum(k / 6 for k in range(7)) + sum(k / 9 for k in range(9)) + 0.0
    raw = septic_pos - 0.5
    best = sum(k / 6 for k in range(7)) + sum(k / 9 for k in range(9))
    inaction = -sum(2 * k / 9 for k in range(1, 10))
    assert cohort.normalised(np.ones(30, bool)) == pytest.approx(
        (raw - inaction) / (best - inaction)
    )


def test_curve_matches_thresholded_predictions_and_best_threshold():
    rng = np.random.default_rng(0)
    patient = np.repeat(np.arange(30), 24)
    labels = np.zeros(720, int)
    for p in range(0, 30, 3):
        labels[p * 24 + rng.integers(0, 24) : (p + 1) * 24] = 1
    scores = labels * 0.6 + rng.random(720)
    scores[5] = np.nan
    cohort = CohortUtility.of(patient, labels)
    thresholds, utilities = cohort.curve(scores)
    assert np.all(np.diff(thresholds) < 0)
    for i in (0, 100, 400, thresholds.size - 1):
        assert utilities[i] == pytest.approx(cohort.normalised(scores >= thresholds[i]))
    th, best = cohort.best_threshold(scores)
    assert best == pytest.approx(utilities.max())
    assert cohort.normalised(scores >= th) == pytest.approx(best)


def test_bad_inputs_are_data_errors():
    with pytest.raises(DataError, match="contiguous"):
        CohortUtility.of([1, 2, 1], [0, 0, 0])
    with pytest.raises(DataError, match="0 and 1"):
        CohortUtility.of([1, 1], [0, 2])
    with pytest.raises(DataError, match="normalised"):
        CohortUtility.of([1, 1], [0, 0])
    cohort = CohortUtility.of([1, 1], [0, 1])
    with pytest.raises(DataError, match="predictions"):
        cohort.raw([1, 1, 1])


def _reference(labels, predictions):
    """Straight transcription of the published per-patient definition, one hour at a time."""
    labels = list(labels)
    onset = labels.index(1) + 6 if 1 in labels else None
    total = 0.0
    for t, p in enumerate(predictions):
        if onset is None:
            total += -0.05 if p else 0.0
            continue
        d = t - onset
        if d > 3:
            continue
        if p:
            total += max((d + 12) / 6, -0.05) if d <= -6 else (3 - d) / 9
        elif d > -6:
            total += -2 * (d + 6) / 9
    return total


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 40), st.one_of(st.none(), st.integers(0, 39))),
        min_size=1,
        max_size=8,
    ),
    st.integers(0, 2**32 - 1),
)
def test_vectorised_equals_per_hour_definition(stays, seed):
    rng = np.random.default_rng(seed)
    patient, labels = [], []
    for i, (n, first) in enumerate(stays):
        y = np.zeros(n, int)
        if first is not None and first < n:
            y[first:] = 1
        patient.append(np.full(n, i))
        labels.append(y)
    preds = [rng.random(y.size) < 0.3 for y in labels]
    pos, neg = row_utilities(relative_hours(np.concatenate(patient), np.concatenate(labels)))
    got = np.where(np.concatenate(preds), pos, neg).sum()
    want = sum(_reference(y, p) for y, p in zip(labels, preds, strict=True))
    assert got == pytest.approx(want, abs=1e-9)
