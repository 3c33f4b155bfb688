"""The readings frame: the one tidy shape every source is read into.

Columns: ``patient_id`` (str), ``timestamp`` (datetime64[ns, UTC]), one float64 column per
canonical channel present (NaN = not measured at that instant), optional ``label``
(int8: 0 normal, 1 abnormal). Static per-patient context lives apart in ``static``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from vitalsentry.data.schema import (
    CHANNELS,
    LABEL_COLUMN,
    PATIENT_COLUMN,
    TIMESTAMP_COLUMN,
    plausible_range_text,
)
from vitalsentry.errors import DataError

QUARANTINE_REASONS: tuple[str, ...] = ("non-finite", "below range", "above range")
"""Why a reading is quarantined, in report order."""


@dataclass(frozen=True)
class QuarantineEntry:
    """Readings of one channel set missing for one reason.

    Attributes
    ----------
    channel : str
        Canonical channel.
    reason : str
        One of :data:`QUARANTINE_REASONS`.
    count : int
        Number of readings set missing.
    first_row : int
        1-based row of the first of them (in the file once mapped by the reader).
    first_value : float
        Its value.
    first_file : str or None
        The file of the first of them, for readers that join several files.
    """

    channel: str
    reason: str
    count: int
    first_row: int
    first_value: float
    first_file: str | None = None


@dataclass(frozen=True)
class Quarantine:
    """Implausible batch readings set missing instead of refusing the file.

    Attributes
    ----------
    entries : tuple of QuarantineEntry
        One entry per channel and reason with at least one reading, in canonical channel
        then reason order.
    """

    entries: tuple[QuarantineEntry, ...] = ()

    @property
    def total(self) -> int:
        """Number of readings set missing."""
        return sum(e.count for e in self.entries)

    def at_rows(self, file_rows: np.ndarray) -> Quarantine:
        """Map 0-based frame rows to the file's 1-based rows (``file_rows[row - 1]``)."""
        return Quarantine(
            tuple(replace(e, first_row=int(file_rows[e.first_row - 1])) for e in self.entries)
        )

    def merged(self, other: Quarantine) -> Quarantine:
        """Sum two quarantines (e.g. of several files or sensor parts) per channel and reason."""
        both: dict[tuple[str, str], QuarantineEntry] = {}
        for e in self.entries + other.entries:
            key = (e.channel, e.reason)
            old = both.get(key)
            first = e if old is None or e.first_row < old.first_row else old
            both[key] = replace(first, count=e.count + (0 if old is None else old.count))
        order = {c: i for i, c in enumerate(CHANNELS)}
        return Quarantine(
            tuple(
                sorted(
                    both.values(),
                    key=lambda e: (
                        order.get(e.channel, len(order)),
                        QUARANTINE_REASONS.index(e.reason),
                    ),
                )
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the total and one record per channel and reason."""
        return {"total": self.total, "entries": [asdict(e) for e in self.entries]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Quarantine:
        """Rebuild from :meth:`to_dict` output (``{}`` gives an empty quarantine)."""
        return cls(tuple(QuarantineEntry(**e) for e in data.get("entries", ())))

    def notes(self) -> tuple[str, ...]:
        """One note for every output that carries the reader's notes; none when empty."""
        if not self.entries:
            return ()
        parts = [
            f"{e.channel} {e.reason} {e.count:,} (first "
            f"{'' if e.first_file is None else e.first_file + ' '}row {e.first_row:,}: "
            f"{e.first_value:g})"
            for e in self.entries
        ]
        return (
            f"quarantine: {self.total:,} implausible reading(s) set missing — "
            + "; ".join(parts)
            + " (plausible ranges: "
            + ", ".join(
                f"{c} {plausible_range_text(c)}"
                for c in dict.fromkeys(e.channel for e in self.entries)
            )
            + ")",
        )


def _implausible(values: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """Boolean masks of the readings of one channel per quarantine reason."""
    spec = CHANNELS[name]
    infinite = np.isinf(values)
    with np.errstate(invalid="ignore"):
        return {
            "non-finite": infinite,
            "below range": (values < spec.low) & ~infinite,
            "above range": (values > spec.high) & ~infinite,
        }


def quarantine_implausible(frame: pd.DataFrame) -> tuple[pd.DataFrame, Quarantine]:
    """Set implausible channel readings missing and count them per channel and reason.

    Batch files use this instead of refusing the whole file for one artefact;
    :func:`validate_frame` alone (``--strict``, single API requests) still refuses.

    Parameters
    ----------
    frame : pandas.DataFrame
        Readings frame (channel columns among :data:`CHANNELS`; others are kept as they are).

    Returns
    -------
    (pandas.DataFrame, Quarantine)
        The frame with those readings NaN (a copy; the frame itself when none is), and
        the counts; rows in the quarantine are 1-based rows of ``frame``.
    """
    entries = []
    changed: dict[str, np.ndarray] = {}
    for name in (c for c in CHANNELS if c in frame.columns):
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        masks = _implausible(values, name)
        for reason, bad in masks.items():
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                entries.append(
                    QuarantineEntry(name, reason, int(bad.sum()), i + 1, float(values[i]))
                )
        bad_any = np.logical_or.reduce(list(masks.values()))
        if bad_any.any():
            changed[name] = np.where(bad_any, np.nan, values)
    return (frame.assign(**changed) if changed else frame), Quarantine(tuple(entries))


@dataclass(frozen=True)
class Readings:
    """Readings of one source, validated.

    Attributes
    ----------
    frame : pandas.DataFrame
        The readings frame (see module docstring), sorted by patient then timestamp.
    static : pandas.DataFrame
        Per-patient static context indexed by ``patient_id`` (columns among age, sex, bmi).
    source : str
        Reader that produced it (``vitals2024``, ``iot``, ``heart-rate``, ``tidy``).
    stream : bool
        True when the file has one row per patient and is read as one monitoring feed
        ordered by time ("stream mode", DESIGN.md §4).
    path : str
        File it came from.
    notes : tuple of str
        Transforms applied that every output must carry (e.g. the SpO2 proxy).
    events : pandas.DataFrame or None
        Labelled events (simulator output), when known.
    quarantine : Quarantine
        Implausible readings the reader set missing (empty when none, or ``--strict``).
    has_clock : bool
        Whether the timestamps are wall-clock times. False when they are only an offset from
        a fixed epoch (e.g. hours since ICU admission): then the hour of day is unknown and
        no clock feature may be computed from them.
    step_s : float or None
        The source's native sampling interval in seconds, when the source fixes one
        (3600 for PhysioNet 2019, the frame interval of a WFDB record).
    context : pandas.DataFrame or None
        Per-reading context (labs, demographics, stay counters) aligned row for row with
        ``frame`` (same index), in the source's own column names and units.
    """

    frame: pd.DataFrame
    static: pd.DataFrame
    source: str
    stream: bool
    path: str
    notes: tuple[str, ...] = ()
    events: pd.DataFrame | None = field(default=None)
    quarantine: Quarantine = field(default_factory=Quarantine)
    has_clock: bool = True
    step_s: float | None = None
    context: pd.DataFrame | None = field(default=None)

    @property
    def channels(self) -> tuple[str, ...]:
        """Canonical channels present in the frame, in canonical order."""
        return tuple(c for c in CHANNELS if c in self.frame.columns)

    @property
    def has_labels(self) -> bool:
        """Whether the frame carries a label column."""
        return LABEL_COLUMN in self.frame.columns


def validate_frame(frame: pd.DataFrame, path: str) -> pd.DataFrame:
    """Check a readings frame and return it sorted by patient and time.

    Parameters
    ----------
    frame : pandas.DataFrame
        Candidate readings frame (columns as in the module docstring).
    path : str
        File name used in error messages.

    Returns
    -------
    pandas.DataFrame
        The same readings, sorted by ``patient_id`` then ``timestamp``, index reset.

    Raises
    ------
    DataError
        Empty frame, missing columns, non-finite or implausible values, duplicate
        timestamps within a patient. Rows are reported 1-based in the frame's order.
    """
    if frame.empty:
        raise DataError("no readings (the file is empty)", file=path)
    for col in (PATIENT_COLUMN, TIMESTAMP_COLUMN):
        if col not in frame.columns:
            raise DataError("missing required column", file=path, column=col)
    channels = [c for c in CHANNELS if c in frame.columns]
    if not channels:
        raise DataError(
            f"no vital-sign channel column (expected any of {', '.join(CHANNELS)})", file=path
        )
    if frame[TIMESTAMP_COLUMN].isna().any():
        row = int(np.flatnonzero(frame[TIMESTAMP_COLUMN].isna().to_numpy())[0]) + 1
        raise DataError(
            "missing or unparseable timestamp", file=path, column=TIMESTAMP_COLUMN, row=row
        )
    for name in channels:
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isinf(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise DataError("value is infinite", file=path, column=name, row=row)
        spec = CHANNELS[name]
        with np.errstate(invalid="ignore"):
            out = (values < spec.low) | (values > spec.high)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise DataError(
                f"{values[i]:g} is outside the plausible range {plausible_range_text(name)}",
                file=path,
                column=name,
                row=i + 1,
            )
    if frame[channels].isna().all(axis=1).all():
        raise DataError("every vital-sign value is missing", file=path)
    dup = frame.duplicated([PATIENT_COLUMN, TIMESTAMP_COLUMN]).to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0]) + 1
        raise DataError(
            "duplicate timestamp for the same patient", file=path, column=TIMESTAMP_COLUMN, row=row
        )
    return frame.sort_values([PATIENT_COLUMN, TIMESTAMP_COLUMN], kind="stable").reset_index(
        drop=True
    )
