"""Writers of simulated and scored tables: CSV or Parquet by suffix, written atomically.

:func:`write_table` writes one frame (also used by :mod:`vitalsentry.archive`);
:func:`write_cohort` writes a simulated cohort's readings and, beside them, its events table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vitalsentry.data.schema import TIMESTAMP_COLUMN
from vitalsentry.errors import DataError
from vitalsentry.io import atomic_path

TableFormat = Literal["csv", "parquet"]

_SUFFIX_FORMATS: Final[dict[str, TableFormat]] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def table_format(out: str | Path) -> TableFormat:
    """Return the table format named by a path's suffix.

    Parameters
    ----------
    out : str or pathlib.Path
        Output path ending in ``.csv``, ``.parquet`` or ``.pq`` (any case).

    Returns
    -------
    {"csv", "parquet"}
        The format.

    Raises
    ------
    DataError
        For any other suffix.

    """
    suffix = Path(out).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise DataError(
            f"unsupported output format {suffix or '(no suffix)'!r}: use .csv, .parquet or .pq",
            file=str(out),
        )
    return _SUFFIX_FORMATS[suffix]


def _write(frame: pd.DataFrame, path: Path, fmt: TableFormat) -> None:
    """Write a frame without its index to ``path`` in ``fmt``."""
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def write_table(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write a frame atomically as CSV or Parquet, keeping its column names.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table, written without its index.
    out : str or pathlib.Path
        Destination; the suffix picks the format (``.csv``, ``.parquet``, ``.pq``).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    DataError
        Unsupported suffix (nothing is written).

    """
    path = Path(out)
    fmt = table_format(path)
    with atomic_path(path) as tmp:
        _write(frame, tmp, fmt)
    return path


def _iso_utc(values: pd.Series) -> NDArray[np.str_]:
    """Format UTC timestamps as ISO-8601 text ending in ``Z``, shape (N,).

    Whole seconds are written without a fraction; otherwise the finest needed unit is used.
    """
    naive = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    ns = naive.astype(np.int64)
    unit: Literal["s", "ms", "us", "ns"] = "s"
    units: tuple[tuple[Literal["ms", "us", "ns"], int], ...] = (
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    )
    for candidate, size in units:
        if np.any(ns % (size * 1000) != 0):
            unit = candidate
    return np.asarray(np.datetime_as_string(naive, unit=unit, timezone="UTC"))


def events_path(out: str | Path) -> Path:
    """Return the events file that goes beside a readings file: ``<stem>.events.csv``."""
    path = Path(out)
    return path.with_name(f"{path.stem}.events.csv")


def write_cohort(
    readings: pd.DataFrame, events: pd.DataFrame, out: str | Path
) -> tuple[Path, Path]:
    """Write a simulated cohort: readings to ``out``, events to ``<stem>.events.csv`` beside it.

    Both files are written to temporary files first and renamed into place only when both
    are complete. Timestamps in CSV are ISO-8601 UTC (``2024-01-01T00:00:00Z``); channels
    not measured at an instant are empty cells.

    Parameters
    ----------
    readings : pandas.DataFrame
        Readings frame from :func:`~vitalsentry.data.simulate.simulate_cohort`, shape (R, 12).
    events : pandas.DataFrame
        Events table from :func:`~vitalsentry.data.simulate.simulate_cohort`.
    out : str or pathlib.Path
        Readings destination: ``.csv``, ``.parquet`` or ``.pq``.

    Returns
    -------
    tuple of pathlib.Path
        Paths of the readings file and of the events file.

    Raises
    ------
    DataError
        Unsupported suffix (nothing is written).

    """
    readings_out = Path(out)
    events_out = events_path(readings_out)
    fmt = table_format(readings_out)
    if fmt == "csv":
        readings = readings.assign(**{TIMESTAMP_COLUMN: _iso_utc(readings[TIMESTAMP_COLUMN])})
    events = events.assign(onset=_iso_utc(events["onset"]), end=_iso_utc(events["end"]))
    with atomic_path(readings_out) as readings_tmp, atomic_path(events_out) as events_tmp:
        _write(readings, readings_tmp, fmt)
        _write(events, events_tmp, "csv")
    return readings_out, events_out
