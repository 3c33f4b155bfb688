"""Readings gathered from many files or records, each row remembering where it came from.

Readers that join several files (PhysioNet ``.psv`` files, WFDB records) keep a
:class:`RowOrigin` so that an error found after joining and sorting still names the file,
its 1-based row and the file's column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from vitalsentry.data.readings import Quarantine, quarantine_implausible, validate_frame
from vitalsentry.data.schema import PATIENT_COLUMN, TIMESTAMP_COLUMN
from vitalsentry.data.sources import _static
from vitalsentry.errors import DataError


@dataclass(frozen=True)
class RowOrigin:
    """Where each row of a joined table came from.

    Attributes
    ----------
    files : tuple of str
        File (or record) names.
    file : numpy.ndarray
        (N,) int index into ``files`` of each row.
    row : numpy.ndarray
        (N,) 1-based row of each row within its file.
    """

    files: tuple[str, ...]
    file: np.ndarray
    row: np.ndarray

    @classmethod
    def of_counts(cls, files: Sequence[str], counts: Sequence[int]) -> RowOrigin:
        """Origin of files joined in order, file ``k`` giving ``counts[k]`` rows."""
        sizes = np.asarray(counts, dtype=np.int64)
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        return cls(
            tuple(files),
            np.repeat(np.arange(len(files), dtype=np.int32), sizes),
            np.arange(int(sizes.sum()), dtype=np.int64) - starts + 1,
        )

    def relocate(
        self,
        err: DataError,
        index: int | None = None,
        rename: Mapping[str, str] | None = None,
    ) -> DataError:
        """Re-address ``err`` to a file row.

        Parameters
        ----------
        err : DataError
            Error about the joined table; its ``row`` (1-based) is used unless ``index``.
        index : int, optional
            0-based row of the joined table the error is about.
        rename : mapping of str to str, optional
            Table column → the file's column, for the error's column.

        Returns
        -------
        DataError
            The same reason at the file, row and column it came from.
        """
        i = index if index is not None else (None if err.row is None else err.row - 1)
        column = err.column if rename is None or err.column is None else rename.get(err.column)
        if i is None:
            return DataError(err.reason, file=err.file, column=column or err.column)
        return DataError(
            err.reason,
            file=self.files[int(self.file[i])],
            column=column or err.column,
            row=int(self.row[i]),
        )

    def locate(self, quarantine: Quarantine) -> Quarantine:
        """Re-address each entry's first row (1-based, joined table) to its file and row."""
        return Quarantine(
            tuple(
                replace(
                    e,
                    first_file=self.files[int(self.file[e.first_row - 1])],
                    first_row=int(self.row[e.first_row - 1]),
                )
                for e in quarantine.entries
            )
        )

    def take(self, order: np.ndarray) -> RowOrigin:
        """Origin of the rows reordered by ``order``."""
        return RowOrigin(self.files, self.file[order], self.row[order])


def validate_joined(
    frame: pd.DataFrame,
    origin: RowOrigin,
    path: str,
    rename: Mapping[str, str],
    static: Mapping[str, np.ndarray],
    strict: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, Quarantine, np.ndarray]:
    """Sort a joined frame by patient and time, quarantine, validate it and its static context.

    Parameters
    ----------
    frame : pandas.DataFrame
        Candidate readings frame, rows in ``origin`` order.
    origin : RowOrigin
        Origin of each row of ``frame``.
    path : str
        What was read (named by errors without a row).
    rename : mapping of str to str
        Canonical column (and static field) → the files' column, for errors.
    static : mapping of str to numpy.ndarray
        Static field (age, sex, bmi) → (N,) float64 per row of ``frame``; NaN = not given.
    strict : bool
        Refuse the first implausible reading instead of setting implausible readings missing.

    Returns
    -------
    frame : pandas.DataFrame
        The validated readings frame, sorted (RangeIndex).
    static : pandas.DataFrame
        Per-patient static context.
    quarantine : Quarantine
        Readings set missing, first rows named in their files (empty when ``strict``).
    order : numpy.ndarray
        (N,) positions of the sorted rows in the input, to align other per-row tables.

    Raises
    ------
    DataError
        As :func:`~vitalsentry.data.readings.validate_frame`, at the file's row and column.
    """
    codes = pd.factorize(frame[PATIENT_COLUMN], sort=True)[0]
    order = np.lexsort((pd.DatetimeIndex(frame[TIMESTAMP_COLUMN]).asi8, codes))
    frame = frame.iloc[order].reset_index(drop=True)
    origin = origin.take(order)
    quarantine = Quarantine()
    if not strict:
        frame, found = quarantine_implausible(frame)
        quarantine = origin.locate(found)
    try:
        table = _static(
            frame[PATIENT_COLUMN],
            {field: values[order] for field, values in static.items()},
            path,
            rename,
        )
        checked = validate_frame(frame, path)
    except DataError as err:
        raise origin.relocate(err, rename=rename) from None
    return checked, table, quarantine, order
