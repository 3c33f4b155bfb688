"""Single long recordings: one injected anomaly, a time-based split, window and event metrics.

For each real heart-rate series of ``heart_rate.csv`` (T1–T4, one reading per second,
no labels) and one simulated normal patient, the simulator injects one labelled event
(:func:`~vitalsentry.data.simulate.inject_event`, a tachyarrhythmia at a tenth of its
usual length, HR only; at its full size and at 0.3 of it) at a seeded point of the series' last 30%. The series is
prepared with ``split_by="time"`` (train / validation / test blocks of 50/20/30%, one
window apart), a small autoencoder is trained on the training block, the multi-view
detector is fitted (defaults; the validation block has no positive, so the views are
combined by their mean) and the test block is scored. Reported per series, for the
detector and the 1-NN-on-raw-windows and raw-summary IsolationForest baselines:

- ``top1_hit``: the top-scored test window overlaps the labelled anomaly (the target);
- ``event_detected``: some window above the calibrated threshold overlaps it;
- ``point_adjusted_f1``: per-point flags (a point is flagged when a window ending at it
  scores above the threshold), every point of the event counted detected once one is;
- ``false_windows``: test windows above the threshold that do not overlap the event.

Baselines have no calibrated threshold, so they are given the top-1 criterion only.

Usage: ``python benchmarks/bench_single_series.py [--quick] [--out FILE] [--markdown FILE]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, fit_and_score_detector, parse_args, record
from vitalsentry.config import DataConfig, WindowConfig
from vitalsentry.data.prepared import PreparedData, prepare
from vitalsentry.data.readings import Readings, validate_frame
from vitalsentry.data.simulate import SimulationConfig, inject_event, simulate_cohort
from vitalsentry.evaluation.baselines import raw_iforest_scores, window_summary_features
from vitalsentry.risk.views import KNNDistance

HEART_RATE_CSV = Path(__file__).resolve().parents[1] / "../shared/datasets/raw/heart_rate.csv"
WINDOW = WindowConfig(length=64, stride=4)
DATA = DataConfig(channels=("heart_rate",), split_by="time", split=(0.5, 0.2, 0.3))
START = pd.Timestamp("2024-01-01T00:00:00Z")
SIZES = (1.0, 0.3)
"""Event sizes: the simulator's own (HR 130–170 /min) and 0.3 of its distance from 75 /min."""


def _series(seed: int) -> dict[str, np.ndarray]:
    """Return the real series (those present) and one simulated normal patient's HR, 1 Hz."""
    out: dict[str, np.ndarray] = {}
    if HEART_RATE_CSV.is_file():
        raw = pd.read_csv(HEART_RATE_CSV)
        for column in raw.columns:
            values = raw[column].dropna().to_numpy(np.float64)
            out[f"heart_rate.csv:{column}"] = values
    frame, _ = simulate_cohort(
        SimulationConfig(
            patients=1, hours=1.0, seed=seed, event_fraction=0.0, hr_artefacts_per_h=0.0
        )
    )
    out["simulated"] = frame["heart_rate"].dropna().to_numpy(np.float64)[:3600]
    return out


def _inject(values: np.ndarray, size: float, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Copy of ``values`` with one event in its last 30%; the labels and the event's onset."""
    rng = np.random.default_rng(seed)
    hr = values.copy()
    n = hr.size
    test_start = int(0.7 * n) + WINDOW.length
    for _ in range(50):
        start = int(rng.integers(test_start, n - WINDOW.length))
        try:
            label = inject_event(
                {"heart_rate": hr}, "tachyarrhythmia", start, rng, scale=size, duration_scale=0.1
            )
        except Exception:  # the drawn event does not fit before the end: draw again
            hr = values.copy()
            continue
        return hr, label, start
    raise RuntimeError("no injection fits the series")


def _prepared(name: str, hr: np.ndarray, label: np.ndarray) -> PreparedData:
    frame = pd.DataFrame(
        {
            "patient_id": name,
            "timestamp": START + pd.to_timedelta(np.arange(hr.size), unit="s"),
            "heart_rate": hr,
            "label": label.astype(np.int8),
        }
    )
    readings = Readings(validate_frame(frame, name), pd.DataFrame(), "tidy", False, name)
    return prepare(readings, DATA, WINDOW)


def _metrics(
    score: np.ndarray, threshold: float | None, test: PreparedData, label: np.ndarray
) -> dict[str, Any]:
    """Top-1, event and point-adjusted metrics of window scores on the test block."""
    start = np.rint(test.start_s - START.timestamp()).astype(int)  # 1 s steps from point 0
    event = np.flatnonzero(label)
    overlaps = (start <= event.max()) & (start + WINDOW.length - 1 >= event.min())
    out: dict[str, Any] = {"top1_hit": bool(overlaps[int(np.argmax(score))])}
    if threshold is None:
        return out
    above = score > threshold
    first, last = int(start.min()), int(start.max()) + WINDOW.length
    points = np.zeros(last - first, dtype=bool)
    points[start[above] + WINDOW.length - 1 - first] = True
    truth = label[first:last]
    if (points & truth).any():
        points[truth] = True  # point adjustment: the whole event counts once one point is hit
    tp, fp, fn = (
        int((points & truth).sum()),
        int((points & ~truth).sum()),
        int((~points & truth).sum()),
    )
    out["event_detected"] = bool((above & overlaps).any())
    out["point_adjusted_f1"] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    out["false_windows"] = int((above & ~overlaps).sum())
    out["test_windows"] = int(above.size)
    return out


def run_series(
    name: str, values: np.ndarray, size: float, epochs: int, seed: int
) -> dict[str, Any]:
    """Inject an event of ``size`` (``event_scale``), prepare, train, fit and score a series."""
    hr, label, onset = _inject(values, size, seed)
    prepared = _prepared(name, hr, label)
    train_normal = prepared.select((prepared.split == 0) & (prepared.labels == 0))
    test = prepared.split_part(2)
    scored, summary = fit_and_score_detector(
        prepared, latent_dim=8, batch_size=64, epochs=epochs, seed=seed
    )
    names = prepared.feature_names

    def flat(p: PreparedData) -> np.ndarray:
        return p.windows[:, :1, :].reshape(len(p), -1)

    baselines = {
        "nn1_raw_windows": KNNDistance(n_neighbors=1, random_state=seed)
        .fit(flat(train_normal))
        .score_samples(flat(test)),
        "raw_summary_iforest": raw_iforest_scores(
            window_summary_features(train_normal.windows, names)[0],
            window_summary_features(test.windows, names)[0],
            seed,
        ),
    }
    result = {
        "points": int(hr.size),
        "anomaly_points": [int(np.flatnonzero(label).min()), int(np.flatnonzero(label).max())],
        "onset": onset,
        "views": summary["views"],
        "combine": summary["combine"],
        "detector": _metrics(scored.anomaly_score, summary["threshold_high"], test, label),
    }
    result.update({k: _metrics(v, None, test, label) for k, v in baselines.items()})
    return result


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """Return a Markdown table of every series."""
    lines = [
        "| series | points | anomaly | detector top-1 | event detected | PA-F1 | false windows | 1-NN top-1 | raw IF top-1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        d = r["detector"]
        lines.append(
            f"| {name} | {r['points']} | {r['anomaly_points'][0]}–{r['anomaly_points'][1]} | "
            f"{d['top1_hit']} | {d['event_detected']} | {d['point_adjusted_f1']:.2f} | "
            f"{d['false_windows']}/{d['test_windows']} | {r['nn1_raw_windows']['top1_hit']} | "
            f"{r['raw_summary_iforest']['top1_hit']} |"
        )
    return "\n".join(lines) + "\n"


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", type=Path, default=None, help="write a Markdown table here")
    parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    """Run every series and write the records."""
    args = parse_args(__doc__.splitlines()[0], _extra)
    epochs = 5 if args.quick else 20
    results = {
        f"{name} (event size {size:g})": run_series(name, values, size, epochs, args.seed + i)
        for i, (name, values) in enumerate(_series(args.seed).items())
        for size in SIZES
    }
    settings = {
        "window": WINDOW.to_dict(),
        "data": DATA.to_dict(),
        "epochs": epochs,
        "seed": args.seed,
    }
    records = []
    for name, r in results.items():
        hits = {
            k: float(r[k]["top1_hit"])
            for k in ("detector", "nn1_raw_windows", "raw_summary_iforest")
        }
        records.append(
            record(
                f"single_series.{name}.top1_hit",
                hits["detector"],
                "hit (1/0)",
                baseline="nn1_raw_windows",
                baseline_value=hits["nn1_raw_windows"],
                settings={**settings, **r},
            )
        )
    if args.markdown is not None:
        args.markdown.write_text(markdown(results))
    emit(records, args.out)


if __name__ == "__main__":
    main()
