"""One pipeline call at a time, with concurrent requests combined into it.

The model is shared and not safe to run from two threads at once (MC dropout switches
its dropout layers on, and every inference call sets its train/eval mode), so one
thread at a time — the leader — runs the pipeline. Requests that arrive while it runs
queue up; when it finishes, the next leader takes every queued request (without MC
dropout) and scores all their patients in ONE :meth:`VitalRiskPipeline.score_frame`
call, i.e. one batched forward pass and one detector call. Under load this shares the
fixed cost of a call (the detector's per-tree overhead above all) among the requests.

Combining changes nothing in a patient's scores: each patient keeps its own grid and
windows (patients are keyed apart in the frame); only floating-point rounding of the
batched matrix products may differ (about 1e-7). Requests with MC dropout run alone, so
their dropout masks do not depend on other traffic.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from vitalsentry.data.readings import validate_frame
from vitalsentry.data.schema import PATIENT_COLUMN
from vitalsentry.errors import DataError
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.serve.inputs import PatientReadings, readings_frame
from vitalsentry.serve.metrics import ServiceMetrics

SOURCE = "request"
"""Name given to request data in :class:`DataError` messages."""

Row = dict[str, Any]


@dataclass(eq=False)
class _Job:
    patients: Sequence[PatientReadings]
    passes: int
    rows: list[Row | None] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


class Combiner:
    """Score patients with a shared pipeline, combining concurrent calls.

    Parameters
    ----------
    pipeline : VitalRiskPipeline
        The loaded pipeline.
    metrics : ServiceMetrics
        Records how many patients each pipeline call scored.
    """

    def __init__(self, pipeline: VitalRiskPipeline, metrics: ServiceMetrics) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._busy = False

    def rows(self, patients: Sequence[PatientReadings], passes: int) -> list[Row | None]:
        """Score each patient's latest complete window.

        Parameters
        ----------
        patients : sequence of PatientReadings
            Patients that each cover the model's channels.
        passes : int
            MC dropout passes (0 = off).

        Returns
        -------
        list of dict or None
            Per patient, its row of :meth:`VitalRiskPipeline.score_frame`, or None when
            it has no complete window (gaps, or channels that do not overlap).
        """
        job = _Job(patients, passes)
        batch: list[_Job] = []
        with self._cond:
            self._queue.append(job)
            while self._busy and not job.done:
                self._cond.wait()
            if not job.done:
                self._busy = True
                batch = self._take(job)
        if batch:
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        return job.rows

    def _take(self, leader: _Job) -> list[_Job]:
        """Dequeue the leader's batch: itself if it uses MC dropout, else every plain job."""
        if leader.passes:
            self._queue.remove(leader)
            return [leader]
        batch = [j for j in self._queue if not j.passes]
        self._queue = [j for j in self._queue if j.passes]
        return batch

    def _run(self, batch: list[_Job]) -> None:
        """Score every patient of ``batch`` in one pipeline call and hand out the rows."""
        keyed = [
            replace(patient, patient_id=f"{k}:{i}")
            for k, job in enumerate(batch)
            for i, patient in enumerate(job.patients)
        ]
        self.metrics.batch_patients.observe(len(keyed))
        try:
            frame = validate_frame(readings_frame(keyed), SOURCE)
            found: dict[str, Row] = {}
            try:
                scored = self.pipeline.score_frame(
                    frame, latest_only=True, mc_passes=batch[0].passes
                )
                records = cast(list[Row], scored.to_dict("records"))
                found = {str(r[PATIENT_COLUMN]): r for r in records}
            except DataError:  # no patient has a complete window
                pass
            for k, job in enumerate(batch):
                job.rows = [found.get(f"{k}:{i}") for i in range(len(job.patients))]
        except BaseException as exc:
            for job in batch:
                job.error = exc
            raise
        finally:
            for job in batch:
                job.done = True
