"""Readings → model-ready windows: the ``prepare`` step and its on-disk format.

A prepared folder holds the windows (unscaled), their labels, split assignment, patient
and start time, the scaler fitted on the training split, the static context and a
manifest (shapes, counts per split and class, settings, input file hash). The trainer
reads it with :func:`load_prepared` without re-parsing any CSV.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitalsentry import __version__
from vitalsentry.config import DataConfig, WindowConfig
from vitalsentry.data.gaps import describe_limits
from vitalsentry.data.grid import TIME_TOLERANCE_S, SeriesGrid, grid_frame
from vitalsentry.data.readings import Quarantine, Readings
from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.data.schema import LABEL_COLUMN, PATIENT_COLUMN, TIMESTAMP_COLUMN
from vitalsentry.data.splits import SPLIT_NAMES, split_by_time, split_patients
from vitalsentry.data.timefeatures import grid_time_features, series_time_features
from vitalsentry.data.windows import (
    count_windows,
    sliding_windows,
    valid_windows,
    window_labels,
    window_starts,
)
from vitalsentry.errors import DataError, in_file
from vitalsentry.io import ManifestError, atomic_dir, sha256_file, verify_listed_files

FORMAT = "vitalsentry-prepared/1"
_ARRAYS = ("windows", "labels", "split", "patient", "start_s")
_OPTIONAL_ARRAYS = ("reading_patient",)
_COPY_CHUNK = 8192
"""Windows copied from the strided view per step (bounds the temporary arrays)."""
STREAM_NOTE = (
    "stream mode: the file has one reading per patient, so each split's readings are read "
    "as one monitoring feed in time order and every gap between consecutive readings is bridged"
)


@dataclass(frozen=True)
class PreparedData:
    """Model-ready windows with their labels, splits and provenance.

    Attributes
    ----------
    windows : numpy.ndarray
        (N, C, L) float32, unscaled features: vital channels then time features.
    labels : numpy.ndarray
        (N,) int8: 1 abnormal, 0 normal, -1 unknown.
    split : numpy.ndarray
        (N,) int8: 0 train, 1 val, 2 test.
    patient : numpy.ndarray
        (N,) str: patient id, or the stream name in stream mode.
    start_s : numpy.ndarray
        (N,) float64 epoch seconds (UTC) of each window's first step.
    feature_names : tuple of str
        Names of the C window channels.
    scaler : ChannelScaler
        Per-channel z-score fitted on the training split only.
    data, window : DataConfig, WindowConfig
        Settings used.
    source : str
        Reader that produced the readings.
    stream : bool
        Whether stream mode was used.
    notes : tuple of str
        Transforms every output must carry (SpO2 proxy, stream mode).
    input_sha256 : str
        sha256 of the input file ("" when not read from a file).
    static : pandas.DataFrame
        Per-patient static context indexed by patient_id.
    reading_patient : numpy.ndarray or None
        Stream mode only: (N,) str, the patient whose reading is the latest at each
        window's last step (whose label the window carries); None in per-patient mode.
    quarantine : Quarantine
        Implausible readings the reader set missing, per channel and reason.
    """

    windows: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    patient: np.ndarray
    start_s: np.ndarray
    feature_names: tuple[str, ...]
    scaler: ChannelScaler
    data: DataConfig
    window: WindowConfig
    source: str
    stream: bool
    notes: tuple[str, ...]
    input_sha256: str
    static: pd.DataFrame
    reading_patient: np.ndarray | None = None
    quarantine: Quarantine = field(default_factory=Quarantine)

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def select(self, mask: np.ndarray) -> PreparedData:
        """Return the windows where ``mask`` ((N,) bool or int indices) selects."""
        return replace(
            self,
            windows=self.windows[mask],
            labels=self.labels[mask],
            split=self.split[mask],
            patient=self.patient[mask],
            start_s=self.start_s[mask],
            reading_patient=None if self.reading_patient is None else self.reading_patient[mask],
        )

    def split_part(self, code: int) -> PreparedData:
        """Return the windows of one split (0 train, 1 val, 2 test)."""
        return self.select(self.split == code)

    @property
    def context_patient(self) -> np.ndarray:
        """(N,) str: the patient whose static context goes with each window."""
        return self.patient if self.reading_patient is None else self.reading_patient

    def scaled_windows(self) -> np.ndarray:
        """Return the windows scaled by the training-split scaler, (N, C, L) float32."""
        return self.scaler.transform(self.windows)

    @property
    def end_s(self) -> np.ndarray:
        """(N,) float64 epoch seconds of each window's last step."""
        return self.start_s + (self.window.length - 1) * self.data.step_s

    @property
    def fingerprint(self) -> str:
        """sha256 identifying the data: input file, settings and window count."""
        identity = {
            "input_sha256": self.input_sha256,
            "data": self.data.to_dict(),
            "window": self.window.to_dict(),
            "feature_names": list(self.feature_names),
            "n_windows": len(self),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def counts(self) -> dict[str, dict[str, int]]:
        """Window counts per split and class: ``{"train": {"normal": n, ...}, ...}``."""
        out: dict[str, dict[str, int]] = {}
        for code, name in SPLIT_NAMES.items():
            part = self.labels[self.split == code]
            if part.size or code != 1:
                out[name] = {
                    "windows": int(part.size),
                    "normal": int((part == 0).sum()),
                    "abnormal": int((part == 1).sum()),
                    "unknown": int((part == -1).sum()),
                    "patients": int(np.unique(self.context_patient[self.split == code]).size),
                }
        return out


def patient_assignment(frame: pd.DataFrame, data: DataConfig) -> dict[str, int]:
    """Split code (0 train, 1 val, 2 test) of every patient, as :func:`prepare` assigns it."""
    return split_patients(
        frame[PATIENT_COLUMN].unique().tolist(), data.split, data.seed, _patient_strata(frame)
    )


def feed_names(frame: pd.DataFrame, data: DataConfig) -> dict[str, str]:
    """Stream mode: the feed of every patient, one per split (or one feed split by time)."""
    if data.split_by == "time":
        return dict.fromkeys(frame[PATIENT_COLUMN].unique().tolist(), "stream")
    return {p: f"stream-{SPLIT_NAMES[c]}" for p, c in patient_assignment(frame, data).items()}


def _patient_strata(frame: pd.DataFrame) -> dict[str, int] | None:
    """Majority label per patient (for stratified splits), or None without labels."""
    if LABEL_COLUMN not in frame.columns:
        return None
    known = frame[frame[LABEL_COLUMN] >= 0]
    if known.empty:
        return None
    share = known.groupby(PATIENT_COLUMN, sort=True)[LABEL_COLUMN].mean()
    return {str(k): int(v > 0) for k, v in share.items()}


def stream_feeds(
    frame: pd.DataFrame, feed_of: Mapping[str, str], channels: Sequence[str], step_s: float
) -> tuple[pd.DataFrame, float]:
    """Stream mode: regroup one-reading-per-patient rows into feeds in time order.

    Readings of one feed at the same instant (different patients) are averaged per
    channel and the label is abnormal if any of them is; ``source_patient`` keeps the
    last one's id.

    Parameters
    ----------
    frame : pandas.DataFrame
        Readings frame.
    feed_of : mapping of str to str
        Feed name of every patient (e.g. one feed per split).
    channels : sequence of str
        Channels to keep.
    step_s : float
        Grid step, used for the returned gap limit.

    Returns
    -------
    (pandas.DataFrame, float)
        The feeds as a readings frame keyed by feed name, and a ``max_gap_s`` that
        bridges every gap between consecutive readings of a feed.
    """
    part = frame.assign(
        source_patient=frame[PATIENT_COLUMN], **{PATIENT_COLUMN: frame[PATIENT_COLUMN].map(feed_of)}
    )
    agg: dict[str, str] = {c: "mean" for c in channels} | {"source_patient": "last"}
    if LABEL_COLUMN in part.columns:
        agg[LABEL_COLUMN] = "max"
    merged = part.groupby([PATIENT_COLUMN, TIMESTAMP_COLUMN], sort=True).agg(agg).reset_index()
    if LABEL_COLUMN in merged.columns:
        merged[LABEL_COLUMN] = merged[LABEL_COLUMN].astype(np.int8)
    span = merged[TIMESTAMP_COLUMN].max() - merged[TIMESTAMP_COLUMN].min()
    return merged, span.total_seconds() + step_s


@dataclass(frozen=True)
class WindowSet:
    """Windows cut from gridded readings, before any split.

    Attributes
    ----------
    windows : numpy.ndarray
        (N, C, L) float32 unscaled features.
    labels : numpy.ndarray
        (N,) int8 window labels (-1 unknown).
    patient : numpy.ndarray
        (N,) str key (patient or stream) of each window.
    start_s : numpy.ndarray
        (N,) float64 epoch seconds of each window's first step.
    """

    windows: np.ndarray
    labels: np.ndarray
    patient: np.ndarray
    start_s: np.ndarray


def _fill_windows(
    grid: SeriesGrid, keep: np.ndarray, data: DataConfig, window: WindowConfig, out: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Write one grid's kept windows into ``out`` (n, C, L); return (labels (n,), start_s (n,))."""
    length, stride = window.length, window.stride
    n_vitals = len(data.channels) + len(data.gap_features)
    start_s = grid.start_s + window_starts(grid.n_steps, length, stride)[keep] * grid.step_s
    series = grid.values
    if data.gap_features:
        series = np.concatenate([series, gap_features(grid, data)])
    vitals = sliding_windows(series, length, stride)
    hours = None
    if data.time_encoding == "per_timestep":
        hours = sliding_windows(_time_rows(grid, data), length, stride)
    else:
        at_start = series_time_features(
            data.time_features, start_s, grid.first_s, day_of_week=data.day_of_week
        )
        out[:, n_vitals:] = at_start.T[:, :, None]
    rows = np.flatnonzero(keep)
    for lo in range(0, rows.size, _COPY_CHUNK):  # bounded temporaries, not one copy per grid
        part = rows[lo : lo + _COPY_CHUNK]
        out[lo : lo + part.size, :n_vitals] = vitals[part]
        if hours is not None:
            out[lo : lo + part.size, n_vitals:] = hours[part]
    labels = window_labels(grid.labels, length, stride, window.label_mode)[keep]
    return labels, start_s


def _time_rows(grid: SeriesGrid, data: DataConfig) -> np.ndarray:
    """Time features of every grid step, (K, T) float32 (clock: the fast periodic path)."""
    if data.time_features == "clock":
        return grid_time_features(
            grid.start_s, grid.step_s, grid.n_steps, day_of_week=data.day_of_week
        )
    return series_time_features(data.time_features, grid.epoch_s, grid.first_s)


def gap_features(grid: SeriesGrid, data: DataConfig) -> np.ndarray:
    """Return the observed-mask and time-since rows of a grid, (G, T) float32.

    ``<channel>_observed`` is 1 where a reading lies in the step ending at a grid point;
    ``<channel>_since`` is the time since the latest reading over the channel's longest
    gap limit, clipped to 0-1 (1 before its first reading).
    """
    if grid.age_s is None:
        raise DataError(f"{grid.key}: the grid was built without reading ages")
    rows = []
    if data.observed_mask:
        rows.append(grid.age_s < grid.step_s - TIME_TOLERANCE_S)
    if data.time_since:
        limit = np.maximum(np.maximum(data.gap_interpolate_s, data.gap_carry_s), grid.step_s)
        rows.append(np.clip(grid.age_s / limit[:, None], 0.0, 1.0))
    return np.concatenate(rows).astype(np.float32)


def _latest_only(grid: SeriesGrid, window: WindowConfig) -> tuple[SeriesGrid, np.ndarray]:
    """Cut a grid down to its latest complete window (all channels known at every step).

    The window ends at the last instant at which every channel is observed or
    interpolated, e.g. at the last SpO2 reading when SpO2 is measured once a minute.
    """
    starts_ok = valid_windows(grid.mask, window.length, 1)
    if not starts_ok.any():
        return grid, np.zeros(count_windows(grid.n_steps, window.length, window.stride), bool)
    first = int(np.flatnonzero(starts_ok)[-1])
    last = first + window.length
    tail = replace(
        grid,
        start_s=grid.start_s + first * grid.step_s,
        values=grid.values[:, first:last],
        mask=grid.mask[:, first:last],
        labels=grid.labels[first:last],
        age_s=None if grid.age_s is None else grid.age_s[:, first:last],
    )
    return tail, np.ones(1, bool)


def window_frame(
    frame: pd.DataFrame,
    data: DataConfig,
    window: WindowConfig,
    *,
    max_gap_s: float | None = None,
    latest_only: bool = False,
) -> tuple[WindowSet, list[SeriesGrid]]:
    """Grid every key of a readings frame and cut its complete windows.

    Parameters
    ----------
    frame : pandas.DataFrame
        Readings frame sorted by patient then time.
    data, window : DataConfig, WindowConfig
        Channels, step, time encoding; window length, stride, label mode.
    max_gap_s : float, optional
        Bridge every gap up to this long by interpolation, on every channel (stream mode);
        by default each channel follows the gap policy of ``data``.
    latest_only : bool, default False
        Keep only the window ending at each key's last step (live scoring).

    Returns
    -------
    (WindowSet, list of SeriesGrid)
        The windows (see :func:`cut_windows`) and the grids they were cut from.
    """
    grids = grid_frame(
        frame, list(data.channels), step_s=data.step_s, **grid_policy(data, max_gap_s)
    )
    return cut_windows(grids, data, window, latest_only=latest_only), grids


def grid_policy(data: DataConfig, max_gap_s: float | None = None) -> dict[str, Any]:
    """Keyword arguments of :func:`~vitalsentry.data.grid.grid_series` for ``data``.

    With ``max_gap_s`` (stream mode) every gap up to it is interpolated on every channel.
    """
    return {
        "max_gap_s": data.gap_interpolate_s if max_gap_s is None else max_gap_s,
        "carry_s": data.gap_carry_s if max_gap_s is None else 0.0,
        "with_age": bool(data.gap_features),
    }


def cut_windows(
    grids: list[SeriesGrid], data: DataConfig, window: WindowConfig, *, latest_only: bool = False
) -> WindowSet:
    """Cut the complete windows of grids (rows in ``data.channels`` order).

    Windows with a masked step (a gap longer than the grid's maximum gap, or before a
    channel's first reading) are dropped. The grids' values are replaced by float32
    copies, one at a time (windows are float32: this halves the grids' memory).

    Parameters
    ----------
    grids : list of SeriesGrid
        One grid per key (patient or stream).
    data, window : DataConfig, WindowConfig
        Channels, step, time encoding; window length, stride, label mode.
    latest_only : bool, default False
        Keep only the latest complete window of each key (live scoring).

    Returns
    -------
    WindowSet
        The windows, in grid order.
    """
    for i, grid in enumerate(grids):
        grids[i] = replace(grid, values=grid.values.astype(np.float32))
    if latest_only:
        grids, keeps = (
            list(t) for t in zip(*(_latest_only(g, window) for g in grids), strict=True)
        )
    else:
        keeps = [valid_windows(g.mask, window.length, window.stride) for g in grids]
    total = int(sum(k.sum() for k in keeps))
    windows = np.empty((total, len(data.feature_names), window.length), np.float32)
    labels = np.empty(total, np.int8)
    start_s = np.empty(total, np.float64)
    patient = np.empty(total, dtype=object)
    offset = 0
    for grid, keep in zip(grids, keeps, strict=True):
        n = int(keep.sum())
        part = slice(offset, offset + n)
        labels[part], start_s[part] = _fill_windows(grid, keep, data, window, windows[part])
        patient[part] = grid.key
        offset += n
    return WindowSet(windows, labels, patient.astype(str), start_s)


def prepare(readings: Readings, data: DataConfig, window: WindowConfig) -> PreparedData:
    """Turn validated readings into split, windowed, scaler-ready data (see :func:`_prepare`)."""
    with in_file(readings.path):
        return _prepare(readings, data, window)


def _prepare(readings: Readings, data: DataConfig, window: WindowConfig) -> PreparedData:
    """Turn validated readings into split, windowed, scaler-ready data.

    Patients are split first (stratified by their majority label), then each patient — or,
    in stream mode, each split's feed — is put on the grid, encoded and windowed. Windows
    with a masked step are dropped.

    Parameters
    ----------
    readings : Readings
        Output of :func:`vitalsentry.data.sources.read_readings`.
    data, window : DataConfig, WindowConfig
        Settings (channels, step, gap limit, split; window length, stride, label mode).

    Returns
    -------
    PreparedData
        Windows of every split with the scaler fitted on split 0.

    Raises
    ------
    DataError
        A requested channel is absent, no series is as long as one window, or the
        training split has no window.
    """
    frame = readings.frame
    if readings.no_series:
        raise DataError(readings.no_series, file=readings.path)
    missing = [c for c in data.channels if c not in readings.channels]
    if missing:
        raise DataError(
            f"channel(s) {', '.join(missing)} not in the data (it has: {', '.join(readings.channels)})",
            file=readings.path,
        )
    channels = list(data.channels)
    notes = list(readings.notes)
    data, chosen = choose_time_features(data, readings)
    if chosen is not None:
        notes.append(chosen)
    feeds: pd.DataFrame | None = None
    max_gap: float | None = None
    if readings.stream:
        frame, max_gap = stream_feeds(frame, feed_names(frame, data), channels, data.step_s)
        feeds = frame
        notes.append(STREAM_NOTE)
    cut, grids = window_frame(frame, data, window, max_gap_s=max_gap)
    longest = max((g.n_steps for g in grids), default=0)
    del grids  # the grids are as large as the windows: free them before the scaler's copy
    if len(cut.labels) == 0:
        raise DataError(
            f"no complete window: no stretch of {window.length} steps of {data.step_s:g} s where every "
            f"channel is measured or bridged by the gap policy ({_policy_text(data, max_gap)}; "
            f"--gap CHANNEL=INTERPOLATE:CARRY changes it) (longest series: {longest} steps)",
            file=readings.path,
        )
    split = _split_codes(readings, cut, data, window)
    keep = split >= 0
    windows, labels, patient, start_s = (
        a if keep.all() else a[keep] for a in (cut.windows, cut.labels, cut.patient, cut.start_s)
    )
    split = split[keep]
    reading_patient = (
        None if feeds is None else latest_reader(feeds, patient, start_s, window, data)
    )
    if not (split == 0).any():
        raise DataError(
            "the training split has no complete window; use more or longer series",
            file=readings.path,
        )
    scaler = ChannelScaler(data.feature_names).fit(windows[split == 0])
    input_sha = sha256_file(readings.path) if Path(readings.path).is_file() else ""
    return PreparedData(
        windows=windows,
        labels=labels,
        split=split,
        patient=patient,
        start_s=start_s,
        feature_names=data.feature_names,
        scaler=scaler,
        data=data,
        window=window,
        source=readings.source,
        stream=readings.stream,
        notes=tuple(notes),
        input_sha256=input_sha,
        static=readings.static,
        reading_patient=reading_patient,
        quarantine=readings.quarantine,
    )


def choose_time_features(data: DataConfig, readings: Readings) -> tuple[DataConfig, str | None]:
    """Resolve ``auto`` time features for the readings, never inventing a clock.

    Returns
    -------
    (DataConfig, str or None)
        The config with ``clock``, ``stay`` or ``none``, and, for ``auto``, a note saying
        which was chosen and why.

    Raises
    ------
    DataError
        ``clock`` asked for data without a wall clock.
    """
    mode = data.time_features
    if mode == "clock" and not readings.clock:
        raise DataError(
            f"the {readings.source} data has no wall-clock time (the reader synthesised its "
            "timestamps), so the hour of day would be invented; use --time-features stay, "
            "none or auto",
            file=readings.path,
        )
    if mode != "auto":
        return data, None
    if readings.clock:
        return data.replace(time_features="clock"), (
            "time features: auto chose clock (sin/cos of the UTC hour of day): the data has "
            "wall-clock timestamps"
        )
    chosen = "none" if readings.stream else "stay"
    what = (
        "none (stream mode)"
        if readings.stream
        else "stay (log1p of hours since each series' first reading)"
    )
    return data.replace(time_features=chosen, day_of_week=False), (
        f"time features: auto chose {what}: the {readings.source} data has no wall-clock "
        "time, and no clock was invented"
    )


def _policy_text(data: DataConfig, max_gap_s: float | None) -> str:
    """Say the gap policy used for ``data`` (stream mode: one limit for all)."""
    if max_gap_s is not None:
        return f"every gap ≤ {max_gap_s:g} s interpolated"
    return describe_limits(data.channels, data.gap_interpolate_s, data.gap_carry_s)


def _split_codes(
    readings: Readings, cut: WindowSet, data: DataConfig, window: WindowConfig
) -> np.ndarray:
    """(N,) split code of each window; -1 for windows in a gap between time blocks."""
    if data.split_by == "time":
        length_s = window.length * data.step_s
        end_s = cut.start_s + (window.length - 1) * data.step_s
        return split_by_time(cut.patient, cut.start_s, end_s, data.split, length_s)
    if readings.stream:
        code_of = {f"stream-{v}": k for k, v in SPLIT_NAMES.items()}
    else:
        code_of = patient_assignment(readings.frame, data)
    return pd.Series(cut.patient).map(code_of).to_numpy(np.int8)


def latest_reader(
    feeds: pd.DataFrame,
    stream: np.ndarray,
    start_s: np.ndarray,
    window: WindowConfig,
    data: DataConfig,
) -> np.ndarray:
    """(N,) id of the patient whose reading is the latest at each window's last step."""
    out = np.empty(stream.size, dtype=object)
    end_s = start_s + (window.length - 1) * data.step_s
    for name, rows in feeds.groupby(PATIENT_COLUMN, sort=False):
        times = rows[TIMESTAMP_COLUMN].to_numpy("datetime64[ns]").astype(np.int64) / 1e9
        sel = stream == name
        idx = np.searchsorted(times, end_s[sel], side="right") - 1
        out[sel] = rows["source_patient"].to_numpy()[np.clip(idx, 0, None)]
    return out.astype(str)


def manifest_of(prepared: PreparedData) -> dict[str, Any]:
    """Return the JSON manifest describing a prepared dataset (without file hashes)."""
    return {
        "format": FORMAT,
        "vitalsentry_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": prepared.source,
        "stream": prepared.stream,
        "notes": list(prepared.notes),
        "input_sha256": prepared.input_sha256,
        "fingerprint": prepared.fingerprint,
        "data": prepared.data.to_dict(),
        "window": prepared.window.to_dict(),
        "feature_names": list(prepared.feature_names),
        "shape": list(prepared.windows.shape),
        "counts": prepared.counts(),
        "quarantine": prepared.quarantine.to_dict(),
    }


def save_prepared(prepared: PreparedData, path: str | Path) -> dict[str, Any]:
    """Write a prepared dataset folder atomically and return its manifest."""
    manifest = manifest_of(prepared)
    with atomic_dir(path) as tmp:
        for name in _ARRAYS + _OPTIONAL_ARRAYS:
            if getattr(prepared, name) is not None:
                np.save(tmp / f"{name}.npy", getattr(prepared, name), allow_pickle=False)
        prepared.scaler.to_json(tmp / "scaler.json")
        prepared.static.to_parquet(tmp / "static.parquet")
        manifest["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load_prepared(path: str | Path) -> PreparedData:
    """Read a folder written by :func:`save_prepared`, checking format and hashes.

    Raises
    ------
    DataError
        Not a prepared folder, another format version, a missing, altered or unlisted file
        (the rule bundles follow: :func:`vitalsentry.io.verify_listed_files`).
    """
    root = Path(path)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(
            "not a prepared data folder (no manifest.json); run `vitalsentry prepare` first",
            file=str(root),
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"manifest.json is not valid JSON ({exc.msg})", file=str(root)) from None
    if manifest.get("format") != FORMAT:
        raise DataError(
            f"prepared with format {manifest.get('format')!r}, this version reads {FORMAT!r}; run prepare again",
            file=str(root),
        )
    try:
        verify_listed_files(root, manifest.get("files"), ("manifest.json",))
    except ManifestError as exc:
        raise DataError(str(exc), file=str(root)) from None
    arrays = {
        name: np.load(root / f"{name}.npy", allow_pickle=False)
        for name in _ARRAYS + _OPTIONAL_ARRAYS
        if f"{name}.npy" in manifest["files"]
    }
    return PreparedData(
        **arrays,
        feature_names=tuple(manifest["feature_names"]),
        scaler=ChannelScaler.from_json(root / "scaler.json"),
        data=DataConfig.from_dict(manifest["data"]),
        window=WindowConfig.from_dict(manifest["window"]),
        source=manifest["source"],
        stream=bool(manifest["stream"]),
        notes=tuple(manifest["notes"]),
        input_sha256=manifest["input_sha256"],
        static=pd.read_parquet(root / "static.parquet"),
        quarantine=Quarantine.from_dict(manifest.get("quarantine", {})),
    )
