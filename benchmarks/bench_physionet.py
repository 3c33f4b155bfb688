"""PhysioNet 2019 benchmark: read and ``prepare`` set A from the official ``.tar.gz``.

Records (each run in a fresh subprocess, so its peak RSS is its own):

- ``physionet2019_read_seconds``: ``read_readings`` of an archive (readings, quarantine
  included) against a plain pandas reader of the same archive (``tarfile`` then
  ``pd.read_csv`` per ``.psv`` member, then ``concat``), measured in the same run,
  interleaved. ``--quick`` uses the first 2,000 members for this pair.
- ``physionet2019_prepare_seconds`` / ``_peak_rss``: the ``vitalsentry prepare`` command on
  the whole archive (targets: ≤ 60 s and ≤ 4 GiB on the 2-core machine), its CPU time
  (user + system, which other sessions' load does not inflate), and the quarantine counts
  of its summary in ``settings``.

The archive is ``../shared/datasets/physionet2019/training_setA.tar.gz`` unless
``--archive`` says otherwise; without it the benchmark prints why and writes no record.

Usage: ``python benchmarks/bench_physionet.py [--quick] [--out FILE] [--archive PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, parse_args, record

ARCHIVE = (
    Path(__file__).resolve().parents[1] / "../shared/datasets/physionet2019/training_setA.tar.gz"
)
QUICK_MEMBERS = 2_000
PREPARE_ARGS = (
    "--step",
    "3600",
    "--max-gap",
    "10800",
    "--window",
    "16",
    "--stride",
    "8",
    "--channels",
    "heart_rate,spo2,respiratory_rate,map",
)
"""Hourly grid, gaps up to 3 h bridged, 16-hour windows every 8 hours, four vitals."""


def _read(archive: Path) -> dict[str, Any]:
    from vitalsentry.data.sources import read_readings

    readings = read_readings(archive)
    return {"rows": len(readings.frame), "quarantined": readings.quarantine.total}


def _pandas_baseline(archive: Path) -> dict[str, Any]:
    """Read the archive the plain way: one ``pd.read_csv`` per member, then concatenate."""
    import pandas as pd

    parts = []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None and member.name.endswith(".psv"):
                part = pd.read_csv(handle, sep="|")
                part.insert(0, "patient_id", Path(member.name).stem)
                parts.append(part)
    return {"rows": len(pd.concat(parts, ignore_index=True))}


def _prepare(archive: Path) -> dict[str, Any]:
    """Run the ``prepare`` command as a user would; report its summary's quarantine."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "prepared"
        command = [sys.executable, "-m", "vitalsentry.cli", "prepare", str(archive), "--out"]
        subprocess.run([*command, str(out), *PREPARE_ARGS], check=True, capture_output=True)
        manifest = json.loads((out / "manifest.json").read_text())
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "windows": manifest["shape"][0],
        "quarantine": manifest.get("quarantine", {}),
        "cpu_seconds": child.ru_utime + child.ru_stime,
        "child_peak_rss_mib": child.ru_maxrss / 1024,
    }


_TASKS = {"read": _read, "pandas": _pandas_baseline, "prepare": _prepare}


def _worker(task: str, archive: str) -> None:
    start = time.perf_counter()
    facts = _TASKS[task](Path(archive))
    seconds = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = max(own, facts.pop("child_peak_rss_mib", 0.0))
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak, **facts}))


def _run(task: str, archive: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", task, str(archive)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _subset(archive: Path, members: int, out: Path) -> Path:
    """Copy the first ``members`` ``.psv`` members of ``archive`` into a new ``.tar.gz``."""
    with tarfile.open(archive, "r:*") as src, tarfile.open(out, "w:gz") as dst:
        kept = 0
        for member in src:
            handle = src.extractfile(member) if member.isfile() else None
            if handle is not None and member.name.endswith(".psv") and kept < members:
                dst.addfile(member, handle)
                kept += 1
    return out


def _interleaved(tasks: list[tuple[str, Path]], rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Run each task once per round, in turn, so that load changes hit all of them alike."""
    runs: dict[str, list[dict[str, Any]]] = {task: [] for task, _ in tasks}
    for _ in range(rounds):
        for task, archive in tasks:
            runs[task].append(_run(task, archive))
    return runs


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--archive", type=Path, default=ARCHIVE, help="training_setA.tar.gz")

    args = parse_args(__doc__ or "", extra)
    archive = args.archive.resolve()
    if not archive.is_file():
        print(f"skipped: {archive} is absent (PhysioNet 2019 set A)", file=sys.stderr)
        emit([], args.out)
        return
    rounds = 1 if args.quick else 3
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        pair = (
            _subset(archive, QUICK_MEMBERS, Path(tmp) / "subset.tar.gz") if args.quick else archive
        )
        runs = _interleaved([("read", pair), ("pandas", pair), ("prepare", archive)], rounds)
    settings: dict[str, Any] = {
        "archive": archive.name,
        "rounds": rounds,
        "load_average_1min_at_start": round(load, 2),
        "note": "2-core machine shared with other sessions; figures are medians of interleaved runs",
    }
    read, base, prep = runs["read"], runs["pandas"], runs["prepare"]
    pair_settings = settings | {
        "members": QUICK_MEMBERS if args.quick else "all",
        "rows": read[0]["rows"],
    }
    prep_settings = settings | {
        "prepare_args": " ".join(PREPARE_ARGS),
        "windows": prep[0]["windows"],
        "quarantine": prep[0]["quarantine"],
    }
    records = [
        record(
            "physionet2019_read_seconds",
            _median(read, "seconds"),
            "s",
            baseline="tarfile + pd.read_csv per .psv member + concat",
            baseline_value=_median(base, "seconds"),
            higher_is_better=False,
            settings=pair_settings,
        ),
        record(
            "physionet2019_prepare_seconds",
            _median(prep, "seconds"),
            "s",
            higher_is_better=False,
            settings=prep_settings | {"target": "<= 60 s (whole set A, 2-core machine)"},
        ),
        record(
            "physionet2019_prepare_cpu_seconds",
            _median(prep, "cpu_seconds"),
            "s",
            higher_is_better=False,
            settings=prep_settings
            | {
                "note": "user + system CPU time of the command: what the "
                "load of other sessions does not inflate"
            },
        ),
        record(
            "physionet2019_prepare_peak_rss",
            max(r["peak_rss_mib"] for r in prep),
            "MiB",
            higher_is_better=False,
            settings=prep_settings | {"target": "<= 4096 MiB"},
        ),
        record(
            "physionet2019_quarantined_readings",
            float(prep[0]["quarantine"].get("total", 0)),
            "readings",
            settings=prep_settings,
        ),
    ]
    emit(records, args.out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3])
    else:
        main()
