"""Request and response bodies of the monitoring API (``/v1/patients``, ``/v1/alarms``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Discriminator, Field, Tag

from vitalsentry.monitor.store import (
    AlarmEpisode,
    ChannelSeries,
    PatientSummary,
    Timeline,
    WindowScore,
)
from vitalsentry.serve.fhir import FhirBundle
from vitalsentry.serve.schemas import _STRICT, Level, Reading
from vitalsentry.serve.settings import MAX_READINGS_CEILING


class StreamReadings(BaseModel):
    """New readings of one patient (any order; a retry of the same readings is harmless)."""

    model_config = _STRICT

    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS_CEILING)
    on_oxygen: bool | None = Field(None, description="NEWS2: supplemental oxygen from now on")
    consciousness_alert: bool | None = Field(None, description="NEWS2: alert from now on")


def _body_kind(value: Any) -> str:
    return "fhir" if isinstance(value, dict) and "resourceType" in value else "readings"


AppendBody = Annotated[
    Annotated[StreamReadings, Tag("readings")] | Annotated[FhirBundle, Tag("fhir")],
    Discriminator(_body_kind),
]
"""JSON readings, or a FHIR R4 Bundle of Observations (recognised by ``resourceType``)."""


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(round(epoch_s, 6), tz=UTC)


class WindowScoreOut(BaseModel):
    """A scored window of the stream."""

    window_start: datetime
    window_end: datetime
    risk: float = Field(ge=0, le=1)
    level: Level
    anomaly_score: float
    top_vital: str = Field(description="Vital with the largest share of the reconstruction error")
    contributions: dict[str, float]
    news2: int | None = Field(None, description="NEWS2 of the latest values at the window end")
    news2_level: str | None = None
    risk_mean: float | None = Field(None, description="MC dropout mean (when enabled)")
    risk_std: float | None = Field(None, description="MC dropout standard deviation")
    alarm_on: bool = Field(description="Alarm state after this window")
    model_version: str

    @classmethod
    def of(cls, score: WindowScore) -> WindowScoreOut:
        """Convert a stored score."""
        fields = score.__dict__ | {
            "window_start": _utc(score.start_s),
            "window_end": _utc(score.end_s),
        }
        return cls.model_validate(
            {k: v for k, v in fields.items() if k not in ("start_s", "end_s")}
        )


class AlarmOut(BaseModel):
    """An alarm episode."""

    alarm_id: int
    patient_id: str
    active: bool
    started: datetime = Field(description="End of the window that raised the alarm")
    last_on: datetime = Field(description="End of the latest window with the alarm on")
    cleared: datetime | None = Field(None, description="End of the window that cleared it")
    peak_risk: float
    acked_by: str | None = Field(None, description="Key id that acknowledged it")
    acked_at: datetime | None = None

    @classmethod
    def of(cls, alarm: AlarmEpisode) -> AlarmOut:
        """Convert a stored episode."""
        return cls(
            alarm_id=alarm.id,
            patient_id=alarm.patient_id,
            active=alarm.active,
            started=_utc(alarm.started_s),
            last_on=_utc(alarm.last_on_s),
            cleared=None if alarm.cleared_s is None else _utc(alarm.cleared_s),
            peak_risk=alarm.peak_risk,
            acked_by=alarm.acked_by,
            acked_at=None if alarm.acked_at_s is None else _utc(alarm.acked_at_s),
        )


class PatientState(BaseModel):
    """A patient's current state: latest scored window and active alarm."""

    patient_id: str
    last_reading: datetime | None
    latest: WindowScoreOut | None
    alarm: AlarmOut | None

    @classmethod
    def of(cls, patient: PatientSummary) -> PatientState:
        """Convert a stored summary."""
        return cls(
            patient_id=patient.patient_id,
            last_reading=None if patient.last_reading_s is None else _utc(patient.last_reading_s),
            latest=None if patient.latest is None else WindowScoreOut.of(patient.latest),
            alarm=None if patient.alarm is None else AlarmOut.of(patient.alarm),
        )


class AppendAnswer(BaseModel):
    """What an append stored and scored, and the patient's state after it."""

    accepted: int = Field(description="New readings stored")
    duplicates: int = Field(description="Readings already stored with the same value (ignored)")
    windows_scored: list[WindowScoreOut] = Field(description="Windows this append completed")
    patient: PatientState


class Ward(BaseModel):
    """Every monitored patient: active alarms first, then by risk (highest first)."""

    patients: list[PatientState]


class SeriesOut(BaseModel):
    """One channel's readings; dense ranges come as min/max per bucket."""

    channel: str
    bucket_s: float | None = Field(
        description="Bucket width in seconds, or null when every reading is listed"
    )
    t_s: list[float] = Field(description="Epoch seconds of each reading or bucket start")
    low: list[float]
    high: list[float]
    count: list[int]

    @classmethod
    def of(cls, series: ChannelSeries) -> SeriesOut:
        """Convert a stored series."""
        return cls(
            channel=series.channel,
            bucket_s=series.bucket_s,
            t_s=list(series.t_s),
            low=list(series.low),
            high=list(series.high),
            count=list(series.count),
        )


class TimelineOut(BaseModel):
    """A patient's scores, alarm episodes and readings over a time range."""

    patient_id: str
    start: datetime
    end: datetime
    scores: list[WindowScoreOut]
    alarms: list[AlarmOut]
    readings: list[SeriesOut]

    @classmethod
    def of(cls, timeline: Timeline) -> TimelineOut:
        """Convert a stored timeline."""
        return cls(
            patient_id=timeline.patient_id,
            start=_utc(timeline.start_s),
            end=_utc(timeline.end_s),
            scores=[WindowScoreOut.of(s) for s in timeline.scores],
            alarms=[AlarmOut.of(a) for a in timeline.alarms],
            readings=[SeriesOut.of(s) for s in timeline.readings],
        )


class Deleted(BaseModel):
    """Rows removed per table."""

    patient_id: str
    rows: dict[str, int]
