"""Reader of PhysioNet WFDB numerics records (``--source wfdb``), through the ``wfdb`` package.

A record is a ``.hea`` header and its signal file(s); numerics records (MIMIC-II / MIMIC-III
``…n`` records) hold one value per signal per frame, typically one frame a minute. Input is
one record (its ``.hea`` path, or the path without the extension) or a directory searched
recursively for headers; headers with none of the signals below (waveform records) are
skipped with a note.

Signals (names compared upper-case without spaces, ``_`` or ``%``) map to channels; where a
channel has two signals, the first is used and the second fills its gaps and implausible
values (invasive ABP first, then non-invasive NBP; HR first, then the oximeter's PULSE)::

    HR, PULSE → heart_rate          SPO2 → spo2               RESP, RR → respiratory_rate
    ABPSYS, NBPSYS → systolic_bp    ABPDIAS, NBPDIAS → diastolic_bp
    ABPMEAN, NBPMEAN → map          TEMP → temperature        ETCO2 → etco2

The patient is the record name up to its first ``-`` (MIMIC's ``s00001-2896-10-09-01-56n``
→ ``s00001``), so several records of one patient join into one series. Timestamps are the
header's base date and time plus the frame index over the sampling frequency; MIMIC shifts
dates centuries ahead, so dates past pandas' range move back by whole 400-year Gregorian
cycles (time of day and weekday unchanged, noted). A header without a base time has no clock
(``NO_CLOCK_EPOCH`` + elapsed time, ``has_clock=False``). Age and sex come from the header
comment ``<age>: 60 <sex>: F`` when given.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitalsentry.data.located import RowOrigin, validate_joined
from vitalsentry.data.physionet import NO_CLOCK_EPOCH
from vitalsentry.data.readings import Readings
from vitalsentry.data.schema import CHANNELS, PATIENT_COLUMN, TIMESTAMP_COLUMN
from vitalsentry.errors import DataError

SIGNALS: dict[str, tuple[str, ...]] = {
    "heart_rate": ("HR", "PULSE"),
    "spo2": ("SPO2",),
    "respiratory_rate": ("RESP", "RR"),
    "temperature": ("TEMP",),
    "systolic_bp": ("ABPSYS", "NBPSYS"),
    "diastolic_bp": ("ABPDIAS", "NBPDIAS"),
    "map": ("ABPMEAN", "NBPMEAN"),
    "etco2": ("ETCO2",),
}
"""Channel → normalised signal names, in order of preference."""

UNITS: dict[str, tuple[str, ...]] = {
    "heart_rate": ("bpm", "/min", "1/min", "beats/min"),
    "spo2": ("%",),
    "respiratory_rate": ("pm", "bpm", "/min", "1/min", "rpm", "breaths/min", "bpm"),
    "temperature": ("degc", "°c", "c", "cel"),
    "systolic_bp": ("mmhg", "mm[hg]"),
    "diastolic_bp": ("mmhg", "mm[hg]"),
    "map": ("mmhg", "mm[hg]"),
    "etco2": ("mmhg", "mm[hg]"),
}
"""Channel → accepted header units (lower-case); each is the channel's schema unit."""

_BYTES_PER_SAMPLE = {8: 1.0, 16: 2.0, 24: 3.0, 32: 4.0, 61: 2.0, 80: 1.0, 160: 2.0, 212: 1.5}
_LAST_YEAR = pd.Timestamp.max.year - 1
_SHIFT_NOTE = (
    "wfdb: base dates past {year} (de-identified, shifted ahead) moved back by whole 400-year "
    "Gregorian cycles; time of day and weekday are unchanged, the year is not real"
)


def is_wfdb_path(path: str | Path) -> bool:
    """Return whether ``path`` is a ``.hea`` file, a record path without it, or a directory of them."""
    p = Path(path)
    if p.is_dir():
        return next(p.rglob("*.hea"), None) is not None
    return p.suffix.lower() == ".hea" or (p.suffix == "" and p.with_suffix(".hea").is_file())


@dataclass(frozen=True)
class _Record:
    """One record's readings before joining."""

    header: str
    frame: pd.DataFrame
    static: dict[str, float]
    has_clock: bool
    shifted: bool
    step_s: float


def read_wfdb(path: str | Path, *, strict: bool = False) -> Readings:
    """Read WFDB numerics records into readings (see the module docstring).

    Parameters
    ----------
    path : str or Path
        A record (``.hea`` path or the path without extension) or a directory of records.
    strict : bool, default False
        Refuse the first implausible reading instead of setting it missing (quarantine).

    Returns
    -------
    Readings
        ``source="wfdb"``; ``step_s`` the records' common frame interval (None when they
        differ); ``has_clock`` False when a header lacks a base time; static ``age``/``sex``.

    Raises
    ------
    DataError
        No record, an unreadable header, a missing or truncated signal file, a unit that is
        not the channel's (file, header line, signal); implausible values with ``strict``
        (file, frame, signal).

    """
    name = str(path)
    headers = _headers(Path(path))
    records, skipped = [], []
    for header in headers:
        record = _read_record(header)
        if record is None:
            skipped.append(header)
        else:
            records.append(record)
    if not records:
        raise DataError("no WFDB numerics record (no header with a vital-sign signal)", file=name)
    frame = pd.concat([r.frame for r in records], ignore_index=True)
    origin = RowOrigin.of_counts([r.header for r in records], [len(r.frame) for r in records])
    static = {
        field: np.repeat([r.static[field] for r in records], [len(r.frame) for r in records])
        for field in ("age", "sex")
    }
    rename = {ch: "/".join(signals) for ch, signals in SIGNALS.items()}
    checked, table, quarantine, _ = validate_joined(frame, origin, name, rename, static, strict)
    notes = (
        [f"wfdb: {len(skipped)} header(s) without vital-sign signals skipped"] if skipped else []
    )
    if any(r.shifted for r in records):
        notes.append(_SHIFT_NOTE.format(year=_LAST_YEAR))
    steps = {r.step_s for r in records}
    return Readings(
        frame=checked,
        static=table,
        source="wfdb",
        stream=False,
        path=name,
        notes=(*notes, *quarantine.notes()),
        quarantine=quarantine,
        has_clock=all(r.has_clock for r in records),
        step_s=steps.pop() if len(steps) == 1 else None,
    )


def _headers(path: Path) -> list[Path]:
    """Header files of a record path or a directory."""
    if path.is_dir():
        found = sorted(path.rglob("*.hea"))
        if not found:
            raise DataError("no WFDB header (.hea) in the directory", file=str(path))
        return found
    header = path if path.suffix.lower() == ".hea" else path.with_suffix(".hea")
    if not header.is_file():
        raise DataError("no such WFDB header", file=str(header))
    return [header]


def _read_record(header: Path) -> _Record | None:
    """Read one record's vital-sign signals, or None when it has none."""
    import wfdb

    file = str(header)
    try:
        head = wfdb.rdheader(str(header.with_suffix("")))
    except (ValueError, OSError) as err:
        raise DataError(f"cannot read the header: {err}", file=file) from None
    names = [re.sub(r"[\s_%]", "", str(s)).upper() for s in head.sig_name or []]
    wanted = {
        channel: [names.index(s) for s in signals if s in names]
        for channel, signals in SIGNALS.items()
    }
    wanted = {channel: index for channel, index in wanted.items() if index}
    if not wanted:
        return None
    used = sorted({i for index in wanted.values() for i in index})
    for i in used:
        _check_unit(head, i, wanted, file)
    _check_signal_files(header, head, used)
    try:
        record = wfdb.rdrecord(str(header.with_suffix("")), channels=used)
    except (ValueError, OSError) as err:
        raise DataError(f"cannot read the signals: {err}", file=file) from None
    signals = np.asarray(record.p_signal, dtype=np.float64)
    column = {i: k for k, i in enumerate(used)}
    start, has_clock, shifted = _start(head)
    step_s = round(1.0 / float(head.fs), 6)
    n = signals.shape[0]
    frame = pd.DataFrame(
        {
            PATIENT_COLUMN: np.full(n, str(head.record_name).split("-", 1)[0], dtype=object),
            TIMESTAMP_COLUMN: start + pd.to_timedelta(np.arange(n) * step_s, unit="s"),
        }
    )
    for channel, index in wanted.items():
        frame[channel] = _combine([signals[:, column[i]] for i in index], channel)
    frame[PATIENT_COLUMN] = frame[PATIENT_COLUMN].astype(str)
    return _Record(file, frame, _demographics(head.comments), has_clock, shifted, step_s)


def _check_unit(head: Any, i: int, wanted: dict[str, list[int]], file: str) -> None:
    """Refuse a signal whose unit is not its channel's schema unit."""
    channel = next(ch for ch, index in wanted.items() if i in index)
    unit = str(head.units[i]).strip().lower()
    if unit not in UNITS[channel]:
        raise DataError(
            f"unit {unit!r} is not accepted for {CHANNELS[channel].label} "
            f"(expected one of {', '.join(dict.fromkeys(UNITS[channel]))})",
            file=file,
            column=str(head.sig_name[i]),
            row=_line_of_signal(file, i),
        )


def _check_signal_files(header: Path, head: Any, used: list[int]) -> None:
    """Refuse a missing or truncated signal file, naming the header line of its first signal.

    The row of the error is the header line (the record line is line 1) of the first
    signal stored in that file; for a truncated file, the first missing frame is named.
    """
    files = [str(f) for f in head.file_name]
    names = head.sig_name
    length = head.sig_len
    for i in used:
        data = header.parent / files[i]
        if not data.is_file():
            line = _line_of_signal(str(header), i)
            raise DataError(
                f"signal file {files[i]!r} named on line {line} of the header is missing",
                file=str(header),
                column=str(names[i]),
                row=line,
            )
        width = _BYTES_PER_SAMPLE.get(int(head.fmt[i]))
        if width is None or length is None:
            continue
        offset = int((head.byte_offset or [None] * len(files))[i] or 0)
        per_frame = width * files.count(files[i])
        frames = math.floor((data.stat().st_size - offset) / per_frame)
        if frames < length:
            raise DataError(
                f"signal file {files[i]!r} is truncated: {frames} of {length} frames",
                file=str(data),
                column=str(names[i]),
                row=frames + 1,
            )


def _line_of_signal(header: str, i: int) -> int:
    """1-based line of the header holding signal ``i`` (comment lines skipped)."""
    lines = Path(header).read_text(errors="replace").splitlines()
    specs = [k for k, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    return specs[i + 1] + 1 if i + 1 < len(specs) else i + 2


def _combine(values: list[np.ndarray], channel: str) -> np.ndarray:
    """First signal's values; where missing or implausible, the next signal's if it has one."""
    spec = CHANNELS[channel]
    out = values[0].copy()
    for other in values[1:]:
        with np.errstate(invalid="ignore"):
            unusable = ~((out >= spec.low) & (out <= spec.high))
        fill = unusable & ~np.isnan(other)
        out[fill] = other[fill]
    return out


def _start(head: Any) -> tuple[pd.Timestamp, bool, bool]:
    """Return the base timestamp, whether it is a clock, and whether its year was shifted."""
    if head.base_time is None:
        return NO_CLOCK_EPOCH, False, False
    base_time = head.base_time
    base_date = head.base_date or NO_CLOCK_EPOCH.date()
    moment = datetime.combine(base_date, base_time)
    cycles = max(0, math.ceil((moment.year - _LAST_YEAR) / 400))
    moment = moment.replace(year=moment.year - 400 * cycles)
    return pd.Timestamp(moment, tz="UTC"), True, cycles > 0


def _demographics(comments: list[str] | None) -> dict[str, float]:
    """``age`` and ``sex`` (0 female, 1 male) from ``<age>: 60 <sex>: F``; NaN when absent."""
    text = " ".join(comments or [])
    age = re.search(r"<age>:\s*([0-9.]+)", text)
    sex = re.search(r"<sex>:\s*([MF])\b", text, flags=re.IGNORECASE)
    years = float(age.group(1)) if age else math.nan
    return {
        "age": years if 0 <= years <= 130 else math.nan,
        "sex": math.nan if sex is None else float(sex.group(1).upper() == "M"),
    }
