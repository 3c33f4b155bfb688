"""Stress suite: the detector against every unsupervised baseline with the simulator's knobs turned.

Each cell simulates a cohort with one knob changed (noise, artefact rate, sampling rates,
between-patient spread, event size and length, slow drift or sudden change only, fewer
training patients), prepares it with the same generic settings, trains a small
autoencoder, fits the multi-view detector (``fit_detector``, defaults) and scores the held-out
test patients with the detector and four baselines fitted on the same normal training
windows: IsolationForest on raw window summaries, NEWS2 at the window end, reconstruction
error alone and 1-nearest-neighbour distance on the raw windows. PR-AUC and ROC-AUC come
with 95% patient-bootstrap intervals; every method is scored on the same windows (those
where NEWS2 has every input). Nothing is tuned per cell.

Usage: ``python benchmarks/bench_robustness.py [--quick] [--out FILE] [--markdown FILE]
[--cells a,b]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, parse_args, record
from vitalsentry.config import DataConfig, DetectorConfig, ModelConfig, TrainConfig, WindowConfig
from vitalsentry.data.prepared import PreparedData, prepare
from vitalsentry.data.readings import Readings, validate_frame
from vitalsentry.data.schema import is_time_feature
from vitalsentry.data.simulate import SimulationConfig, simulate_cohort
from vitalsentry.evaluation import metrics
from vitalsentry.evaluation.baselines import (
    news2_at_windows,
    raw_iforest_scores,
    window_summary_features,
)
from vitalsentry.pipeline import VitalRiskPipeline, fit_detector
from vitalsentry.risk.views import KNNDistance
from vitalsentry.training.pretrain import pretrain

CHANNELS = ("heart_rate", "spo2", "respiratory_rate", "temperature", "systolic_bp")
SUDDEN = ("hypoxaemia", "tachyarrhythmia", "bradyarrhythmia")
METHODS = ("detector", "raw_summary_iforest", "news2", "recon_error", "nn1_raw_windows")


@dataclass(frozen=True)
class Cell:
    """One stress setting: simulator overrides, training patients kept, shortest record.

    ``min_hours`` lengthens the records where an event type needs it (a sepsis-like drift
    rises over 1–3 h, so it only fits records of several hours).
    """

    name: str
    knobs: dict[str, Any] = field(default_factory=dict)
    train_keep: float = 1.0
    min_hours: float = 0.0


CELLS = (
    Cell("default"),
    Cell("noise_x3", {"noise_scale": 3.0}),
    Cell(
        "artefacts_x4",
        {
            "hr_artefacts_per_h": 4.0,
            "spo2_artefacts_per_h": 2.0,
            "activity_per_h": 2.4,
            "dropouts_per_h": 2.0,
        },
    ),
    Cell("sparse_sampling", {"hr_every_s": 5, "spo2_every_s": 300, "rr_every_s": 300}),
    Cell("patient_spread_x2", {"patient_spread": 2.0}),
    Cell("events_half_size", {"event_scale": 0.5}),
    Cell("events_half_length", {"event_duration_scale": 0.5}),
    Cell("slow_drift_only", {"event_types": ("sepsis_drift",)}, min_hours=10.0),
    Cell("sudden_only", {"event_types": SUDDEN}),
    Cell("train_patients_half", train_keep=0.5),
)


@dataclass(frozen=True)
class Scale:
    """Cohort and training size of a run."""

    patients: int
    hours: float
    epochs: int
    n_boot: int


QUICK = Scale(patients=20, hours=3.0, epochs=4, n_boot=200)
FULL = Scale(patients=40, hours=6.0, epochs=15, n_boot=500)
DATA: dict[str, Any] = dict(
    channels=CHANNELS, step_s=10.0, max_gap_s=1800.0, split=(0.45, 0.15, 0.4)
)
WINDOW = WindowConfig(length=64, stride=16)


def _cohort(cell: Cell, scale: Scale, seed: int) -> tuple[Readings, PreparedData]:
    """Simulate and prepare a cell's cohort; drop training patients as the cell asks."""
    hours = max(scale.hours, cell.min_hours)
    config = SimulationConfig(patients=scale.patients, hours=hours, seed=seed, **cell.knobs)
    frame, events = simulate_cohort(config)
    static = frame.groupby("patient_id")[["age", "sex", "bmi"]].first()
    frame = frame.drop(columns=["age", "sex", "bmi"])
    readings = Readings(
        validate_frame(frame, cell.name), static, "tidy", False, cell.name, events=events
    )
    prepared = prepare(readings, DataConfig(**DATA, seed=seed), WINDOW)
    if cell.train_keep < 1.0:
        train = np.unique(prepared.patient[prepared.split == 0])
        dropped = train[round(cell.train_keep * train.size) :]
        prepared = prepared.select(~np.isin(prepared.patient, dropped))
    return readings, prepared


def _vitals(windows: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Flattened vital channels of the windows, (N, V * L)."""
    keep = [i for i, n in enumerate(names) if not is_time_feature(n)]
    return windows[:, keep, :].reshape(len(windows), -1)


def _scores(
    readings: Readings, prepared: PreparedData, folder: Path, scale: Scale, seed: int
) -> tuple[dict[str, np.ndarray], PreparedData, dict[str, Any]]:
    """Every method's test-window scores, the test windows, and the detector's summary."""
    model = ModelConfig(
        input_channels=prepared.windows.shape[1],
        seq_len=WINDOW.length,
        lstm_hidden=32,
        latent_dim=16,
    )
    train = TrainConfig(max_epochs=scale.epochs, batch_size=64, seed=seed)
    pretrain(prepared, model, train, folder / "ae", accelerator="cpu", progress=False)
    summary = fit_detector(
        folder / "ae", prepared, folder / "det", DetectorConfig(random_state=seed)
    )
    pipe = VitalRiskPipeline.from_bundle(folder / "det")
    test = prepared.split_part(2)
    normal = prepared.select((prepared.split == 0) & (prepared.labels == 0))
    names = prepared.feature_names
    scored = pipe.score_windows(test.windows, where=(test.patient, test.start_s))
    summary["test_fpr"] = float(
        np.mean(scored.anomaly_score[test.labels == 0] > pipe.calibration.threshold_high)
    )
    out = {
        "detector": scored.anomaly_score,
        "raw_summary_iforest": raw_iforest_scores(
            window_summary_features(normal.windows, names)[0],
            window_summary_features(test.windows, names)[0],
            seed,
        ),
        "news2": news2_at_windows(readings.frame, test.patient, test.end_s),
        "recon_error": scored.recon_error,
        "nn1_raw_windows": KNNDistance(n_neighbors=1, random_state=seed)
        .fit(_vitals(normal.windows, names))
        .score_samples(_vitals(test.windows, names)),
    }
    return out, test, summary


def _metric(
    name: str, y: np.ndarray, s: np.ndarray, groups: np.ndarray, n_boot: int
) -> dict[str, Any]:
    """Return a metric and its 95% patient-bootstrap interval (None and why when impossible)."""
    fn = metrics.pr_auc if name == "pr_auc" else metrics.roc_auc
    try:
        low, high = metrics.bootstrap_interval(fn, y, s, groups=groups, n_boot=n_boot)
    except metrics.NotComputableError as exc:
        return {"value": None, "ci95": None, "reason": str(exc)}
    return {"value": float(fn(y, s)), "ci95": [low, high]}


def run_cell(cell: Cell, scale: Scale, seed: int) -> dict[str, Any]:
    """Score one cell; returns the per-method metrics and the detector's summary."""
    start = time.perf_counter()
    readings, prepared = _cohort(cell, scale, seed)
    with tempfile.TemporaryDirectory() as tmp:
        scores, test, summary = _scores(readings, prepared, Path(tmp), scale, seed)
    rows = (test.labels >= 0) & np.all([np.isfinite(s) for s in scores.values()], axis=0)
    y, groups = test.labels[rows], test.patient[rows]
    result = {
        method: {m: _metric(m, y, s[rows], groups, scale.n_boot) for m in ("pr_auc", "roc_auc")}
        for method, s in scores.items()
    }
    return {
        "methods": result,
        "windows": int(rows.sum()),
        "abnormal": int(y.sum()),
        "test_patients": int(np.unique(groups).size),
        "train_patients": int(np.unique(prepared.patient[prepared.split == 0]).size),
        "views": summary["views"],
        "combine": summary["combine"],
        "fold_fpr": summary["fold_fpr"],
        "test_fpr": summary["test_fpr"],
        "seconds": time.perf_counter() - start,
    }


def _records(name: str, cell: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per method: its PR-AUC against the best baseline of the cell."""
    pr = {m: cell["methods"][m]["pr_auc"]["value"] for m in METHODS}
    baselines = {m: v for m, v in pr.items() if m != "detector" and v is not None}
    best = max(baselines, key=lambda m: baselines[m]) if baselines else None
    out = []
    for method in METHODS:
        if pr[method] is None:
            continue
        out.append(
            record(
                f"robustness.{name}.{method}.pr_auc",
                pr[method],
                "PR-AUC",
                baseline=None if best is None else f"{best} (best baseline)",
                baseline_value=None if best is None else baselines[best],
                settings={
                    **settings,
                    "cell": name,
                    **cell["methods"][method],
                    **(
                        {
                            k: cell[k]
                            for k in (
                                "windows",
                                "abnormal",
                                "test_patients",
                                "train_patients",
                                "views",
                                "combine",
                                "test_fpr",
                                "fold_fpr",
                            )
                        }
                        if method == "detector"
                        else {}
                    ),
                },
            )
        )
    return out


def markdown(results: dict[str, dict[str, Any]], settings: dict[str, Any]) -> str:
    """Return a Markdown table of every cell: PR-AUC [95% CI] per method, the winner marked."""
    head = (
        "| cell | "
        + " | ".join(METHODS)
        + " | detector ≥ best baseline | views | test FPR | folds > 3% |"
    )
    lines = [
        f"Settings: {settings}",
        "",
        head,
        "|" + "---|" * (len(METHODS) + 5),
    ]
    for name, cell in results.items():
        pr = {m: cell["methods"][m]["pr_auc"] for m in METHODS}
        cells = [
            "n/a"
            if p["value"] is None
            else f"{p['value']:.3f} [{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}]"
            for p in pr.values()
        ]
        base = [p["value"] for m, p in pr.items() if m != "detector" and p["value"] is not None]
        wins = pr["detector"]["value"] is not None and pr["detector"]["value"] >= max(
            base, default=0.0
        )
        folds = cell["fold_fpr"]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {'yes' if wins else 'no'} | "
            f"{'+'.join(cell['views'])} ({cell['combine']}) | {cell['test_fpr']:.1%} | "
            f"{folds['exceeded']}/{folds['folds']} |"
        )
    return "\n".join(lines) + "\n"


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", type=Path, default=None, help="write a Markdown table here")
    parser.add_argument("--cells", default="", help="comma-separated cell names (default: all)")
    parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    """Run the grid and write the records (and the Markdown table)."""
    args = parse_args(__doc__.splitlines()[0], _extra)
    scale = QUICK if args.quick else FULL
    chosen = [c for c in CELLS if not args.cells or c.name in args.cells.split(",")]
    settings = {
        "patients": scale.patients,
        "hours": scale.hours,
        "epochs": scale.epochs,
        "seed": args.seed,
        "data": {k: list(v) if isinstance(v, tuple) else v for k, v in DATA.items()},
        "window": WINDOW.to_dict(),
        "model": "Conv1d+LSTM, hidden 32, latent 16",
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    results = {cell.name: run_cell(cell, scale, args.seed) for cell in chosen}
    records = [r for name, cell in results.items() for r in _records(name, cell, settings)]
    if args.markdown is not None:
        args.markdown.write_text(markdown(results, settings))
    emit(records, args.out)


if __name__ == "__main__":
    main()
