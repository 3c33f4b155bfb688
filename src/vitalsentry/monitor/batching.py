"""Group commit: the work items of concurrent callers run in batches, one batch at a time.

A caller that finds no batch running takes every queued item (the first of each key,
at most ``max_items``) and runs them in one call of ``run``, on its own thread; callers
that arrive meanwhile wait for the next batch. A caller alone runs its own item at once,
so nothing waits for company. Under load a batch shares its fixed costs (one database
transaction and commit, one model call) among its items.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 (the item type)
R = TypeVar("R")


class _Ticket(Generic[I, R]):
    """One submitted item and, once its batch has run, its outcome."""

    def __init__(self, item: I) -> None:
        self.item = item
        self.done = False
        self.outcome: R | Exception | None = None

    def settle(self, outcome: R | Exception) -> None:
        self.outcome, self.done = outcome, True


class GroupCommit(Generic[I, R]):
    """Run concurrently submitted items in batches (see the module docstring).

    Parameters
    ----------
    run : callable
        ``run(items)`` returns one outcome per item, in order: its result, or the
        exception that item's caller raises (e.g. a refused reading).
    key : callable
        ``key(item)``: items of one key run one per batch, in submission order.
    shared_errors : tuple of exception types
        Errors of ``run`` that are every item's answer (e.g. the database is down). After
        any other error of a batch, each item runs again alone, so it fails alone.
    max_items : int, default 32
        Most items in one batch.
    """

    def __init__(
        self,
        run: Callable[[list[I]], Sequence[R | Exception]],
        key: Callable[[I], Hashable],
        shared_errors: tuple[type[Exception], ...] = (),
        max_items: int = 32,
    ) -> None:
        self._run = run
        self._key = key
        self._shared = shared_errors
        self._max = max_items
        self._queue: list[_Ticket[I, R]] = []
        self._running = False
        self._changed = threading.Condition()

    @property
    def queued(self) -> int:
        """Items waiting for a batch (not counting the running one)."""
        with self._changed:
            return len(self._queue)

    def submit(self, item: I) -> R:
        """Run ``item`` in a batch and return its result (raise its error).

        Raises
        ------
        Exception
            The item's error from ``run``.
        """
        ticket: _Ticket[I, R] = _Ticket(item)
        with self._changed:
            self._queue.append(ticket)
        while True:
            with self._changed:
                while self._running and not ticket.done:
                    self._changed.wait()
                if ticket.done:
                    break
                self._running = True
                batch = self._take()
            self._run_batch(batch)
        if isinstance(ticket.outcome, Exception):
            raise ticket.outcome
        return ticket.outcome  # type: ignore[return-value]  # R itself may include None

    def _take(self) -> list[_Ticket[I, R]]:
        """Remove and return the next batch: the first queued ticket of each key."""
        batch: list[_Ticket[I, R]] = []
        keys: set[Hashable] = set()
        rest = []
        for ticket in self._queue:
            key = self._key(ticket.item)
            if key in keys or len(batch) == self._max:
                rest.append(ticket)
            else:
                keys.add(key)
                batch.append(ticket)
        self._queue = rest
        return batch

    def _run_batch(self, batch: list[_Ticket[I, R]]) -> None:
        """Run a batch, settle its tickets and wake the waiting callers."""
        outcomes: Sequence[R | Exception] = [RuntimeError("the batch was interrupted")] * len(batch)
        try:
            outcomes = self._outcomes([t.item for t in batch])
        finally:
            with self._changed:
                for ticket, outcome in zip(batch, outcomes, strict=True):
                    ticket.settle(outcome)
                self._running = False
                self._changed.notify_all()

    def _outcomes(self, items: list[I]) -> Sequence[R | Exception]:
        """``run(items)``; after an unexpected error of a batch, each item alone."""
        try:
            return self._run(items)
        except self._shared as exc:
            return [exc] * len(items)
        except Exception as exc:
            if len(items) == 1:
                return [exc]
            return [outcome for item in items for outcome in self._outcomes([item])]
