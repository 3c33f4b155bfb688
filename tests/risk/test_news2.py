import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vitalsentry.data.schema import CHANNELS
from vitalsentry.errors import DataError
from vitalsentry.risk.news2 import (
    COMPONENTS,
    aggregate_score,
    news2_components,
    news2_level,
    news2_score,
    news2_summaries,
    red_score,
)

# Values scoring 0 on every parameter.
NORMAL = {
    "respiratory_rate": 16.0,
    "spo2": 97.0,
    "systolic_bp": 120.0,
    "heart_rate": 70.0,
    "temperature": 37.0,
}

# (value, sub-score) on both sides of every cut of the RCP 2017 chart (SpO2 scale 1),
# plus the ends of the plausible range.
BANDS = {
    "respiratory_rate": [
        (2, 3),
        (8, 3),
        (9, 1),
        (11, 1),
        (12, 0),
        (20, 0),
        (21, 2),
        (24, 2),
        (25, 3),
        (80, 3),
    ],
    "spo2": [(50, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)],
    "systolic_bp": [
        (40, 3),
        (90, 3),
        (91, 2),
        (100, 2),
        (101, 1),
        (110, 1),
        (111, 0),
        (219, 0),
        (220, 3),
        (300, 3),
    ],
    "heart_rate": [
        (20, 3),
        (40, 3),
        (41, 1),
        (50, 1),
        (51, 0),
        (90, 0),
        (91, 1),
        (110, 1),
        (111, 2),
        (130, 2),
        (131, 3),
        (300, 3),
    ],
    "temperature": [
        (30.0, 3),
        (35.0, 3),
        (35.1, 1),
        (36.0, 1),
        (36.1, 0),
        (38.0, 0),
        (38.1, 1),
        (39.0, 1),
        (39.1, 2),
        (45.0, 2),
    ],
}

# Non-integer inputs: rounded half up to the chart's resolution first.
ROUNDING = {
    "respiratory_rate": [(20.4, 0), (20.5, 2), (8.49, 3), (8.5, 1), (11.5, 0)],
    "spo2": [(91.49, 3), (91.5, 2), (95.5, 0)],
    "systolic_bp": [(90.5, 2), (110.5, 0), (219.49, 0), (219.5, 3)],
    "heart_rate": [(40.49, 3), (40.5, 1), (90.49, 0), (90.5, 1), (130.5, 3)],
    "temperature": [
        (35.04, 3),
        (35.05, 1),
        (35.95, 1),
        (36.04, 1),
        (36.05, 0),
        (38.05, 1),
        (39.04, 1),
        (39.05, 2),
    ],
}


def _inputs(name: str, values: list[float]) -> dict[str, np.ndarray]:
    out = {k: np.full(len(values), v) for k, v in NORMAL.items()}
    out[name] = np.asarray(values, dtype=float)
    return out


@pytest.mark.parametrize("table", [BANDS, ROUNDING], ids=["bands", "rounding"])
@pytest.mark.parametrize("name", list(NORMAL))
def test_sub_scores_on_both_sides_of_every_cut(table, name):
    values, expected = zip(*table[name], strict=True)
    comps = news2_components(**_inputs(name, list(values)))
    np.testing.assert_array_equal(comps[name], expected)
    others = [k for k in COMPONENTS if k != name]
    assert all((comps[k] == 0).all() for k in others)
    np.testing.assert_array_equal(news2_score(**_inputs(name, list(values))), expected)


def test_oxygen_and_consciousness():
    comps = news2_components(
        *NORMAL.values(),
        on_oxygen=np.array([False, True, False]),
        consciousness_alert=np.array([True, True, False]),
    )
    np.testing.assert_array_equal(comps["air_or_oxygen"], [0, 2, 0])
    np.testing.assert_array_equal(comps["consciousness"], [0, 0, 3])
    assert list(comps) == list(COMPONENTS)


def test_scalar_inputs_give_0d_arrays():
    score = news2_score(*NORMAL.values())
    assert isinstance(score, np.ndarray)
    assert score.shape == ()
    assert float(score) == 0.0


def test_broadcasting_scalar_with_array():
    score = news2_score(np.array([8.0, 16.0]), 97, 120, 70, 37.0, on_oxygen=True)
    np.testing.assert_array_equal(score, [5, 2])


@pytest.mark.parametrize(
    ("score", "red", "level"),
    [
        (0, False, "low"),
        (4, False, "low"),
        (3, True, "low-medium"),
        (4, True, "low-medium"),
        (5, False, "medium"),
        (5, True, "medium"),
        (6, True, "medium"),
        (7, False, "high"),
        (7, True, "high"),
        (20, True, "high"),
        (np.nan, True, "unknown"),
    ],
)
def test_level_bands(score, red, level):
    assert news2_level(score, red) == level


def test_levels_from_vitals_end_to_end():
    # aggregate 4 (RR 21: 2, pulse 111: 2); 5 (+ temp 38.1: 1); 6 (+ oxygen instead of temp);
    # 7 (+ oxygen and temp); 3 from a single parameter (RR 25).
    rr = np.array([21, 21, 21, 21, 25.0])
    hr = np.array([111, 111, 111, 111, 70.0])
    temp = np.array([37.0, 38.1, 37.0, 38.1, 37.0])
    oxygen = np.array([False, False, True, True, False])
    comps = news2_components(rr, 97, 120, hr, temp, on_oxygen=oxygen)
    total = aggregate_score(comps)
    np.testing.assert_array_equal(total, [4, 5, 6, 7, 3])
    np.testing.assert_array_equal(red_score(comps), [False, False, False, False, True])
    levels = news2_level(total, red_score(comps))
    assert levels.tolist() == ["low", "medium", "medium", "high", "low-medium"]


def test_missing_parameter_makes_aggregate_nan_unless_partial():
    spo2 = np.array([np.nan, 97.0])
    comps = news2_components(25, spo2, 120, 70, 37.0)
    assert np.isnan(comps["spo2"][0])
    assert comps["spo2"][1] == 0
    total = news2_score(25, spo2, 120, 70, 37.0)
    assert np.isnan(total[0])
    assert total[1] == 3
    partial = news2_score(25, spo2, 120, 70, 37.0, allow_partial=True)
    np.testing.assert_array_equal(partial, [3, 3])
    assert red_score(comps).tolist() == [True, True]


def test_partial_score_is_nan_when_every_measured_parameter_is_missing():
    score = news2_score(np.nan, np.nan, np.nan, np.nan, np.nan, on_oxygen=True, allow_partial=True)
    assert np.isnan(score)


@pytest.mark.parametrize(
    ("kwargs", "column"),
    [
        ({"heart_rate": 900.0}, "heart_rate"),
        ({"spo2": 140.0}, "spo2"),
        ({"respiratory_rate": -1.0}, "respiratory_rate"),
        ({"temperature": np.inf}, "temperature"),
        ({"systolic_bp": "high"}, "systolic_bp"),
    ],
)
def test_bad_values_raise_data_error(kwargs, column):
    args = {**NORMAL, **kwargs}
    with pytest.raises(DataError) as info:
        news2_score(**args)
    assert info.value.column == column


def test_flags_must_be_boolean_and_shapes_broadcast():
    with pytest.raises(DataError, match="booleans"):
        news2_score(*NORMAL.values(), on_oxygen=1)
    with pytest.raises(DataError, match="broadcast"):
        news2_score(np.ones(3) * 16, np.ones(2) * 97, 120, 70, 37.0)
    with pytest.raises(DataError, match="≥ 0"):
        news2_level(-1.0, False)


def _value(name: str) -> st.SearchStrategy[float | None]:
    """A value of ``name``: on either side of a chart cut, anywhere plausible, or missing."""
    cuts = [float(v) for v, _ in BANDS[name]]
    spec = CHANNELS[name]
    return st.none() | st.sampled_from(cuts) | st.floats(spec.low, spec.high)


@given(
    st.lists(
        st.tuples(
            st.fixed_dictionaries({n: _value(n) for n in NORMAL}), st.booleans(), st.booleans()
        ),
        max_size=12,
    )
)
def test_summaries_score_each_set_as_it_alone_would(sets) -> None:
    found = news2_summaries(
        [latest for latest, _, _ in sets],
        on_oxygen=[o for _, o, _ in sets],
        consciousness_alert=[a for _, _, a in sets],
    )
    assert len(found) == len(sets)
    for (latest, oxygen, alert), summary in zip(sets, found, strict=True):
        if None in latest.values():
            assert summary is None
            continue
        parts = news2_components(**latest, on_oxygen=oxygen, consciousness_alert=alert)
        score = aggregate_score(parts)
        assert summary is not None and summary.score == int(score)
        assert summary.level == str(news2_level(score, red_score(parts)))
        assert summary.components == {name: int(parts[name]) for name in COMPONENTS}
