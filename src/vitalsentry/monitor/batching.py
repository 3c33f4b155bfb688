"""Group commit: the work items of concurrent callers run in batches, one batch at a time.

A caller that finds no batch running takes every queued item (the first of each key,
at most ``max_items``) and runs them in one call of ``run``, on its own thread; callers
that arrive meanwhile wait for the next batch. A caller alone runs its own item at once,
so nothing waits for company. While a batch runs, ``run`` may let items queued since it
began join it (``join``): a caller that arrives while the batch is still early in its work
is answered with it instead of waiting for the next batch. Under load a batch shares its
fixed costs (one database transaction and commit, one model call) among its items.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 (the item type)
R = TypeVar("R")

Join = Callable[[Callable[[I], bool]], list[I]]
"""``join(accept)``: the queued items that ``accept`` admits, now part of the running batch."""


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
        ``run(items, join)`` returns one outcome per item, in order: its result, or the
        exception that item's caller raises (e.g. a refused reading). It may call
        ``join(accept)`` any number of times: the items queued meanwhile that ``accept``
        admits (the first of each key that is not in the batch yet, in submission
        order) are removed from the queue and returned; their outcomes follow, in the
        order returned.
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
        run: Callable[[list[I], Join[I]], Sequence[R | Exception]],
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
                batch: list[_Ticket[I, R]] = []
                self._admit(batch, lambda _: True)
            self._run_batch(batch)
        if isinstance(ticket.outcome, Exception):
            raise ticket.outcome
        return ticket.outcome  # type: ignore[return-value]  # R itself may include None

    def _admit(self, batch: list[_Ticket[I, R]], accept: Callable[[I], bool]) -> list[I]:
        """Move the first queued ticket of each key not in ``batch`` that ``accept`` admits.

        Call holding the lock. A key whose first queued item is refused stays out of
        this batch (its items keep their order). Returns the admitted items.
        """
        keys = {self._key(t.item) for t in batch}
        admitted: list[_Ticket[I, R]] = []
        rest = []
        for ticket in self._queue:
            key = self._key(ticket.item)
            if key in keys or len(batch) + len(admitted) == self._max or not accept(ticket.item):
                rest.append(ticket)
            else:
                admitted.append(ticket)
            keys.add(key)
        self._queue = rest
        batch.extend(admitted)
        return [t.item for t in admitted]

    def _join(self, batch: list[_Ticket[I, R]], accept: Callable[[I], bool]) -> list[I]:
        """``join`` of a running batch: admit queued items into it."""
        with self._changed:
            return self._admit(batch, accept)

    def _run_batch(self, batch: list[_Ticket[I, R]]) -> None:
        """Run a batch (which may grow as items join it), settle its tickets, wake the callers."""
        outcomes: Sequence[R | Exception] | None = None
        try:
            outcomes = self._outcomes(batch)
        finally:
            with self._changed:
                if outcomes is None:
                    outcomes = [RuntimeError("the batch was interrupted")] * len(batch)
                for ticket, outcome in zip(batch, outcomes, strict=True):
                    ticket.settle(outcome)
                self._running = False
                self._changed.notify_all()

    def _outcomes(self, batch: list[_Ticket[I, R]]) -> Sequence[R | Exception]:
        """``run`` of the batch; after an unexpected error, each of its items alone."""
        try:
            return self._run([t.item for t in batch], lambda accept: self._join(batch, accept))
        except self._shared as exc:
            return [exc] * len(batch)
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            return [outcome for t in batch for outcome in self._alone(t.item)]

    def _alone(self, item: I) -> Sequence[R | Exception]:
        """``run`` of one item that nothing may join (a failed batch's retry)."""
        try:
            return self._run([item], lambda _: [])
        except Exception as exc:
            return [exc]
