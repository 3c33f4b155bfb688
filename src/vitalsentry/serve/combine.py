"""One model thread runs the pipeline; concurrent requests are combined into its calls.

The model is shared and not safe to run from two threads at once (MC dropout switches
its dropout layers on, and every inference call sets its train/eval mode), so one
dedicated thread runs every pipeline call. Routes hand it a job and await the answer
without holding the event loop or a threadpool thread. When the thread is free it takes
every queued job and scores all their patients (those without MC dropout) in ONE
:meth:`VitalRiskPipeline.score_windows` call, i.e. one batched forward pass and one
detector call. Under load this shares the fixed cost of a call among the requests.

Each patient's latest complete window is cut from its own grid exactly as
:meth:`VitalRiskPipeline.score_frame` with ``latest_only=True`` cuts it (the same grid and
window functions, without building a readings frame), so the service and
``vitalsentry score`` give the same risk. Combining changes nothing in a patient's scores;
only floating-point rounding of the batched matrix products may differ (about 1e-7).
Requests with MC dropout run alone, so their dropout masks do not depend on other traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

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


Rows = list[Scored | None]
"""Per patient of a job, its scored window or None."""

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class _Job:
    patients: Sequence[PatientReadings]
    passes: int
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future[Rows]

    def settle(self, outcome: Rows | Exception) -> None:
        """Hand the rows, or the error, to the awaiting request (from the model thread)."""

        def deliver() -> None:
            if self.answer.done():  # the request was cancelled (client gone)
                return
            if isinstance(outcome, Exception):
                self.answer.set_exception(outcome)
            else:
                self.answer.set_result(outcome)

        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            self.loop.call_soon_threadsafe(deliver)


@dataclass(frozen=True, eq=False)
class _Call:
    """Any function of the pipeline, run on the model thread for a waiting worker thread."""

    fn: Callable[[VitalRiskPipeline], Any]
    answer: Future[Any]

    def run(self, pipeline: VitalRiskPipeline) -> None:
        try:
            self.answer.set_result(self.fn(pipeline))
        except Exception as exc:  # handed to the caller
            self.answer.set_exception(exc)


class Combiner:
    """Score patients on one model thread, combining concurrent calls.

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
        self._jobs: queue.SimpleQueue[_Job | _Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="vitalsentry-model", daemon=True)
        self._thread.start()

    async def rows(self, patients: Sequence[PatientReadings], passes: int) -> Rows:
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
        loop = asyncio.get_running_loop()
        job = _Job(patients, passes, loop, loop.create_future())
        self._jobs.put(job)
        return await job.answer

    def run(self, fn: Callable[[VitalRiskPipeline], T]) -> T:
        """Return ``fn(pipeline)`` computed on the model thread (call from a worker thread).

        Blocks the calling thread, never the event loop: use it from code that runs in
        the threadpool (e.g. a database transaction that scores windows).
        """
        call = _Call(fn, Future())
        self._jobs.put(call)
        result: T = call.answer.result()
        return result

    def close(self) -> None:
        """Stop the model thread once the jobs queued before this call are answered."""
        self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        """Run the model thread: take every queued job; score plain ones together, MC ones alone."""
        stop = False
        while not stop:
            taken = [self._jobs.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    taken.append(self._jobs.get_nowait())
            stop = None in taken
            for call in taken:
                if isinstance(call, _Call):
                    call.run(self.pipeline)
            jobs = [job for job in taken if isinstance(job, _Job)]
            plain = [job for job in jobs if not job.passes]
            for batch in ([plain] if plain else []) + [[job] for job in jobs if job.passes]:
                self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        """Score every patient of ``batch`` in one pipeline call and hand out the rows."""
        try:
            rows = self._score(batch)
        except Exception as exc:  # every waiting request gets it; the thread goes on
            for job in batch:
                job.settle(exc)
            return
        for job, found in zip(batch, rows, strict=True):
            job.settle(found)

    def _score(self, batch: list[_Job]) -> list[Rows]:
        """Per job, its patients' scored windows (one pipeline call for all of them)."""
        pipe = self.pipeline
        data, window = pipe.data_config, pipe.window_config
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
        return [
            [found.get(f"{k}:{i}") for i in range(len(job.patients))] for k, job in enumerate(batch)
        ]
