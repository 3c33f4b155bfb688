"""Error types that the CLI and the service turn into one-line messages.

Every error raised for bad input is a :class:`VitalSentryError`; its ``str`` is the
one line a user sees (file, column or row, and the reason), never a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class VitalSentryError(Exception):
    """Base class for every error meant to be shown to a user as one line."""


class DataError(VitalSentryError):
    """Input data is unreadable, malformed or implausible.

    Parameters
    ----------
    reason : str
        What is wrong, in plain words.
    file : str, optional
        The file the problem was found in.
    column : str, optional
        The column (or field) concerned.
    row : int, optional
        The 1-based data row (header excluded) concerned.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.column = column
        self.row = row
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.column is not None:
            where.append(f"column '{self.column}'")
        if self.row is not None:
            where.append(f"row {self.row}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class BundleError(VitalSentryError):
    """A model bundle is missing, tampered with or incompatible."""


class TrainingError(VitalSentryError):
    """Training cannot start or cannot go on (NaN loss, out of memory, bad settings)."""


@contextlib.contextmanager
def in_file(path: str) -> Iterator[None]:
    """Name ``path`` in any :class:`DataError` raised inside the block that names no file."""
    try:
        yield
    except DataError as exc:
        if exc.file is not None:
            raise
        raise DataError(exc.reason, file=path, column=exc.column, row=exc.row) from None
