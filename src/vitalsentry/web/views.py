"""What the web view's pages show, built from the monitoring store's reads.

Times on the pages are the stream's: "now" is the newest reading of the ward (a replayed
cohort from last year shows its alarms as minutes old, not as a year old); in live
operation it is within a minute of the wall clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import BigInteger, cast, func, select
from sqlalchemy.orm import Session

from vitalsentry.data.schema import CHANNELS
from vitalsentry.monitor.db import unavailable
from vitalsentry.monitor.store import (
    US,
    AlarmEpisode,
    ChannelSeries,
    MonitorStore,
    PatientSummary,
    Timeline,
)
from vitalsentry.monitor.tables import (
    AlarmEpisodeRow,
    PatientStateRow,
    ReadingRow,
    WindowScoreRow,
)

SPARK_HOURS: Final = 6
"""The ward's sparklines show the risk over this many hours before the stream's now."""

SPARK_SIZE: Final = (140.0, 32.0)
"""Sparkline width and height (SVG user units)."""

SPARSE_INTERVAL_S: Final = 30.0
"""A channel whose readings are further apart than this on average is drawn as points/steps."""

RANGES: Final = ((1, "1 h"), (6, "6 h"), (24, "24 h"), (72, "3 d"), (168, "7 d"))
"""Range buttons of the patient page: hours and label."""


def iso(epoch_s: float | None) -> str:
    """ISO 8601 (UTC, seconds) of an epoch time; "" for None."""
    if epoch_s is None:
        return ""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


def clock_text(epoch_s: float | None) -> str:
    """``2024-05-01 08:00 UTC``; "—" for None."""
    if epoch_s is None:
        return "—"
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M UTC")


def age_text(seconds: float | None) -> str:
    """Write a duration as a clinician reads it: ``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86_400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86_400} d {s % 86_400 // 3600} h"


def vital_label(channel: str | None) -> str | None:
    """Return the human name of a channel (``heart_rate`` → ``heart rate``); None stays None."""
    if channel is None:
        return None
    spec = CHANNELS.get(channel)
    return spec.label if spec is not None else channel.replace("_", " ")


@dataclass(frozen=True)
class WardRow:
    """One row of the ward overview (the template's view of a :class:`PatientSummary`)."""

    patient_id: str
    risk: float | None
    level: str | None
    top_vital: str | None
    news2: int | None
    alarm_active: bool
    alarm_acked: bool
    alarm_since_iso: str
    alarm_age: str
    updated_iso: str
    updated_age: str
    updated_clock: str
    spark: str
    spark_label: str


@dataclass(frozen=True)
class Spark:
    """A patient's risk over the sparklines' span, reduced in the database to SVG columns.

    Attributes
    ----------
    columns : list of int
        Columns (0 … sparkline width) that hold at least one window, in order.
    highest : list of float
        The highest risk of each of those columns.
    lowest : float
        The lowest risk over the span.
    windows : int
        Scored windows over the span.
    """

    columns: list[int]
    highest: list[float]
    lowest: float
    windows: int


def spark_points(columns: Sequence[int], risks: Sequence[float]) -> str:
    """SVG polyline points of risks (0–1, clipped) at columns (clipped to the sparkline)."""
    width, height = SPARK_SIZE
    return " ".join(
        f"{min(int(width), max(0, x))},{(1.0 - min(1.0, max(0.0, r))) * (height - 2) + 1:.1f}"
        for x, r in zip(columns, risks, strict=True)
    )


def spark_columns(store: MonitorStore, start_s: float, span_s: float) -> dict[str, Spark]:
    """Return each patient's :class:`Spark` over ``[start_s, start_s + span_s]`` (one query).

    The database groups the windows by patient and SVG column (``⌊(end − start) /
    (span / width)⌋`` in milliseconds), so a ward sends at most one row per patient and
    column, however many windows it scored.
    """
    # Integer milliseconds and integer division: the same columns on SQLite and PostgreSQL
    # (a float cast truncates on one and rounds on the other).
    start_ms = math.floor(start_s * 1000)
    bucket_ms = max(1, math.ceil(span_s * 1000 / SPARK_SIZE[0]))
    end_ms = cast(WindowScoreRow.end_s * 1000, BigInteger)
    column = ((end_ms - start_ms) // bucket_ms).label("column")
    query = (
        select(
            WindowScoreRow.patient_id,
            column,
            func.max(WindowScoreRow.risk),
            func.min(WindowScoreRow.risk),
            func.count(),
        )
        .where(WindowScoreRow.end_s >= start_s)
        .group_by(WindowScoreRow.patient_id, column)
        .order_by(WindowScoreRow.patient_id, column)
    )
    parts: dict[str, list[tuple[int, float, float, int]]] = {}
    with unavailable(), Session(store.engine) as session:
        for pid, col, high, low, n in session.execute(query):
            parts.setdefault(pid, []).append((int(col), float(high), float(low), int(n)))
    return {
        pid: Spark(
            columns=[c for c, _, _, _ in rows],
            highest=[h for _, h, _, _ in rows],
            lowest=min(low for _, _, low, _ in rows),
            windows=sum(n for _, _, _, n in rows),
        )
        for pid, rows in parts.items()
    }


def first_score_since(store: MonitorStore, since_s: float) -> float | None:
    """Return the end of the ward's first window ending at or after ``since_s``."""
    with unavailable(), Session(store.engine) as session:
        value = session.scalar(
            select(func.min(WindowScoreRow.end_s)).where(WindowScoreRow.end_s >= since_s)
        )
    return None if value is None else float(value)


def ward_version(store: MonitorStore) -> str:
    """Return a tag that changes whenever the ward overview would (for ``ETag``).

    Patients' states change with every append (their ``updated_s``) and with a deletion
    (the count); acknowledgements change the alarm episodes only. The overview's times are
    relative to the stream's newest reading, so nothing else moves it.
    """
    with unavailable(), Session(store.engine) as session:
        count, updated = session.execute(
            select(func.count(), func.max(PatientStateRow.updated_s))
        ).one()
        acked = session.scalar(select(func.max(AlarmEpisodeRow.acked_at_s)))
    return f'"{count}-{updated!r}-{acked!r}"'


def patient_version(store: MonitorStore, patient_id: str) -> str:
    """Return a tag that changes whenever the patient page's state or alarm episodes would.

    Every append changes the patient's ``updated_s`` (a deletion removes it);
    acknowledgements change the alarm episodes only.
    """
    with unavailable(), Session(store.engine) as session:
        updated = session.scalar(
            select(PatientStateRow.updated_s).where(PatientStateRow.patient_id == patient_id)
        )
        acked = session.scalar(
            select(func.max(AlarmEpisodeRow.acked_at_s)).where(
                AlarmEpisodeRow.patient_id == patient_id
            )
        )
    return f'"{updated!r}-{acked!r}"'


def stream_now(summaries: Sequence[PatientSummary]) -> float | None:
    """Return the newest reading time of the ward (None when nothing was received)."""
    times = [s.last_reading_s for s in summaries if s.last_reading_s is not None]
    return max(times) if times else None


@dataclass(frozen=True)
class WardView:
    """The ward overview: rows in the store's order, the stream's now, the sparklines' span."""

    rows: list[WardRow]
    now_s: float | None
    spark_span: str


def ward_view(store: MonitorStore) -> WardView:
    """Build the ward overview in the store's order (that of ``GET /v1/patients``).

    Every sparkline shares one time axis: the last :data:`SPARK_HOURS` hours before the
    stream's now, or less when the ward's scores begin later.
    """
    summaries = store.ward()
    now = stream_now(summaries)
    if now is None:
        return WardView([_ward_row(s, None, 1.0, None) for s in summaries], None, "")
    first = first_score_since(store, now - SPARK_HOURS * 3600.0)
    span = max(60.0, now - (now if first is None else first))
    sparks = spark_columns(store, now - span, span)
    rows = [_ward_row(s, now, span, sparks.get(s.patient_id)) for s in summaries]
    return WardView(rows, now, age_text(span))


def _ward_row(
    summary: PatientSummary, now: float | None, span: float, spark: Spark | None
) -> WardRow:
    latest, alarm = summary.latest, summary.alarm
    points, label = "", ""
    if spark is not None and latest is not None:
        points = spark_points(spark.columns, spark.highest)
        label = (
            f"risk over the last {age_text(span)}: {spark.windows} windows, "
            f"lowest {spark.lowest:.2f}, highest {max(spark.highest):.2f}, "
            f"latest {latest.risk:.2f}"
        )
    return WardRow(
        patient_id=summary.patient_id,
        risk=None if latest is None else latest.risk,
        level=None if latest is None else latest.level,
        top_vital=vital_label(None if latest is None else latest.top_vital),
        news2=None if latest is None else latest.news2,
        alarm_active=alarm is not None and alarm.active,
        alarm_acked=alarm is not None and alarm.acked_at_s is not None,
        alarm_since_iso=iso(None if alarm is None else alarm.started_s),
        alarm_age=age_text(None if alarm is None or now is None else now - alarm.started_s),
        updated_iso=iso(None if latest is None else latest.end_s),
        updated_age=age_text(None if latest is None or now is None else now - latest.end_s)
        + (" ago" if latest is not None and now is not None else ""),
        updated_clock=clock_text(None if latest is None else latest.end_s),
        spark=points,
        spark_label=label,
    )


@dataclass(frozen=True)
class PatientPage:
    """What the patient page shows before its charts load.

    Attributes
    ----------
    state : WardRow
        The patient's current state, as the ward shows it.
    alarms : list of AlarmView
        Every stored alarm episode, newest first.
    first_s, last_s : float
        Time of the oldest and newest stored reading (the charts' full range).
    """

    state: WardRow
    alarms: list[AlarmView]
    first_s: float
    last_s: float


def patient_page(store: MonitorStore, patient_id: str) -> PatientPage | None:
    """Build the patient page's data, or None for an unknown patient or one without readings."""
    summary = store.patient(patient_id)
    query = select(func.min(ReadingRow.t_us), func.max(ReadingRow.t_us)).where(
        ReadingRow.patient_id == patient_id
    )
    with unavailable(), Session(store.engine) as session:
        first_us, last_us = session.execute(query).one()
    if summary is None or first_us is None:
        return None
    first, last = first_us / US, last_us / US + 1.0
    history = store.timeline(patient_id, first, last, max_points=1)
    return PatientPage(
        state=_ward_row(summary, summary.last_reading_s, 1.0, None),
        alarms=[alarm_view(a) for a in reversed(history.alarms)],
        first_s=first,
        last_s=last,
    )


@dataclass(frozen=True)
class AlarmView:
    """An alarm episode as the patient page lists it."""

    alarm_id: int
    started_iso: str
    started_text: str
    ended_iso: str
    ended_text: str
    acked_by: str | None
    acked_iso: str
    acked_text: str


def alarm_view(episode: AlarmEpisode) -> AlarmView:
    """Build the page's view of an episode."""
    return AlarmView(
        alarm_id=episode.id,
        started_iso=iso(episode.started_s),
        started_text=clock_text(episode.started_s),
        ended_iso=iso(episode.cleared_s),
        ended_text=clock_text(episode.cleared_s),
        acked_by=episode.acked_by,
        acked_iso=iso(episode.acked_at_s),
        acked_text=clock_text(episode.acked_at_s),
    )


def _none_if_nan(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def mean_interval(series: ChannelSeries) -> float:
    """Return the mean seconds between a channel's readings over the time they cover (inf for one)."""
    readings = sum(series.count)
    if readings < 2:
        return math.inf
    covered = series.t_s[-1] - series.t_s[0] + (series.bucket_s or 0.0)
    return covered / (readings - 1)


def timeline_json(timeline: Timeline) -> dict[str, Any]:
    """Build the patient page's chart data (see ``static/patient.js``) from a store timeline."""
    scores = timeline.scores
    bands = [_band(s.risk_mean, s.risk_std) for s in scores]
    return {
        "from": timeline.start_s,
        "to": timeline.end_s,
        "vitals": [
            {
                "name": series.channel,
                "label": vital_label(series.channel),
                "unit": CHANNELS[series.channel].unit if series.channel in CHANNELS else "",
                "sparse": mean_interval(series) > SPARSE_INTERVAL_S,
                "bucket_s": series.bucket_s,
                "t": series.t_s,
                "lo": series.low,
                "hi": series.high,
            }
            for series in sorted(timeline.readings, key=_channel_order)
        ],
        "scores": {
            "t": [s.end_s for s in scores],
            "risk": [s.risk for s in scores],
            "lo": [b[0] for b in bands],
            "hi": [b[1] for b in bands],
            "level": [s.level for s in scores],
            "top": [vital_label(s.top_vital) for s in scores],
            "news2": [s.news2 for s in scores],
        },
        "alarms": [
            {
                "id": a.id,
                "start": a.started_s,
                "end": a.cleared_s,
                "acked_at": a.acked_at_s,
                "acked_by": a.acked_by,
            }
            for a in timeline.alarms
        ],
    }


def _channel_order(series: ChannelSeries) -> tuple[int, str]:
    """Canonical channels first, in :data:`CHANNELS` order, then any other by name."""
    order = list(CHANNELS)
    return (
        (order.index(series.channel), "")
        if series.channel in CHANNELS
        else (len(order), series.channel)
    )


def _band(mean: float | None, std: float | None) -> tuple[float | None, float | None]:
    """MC-dropout band: mean ± 2 std clipped to 0–1 (None without MC passes)."""
    mean, std = _none_if_nan(mean), _none_if_nan(std)
    if mean is None or std is None:
        return None, None
    return max(0.0, mean - 2 * std), min(1.0, mean + 2 * std)
