"""One pipeline call at a time, with concurrent requests combined into it.

The model is shared and not safe to run from two threads at once (MC dropout switches
its dropout layers on, and every inference call sets its train/eval mode), so one
thread at a time — the leader — runs the pipeline. Requests that arrive while it runs
queue up; when it finishes, the next leader takes every queued request (without MC
dropout) and scores all their patients in ONE :meth:`VitalRiskPipeline.score_windows`
call, i.e. one batched forward pass and one detector call. Under load this shares the
fixed cost of a call among the requests.

Each patient's latest complete window is cut from its own grid exactly as
:meth:`VitalRiskPipeline.score_frame` with ``latest_only=True`` cuts it (the same grid and
window functions, without building a readings frame), so the service and
``vitalsentry score`` give the same risk. Combining changes nothing in a patient's scores;
only floating-point rounding of the batched matrix products may differ (about 1e-7).
Requests with MC dropout run alone, so their dropout masks do not depend on other traffic.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from vitalsentry.data.prepared import cut_windows
from vitalsentry.pipeline import VitalRiskPipeline, WindowScores
from vitalsentry.serve.inputs import PatientReadings, patient_grid
from vitalsentry.serve.metrics import ServiceMetrics


@dataclass(frozen=True)
class Scored:
    """One patient's scored window.

    Attributes
    ----------
    start_s, end_s : float
        Epoch seconds of the window's first and last step.
    scores : WindowScores
        The scores of the whole pipeline call.
    index : int
        This window's row in ``scores``.
    """

    start_s: float
    end_s: float
    scores: WindowScores
    index: int


@dataclass(eq=False)
class _Job:
    patients: Sequence[PatientReadings]
    passes: int
    rows: list[Scored | None] = field(default_factory=list)
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

    def rows(self, patients: Sequence[PatientReadings], passes: int) -> list[Scored | None]:
        """Score each patient's latest complete window.

        Parameters
        ----------
        patients : sequence of PatientReadings
            Patients that each cover the model's channels.
        passes : int
            MC dropout passes (0 = off).

        Returns
        -------
        list of Scored or None
            Per patient, its scored window, or None when it has no complete window
            (gaps, or channels that do not overlap).
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
        pipe = self.pipeline
        data, window = pipe.data_config, pipe.window_config
        try:
            grids = [
                patient_grid(
                    patient,
                    pipe.channels,
                    f"{k}:{i}",
                    step_s=data.step_s,
                    max_gap_s=data.max_gap_s,
                )
                for k, job in enumerate(batch)
                for i, patient in enumerate(job.patients)
            ]
            self.metrics.batch_patients.observe(len(grids))
            cut = cut_windows(grids, data, window, latest_only=True)
            found: dict[str, Scored] = {}
            if len(cut.windows):
                scores = pipe.score_windows(cut.windows, mc_passes=batch[0].passes)
                span = (window.length - 1) * data.step_s
                found = {
                    str(key): Scored(float(start), float(start) + span, scores, j)
                    for j, (key, start) in enumerate(zip(cut.patient, cut.start_s, strict=True))
                }
            for k, job in enumerate(batch):
                job.rows = [found.get(f"{k}:{i}") for i in range(len(job.patients))]
        except BaseException as exc:
            for job in batch:
                job.error = exc
            raise
        finally:
            for job in batch:
                job.done = True
