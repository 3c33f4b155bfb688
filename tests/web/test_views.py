from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vitalsentry.web.views import SPARK_SIZE, age_text, spark_points

times_and_risks = st.lists(
    st.tuples(st.floats(-1e4, 3e4, allow_nan=False), st.floats(-0.5, 1.5, allow_nan=False)),
    max_size=500,
)


@given(times_and_risks, st.floats(60.0, 1e5))
def test_sparklines_stay_in_their_box_with_one_point_per_column(
    points: list[tuple[float, float]], span: float
) -> None:
    points.sort()
    text = spark_points([t for t, _ in points], [r for _, r in points], 0.0, span)
    pairs = [tuple(map(float, p.split(","))) for p in text.split()]
    xs = [x for x, _ in pairs]
    width, height = SPARK_SIZE
    assert xs == sorted(set(xs))
    assert all(0 <= x <= width and 1 <= y <= height - 1 for x, y in pairs)
    assert len(pairs) <= width + 1 and (not points or pairs)


def test_highest_risk_of_a_column_is_kept() -> None:
    assert spark_points([0.0, 0.1, 0.2], [0.2, 0.9, 0.1], 0.0, 3600.0) == "0,4.0"


def test_ages_read_like_a_clinician_writes_them() -> None:
    assert [age_text(s) for s in (None, -3, 45, 720, 3 * 3600 + 300, 2 * 86_400 + 4 * 3600)] == [
        "—",
        "0 s",
        "45 s",
        "12 min",
        "3 h 05 min",
        "2 d 4 h",
    ]
