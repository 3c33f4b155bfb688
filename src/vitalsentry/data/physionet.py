"""Reader of PhysioNet/CinC Challenge 2019 sepsis data (``--source physionet2019``).

Layouts read (:func:`is_physionet_path` tells the first four apart from other files):

- a directory of pipe-separated ``pNNNNNN.psv`` files (one per ICU stay, searched recursively),
- a ``.tar``, ``.tar.gz``, ``.tgz`` or ``.zip`` archive of them (read in one pass),
- a single ``.psv`` file,
- a merged CSV or Parquet file with a ``patient_id`` column and the official columns (e.g.
  ``setA.csv.gz``; other columns such as ``hour`` are ignored).

Every file has the official header: 8 vitals, 26 labs, 6 demographic / stay columns and,
in training files, ``SepsisLabel``. Each row is one hour of one stay; ``ICULOS`` counts the
hours since ICU admission. The data has no wall-clock time, so timestamps are an honest
offset: ``NO_CLOCK_EPOCH + ICULOS hours`` (epoch seconds = seconds since ICU admission), and
the readings say ``has_clock=False`` (no hour-of-day feature may be computed from them).

All the member files' rows are joined into one buffer and parsed once by pyarrow's C
parser; per-file work is a few byte counts. Errors name the file (``archive:member`` inside
an archive), its 1-based data row and the column.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from vitalsentry.data.located import RowOrigin, validate_joined
from vitalsentry.data.readings import Readings
from vitalsentry.data.schema import (
    LABEL_COLUMN,
    PATIENT_COLUMN,
    PHYSIONET2019_COLUMNS,
    PHYSIONET2019_DEMOGRAPHICS,
    PHYSIONET2019_LABS,
    PHYSIONET2019_VITALS,
    TIMESTAMP_COLUMN,
    VITAL_CHANNELS,
)
from vitalsentry.data.sources import (
    _patient_ids,
    _require_columns,
    _to_float,
    load_frame,
)
from vitalsentry.errors import DataError

SEPSIS_LABEL = "SepsisLabel"
"""Per-hour label column (training files only)."""

CONTEXT_COLUMNS: tuple[str, ...] = (*PHYSIONET2019_LABS, *PHYSIONET2019_DEMOGRAPHICS)
"""Columns kept as per-reading context (:attr:`Readings.context`)."""

NO_CLOCK_EPOCH = pd.Timestamp("1970-01-01T00:00:00Z")
"""Timestamp of ICU admission (``ICULOS`` 0) of every stay: an offset, not a clock."""

STEP_S = 3600.0
"""Native step: one row per hour."""

_ARCHIVES = (".tar", ".tar.gz", ".tgz", ".zip")
_REQUIRED = PHYSIONET2019_COLUMNS[:-1]
_COLUMN_OF = {
    channel: column
    for channel in VITAL_CHANNELS
    for column, mapped in PHYSIONET2019_VITALS.items()
    if mapped == channel
}
"""Canonical channel → official column, in canonical order."""


def is_physionet_path(path: str | Path) -> bool:
    """Return whether ``path`` is a ``.psv`` file, an archive, or a directory holding ``.psv``.

    Merged CSV / Parquet files are recognised from their header instead (see
    :func:`vitalsentry.data.sources.detect_source`).
    """
    p = Path(path)
    if p.is_dir():
        return next(p.rglob("*.psv"), None) is not None
    return p.name.lower().endswith((".psv", *_ARCHIVES))


def load_physionet2019(path: str | Path) -> pd.DataFrame:
    """Read PhysioNet 2019 data in any layout (module docstring) into one table.

    Parameters
    ----------
    path : str or Path
        Directory, archive, ``.psv`` file, or merged CSV / Parquet file.

    Returns
    -------
    pandas.DataFrame
        One row per patient-hour, sorted by ``patient_id`` (str: the file stem, or the merged
        file's ``patient_id``) then file order; then the official columns (:data:`~vitalsentry.data.schema.PHYSIONET2019_COLUMNS`,
        ``SepsisLabel`` only when the files have it) as float64, NaN = not measured.

    Raises
    ------
    DataError
        Unreadable or empty input, a header without the official columns, a truncated row,
        a non-numeric cell (file, 1-based data row, column).

    """
    return _load(Path(path))[0]


def read_physionet2019(path: str | Path, *, strict: bool = False) -> Readings:
    """Read PhysioNet 2019 data into readings.

    Parameters
    ----------
    path : str or Path
        Directory, archive, ``.psv`` file, or merged CSV / Parquet file.
    strict : bool, default False
        Refuse the first implausible vital instead of setting implausible vitals missing
        (counted in ``Readings.quarantine``, first rows named by file, and noted).

    Returns
    -------
    Readings
        ``frame``: ``patient_id``, ``timestamp`` (``NO_CLOCK_EPOCH + ICULOS`` hours), the
        canonical channels of :data:`~vitalsentry.data.schema.PHYSIONET2019_VITALS` that are measured at least once, ``label``
        (int8, from ``SepsisLabel``, when present); ``static``: ``age``, ``sex`` (Gender, 1 =
        male); ``context``: :data:`CONTEXT_COLUMNS` aligned with ``frame``;
        ``has_clock=False``; ``step_s=3600``; ``source="physionet2019"``.

    Raises
    ------
    DataError
        As :func:`load_physionet2019`, plus a missing ``ICULOS``, a label not 0 / 1, a
        repeated hour, age or gender changing within a stay, or (``strict``) a vital
        outside its plausible range.

    """
    name = str(path)
    table, origin = _load(Path(path))
    hours = table["ICULOS"].to_numpy()
    if np.isnan(hours).any():
        raise origin.relocate(DataError("missing ICULOS", column="ICULOS"), _first(np.isnan(hours)))
    frame = pd.DataFrame(
        {
            PATIENT_COLUMN: table[PATIENT_COLUMN],
            TIMESTAMP_COLUMN: NO_CLOCK_EPOCH + pd.to_timedelta(hours * STEP_S, unit="s"),
        }
    )
    notes = []
    for channel, column in _COLUMN_OF.items():
        if table[column].notna().any():
            frame[channel] = table[column]
        else:
            notes.append(f"physionet2019: {column} is never measured; channel {channel} left out")
    if SEPSIS_LABEL in table.columns:
        frame[LABEL_COLUMN] = _label(table[SEPSIS_LABEL].to_numpy(), origin)
    checked, static, quarantine, order = validate_joined(
        frame,
        origin,
        name,
        {**_COLUMN_OF, TIMESTAMP_COLUMN: "ICULOS", "age": "Age", "sex": "Gender"},
        {"age": table["Age"].to_numpy(), "sex": table["Gender"].to_numpy()},
        strict,
    )
    return Readings(
        frame=checked,
        static=static,
        source="physionet2019",
        stream=False,
        path=name,
        notes=(*notes, *quarantine.notes()),
        quarantine=quarantine,
        has_clock=False,
        step_s=STEP_S,
        context=table[list(CONTEXT_COLUMNS)].iloc[order].reset_index(drop=True),
    )


def _first(bad: np.ndarray) -> int:
    """Index of the first True of a (N,) bool array that has one."""
    return int(np.flatnonzero(bad)[0])


def _label(values: np.ndarray, origin: RowOrigin) -> np.ndarray:
    """Check ``SepsisLabel`` is 0 or 1 in every row; return it as (N,) int8."""
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        i = _first(bad)
        what = "missing SepsisLabel" if np.isnan(values[i]) else f"{values[i]:g} is not 0 or 1"
        raise origin.relocate(DataError(what, column=SEPSIS_LABEL), i)
    return values.astype(np.int8)


def _load(path: Path) -> tuple[pd.DataFrame, RowOrigin]:
    """Read any layout into the sorted table and the origin of its rows."""
    name = str(path)
    if path.is_dir() or name.lower().endswith((".psv", *_ARCHIVES)):
        table, origin = _parse_members(_members(path), name)
    else:
        table, origin = _read_merged(name)
    keys = table[PATIENT_COLUMN]
    if not keys.is_monotonic_increasing:
        order = np.argsort(keys.to_numpy(dtype=object), kind="stable")
        table = table.iloc[order].reset_index(drop=True)
        origin = origin.take(order)
    return table, origin


def _members(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(display name, patient id, bytes)`` of every ``.psv`` file in ``path``."""
    name = str(path)
    lower = name.lower()
    try:
        if path.is_dir():
            for file in sorted(path.rglob("*.psv")):
                yield str(file), file.stem, file.read_bytes()
        elif lower.endswith(".psv"):
            yield name, path.stem, path.read_bytes()
        elif lower.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.is_dir() and info.filename.lower().endswith(".psv"):
                        member = info.filename
                        yield f"{name}:{member}", Path(member).stem, archive.read(info)
        else:
            with tarfile.open(path, "r|*") as archive:
                for entry in archive:
                    handle = archive.extractfile(entry) if entry.isfile() else None
                    if handle is not None and entry.name.lower().endswith(".psv"):
                        yield f"{name}:{entry.name}", Path(entry.name).stem, handle.read()
    except FileNotFoundError:
        raise DataError("no such file or directory", file=name) from None
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read the archive: {err}", file=name) from None


def _parse_members(
    members: Iterator[tuple[str, str, bytes]], path: str
) -> tuple[pd.DataFrame, RowOrigin]:
    """Check every member's header and shape, then parse all rows at once with pyarrow."""
    header: bytes | None = None
    columns: list[str] = []
    files: list[str] = []
    ids: list[str] = []
    bodies: list[bytes] = []
    counts: list[int] = []
    seen: set[str] = set()
    for file, patient, blob in members:
        first, _, body = blob.partition(b"\n")
        first = first.rstrip(b"\r")
        if header is None:
            header, columns = first, _header_columns(first, file)
        elif first != header:
            _header_columns(first, file)
            raise DataError("the header differs from the first file's header", file=file)
        body = body.rstrip(b"\r\n")
        if not body:
            raise DataError("no data rows (header only, or empty)", file=file)
        rows = body.count(b"\n") + 1
        if body.count(b"|") != rows * (len(columns) - 1):
            _raise_ragged(body, columns, file)
        if patient in seen:
            raise DataError(f"a second file for patient {patient!r}", file=file)
        seen.add(patient)
        files.append(file)
        ids.append(patient)
        bodies.append(body)
        counts.append(rows)
    if not files:
        raise DataError("no .psv files found (empty archive or directory)", file=path)
    origin = RowOrigin.of_counts(files, counts)
    table = _parse_rows(b"\n".join(bodies), columns, origin)
    table.insert(0, PATIENT_COLUMN, np.repeat(np.asarray(ids, dtype=object), counts))
    table[PATIENT_COLUMN] = table[PATIENT_COLUMN].astype(str)
    return table, origin


def _header_columns(header: bytes, file: str) -> list[str]:
    """Return the columns of a ``.psv`` header, checking it has the official ones."""
    columns = [c.strip() for c in header.decode("utf-8", errors="replace").split("|")]
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise DataError(
            f"missing PhysioNet 2019 column(s) {', '.join(map(repr, missing))} in the header",
            file=file,
            column=missing[0],
        )
    return columns


def _raise_ragged(body: bytes, columns: list[str], file: str) -> None:
    """Raise for the first row of ``body`` whose field count differs from the header's."""
    for i, line in enumerate(body.split(b"\n")):
        fields = line.count(b"|") + 1
        if fields < len(columns):
            raise DataError(
                f"truncated row: {fields} of {len(columns)} fields",
                file=file,
                column=columns[fields],
                row=i + 1,
            )
        if fields > len(columns):
            raise DataError(f"{fields} fields, the header has {len(columns)}", file=file, row=i + 1)


def _parse_rows(data: bytes, columns: list[str], origin: RowOrigin) -> pd.DataFrame:
    """Parse joined ``.psv`` rows as float64; a non-numeric cell is located and reported."""
    wanted = [c for c in PHYSIONET2019_COLUMNS if c in columns]
    read = pacsv.ReadOptions(column_names=columns, block_size=1 << 24)
    parse = pacsv.ParseOptions(delimiter="|")

    def convert(kind: pa.DataType) -> pacsv.ConvertOptions:
        return pacsv.ConvertOptions(
            column_types=dict.fromkeys(wanted, kind),
            include_columns=wanted,
            strings_can_be_null=True,
        )

    try:
        parsed = pacsv.read_csv(io.BytesIO(data), read, parse, convert(pa.float64()))
    except pa.ArrowInvalid:
        text = pacsv.read_csv(io.BytesIO(data), read, parse, convert(pa.string())).to_pandas()
        for column in wanted:
            try:
                _to_float(text[column], "")
            except DataError as err:
                raise origin.relocate(err) from None
        raise
    table: pd.DataFrame = parsed.to_pandas()
    return table


def _read_merged(path: str) -> tuple[pd.DataFrame, RowOrigin]:
    """Read a merged CSV / Parquet file with ``patient_id`` and the official columns."""
    raw = load_frame(path, str_columns=(PATIENT_COLUMN,))
    _require_columns(raw, (PATIENT_COLUMN, *_REQUIRED), (), path, "physionet2019")
    table = pd.DataFrame({PATIENT_COLUMN: _patient_ids(raw[PATIENT_COLUMN], path)})
    for column in (c for c in PHYSIONET2019_COLUMNS if c in raw.columns):
        table[column] = _to_float(raw[column], path)
    return table, RowOrigin.of_counts((path,), (len(table),))
