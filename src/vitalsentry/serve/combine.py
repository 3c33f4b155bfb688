"""One thread at a time runs the pipeline; concurrent requests are combined into its calls.

The model is shared and not safe to run from two threads at once (MC dropout switches
its dropout layers on, and every inference call sets its train/eval mode), so one
dedicated thread runs every pipeline call (one exception below). Routes hand it a job
and await the answer without holding the event loop or a threadpool thread. When the
thread is free it takes every queued job and scores all their patients (those without MC
dropout) in ONE :func:`~vitalsentry.scoring.score_readings` call, i.e. one batched
forward pass and one detector call (the request-combiner speed seam, pinned by
``tests/serve/test_combine.py``). Under load this shares the fixed cost of a call among
the requests.

Every call goes through :func:`vitalsentry.scoring.score_readings`, the scoring path of
``vitalsentry score`` and the evaluation, with the requests' patients as its source
(:class:`~vitalsentry.serve.inputs.RequestSource`: each patient's latest complete window,
its fused risk and, when the request gave one, its alarm state). Combining changes nothing
in a patient's scores (each patient is its own key); only floating-point rounding of the
batched matrix products may differ (about 1e-7).
Requests with MC dropout run alone, so their dropout masks do not depend on other traffic.

The exception: :meth:`Combiner.run` (a worker thread's call, e.g. the monitoring stream's
batch) runs its function on the calling thread when the model is idle and single-threaded
(``torch.get_num_threads() == 1``), saving the hand-over to the model thread and back
(waking two threads and passing the GIL twice). A lock that the model thread holds while it
scores keeps the model to one thread at a time, and either thread runs the same operations
on the same windows (the same scores, bit for bit). With several intra-op threads every
call goes to the model thread: OpenMP keeps a team of threads per thread that starts a
parallel region, so calls from the threadpool's many threads would each grow a team.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import numpy as np
import pandas as pd
import torch

from vitalsentry.data.schema import CHANNELS
from vitalsentry.errors import BundleError
from vitalsentry.pipeline import VitalRiskPipeline, WindowScores
from vitalsentry.scoring import NoWindowError, ScoreTable, score_readings
from vitalsentry.serve.inputs import PatientReadings, RequestSource
from vitalsentry.serve.metrics import ServiceMetrics


@dataclass(frozen=True)
class Scored:
    """One patient's scored window.

    Attributes
    ----------
    table : ScoreTable
        The scores of the whole pipeline call.
    index : int
        This window's row in ``table``.
    """

    table: ScoreTable
    index: int

    @property
    def scores(self) -> WindowScores:
        """The call's window scores (this window is row :attr:`index`)."""
        return self.table.scores

    @property
    def start_s(self) -> float:
        """Epoch seconds of the window's first step."""
        return float(self.table.start_s[self.index])

    @property
    def end_s(self) -> float:
        """Epoch seconds of the window's last step."""
        return float(self.table.end_s[self.index])


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
        self._model = threading.Lock()  # held by whichever thread runs the pipeline
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
        the threadpool (e.g. a database transaction that scores windows). When the model
        is idle and single-threaded, ``fn`` runs on the calling thread (module docstring).
        """
        if torch.get_num_threads() == 1 and self._model.acquire(blocking=False):
            try:
                return fn(self.pipeline)
            finally:
                self._model.release()
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
            with self._model:
                self._answer(taken)

    def _answer(self, taken: list[_Job | _Call | None]) -> None:
        """Run the calls, then the jobs: plain ones in one pipeline call, MC ones alone."""
        for call in taken:
            if isinstance(call, _Call):
                call.run(self.pipeline)
        jobs = [job for job in taken if isinstance(job, _Job)]
        plain = [job for job in jobs if not job.passes]
        for batch in ([plain] if plain else []) + [[job] for job in jobs if job.passes]:
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        """Score every patient of ``batch`` in one pipeline call and hand out the rows.

        When a combined call fails, each job is run again alone, so one request's
        failure is that request's only; the thread goes on either way.
        """
        try:
            rows = self._score(batch)
        except Exception as exc:
            if len(batch) > 1:
                for job in batch:
                    self._run([job])
                return
            batch[0].settle(exc)
            return
        for job, found in zip(batch, rows, strict=True):
            job.settle(found)

    def _score(self, batch: list[_Job]) -> list[Rows]:
        """Per job, its patients' scored windows (one pipeline call for all of them)."""
        self.metrics.batch_patients.observe(sum(len(job.patients) for job in batch))
        return score_latest(self.pipeline, [job.patients for job in batch], batch[0].passes)


def score_latest(
    pipe: VitalRiskPipeline, groups: Sequence[Sequence[PatientReadings]], passes: int
) -> list[Rows]:
    """Score the latest complete window of every patient of ``groups`` in one pipeline call.

    Parameters
    ----------
    pipe : VitalRiskPipeline
        The loaded pipeline.
    groups : sequence of sequences of PatientReadings
        Patients, grouped (one group per request).
    passes : int
        MC dropout passes (0 = off).

    Returns
    -------
    list of Rows
        Per group, per patient, its scored window or None.
    """
    keys = [f"{k}:{i}" for k, group in enumerate(groups) for i in range(len(group))]
    source = RequestSource([patient for group in groups for patient in group], keys)
    found: dict[str, Scored] = {}
    with contextlib.suppress(NoWindowError):
        table = score_readings(
            pipe, source, latest_only=True, mc_passes=passes, history=source.history
        )
        found = {str(key): Scored(table, j) for j, key in enumerate(table.patient)}
    return [[found.get(f"{k}:{i}") for i in range(len(group))] for k, group in enumerate(groups)]


SELF_CHECK_START: Final = 1_704_067_200.0
"""Epoch seconds of the self-check's first reading (2024-01-01T00:00:00Z)."""


def self_check(pipe: VitalRiskPipeline) -> None:
    """Score one synthetic patient along the service's path; refuse a pipeline that cannot.

    The patient has one window and one step of readings at the training means of the
    model's channels (a channel the scaler lacks: the middle of its plausible range).

    Raises
    ------
    BundleError
        The call fails, finds no complete window, or gives a risk outside [0, 1].
    """
    data, window = pipe.data_config, pipe.window_config
    steps = window.length + 1
    scaler = pipe.bundle.scaler
    means = dict(zip(scaler.feature_names, scaler.mean_.tolist(), strict=True))
    values = {
        name: np.full(steps, means.get(name, (CHANNELS[name].low + CHANNELS[name].high) / 2))
        for name in pipe.channels
    }
    seconds = SELF_CHECK_START + np.arange(steps) * data.step_s
    times = pd.DatetimeIndex(pd.to_datetime(seconds, unit="s", utc=True)).as_unit("ns")
    try:
        ((row,),) = score_latest(pipe, [[PatientReadings("self-check", times, values)]], 0)
        risk = None if row is None else float(row.scores.risk[row.index])
    except Exception as exc:
        raise BundleError(
            f"bundle {pipe.bundle.path}: the scoring self-check failed ({type(exc).__name__})"
        ) from None
    if risk is None or not 0.0 <= risk <= 1.0:
        found = "no complete window" if risk is None else f"risk {risk}"
        raise BundleError(f"bundle {pipe.bundle.path}: the scoring self-check failed ({found})")
