from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from web_seed import T0, WINDOW_S, seed_patient

from vitalsentry.monitor.store import MonitorStore
from vitalsentry.web.views import SPARK_SIZE, age_text, spark_columns, spark_points, ward_view

columns_and_risks = st.lists(
    st.tuples(st.integers(-50, 400), st.floats(-0.5, 1.5, allow_nan=False)), max_size=300
)


@given(columns_and_risks)
def test_sparklines_stay_in_their_box(pairs: list[tuple[int, float]]) -> None:
    text = spark_points([c for c, _ in pairs], [r for _, r in pairs])
    points = [tuple(map(float, p.split(","))) for p in text.split()]
    width, height = SPARK_SIZE
    assert len(points) == len(pairs)
    assert all(0 <= x <= width and 1 <= y <= height - 1 for x, y in points)


def test_the_database_keeps_the_highest_risk_of_each_column(store: MonitorStore) -> None:
    rng = np.random.default_rng(0)
    risks = list(rng.uniform(0, 1, 300))
    seed_patient(store, "p1", risks, hr_every_s=60.0)
    ends = T0 + (np.arange(300) + 1) * WINDOW_S
    start, span = float(ends[10]), float(ends[-1] - ends[10])
    spark = spark_columns(store, start, span)["p1"]
    bucket_ms = np.ceil(span * 1000 / SPARK_SIZE[0])
    column = ((np.round(ends[10:] * 1000) - np.floor(start * 1000)) // bucket_ms).astype(int)
    expected = {
        c: max(r for cc, r in zip(column, risks[10:], strict=True) if cc == c) for c in set(column)
    }
    assert spark.columns == sorted(expected)
    assert spark.highest == [expected[c] for c in spark.columns]
    assert spark.windows == 290 and spark.lowest == min(risks[10:])
    assert len(spark.columns) <= SPARK_SIZE[0] + 1


def test_the_ward_view_labels_each_sparkline(store: MonitorStore) -> None:
    seed_patient(store, "p1", [0.2, 0.5, 0.3])
    row = ward_view(store).rows[0]
    assert row.spark_label == (
        "risk over the last 2 min: 3 windows, lowest 0.20, highest 0.50, latest 0.30"
    )


def test_ages_read_like_a_clinician_writes_them() -> None:
    assert [age_text(s) for s in (None, -3, 45, 720, 3 * 3600 + 300, 2 * 86_400 + 4 * 3600)] == [
        "—",
        "0 s",
        "45 s",
        "12 min",
        "3 h 05 min",
        "2 d 4 h",
    ]
