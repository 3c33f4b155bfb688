"""Real-data benchmark: PhysioNet 2019 set A sepsis task (``vitalsentry benchmark physionet2019``).

Runs the whole benchmark in-process on ``../shared/datasets/physionet2019/setA.csv.gz`` (or
``--data``) and records, from its report: utility and hourly ROC-AUC of the risk against the
all-columns gradient-boosting baseline and NEWS2 (same run, same test patient-hours), the
wall time and peak memory of the whole run, and the scoring throughput: the risk's whole
scoring path (features, causal windows + encoder, fusion head, on two threads) timed end to
end on the validation and test patient-hours, per wall second (the target) and per CPU
second beside it, and the windows + encoder part alone. ``--quick`` uses a seeded subset of 1,000 patients. ``--work DIR`` keeps the
run's report, plots and cache there (a rerun resumes; default: a temporary folder). The
machine's load averages before and after the run, and at the scoring step, go into every
record's settings.

Usage: ``python benchmarks/bench_real.py [--quick] [--patients N] [--data PATH] [--work DIR]
[--out FILE]``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, parse_args, record

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "datasets"
    / "physionet2019"
    / "setA.csv.gz"
)


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="PhysioNet 2019 data")
    parser.add_argument("--patients", type=int, default=None, help="seeded patient subset")
    parser.add_argument("--work", type=Path, default=None, help="keep the run's output here")


def main() -> None:
    """Run the benchmark and emit its records."""
    from vitalsentry.evaluation.sepsis.benchmark import SepsisBenchmarkConfig, run_benchmark

    args = parse_args(__doc__ or "", _extra)
    if not args.data.exists():
        sys.exit(f"skipped: {args.data} is absent (the shared datasets are not in a fresh clone)")
    patients = 1000 if args.quick and args.patients is None else args.patients
    config = SepsisBenchmarkConfig(max_patients=patients)
    settings: dict[str, Any] = {"data": str(args.data), "patients": patients or "all"}
    settings["head_recipe"] = dataclasses.asdict(config.head)  # the baselines fit SepsisLabel
    settings["load_before"] = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = run_benchmark(args.data, args.work or Path(tmp), config=config)
        wall = time.perf_counter() - start
    settings["load_after"] = [round(x, 2) for x in os.getloadavg()]
    res = report["results"]
    risk, gbm, news2 = res["risk"], res["gbm_all"], res["news2"]
    settings |= {"test_patients": report["counts"]["test"]["patients"]}
    ae = report["autoencoder"]
    scoring = settings | {
        "scored_patient_hours": sum(
            report["counts"][k]["patient_hours"] for k in ("validation", "test")
        ),
        "threads": ae["score_workers"],
        "load_at_scoring": ae["score_load_average"],
    }
    emit(
        [
            record(
                "sepsis utility (risk)",
                risk["utility"],
                "normalised utility",
                baseline="gradient boosting, all columns",
                baseline_value=gbm["utility"],
                settings=settings,
            ),
            record(
                "sepsis hourly ROC-AUC (risk)",
                risk["roc_auc"],
                "AUC",
                baseline="gradient boosting, all columns",
                baseline_value=gbm["roc_auc"],
                settings=settings,
            ),
            record(
                "sepsis hourly ROC-AUC (risk) vs NEWS2",
                risk["roc_auc"],
                "AUC",
                baseline="NEWS2 (vitals present)",
                baseline_value=news2["roc_auc"],
                settings=settings,
            ),
            record(
                "whole benchmark wall time",
                wall,
                "s",
                higher_is_better=False,
                baseline="target",
                baseline_value=1800.0,
                settings=settings,
            ),
            record(
                "peak memory",
                report["peak_rss_mib"],
                "MiB",
                higher_is_better=False,
                baseline="target",
                baseline_value=4096.0,
                settings=settings,
            ),
            record(
                "batch scoring, whole path (features + windows + encoder + fusion head)",
                ae["score_patient_hours_per_s"],
                "patient-hours/s",
                baseline="target",
                baseline_value=50_000.0,
                settings=scoring,
            ),
            record(
                "batch scoring per CPU second, whole path",
                ae["score_patient_hours_per_cpu_s"],
                "patient-hours per CPU s",
                baseline="target",
                baseline_value=50_000.0,
                settings=scoring,
            ),
            record(
                "batch scoring (windows + encoder, one thread)",
                ae["encode_patient_hours_per_s"],
                "patient-hours/s",
                baseline="target",
                baseline_value=50_000.0,
                settings=settings,
            ),
        ],
        args.out,
    )


if __name__ == "__main__":
    main()
