"""Monitoring routes: thin wrappers over :class:`~vitalsentry.serve.monitor_service.MonitorService`.

Scopes: appending readings needs ``score``; reading the ward and timelines and
acknowledging alarms need any valid key (the acknowledgement records the key's id);
deleting a patient needs ``admin``. Rate and size limits are those of every route.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from vitalsentry.serve.deps import AdminKey, AnyKey, ScoreKey
from vitalsentry.serve.monitor_schemas import (
    AlarmOut,
    AppendAnswer,
    AppendBody,
    Deleted,
    TimelineOut,
    Ward,
)
from vitalsentry.serve.monitor_service import MonitorService
from vitalsentry.serve.routes import NO_UNKNOWN_QUERY, RustJsonRoute, _errors
from vitalsentry.serve.schemas import PATIENT_ID_PATTERN, ErrorMessage, Timestamp

ANONYMOUS: Final = "anonymous"
"""Who acknowledged an alarm when the service runs without API keys."""


async def get_monitor(request: Request) -> MonitorService:
    """Return the app's monitoring service; 503 until the bundle is loaded."""
    monitor: MonitorService | None = getattr(request.app.state, "monitor", None)
    if monitor is None:
        raise HTTPException(status_code=503, detail="the model is not loaded")
    return monitor


Monitor = Annotated[MonitorService, Depends(get_monitor)]
PatientPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=PATIENT_ID_PATTERN,
        description="Patient identifier (no control characters)",
    ),
]
AlarmPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="Alarm episode id")]


def _more(*codes: int) -> dict[int | str, dict[str, object]]:
    text = {
        404: "Unknown patient or alarm",
        409: "The reading contradicts the stored stream (names the field)",
        503: "The model is not loaded, or the database is unavailable (see Retry-After)",
    }
    return _errors(400, 401, 403, 413, 429) | {
        code: {"model": ErrorMessage, "description": text[code]} for code in codes
    }


monitor = APIRouter(
    prefix="/v1", route_class=RustJsonRoute, tags=["monitoring"], dependencies=NO_UNKNOWN_QUERY
)


@monitor.post("/patients/{patient_id}/readings", responses=_more(409, 503))
async def append_readings(
    _: ScoreKey, service: Monitor, patient_id: PatientPath, body: AppendBody
) -> AppendAnswer:
    """Append readings (JSON or a FHIR R4 Bundle) and score every window they complete.

    Idempotent on (patient, timestamp, channel); a 2xx means the readings, scores and
    alarm state are committed.
    """
    return await service.append(patient_id, body)


@monitor.get("/patients", responses=_more(503))
async def ward(_: AnyKey, service: Monitor) -> Ward:
    """Ward overview: every patient's latest state, active alarms first, then by risk."""
    return await service.ward()


@monitor.get("/patients/{patient_id}/timeline", responses=_more(404, 503))
async def timeline(
    _: AnyKey,
    service: Monitor,
    patient_id: PatientPath,
    start: Annotated[Timestamp | None, Query(alias="from")] = None,
    end: Annotated[Timestamp | None, Query(alias="to")] = None,
    max_points: Annotated[int, Query(ge=10, le=20_000)] = 2000,
) -> TimelineOut:
    """Scores, alarm episodes and readings (downsampled above ``max_points``) over a range.

    Defaults to the 24 hours up to the patient's newest reading.
    """
    return await service.timeline(patient_id, start, end, max_points)


@monitor.post("/alarms/{alarm_id}/ack", responses=_more(404, 503))
async def ack_alarm(key: AnyKey, service: Monitor, alarm_id: AlarmPath) -> AlarmOut:
    """Acknowledge an alarm episode (records the key id and the time; the first one counts)."""
    return await service.ack(alarm_id, key.key_id if key is not None else ANONYMOUS)


@monitor.delete("/patients/{patient_id}", responses=_more(404, 503))
async def delete_patient(_: AdminKey, service: Monitor, patient_id: PatientPath) -> Deleted:
    """Remove every stored row of a patient (readings, scores, alarms, state)."""
    return await service.delete(patient_id)
