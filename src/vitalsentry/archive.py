"""Archive scoring: a directory of per-patient partitions scored on one process or a Dask cluster.

Each partition file (CSV or Parquet) is scored by :func:`vitalsentry.scoring.readings_table`,
the one scoring path (as ``vitalsentry score`` scores one file), and its table written atomically under the output directory with the same
relative name, so a finished partition is exactly a file with its final name: a crash leaves
at most a hidden temporary file, and a rerun skips what is finished. A marker file records
the bundle and options of the run; resuming with another bundle or options is refused.

On Dask every worker process loads and verifies the bundle once, when it starts
(:class:`BundlePlugin`), and keeps it for every partition it scores.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from vitalsentry.bundle import manifest_sha256
from vitalsentry.data.schema import PATIENT_COLUMN
from vitalsentry.data.sources import read_readings
from vitalsentry.data.writers import write_table
from vitalsentry.errors import DataError, VitalSentryError
from vitalsentry.io import atomic_write_json

if TYPE_CHECKING:
    import pandas as pd

    from vitalsentry.pipeline import VitalRiskPipeline

Engine = Literal["local", "dask"]
ENGINES: tuple[str, ...] = ("local", "dask")
PARTITION_SUFFIXES = (".csv", ".parquet", ".pq")
MARKER = "_vitalsentry_scoring.json"

_LOADED: dict[str, VitalRiskPipeline] = {}
_LOAD_COUNT: dict[str, int] = {}


@dataclass(frozen=True)
class ArchiveJob:
    """What to score and how: the same options as single-file ``vitalsentry score``.

    Attributes
    ----------
    bundle : str
        Bundle folder (on a shared file system for workers on other machines).
    bundle_sha256 : str
        Its manifest hash: every worker checks it loaded this very bundle.
    source, step_s, column_map, mc_passes
        Reader and scoring options, as for one file.
    """

    bundle: str
    bundle_sha256: str
    source: str = "auto"
    step_s: float | None = None
    column_map: tuple[tuple[str, str], ...] = ()
    mc_passes: int = 0

    @classmethod
    def create(
        cls,
        bundle: str | Path,
        *,
        source: str = "auto",
        step_s: float | None = None,
        column_map: Mapping[str, str] | None = None,
        mc_passes: int = 0,
    ) -> ArchiveJob:
        """Build a job, hashing the bundle's manifest (the bundle is verified when loaded)."""
        path = Path(bundle).resolve()
        return cls(
            str(path),
            manifest_sha256(path),
            source,
            step_s,
            tuple(sorted((column_map or {}).items())),
            mc_passes,
        )


@dataclass(frozen=True)
class PartitionResult:
    """Outcome of one partition.

    Attributes
    ----------
    name : str
        Partition path relative to the archive directory.
    windows : int
        Windows scored (0 when skipped).
    levels : dict of str to int
        Windows per risk level.
    notes : tuple of str
        The reader's notes (cleaning, proxies) for this partition.
    skipped : bool
        True when the output already existed (resumed run).
    worker : int
        Process id that scored it (0 when skipped).
    bundle_loads : int
        How many times that process had loaded the bundle (1 when loaded once).
    """

    name: str
    windows: int = 0
    levels: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    skipped: bool = False
    worker: int = 0
    bundle_loads: int = 0


def list_partitions(data: Path) -> list[Path]:
    """Partition files under ``data``, relative to it, in sorted order.

    Names starting with ``.`` or ``_`` (temporary files, markers such as ``_SUCCESS``) are
    ignored; any other file must be CSV or Parquet.

    Raises
    ------
    DataError
        ``data`` is not a directory, holds no partition, or holds a file of another kind.
    """
    if not data.is_dir():
        raise DataError("not a directory", file=str(data))
    parts: list[Path] = []
    for path in sorted(data.rglob("*")):
        rel = path.relative_to(data)
        if path.is_dir() or any(p.startswith((".", "_")) for p in rel.parts):
            continue
        if path.suffix.lower() not in PARTITION_SUFFIXES:
            raise DataError(
                f"archive partitions must be .csv, .parquet or .pq files, not {rel}", file=str(data)
            )
        parts.append(rel)
    if not parts:
        raise DataError("no .csv, .parquet or .pq partition in the directory", file=str(data))
    return parts


def write_partitions(frame: pd.DataFrame, out: Path, suffix: str = ".parquet") -> list[Path]:
    """Write a readings frame as one partition file per patient (``<patient_id><suffix>``).

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy readings with a ``patient_id`` column.
    out : pathlib.Path
        Directory to create.
    suffix : str
        ``.parquet``, ``.pq`` or ``.csv``.

    Returns
    -------
    list of pathlib.Path
        The files written, one per patient, in patient order.
    """
    return [
        write_table(part, out / f"{patient}{suffix}")
        for patient, part in frame.groupby(PATIENT_COLUMN, sort=True)
    ]


def _claim_output(job: ArchiveJob, data: Path, out: Path) -> None:
    """Write the run marker, or check that an earlier run had the same bundle and options."""
    marker = out / MARKER
    want = json.loads(json.dumps({"data": str(data.resolve()), **asdict(job)}))
    if not marker.exists():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(marker, want)
        return
    have = json.loads(marker.read_text())
    diff = sorted(k for k in want if have.get(k) != want[k])
    if diff:
        raise VitalSentryError(
            f"{out} holds scores of another run (differs in: {', '.join(diff)}); "
            "use a new --out folder or remove it"
        )


def load_pipeline(job: ArchiveJob) -> VitalRiskPipeline:
    """Return the job's pipeline, loaded and verified once per process, then reused."""
    if job.bundle_sha256 not in _LOADED:
        from vitalsentry.pipeline import VitalRiskPipeline

        pipe = VitalRiskPipeline.from_bundle(job.bundle)
        if pipe.bundle.manifest_sha256 != job.bundle_sha256:
            raise VitalSentryError(
                f"the bundle at {job.bundle} changed since the run started (manifest hash "
                f"{pipe.bundle.manifest_sha256[:12]}, expected {job.bundle_sha256[:12]})"
            )
        _LOADED[job.bundle_sha256] = pipe
        _LOAD_COUNT[job.bundle_sha256] = _LOAD_COUNT.get(job.bundle_sha256, 0) + 1
    return _LOADED[job.bundle_sha256]


def score_partition(job: ArchiveJob, src: Path, dst: Path, name: str) -> PartitionResult:
    """Score one partition file with the single-file path and write its table atomically."""
    from vitalsentry.scoring import readings_table

    pipe = load_pipeline(job)
    readings = read_readings(
        src, job.source, step_s=job.step_s, column_map=dict(job.column_map) or None
    )
    if readings.stream:
        raise DataError(
            f"{readings.source} files have one row per patient and are scored as one feed; "
            "archive partitions must hold per-patient series (score the file on its own)",
            file=str(src),
        )
    table, fused_note = readings_table(pipe, readings, mc_passes=job.mc_passes)
    write_table(table, dst)
    counts = table["level"].value_counts()
    return PartitionResult(
        name,
        len(table),
        {k: int(counts.get(k, 0)) for k in ("low", "medium", "high")},
        (*readings.notes, *([f"fused risk: {fused_note}"] if fused_note else [])),
        worker=os.getpid(),
        bundle_loads=_LOAD_COUNT[job.bundle_sha256],
    )


def _tasks(parts: list[Path], data: Path, out: Path) -> Iterator[tuple[Path, Path, str]]:
    for rel in parts:
        yield data / rel, out / rel, rel.as_posix()


def _run_local(
    job: ArchiveJob, todo: list[tuple[Path, Path, str]], done: Callable[[PartitionResult], None]
) -> None:
    for src, dst, name in todo:
        done(score_partition(job, src, dst, name))


def score_archive(
    job: ArchiveJob,
    data: Path,
    out: Path,
    *,
    engine: Engine = "local",
    address: str | None = None,
    workers: int | None = None,
    on_result: Callable[[PartitionResult], None] | None = None,
) -> list[PartitionResult]:
    """Score every partition of ``data`` not yet in ``out``.

    Parameters
    ----------
    job : ArchiveJob
        Bundle and scoring options.
    data, out : pathlib.Path
        Archive directory and output directory (same relative names and formats).
    engine : {"local", "dask"}
        One process, or Dask distributed.
    address : str, optional
        Dask scheduler to join; default a local cluster of ``workers`` processes.
    workers : int, optional
        Local cluster size (default: the CPU count), one thread each.
    on_result : callable, optional
        Called with each partition's result as it finishes (progress).

    Returns
    -------
    list of PartitionResult
        One per partition, in completion order; finished ones from earlier runs are skipped.
    """
    if engine not in ENGINES:
        raise VitalSentryError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    if address is not None and engine != "dask":
        raise VitalSentryError("--address joins a Dask scheduler: use it with --engine dask")
    parts = list_partitions(data)
    _claim_output(job, data, out)
    results: list[PartitionResult] = []

    def done(result: PartitionResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    todo: list[tuple[Path, Path, str]] = []
    for src, dst, name in _tasks(parts, data, out):
        if dst.exists():
            done(PartitionResult(name, skipped=True))
        else:
            todo.append((src, dst, name))
    if todo and engine == "local":
        _run_local(job, todo, done)
    elif todo:
        from vitalsentry.archive_dask import run_dask

        run_dask(job, todo, done, address=address, workers=workers)
    return results
