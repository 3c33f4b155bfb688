"""The readings frame: the one tidy shape every source is read into.

Columns: ``patient_id`` (str), ``timestamp`` (datetime64[ns, UTC]), one float64 column per
canonical channel present (NaN = not measured at that instant), optional ``label``
(int8: 0 normal, 1 abnormal). Static per-patient context lives apart in ``static``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
