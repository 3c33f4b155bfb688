"""The monitoring mode behind the routes: the database (opened lazily), the stream, metrics.

Routes call the coroutines of :class:`MonitorService`; each runs its database work in the
threadpool (scoring hops onto the model thread of the service's combiner) and maps the
domain's failures to HTTP: a conflict with the stored stream → 409, bad readings → 422,
an unknown patient or alarm → 404, the database unreachable or locked → 503 with
``Retry-After`` (the next request tries again: no restart needed). The database is
opened and migrated on first use, so a service whose database is down at start-up
serves the scoring API and recovers the monitoring API once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar

from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.concurrency import run_in_threadpool

from vitalsentry.errors import VitalSentryError
from vitalsentry.monitor.db import DatabaseUnavailableError
from vitalsentry.monitor.store import US, MonitorStore, UnknownAlarmError
from vitalsentry.monitor.stream import (
    Measurement,
    StreamConfig,
    StreamConflictError,
    StreamInputError,
    StreamMonitor,
)
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.serve.combine import Combiner
from vitalsentry.serve.fhir import SKIPPED_STATUS, FhirBundle, _measurements
from vitalsentry.serve.inputs import (
    Loc,
    RequestError,
    format_loc,
    patient_tag,
    refuse_span,
    span_limit,
)
from vitalsentry.serve.monitor_schemas import (
    AlarmOut,
    AppendAnswer,
    Deleted,
    PatientState,
    StreamReadings,
    TimelineOut,
    Ward,
    WindowScoreOut,
)
from vitalsentry.serve.security import retry_after_header
from vitalsentry.serve.settings import Settings

logger = logging.getLogger("vitalsentry.serve")

RETRY_AFTER_S: Final = 5.0
DB_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
LAG_BUCKETS: Final = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 3600)
T = TypeVar("T")


class MonitorMetrics:
    """Monitoring collectors, registered in the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.readings = Counter(
            "vitalsentry_monitor_readings",
            "Readings stored by appends (ingest rate: rate() of this)",
            registry=registry,
        )
        self.duplicates = Counter(
            "vitalsentry_monitor_duplicate_readings",
            "Readings sent again with the stored value (ignored)",
            registry=registry,
        )
        self.windows = Counter(
            "vitalsentry_monitor_windows", "Stream windows scored", registry=registry
        )
        self.lag = Histogram(
            "vitalsentry_monitor_scoring_lag_seconds",
            "Wall-clock time from a window's end to its committed score",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.db = Histogram(
            "vitalsentry_monitor_db_seconds",
            "Duration of monitoring database operations",
            ("operation",),
            buckets=DB_BUCKETS,
            registry=registry,
        )
        self.unavailable = Counter(
            "vitalsentry_monitor_db_unavailable",
            "Requests answered 503 because the database was unavailable",
            registry=registry,
        )
        self.active = Gauge(
            "vitalsentry_monitor_active_alarms",
            "Active alarm episodes (NaN when the database cannot be read)",
            registry=registry,
        )


def measurements_of(body: StreamReadings | FhirBundle, patient_id: str) -> list[Measurement]:
    """Return the values of a validated body, each with its location in the request.

    Raises
    ------
    RequestError
        A FHIR entry about another subject, without a time, or with an unsupported code
        or unit (see :mod:`vitalsentry.serve.fhir`).
    """
    if isinstance(body, StreamReadings):
        return [
            Measurement(
                name,
                _us(reading.timestamp),
                float(value),
                ("readings", i, name),
                ("readings", i, "timestamp"),
            )
            for i, reading in enumerate(body.readings)
            for name, value in reading.model_dump(exclude={"timestamp"}, exclude_none=True).items()
        ]
    out = []
    for i, entry in enumerate(body.entry):
        obs, where = entry.resource, ("entry", i, "resource")
        if obs.status in SKIPPED_STATUS:
            continue
        subject = obs.subject.reference if obs.subject is not None else None
        if subject not in (patient_id, f"Patient/{patient_id}"):
            raise RequestError(
                (*where, "subject"), f"must be Patient/{patient_id} (the path's patient)"
            )
        when = obs.effective_date_time or obs.effective_instant
        if when is None:
            raise RequestError(
                (*where, "effectiveDateTime"), "missing effectiveDateTime or effectiveInstant"
            )
        out += [
            Measurement(name, _us(when), value, where, (*where, "effectiveDateTime"))
            for name, value in _measurements(obs, where)
        ]
    return out


def _us(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


class MonitorService:
    """The monitoring mode of one app (see the module docstring).

    Parameters
    ----------
    settings : Settings
        Database URL, retention, limits.
    pipeline : VitalRiskPipeline
        The served pipeline.
    combiner : Combiner
        Its model thread (streamed windows are scored there).
    metrics : MonitorMetrics
        The app's monitoring collectors (created once per app, with its registry).
    pseudonym_key : bytes
        Key of the patient pseudonyms in logs (the scoring service's).
    """

    def __init__(
        self,
        settings: Settings,
        pipeline: VitalRiskPipeline,
        combiner: Combiner,
        metrics: MonitorMetrics,
        pseudonym_key: bytes,
    ) -> None:
        if settings.monitor_mc_passes == 1:
            raise VitalSentryError("VITALSENTRY_MONITOR_MC_PASSES: 0 (off) or at least 2")
        self.settings = settings
        self.pipeline = pipeline
        self.combiner = combiner
        self.metrics = metrics
        self.pseudonym_key = pseudonym_key
        metrics.active.set_function(self._active_alarms)
        self._stream: StreamMonitor | None = None
        self._lock = threading.Lock()
        self._purger: asyncio.Task[None] | None = None
        self.max_span_s, self.span_limit = span_limit(
            pipeline.data_config, pipeline.window_config.length, settings.max_span_windows
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the periodic retention purge (when ``purge_every_s`` > 0)."""
        if self.settings.purge_every_s > 0:
            self._purger = asyncio.get_running_loop().create_task(self._purge_forever())

    def close(self) -> None:
        """Stop the purge and close the database connections."""
        if self._purger is not None:
            self._purger.cancel()
        if self._stream is not None:
            self._stream.store.close()

    def stream(self) -> StreamMonitor:
        """Return the stream over the database, opening (and migrating) it on first use.

        Raises
        ------
        DatabaseUnavailableError
            The database cannot be reached (the next call tries again).
        """
        with self._lock:
            if self._stream is None:
                store = MonitorStore.open(self.settings.database_url)
                config = StreamConfig(self.settings.max_future_s, self.settings.monitor_mc_passes)
                self._stream = StreamMonitor(store, self.pipeline, config, self.combiner.run)
            return self._stream

    # -- operations ------------------------------------------------------------------------

    async def append(self, patient_id: str, body: StreamReadings | FhirBundle) -> AppendAnswer:
        """Append readings (JSON or FHIR) to a patient's stream."""
        values = measurements_of(body, patient_id)
        if len(values) > self.settings.max_readings:
            raise RequestError(
                (), f"{len(values)} values; at most {self.settings.max_readings} per request"
            )
        if values:
            earliest = min(values, key=lambda m: m.t_us)
            span_s = (max(m.t_us for m in values) - earliest.t_us) / 1e6
            refuse_span(span_s, earliest.time_loc, self.max_span_s, self.span_limit)
        context = {}
        if isinstance(body, StreamReadings):
            context = {
                k: v
                for k, v in (
                    ("on_oxygen", body.on_oxygen),
                    ("consciousness_alert", body.consciousness_alert),
                )
                if v is not None
            }
        result = await self._run("append", lambda s: s.append(patient_id, values, context))
        self.metrics.readings.inc(result.accepted)
        self.metrics.duplicates.inc(result.duplicates)
        now = time.time()
        for score in result.scored:
            self.metrics.windows.inc()
            self.metrics.lag.observe(max(0.0, now - score.end_s))
        logger.debug(
            "appended patient=%s accepted=%d windows=%d",
            patient_tag(patient_id, self.pseudonym_key),
            result.accepted,
            len(result.scored),
        )
        return AppendAnswer(
            accepted=result.accepted,
            duplicates=result.duplicates,
            windows_scored=[WindowScoreOut.of(s) for s in result.scored],
            patient=PatientState.of(result.patient),
        )

    async def ward(self) -> Ward:
        """Every patient's state."""
        patients = await self._run("ward", lambda s: s.store.ward())
        return Ward(patients=[PatientState.of(p) for p in patients])

    async def timeline(
        self, patient_id: str, start: datetime | None, end: datetime | None, max_points: int
    ) -> TimelineOut:
        """Return a patient's timeline; by default the 24 h up to its newest reading."""
        patient = await self._run("patient", lambda s: s.store.patient(patient_id))
        if patient is None:
            raise HTTPException(status_code=404, detail="patient_id: no such patient")
        end_s = (
            end.timestamp() if end is not None else (patient.last_reading_s or time.time()) + 1 / US
        )
        start_s = start.timestamp() if start is not None else end_s - 86_400
        if start_s >= end_s:
            raise RequestError(("query", "from"), "must be before 'to'")
        found = await self._run(
            "timeline", lambda s: s.store.timeline(patient_id, start_s, end_s, max_points)
        )
        return TimelineOut.of(found)

    async def ack(self, alarm_id: int, by: str) -> AlarmOut:
        """Acknowledge an alarm episode."""
        return AlarmOut.of(await self._run("ack", lambda s: s.store.ack(alarm_id, by)))

    async def delete(self, patient_id: str) -> Deleted:
        """Remove every stored row of a patient."""
        rows = await self._run("delete", lambda s: s.store.delete_patient(patient_id))
        if not any(rows.values()):
            raise HTTPException(status_code=404, detail="patient_id: no such patient")
        logger.info(
            "deleted patient=%s rows=%d",
            patient_tag(patient_id, self.pseudonym_key),
            sum(rows.values()),
        )
        return Deleted(patient_id=patient_id, rows=rows)

    async def purge(self) -> dict[str, int]:
        """Delete what is older than the retention horizons."""
        now = time.time()
        before_readings = now - self.settings.readings_retention_h * 3600
        before_history = now - self.settings.history_retention_d * 86_400
        return await self._run("purge", lambda s: s.store.purge(before_readings, before_history))

    # -- helpers ---------------------------------------------------------------------------

    async def _run(self, operation: str, work: Callable[[StreamMonitor], T]) -> T:
        """Run ``work`` in the threadpool, timed, with the domain's errors mapped to HTTP."""
        with self._http_errors():
            return await run_in_threadpool(self._timed, operation, work)

    def _timed(self, operation: str, work: Callable[[StreamMonitor], T]) -> T:
        start = time.perf_counter()
        try:
            return work(self.stream())
        finally:
            self.metrics.db.labels(operation).observe(time.perf_counter() - start)

    @contextlib.contextmanager
    def _http_errors(self) -> Iterator[None]:
        try:
            yield
        except DatabaseUnavailableError as exc:
            self.metrics.unavailable.inc()
            logger.warning("monitoring database unavailable: %s", exc)
            raise HTTPException(
                status_code=503,
                detail=str(exc),
                headers={"Retry-After": retry_after_header(RETRY_AFTER_S)},
            ) from None
        except StreamConflictError as exc:
            raise HTTPException(status_code=409, detail=_located(exc.loc, exc.reason)) from None
        except StreamInputError as exc:
            raise RequestError(exc.loc, exc.reason) from None
        except UnknownAlarmError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None

    def _active_alarms(self) -> float:
        if self._stream is None:
            return float("nan")
        try:
            return float(self._stream.store.active_alarms())
        except DatabaseUnavailableError:
            return float("nan")

    async def _purge_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.purge_every_s)
            try:
                removed = await self.purge()
                logger.info("retention purge: %s", removed)
            except HTTPException:  # database down: try at the next period
                continue


def _located(loc: Loc, reason: str) -> str:
    return f"{format_loc(loc)}: {reason}" if loc else reason
