"""PhysioNet 2019 set A: the unsupervised detector's hourly ROC-AUC / PR-AUC against SepsisLabel.

A seeded subset of set A's patients (``--patients``; all 20,336 do not fit the 2-core
machine's time) is split by patient 50/20/30; windows are 8 hours long with a stride of
one hour over heart rate, SpO2, respiratory rate, systolic BP and temperature (NEWS2's
measured inputs; 4 h interpolation limit for the continuous vitals, the gap policy's
defaults otherwise: temperature interpolated over 6 h and carried 4 h), so every
window stands for the hour it ends at and its label is that hour's ``SepsisLabel``. A small
autoencoder is trained on the training patients, the multi-view detector is fitted with
its defaults (the combination chosen on held-out patients as always), and the test
patients' windows are scored beside NEWS2 at the same hour (latest reading of each input,
temperature included; hours where NEWS2 lacks an input are left out for every method), and
an IsolationForest on raw window summaries. 95% intervals resample test patients.

Usage: ``python benchmarks/bench_physionet_detector.py [--quick] [--out FILE] [--patients N]``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, fit_and_score_detector, parse_args, record
from vitalsentry.config import DataConfig, WindowConfig
from vitalsentry.data.physionet import read_physionet2019
from vitalsentry.data.prepared import prepare
from vitalsentry.data.readings import Readings
from vitalsentry.data.schema import PATIENT_COLUMN
from vitalsentry.evaluation import metrics
from vitalsentry.evaluation.baselines import (
    news2_at_windows,
    raw_iforest_scores,
    window_summary_features,
)

SET_A = Path(__file__).resolve().parents[1] / "../shared/datasets/physionet2019/setA.csv.gz"
CHANNELS = ("heart_rate", "spo2", "respiratory_rate", "systolic_bp", "temperature")
WINDOW = WindowConfig(length=8, stride=1)
DATA = DataConfig(
    channels=CHANNELS,
    step_s=3600.0,
    max_gap_s=4 * 3600.0,
    split=(0.5, 0.2, 0.3),
    time_features="none",
)


def _subset(readings: Readings, patients: int, seed: int) -> Readings:
    """Return the readings of a seeded random subset of ``patients`` patients."""
    ids = readings.frame[PATIENT_COLUMN].unique()
    keep = set(np.random.default_rng(seed).choice(ids, size=min(patients, ids.size), replace=False))
    rows = readings.frame[PATIENT_COLUMN].isin(keep).to_numpy()
    return dataclasses.replace(
        readings,
        frame=readings.frame[rows].reset_index(drop=True),
        static=readings.static[readings.static.index.isin(keep)],
        context=None,
    )


def _with_ci(y: np.ndarray, s: np.ndarray, groups: np.ndarray, n_boot: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fn in (("roc_auc", metrics.roc_auc), ("pr_auc", metrics.pr_auc)):
        low, high = metrics.bootstrap_interval(fn, y, s, groups=groups, n_boot=n_boot)
        out[name] = {"value": float(fn(y, s)), "ci95": [low, high]}
    return out


def run(patients: int, epochs: int, n_boot: int, seed: int) -> dict[str, Any]:
    """Prepare, train, fit and score a subset; metrics per method on the test hours."""
    start = time.perf_counter()
    readings = _subset(read_physionet2019(SET_A), patients, seed)
    prepared = prepare(readings, dataclasses.replace(DATA, seed=seed), WINDOW)
    scored, summary = fit_and_score_detector(
        prepared, latent_dim=16, batch_size=256, epochs=epochs, seed=seed
    )
    test = prepared.split_part(2)
    normal = prepared.select((prepared.split == 0) & (prepared.labels == 0))
    names = prepared.feature_names
    scores = {
        "detector": scored.anomaly_score,
        "news2": news2_at_windows(readings.frame, test.patient, test.end_s),
        "raw_summary_iforest": raw_iforest_scores(
            window_summary_features(normal.windows, names)[0],
            window_summary_features(test.windows, names)[0],
            seed,
        ),
    }
    rows = (test.labels >= 0) & np.all([np.isfinite(s) for s in scores.values()], axis=0)
    y, groups = test.labels[rows], test.patient[rows]
    test_hours = int((readings.frame[PATIENT_COLUMN].isin(set(test.patient))).sum())
    return {
        "methods": {k: _with_ci(y, v[rows], groups, n_boot) for k, v in scores.items()},
        "patients": patients,
        "test_patients": int(np.unique(groups).size),
        "test_hours_scored": int(rows.sum()),
        "test_hours_septic": int(y.sum()),
        "test_hour_coverage": int(rows.sum()) / max(test_hours, 1),
        "views": summary["views"],
        "combine": summary["combine"],
        "fold_fpr": summary["fold_fpr"],
        "seconds": time.perf_counter() - start,
    }


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--patients", type=int, default=None, help="patients in the subset")
    parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    """Run and write one record per method (PR-AUC, ROC-AUC beside NEWS2)."""
    args = parse_args(__doc__.splitlines()[0], _extra)
    if not SET_A.is_file():  # the shared datasets folder is not there (e.g. a clean clone)
        print(f"skipped: {SET_A} not found", file=sys.stderr)
        emit([], args.out)
        return
    patients = args.patients or (800 if args.quick else 4000)
    result = run(patients, 3 if args.quick else 10, 200 if args.quick else 500, args.seed)
    settings = {
        "data": DATA.to_dict(),
        "window": WINDOW.to_dict(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
        **{k: v for k, v in result.items() if k != "methods"},
    }
    news2 = result["methods"]["news2"]
    records = [
        record(
            f"physionet2019.{method}.{metric}",
            m[metric]["value"],
            metric,
            baseline="news2",
            baseline_value=news2[metric]["value"],
            settings={**settings, "ci95": m[metric]["ci95"], "news2_ci95": news2[metric]["ci95"]},
        )
        for method, m in result["methods"].items()
        for metric in ("roc_auc", "pr_auc")
    ]
    emit(records, args.out)


if __name__ == "__main__":
    main()
