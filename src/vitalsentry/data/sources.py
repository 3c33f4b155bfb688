"""Readers of every supported file kind into a validated :class:`Readings`.

Sources (``SOURCES``; ``auto`` picks one from the header with :func:`detect_source`):

``vitals2024``
    Kaggle "Human Vital Signs Dataset 2024" (17 columns, one row per patient): six vitals,
    label from ``Risk Category``, static age / sex / BMI. Read in stream mode (DESIGN.md §4).
``iot``
    Kaggle "Healthcare IoT" (13 columns): one sensor per row, pivoted by ``Sensor_Type``
    into readings; optional SpO2 proxy derived from temperature (see :func:`spo2_proxy`).
``heart-rate``
    Columns that are separate numeric series without timestamps (e.g. ``T1..T4``); each
    column is a patient, timestamps are synthesised with a given step.
``physionet2019``
    PhysioNet/CinC 2019 sepsis data: ``.psv`` files, a directory or archive of them, or a
    merged CSV / Parquet (see :mod:`vitalsentry.data.physionet`); no wall clock.
``wfdb``
    PhysioNet WFDB numerics records: a ``.hea`` header or a directory of records (see
    :mod:`vitalsentry.data.wfdb_numerics`).
``tidy``
    Any CSV / Parquet with a patient column, a timestamp column (or a fixed step) and
    channel columns, one row per instant; an empty cell means "not measured".

Every error about the file is a :class:`~vitalsentry.errors.DataError` naming the file, the
file's column and its 1-based data row (header excluded), whatever order the readers sort
the readings into afterwards.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from vitalsentry.data.readings import (
    Quarantine,
    Readings,
    quarantine_implausible,
    validate_frame,
)
from vitalsentry.data.schema import (
    IOT_COLUMNS,
    LABEL_COLUMN,
    PATIENT_COLUMN,
    PHYSIONET2019_COLUMNS,
    STATIC_FIELDS,
    TIMESTAMP_COLUMN,
    VITAL_CHANNELS,
    VITALS2024_COLUMNS,
)
from vitalsentry.errors import DataError

SOURCES: tuple[str, ...] = (
    "auto",
    "vitals2024",
    "iot",
    "heart-rate",
    "tidy",
    "physionet2019",
    "wfdb",
)
"""Valid values of ``source`` (``auto`` detects one of the others from the header)."""

SAMPLE_DIR: Path = Path(__file__).resolve().parents[1] / "sample_data"
"""Folder of the small sample files shipped with the package (see its README.md)."""

SERIES_START = pd.Timestamp("2024-01-01T00:00:00Z")
"""First synthesised timestamp of files without timestamps (heart-rate, tidy with a step)."""

SPO2_PROXY_NOTE = (
    "spo2 is a proxy derived from temperature (iot reader, spo2_proxy=True), not a measurement"
)
"""Note carried by every reading set whose ``spo2`` channel is the temperature proxy."""

_VITALS2024_CHANNELS: dict[str, str] = {
    "heart_rate": "Heart Rate",
    "respiratory_rate": "Respiratory Rate",
    "temperature": "Body Temperature",
    "spo2": "Oxygen Saturation",
    "systolic_bp": "Systolic Blood Pressure",
    "diastolic_bp": "Diastolic Blood Pressure",
}
_VITALS2024_STATIC: dict[str, str] = {"age": "Age", "sex": "Gender", "bmi": "Derived_BMI"}
_VITALS2024_NAMES: dict[str, str] = {
    PATIENT_COLUMN: "Patient ID",
    TIMESTAMP_COLUMN: "Timestamp",
    LABEL_COLUMN: "Risk Category",
    **_VITALS2024_CHANNELS,
    **_VITALS2024_STATIC,
}

_IOT_SENSORS: dict[str, dict[str, str]] = {
    "temperature": {"temperature": "Temperature (°C)"},
    "blood pressure": {"systolic_bp": "Systolic_BP (mmHg)", "diastolic_bp": "Diastolic_BP (mmHg)"},
    "heart rate": {"heart_rate": "Heart_Rate (bpm)"},
    "battery": {},
}
"""Channels each ``Sensor_Type`` (lower-cased) contributes; Battery is device metadata only."""
_IOT_NAMES: dict[str, str] = {
    PATIENT_COLUMN: "Patient_ID",
    TIMESTAMP_COLUMN: "Timestamp",
    LABEL_COLUMN: "Target_Health_Status",
    **{ch: col for channels in _IOT_SENSORS.values() for ch, col in channels.items()},
}

_RISK_LABELS: dict[str, int] = {"low risk": 0, "high risk": 1}
_HEALTH_LABELS: dict[str, int] = {"healthy": 0, "unhealthy": 1}
_TIDY_LABELS: dict[str, int] = {
    "0": 0,
    "1": 1,
    "normal": 0,
    "abnormal": 1,
    **_RISK_LABELS,
    **_HEALTH_LABELS,
}
_GENDER_CODES: dict[str, int] = {"female": 0, "male": 1}
_SEX_CODES: dict[str, int] = {"0": 0, "1": 1, "f": 0, "m": 1, **_GENDER_CODES}
_STATIC_RANGES: dict[str, tuple[float, float]] = {"age": (0.0, 130.0), "bmi": (5.0, 150.0)}

_TIDY_NAMES: dict[str, str] = {
    **{name: name for name in (*VITAL_CHANNELS, LABEL_COLUMN, *STATIC_FIELDS)},
    "hr": "heart_rate",
    "pulse": "heart_rate",
    "oxygen_saturation": "spo2",
    "rr": "respiratory_rate",
    "resp_rate": "respiratory_rate",
    "temp": "temperature",
    "sbp": "systolic_bp",
    "dbp": "diastolic_bp",
}
"""Lower-cased tidy column names (canonical names and aliases) → canonical names."""

_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_PEEK_ROWS = 50
_SCHEMA_MATCH = 0.5
"""Share of a fixed schema's columns a header must have for ``auto`` to pick that schema."""


def load_frame(
    path: str | Path, *, nrows: int | None = None, str_columns: Collection[str] = ()
) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file.

    Parameters
    ----------
    path : str or Path
        File to read; the extension picks the format.
    nrows : int, optional
        Read only the first ``nrows`` data rows (header peeks).
    str_columns : collection of str
        CSV columns to keep as text (patient ids such as ``007``).

    Returns
    -------
    pandas.DataFrame
        The file's rows in file order, column names stripped of surrounding blanks.

    Raises
    ------
    DataError
        Unsupported extension, missing or unreadable file, 0 bytes, or no data rows.

    """
    name = str(path)
    lower = name.lower()
    try:
        if lower.endswith(_CSV_SUFFIXES):
            frame = _read_csv(name, nrows, str_columns)
        elif lower.endswith(_PARQUET_SUFFIXES):
            frame = _read_parquet(name, nrows)
        else:
            raise DataError(
                "unsupported file type (expected .csv, .csv.gz, .parquet or .pq)", file=name
            )
    except FileNotFoundError:
        raise DataError("no such file", file=name) from None
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty (no header, no data)", file=name) from None
    except (OSError, ValueError, pa.ArrowException) as err:
        raise DataError(f"cannot read the file: {err}", file=name) from None
    if frame.empty:
        raise DataError("the file has no data rows", file=name)
    frame.columns = pd.Index([str(c).strip() for c in frame.columns])
    return frame


def _read_csv(path: str, nrows: int | None, str_columns: Collection[str]) -> pd.DataFrame:
    """Read a CSV as UTF-8, falling back to Latin-1 (``°`` in the IoT header)."""
    dtype = dict.fromkeys(str_columns, str)
    try:
        return pd.read_csv(path, nrows=nrows, dtype=dtype, low_memory=False)
    except UnicodeDecodeError:
        return pd.read_csv(path, nrows=nrows, dtype=dtype, low_memory=False, encoding="latin-1")


def _read_parquet(path: str, nrows: int | None) -> pd.DataFrame:
    """Read a Parquet file, or only its first ``nrows`` rows."""
    if nrows is None:
        return pd.read_parquet(path)
    first = next(pq.ParquetFile(path).iter_batches(batch_size=nrows), None)
    return pd.DataFrame() if first is None else first.to_pandas()


def detect_source(
    path: str | Path,
    *,
    step_s: float | None = None,
    patient_column: str = PATIENT_COLUMN,
    timestamp_column: str = TIMESTAMP_COLUMN,
) -> str:
    """Tell which reader a file needs from its header (and its first few rows).

    Parameters
    ----------
    path : str or Path
        CSV or Parquet file.
    step_s : float, optional
        Fixed step; lets a file with a patient column but no timestamp column read as tidy.
    patient_column, timestamp_column : str
        Names of the tidy patient and timestamp columns (matched case-insensitively).

    Returns
    -------
    str
        ``physionet2019`` (a ``.psv`` file, an archive, a directory of ``.psv`` files, or most
        of the 41-column PhysioNet 2019 header), ``wfdb`` (a ``.hea`` header, a record path
        without it, or a directory of headers), ``vitals2024`` (most of the 17-column Human
        Vital Signs 2024 header), ``iot`` (most of the 13-column Healthcare IoT header), ``tidy`` (a patient column and a timestamp
        column or ``step_s``), or ``heart-rate`` (no patient or timestamp column and every
        column numeric in the first rows).

    Raises
    ------
    DataError
        The file is unreadable or matches none of the above (the message lists what was
        looked for).

    """
    return _container_source(path) or _detect(
        load_frame(path, nrows=_PEEK_ROWS), str(path), step_s, patient_column, timestamp_column
    )


def _container_source(path: str | Path) -> str | None:
    """Return the source of a directory, archive or record file read without a header peek."""
    from vitalsentry.data.physionet import is_physionet_path
    from vitalsentry.data.wfdb_numerics import is_wfdb_path

    if is_physionet_path(path):
        return "physionet2019"
    return "wfdb" if is_wfdb_path(path) else None


def _detect(
    head: pd.DataFrame, path: str, step_s: float | None, patient_column: str, timestamp_column: str
) -> str:
    """Pick a source for a file whose first rows are ``head`` (see :func:`detect_source`)."""
    columns = set(head.columns)
    share = {
        "vitals2024": len(columns & set(VITALS2024_COLUMNS)) / len(VITALS2024_COLUMNS),
        "iot": len(columns & set(IOT_COLUMNS)) / len(IOT_COLUMNS),
        "physionet2019": len(columns & set(PHYSIONET2019_COLUMNS)) / len(PHYSIONET2019_COLUMNS),
    }
    best = max(share, key=share.__getitem__)
    if share[best] >= _SCHEMA_MATCH:
        return best
    patient = _find_column(head.columns, patient_column)
    timestamp = _find_column(head.columns, timestamp_column)
    if patient is not None and (timestamp is not None or step_s is not None):
        return "tidy"
    numeric = all(is_numeric_dtype(head[c]) and not is_bool_dtype(head[c]) for c in head.columns)
    if patient is None and timestamp is None and numeric:
        return "heart-rate"
    raise DataError(
        "cannot tell the source from the header; looked for the 17-column Human Vital Signs "
        "2024 header (vitals2024), the 13-column Healthcare IoT header (iot), the 41-column "
        "PhysioNet 2019 header (physionet2019), a "
        f"'{patient_column}' column with a '{timestamp_column}' column or a step (tidy), and "
        "numeric series columns without patient or timestamp columns (heart-rate); choose "
        f"one of {', '.join(SOURCES[1:])} explicitly",
        file=path,
    )


def read_readings(
    path: str | Path,
    source: str = "auto",
    *,
    step_s: float | None = None,
    column_map: Mapping[str, str] | None = None,
    patient_column: str = PATIENT_COLUMN,
    timestamp_column: str = TIMESTAMP_COLUMN,
    spo2_proxy: bool = True,
    strict: bool = False,
) -> Readings:
    """Read a file of any supported kind into validated readings.

    Parameters
    ----------
    path : str or Path
        CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file.
    source : str
        One of :data:`SOURCES`; ``auto`` detects it (the choice is ``Readings.source``).
    step_s : float, optional
        Sampling interval in seconds of files without timestamps: required by
        ``heart-rate``, and makes tidy rows of each patient consecutive steps when the
        tidy file has no timestamp column. Sources with timestamps ignore it.
    column_map : mapping of str to str, optional
        Tidy only: source column → canonical channel, ``label``, ``age``, ``sex`` or ``bmi``.
    patient_column, timestamp_column : str
        Tidy only: names of the patient and timestamp columns (case-insensitive).
    spo2_proxy : bool
        IoT only: add the ``spo2`` channel derived from temperature (:func:`spo2_proxy`).
    strict : bool, default False
        Refuse the file at its first implausible reading instead of setting such readings
        missing (counted in ``Readings.quarantine`` and noted).

    Returns
    -------
    Readings
        Sorted by patient then timestamp.

    Raises
    ------
    DataError
        Unknown source, unreadable file, or bad content (file, column, 1-based data row).

    """
    name = str(path)
    if source not in SOURCES:
        raise DataError(
            f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}", file=name
        )
    if source == "auto":
        source = detect_source(
            name, step_s=step_s, patient_column=patient_column, timestamp_column=timestamp_column
        )
    if column_map and source != "tidy":
        raise DataError(f"a column map applies to the tidy source only, not {source}", file=name)
    if source == "vitals2024":
        return _read_vitals2024(name, strict)
    if source == "iot":
        return _read_iot(name, with_spo2_proxy=spo2_proxy, strict=strict)
    if source == "physionet2019":
        from vitalsentry.data.physionet import read_physionet2019

        return read_physionet2019(name, strict=strict)
    if source == "wfdb":
        from vitalsentry.data.wfdb_numerics import read_wfdb

        return read_wfdb(name, strict=strict)
    if source == "heart-rate":
        step = _step(step_s, name, "heart-rate series have no timestamps")
        return _read_heart_rate(name, step, strict)
    return _read_tidy(name, step_s, column_map or {}, patient_column, timestamp_column, strict)


def spo2_proxy(temperature: np.ndarray) -> np.ndarray:
    """Stand-in SpO2 derived from body temperature (the seed's IoT proxy; NOT physiology).

    ``spo2 = clip(98 - 2.5 * (temperature - 37.0), 90, 100)``: monotone non-increasing in
    temperature, 98 % at 37 °C. The IoT file has no SpO2 column; this keeps the seed's
    4-channel input shape and is flagged by :data:`SPO2_PROXY_NOTE` wherever it is used.

    Parameters
    ----------
    temperature : numpy.ndarray
        (N,) body temperature in °C; NaN (not measured) stays NaN.

    Returns
    -------
    numpy.ndarray
        (N,) proxy SpO2 in %.

    """
    return np.clip(98.0 - 2.5 * (temperature - 37.0), 90.0, 100.0)


def _read_vitals2024(path: str, strict: bool) -> Readings:
    """Read the Human Vital Signs Dataset 2024 (no missing values allowed)."""
    raw = load_frame(path, str_columns=("Patient ID",))
    _require_columns(raw, tuple(_VITALS2024_NAMES.values()), VITALS2024_COLUMNS, path, "vitals2024")

    def numbers(column: str) -> np.ndarray:
        return _complete(_to_float(raw[column], path), path, column, "vitals2024")

    frame = pd.DataFrame(
        {
            PATIENT_COLUMN: _patient_ids(raw["Patient ID"], path),
            TIMESTAMP_COLUMN: _timestamps(raw["Timestamp"], path),
        }
    )
    for channel, column in _VITALS2024_CHANNELS.items():
        frame[channel] = numbers(column)
    frame[LABEL_COLUMN] = _labels(raw["Risk Category"], _RISK_LABELS, path)
    static = _static(
        frame[PATIENT_COLUMN],
        {
            "age": numbers("Age"),
            "sex": _codes(raw["Gender"], _GENDER_CODES, path, "gender"),
            "bmi": numbers("Derived_BMI"),
        },
        path,
        _VITALS2024_NAMES,
    )
    frame, quarantine = _validated(
        frame, path, np.arange(1, len(frame) + 1), _renamer(_VITALS2024_NAMES), strict
    )
    return Readings(
        frame=frame,
        static=static,
        source="vitals2024",
        stream=True,
        path=path,
        notes=quarantine.notes(),
        quarantine=quarantine,
    )


def _read_iot(path: str, *, with_spo2_proxy: bool, strict: bool) -> Readings:
    """Read the Healthcare IoT file: pivot sensor rows into readings (see module docstring).

    Each row contributes only the channels of its ``Sensor_Type``; rows of one patient
    at one timestamp merge into one reading; Battery rows carry no vital sign, and readings
    made of Battery rows only are left out (with a note). With the proxy on, ``spo2`` is
    :func:`spo2_proxy` of the reading's temperature, so only readings carrying a
    temperature get one.
    """
    raw = load_frame(path, str_columns=("Patient_ID",))
    _require_columns(raw, (*_IOT_NAMES.values(), "Sensor_Type"), IOT_COLUMNS, path, "iot")
    sensor_codes = {kind: code for code, kind in enumerate(_IOT_SENSORS)}
    sensor = _codes(raw["Sensor_Type"], sensor_codes, path, "sensor type")
    rows = pd.DataFrame(
        {
            PATIENT_COLUMN: _patient_ids(raw["Patient_ID"], path),
            TIMESTAMP_COLUMN: _timestamps(raw["Timestamp"], path),
            LABEL_COLUMN: _labels(raw["Target_Health_Status"], _HEALTH_LABELS, path),
            "_row": np.arange(1, len(raw) + 1),
        }
    )
    keys = [PATIENT_COLUMN, TIMESTAMP_COLUMN]
    conflict = (rows.groupby(keys, sort=False)[LABEL_COLUMN].transform("nunique") > 1).to_numpy()
    _raise_first(
        conflict,
        "the health status differs between rows of the same patient and timestamp",
        path,
        "Target_Health_Status",
    )
    parts = []
    quarantine = Quarantine()
    for code, (kind, channels) in enumerate(_IOT_SENSORS.items()):
        mine = sensor == code
        if not channels or not mine.any():
            continue
        part = rows[mine].reset_index(drop=True)
        for channel, column in channels.items():
            values = _to_float(raw[column], path)
            _raise_first(mine & np.isnan(values), f"missing value on a {kind!r} row", path, column)
            part[channel] = values[mine]
        part, found = _quarantined(part, part["_row"].to_numpy(), strict)
        quarantine = quarantine.merged(found)
        _validated(part, path, part["_row"].to_numpy(), _renamer(_IOT_NAMES), strict)  # duplicates
        parts.append(part)
    if not parts:
        raise DataError(
            "no vital-sign readings (only Battery rows)", file=path, column="Sensor_Type"
        )
    long = pd.concat(parts, ignore_index=True)
    how = {c: "min" if c == "_row" else "first" for c in long.columns if c not in keys}
    merged = long.groupby(keys, sort=False).agg(how).reset_index().sort_values("_row")
    notes: list[str] = []
    left_out = len(rows.drop_duplicates(keys)) - len(merged)
    if left_out:
        notes.append(
            f"iot: {left_out} reading(s) made of Battery rows only carry no vital sign "
            "and were left out"
        )
    if with_spo2_proxy and "temperature" in merged.columns:
        merged["spo2"] = spo2_proxy(merged["temperature"].to_numpy(dtype=np.float64))
        notes.append(SPO2_PROXY_NOTE)
    file_rows = merged.pop("_row").to_numpy()
    frame, _ = _validated(
        merged.reset_index(drop=True), path, file_rows, _renamer(_IOT_NAMES), strict
    )
    per_patient = frame.groupby(PATIENT_COLUMN, sort=False).size()
    return Readings(
        frame=frame,
        static=_static(frame[PATIENT_COLUMN], {}, path, {}),
        source="iot",
        stream=bool(per_patient.median() == 1),
        path=path,
        notes=(*notes, *quarantine.notes()),
        quarantine=quarantine,
    )


def _read_heart_rate(path: str, step_s: float, strict: bool) -> Readings:
    """Read numeric series columns without timestamps; each column is one patient.

    Trailing empty cells end a column's series; interior empty cells are "not measured"
    (no reading, but the position still counts). The reading at 0-based position ``k`` is
    stamped ``SERIES_START + k * step_s``; the only channel is ``heart_rate``.
    """
    raw = load_frame(path)
    names = [str(c) for c in raw.columns]
    values = np.column_stack([_to_float(raw[c], path) for c in raw.columns])  # (rows, series)
    present = ~np.isnan(values)
    _raise_first(~present.any(axis=0), "the series has no values", path, None, names)
    series, position = np.nonzero(present.T)
    frame = pd.DataFrame(
        {
            PATIENT_COLUMN: pd.Series(np.asarray(names, dtype=object)[series]).astype(str),
            TIMESTAMP_COLUMN: _steps(position, step_s),
            "heart_rate": values[position, series],
        }
    )

    def rename(column: str | None, index: int | None) -> str | None:
        return names[series[index]] if column == "heart_rate" and index is not None else column

    frame, quarantine = _validated(frame, path, position + 1, rename, strict)
    return Readings(
        frame=frame,
        static=_static(frame[PATIENT_COLUMN], {}, path, {}),
        source="heart-rate",
        stream=False,
        path=path,
        notes=quarantine.notes(),
        quarantine=quarantine,
    )


def _read_tidy(
    path: str,
    step_s: float | None,
    column_map: Mapping[str, str],
    patient_column: str,
    timestamp_column: str,
    strict: bool,
) -> Readings:
    """Read a tidy file: one row per patient and instant (see :func:`read_readings`)."""
    header = load_frame(path, nrows=_PEEK_ROWS).columns
    patient = _find_column(header, patient_column)
    if patient is None:
        raise DataError(
            f"missing patient column{_did_you_mean(patient_column, header)}",
            file=path,
            column=patient_column,
        )
    timestamp = _find_column(header, timestamp_column)
    targets = _tidy_targets(header, column_map, (patient, timestamp), path)
    raw = load_frame(path, str_columns=(patient,))
    frame = pd.DataFrame({PATIENT_COLUMN: _patient_ids(raw[patient], path)})
    if timestamp is None:
        hint = _did_you_mean(timestamp_column, header)
        step = _step(step_s, path, f"the file has no {timestamp_column!r} column{hint}")
        position = frame.groupby(PATIENT_COLUMN, sort=False).cumcount().to_numpy()
        frame[TIMESTAMP_COLUMN] = _steps(position, step)
    else:
        frame[TIMESTAMP_COLUMN] = _timestamps(raw[timestamp], path)
    static: dict[str, np.ndarray] = {}
    for column, target in targets.items():
        if target == LABEL_COLUMN:
            frame[LABEL_COLUMN] = _labels(raw[column], _TIDY_LABELS, path)
        elif target == "sex":
            static["sex"] = _codes(raw[column], _SEX_CODES, path, "sex", missing_ok=True)
        elif target in STATIC_FIELDS:
            static[target] = _to_float(raw[column], path)
        else:
            frame[target] = _to_float(raw[column], path)
    names = {PATIENT_COLUMN: patient, TIMESTAMP_COLUMN: timestamp or TIMESTAMP_COLUMN}
    names.update({target: column for column, target in targets.items()})
    checked, quarantine = _validated(
        frame, path, np.arange(1, len(frame) + 1), _renamer(names), strict
    )
    return Readings(
        frame=checked,
        static=_static(frame[PATIENT_COLUMN], static, path, names),
        source="tidy",
        stream=False,
        path=path,
        notes=quarantine.notes(),
        quarantine=quarantine,
    )


def _tidy_targets(
    header: pd.Index, column_map: Mapping[str, str], keys: tuple[str, str | None], path: str
) -> dict[str, str]:
    """Map tidy columns to canonical channels, ``label`` and static fields.

    ``column_map`` entries come first, then canonical names and aliases (case-insensitive).
    Other columns are ignored, unless one is a near-miss of a name nothing claimed yet
    (e.g. ``heart_rat``), which is reported rather than silently dropped.
    """
    allowed = (*VITAL_CHANNELS, LABEL_COLUMN, *STATIC_FIELDS)
    targets: dict[str, str] = {}
    for column, target in column_map.items():
        if column not in header:
            raise DataError(
                f"the column map names a column the file lacks{_did_you_mean(column, header)}",
                file=path,
                column=column,
            )
        if target not in allowed:
            raise DataError(
                f"the column map maps it to {target!r}; expected one of {', '.join(allowed)}",
                file=path,
                column=column,
            )
        targets[column] = target
    rest = [str(c) for c in header if c not in targets and c not in keys]
    for column in rest:
        alias = _TIDY_NAMES.get(column.lower())
        if alias is not None:
            targets[column] = alias
    claimed: dict[str, str] = {}
    for column, target in targets.items():
        if target in claimed:
            raise DataError(
                f"both {claimed[target]!r} and {column!r} would be {target!r}; rename or map one",
                file=path,
                column=column,
            )
        claimed[target] = column
    unclaimed = [name for name, target in _TIDY_NAMES.items() if target not in claimed]
    for column in rest:
        close = None if column in targets else _closest(column, unclaimed, cutoff=0.8)
        if close is not None:
            raise DataError(
                f"unrecognised column: did you mean {close!r}? (rename it or map it with a "
                "column map)",
                file=path,
                column=column,
            )
    if not any(target in VITAL_CHANNELS for target in claimed):
        raise DataError(
            f"no vital-sign channel column (expected any of {', '.join(VITAL_CHANNELS)}, an "
            "alias such as hr, pulse, rr, temp, sbp, dbp, or a column map)",
            file=path,
        )
    return targets


def _find_column(columns: pd.Index, name: str) -> str | None:
    """Return the column called ``name``, matched exactly or else case-insensitively."""
    if name in columns:
        return name
    matches = [str(c) for c in columns if str(c).lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _closest(name: str, candidates: Sequence[str] | pd.Index, cutoff: float = 0.6) -> str | None:
    """Return the candidate closest to ``name`` (difflib, case-insensitive), if close enough."""
    lowered = {str(c).lower(): str(c) for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[match[0]] if match else None


def _did_you_mean(name: str, columns: pd.Index) -> str:
    """Return ``" (the file has 'x': did you mean 'name'?)"`` for a near-miss, else ``""``."""
    close = _closest(name, columns)
    return f" (the file has {close!r}: did you mean {name!r}?)" if close is not None else ""


def _require_columns(
    raw: pd.DataFrame, required: Sequence[str], known: Sequence[str], path: str, source: str
) -> None:
    """Raise for the first of ``required`` missing, suggesting a misspelt file column."""
    missing = [c for c in dict.fromkeys(required) if c not in raw.columns]
    if missing:
        strays = pd.Index([c for c in raw.columns if c not in known])
        raise DataError(
            f"missing {source} column(s) {', '.join(map(repr, missing))}"
            f"{_did_you_mean(missing[0], strays)}",
            file=path,
            column=missing[0],
        )


def _raise_first(
    bad: np.ndarray,
    reason: str | Callable[[int], str],
    path: str,
    column: str | None,
    columns: Sequence[str] | None = None,
) -> None:
    """Raise a :class:`DataError` at the first True of ``bad``, if any.

    Parameters
    ----------
    bad : numpy.ndarray
        (N,) bool over file rows (0-based), or over ``columns`` when those are given.
    reason : str or callable
        The reason, or a function of the first bad index returning it.
    path, column : str
        File and column named in the error.
    columns : sequence of str, optional
        When given, ``bad`` flags these columns and the error names the first flagged one.

    """
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    text = reason(i) if callable(reason) else reason
    if columns is not None:
        raise DataError(text, file=path, column=columns[i])
    raise DataError(text, file=path, column=column, row=i + 1)


def _to_float(series: pd.Series, path: str) -> np.ndarray:
    """Return a column as (N,) float64 (empty cells NaN); non-numeric cells are errors."""
    if is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(values) & series.notna().to_numpy()
    _raise_first(bad, lambda i: f"{series.iloc[i]!r} is not a number", path, str(series.name))
    return values


def _complete(values: np.ndarray, path: str, column: str, source: str) -> np.ndarray:
    """Return ``values`` after checking it has no NaN (a schema without missing values)."""
    _raise_first(np.isnan(values), f"missing value ({source} files have none)", path, column)
    return values


def _codes(
    series: pd.Series,
    vocabulary: Mapping[str, int],
    path: str,
    what: str,
    *,
    missing_ok: bool = False,
) -> np.ndarray:
    """Code a categorical column with a case-insensitive vocabulary.

    Parameters
    ----------
    series : pandas.Series
        (N,) text or numbers (numbers are looked up as ``f"{x:g}"``, so 1.0 → ``"1"``).
    vocabulary : mapping of str to int
        Lower-case value → code.
    path : str
        File named in errors.
    what : str
        What the column holds, for error messages.
    missing_ok : bool
        Whether empty cells are allowed (coded NaN).

    Returns
    -------
    numpy.ndarray
        (N,) float64 codes; NaN where missing (only with ``missing_ok``).

    """
    codes, uniques = pd.factorize(series)  # missing cells get -1, i.e. the last table entry
    table = np.array([vocabulary.get(_key(u), -1) for u in uniques] + [-2], dtype=np.float64)
    out = table[codes]
    column = str(series.name)
    _raise_first(
        out == -1,
        lambda i: (
            f"{series.iloc[i]!r} is not a valid {what} (expected one of: "
            f"{', '.join(vocabulary)}; case-insensitive)"
        ),
        path,
        column,
    )
    missing = out == -2
    if not missing_ok:
        _raise_first(missing, f"missing {what}", path, column)
    out[missing] = np.nan
    return out


def _labels(series: pd.Series, vocabulary: Mapping[str, int], path: str) -> np.ndarray:
    """Code a label column (0 normal, 1 abnormal) as (N,) int8; every row needs a label."""
    return _codes(series, vocabulary, path, "label").astype(np.int8)


def _key(value: object) -> str:
    """Vocabulary key of one categorical value."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"{float(value):g}"
    return str(value).strip().lower()


def _patient_ids(series: pd.Series, path: str) -> pd.Series:
    """Return patient ids as text (integral numbers without ``.0``); empty cells are errors."""
    column = str(series.name)
    _raise_first(series.isna().to_numpy(), "missing patient id", path, column)
    if is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64)
        if np.all(np.isfinite(values) & (values == np.round(values))):
            series = series.astype(np.int64)
    ids = series.astype(str).str.strip()
    _raise_first((ids == "").to_numpy(), "missing patient id", path, column)
    return ids


def _timestamps(series: pd.Series, path: str) -> pd.Series:
    """Parse a timestamp column to datetime64[ns, UTC].

    ISO-8601 text (with an offset, or naive = UTC), datetimes, or numeric epoch seconds.
    """
    column = str(series.name)
    try:
        if is_datetime64_any_dtype(series):
            parsed = pd.to_datetime(series, utc=True)
        elif is_numeric_dtype(series):
            parsed = pd.to_datetime(series.astype(np.float64), unit="s", utc=True, errors="coerce")
        else:
            parsed = pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")
        parsed = parsed.astype("datetime64[ns, UTC]")
    except (ValueError, OverflowError) as err:
        raise DataError(
            f"timestamps out of range ({err}); numeric timestamps must be epoch seconds",
            file=path,
            column=column,
        ) from None
    bad = parsed.isna().to_numpy()
    _raise_first(
        bad,
        lambda i: (
            "missing timestamp"
            if pd.isna(series.iloc[i])
            else f"{series.iloc[i]!r} is not an ISO-8601 timestamp or epoch seconds"
        ),
        path,
        column,
    )
    return parsed


def _steps(position: np.ndarray, step_s: float) -> pd.DatetimeIndex:
    """Synthesised timestamps ``SERIES_START + position * step_s`` (datetime64[ns, UTC])."""
    return pd.DatetimeIndex(SERIES_START + pd.to_timedelta(position * step_s, unit="s")).as_unit(
        "ns"
    )


def _step(step_s: float | None, path: str, why: str) -> float:
    """Check the step of a file without timestamps."""
    if step_s is None:
        raise DataError(
            f"--step is needed: {why} (give the sampling interval in seconds)", file=path
        )
    if not (np.isfinite(step_s) and step_s > 0):
        raise DataError(f"--step must be a positive number of seconds, not {step_s!r}", file=path)
    return float(step_s)


def _static(
    patients: pd.Series, values: Mapping[str, np.ndarray], path: str, names: Mapping[str, str]
) -> pd.DataFrame:
    """Build the per-patient static frame, checking ranges and constancy per patient.

    Parameters
    ----------
    patients : pandas.Series
        (N,) patient ids in file order.
    values : mapping of str to numpy.ndarray
        Static field (age, sex, bmi) → (N,) float64 in file order; NaN = not given.
    path : str
        File named in errors.
    names : mapping of str to str
        Static field → the file's column, for errors.

    Returns
    -------
    pandas.DataFrame
        Indexed by sorted ``patient_id`` (every patient), one float64 column per field.

    """
    if not values:
        unique = patients.drop_duplicates().sort_values().to_numpy()
        return pd.DataFrame(index=pd.Index(unique, name=PATIENT_COLUMN))
    table = pd.DataFrame(
        dict(values), index=pd.Index(patients.to_numpy(), name=PATIENT_COLUMN), dtype=np.float64
    )
    for field in table.columns:
        low, high = _STATIC_RANGES.get(field, (0.0, 1.0))
        v = table[field].to_numpy()
        out = np.flatnonzero((v < low) | (v > high))
        if out.size:
            raise DataError(
                f"{v[out[0]]:g} is outside the plausible range {low:g}–{high:g}",
                file=path,
                column=names[field],
                row=int(out[0]) + 1,
            )
    given = table.to_numpy()
    first = table.groupby(level=0, sort=False).transform("first").to_numpy()
    differs = ~np.isnan(given) & ~np.isnan(first) & (given != first)
    if differs.any():
        i, j = (int(k) for k in np.argwhere(differs)[0])
        field = str(table.columns[j])
        raise DataError(
            f"{given[i, j]:g} differs from {first[i, j]:g} given earlier for patient "
            f"{patients.iloc[i]!r}; {field} must be constant per patient",
            file=path,
            column=names[field],
            row=i + 1,
        )
    return table.groupby(level=0).first()


def _quarantined(
    frame: pd.DataFrame, file_rows: np.ndarray, strict: bool
) -> tuple[pd.DataFrame, Quarantine]:
    """Set implausible readings missing unless ``strict``; the counts name file rows."""
    if strict:
        return frame, Quarantine()
    frame, found = quarantine_implausible(frame)
    return frame, found.at_rows(file_rows)


def _validated(
    frame: pd.DataFrame,
    path: str,
    file_rows: np.ndarray,
    rename: Callable[[str | None, int | None], str | None],
    strict: bool,
) -> tuple[pd.DataFrame, Quarantine]:
    """Quarantine (unless ``strict``) and validate readings; errors name file rows and columns.

    Parameters
    ----------
    frame : pandas.DataFrame
        Candidate readings frame (extra columns are dropped from the result).
    path : str
        File named in errors.
    file_rows : numpy.ndarray
        (len(frame),) 1-based file data row of each frame row.
    rename : callable
        ``(canonical column, 0-based frame row) → the file's column`` for errors.
    strict : bool
        Refuse implausible readings instead of setting them missing.

    Returns
    -------
    (pandas.DataFrame, Quarantine)
        Sorted readings frame with only readings columns, in canonical order, and the
        readings set missing (rows of the file).

    """
    frame, quarantine = _quarantined(frame, file_rows, strict)
    try:
        checked = validate_frame(frame, path)
    except DataError as err:
        i = None if err.row is None else err.row - 1
        raise DataError(
            err.reason,
            file=path,
            column=rename(err.column, i),
            row=None if i is None else int(file_rows[i]),
        ) from None
    keep = (PATIENT_COLUMN, TIMESTAMP_COLUMN, *VITAL_CHANNELS, LABEL_COLUMN)
    return checked[[c for c in keep if c in checked.columns]], quarantine


def _renamer(names: Mapping[str, str]) -> Callable[[str | None, int | None], str | None]:
    """Return a ``rename`` for :func:`_validated` from canonical → file column names."""

    def rename(column: str | None, _index: int | None) -> str | None:
        return None if column is None else names.get(column, column)

    return rename
