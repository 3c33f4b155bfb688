"""Report figures, one PNG each, written atomically.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas attached
here, never through ``pyplot``: no global figure state, no interactive backend, safe in
threads and in the service. Every function returns the path written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import precision_recall_curve, roc_curve

from vitalsentry.data.schema import CHANNELS, is_input_only
from vitalsentry.errors import DataError
from vitalsentry.evaluation.metrics import ranking_metrics
from vitalsentry.io import atomic_path

FloatArray = NDArray[np.float64]
PathLike = str | os.PathLike[str]

DPI: Final = 100
MAX_POINTS: Final = 5000
"""Most points drawn in a scatter plot (a seeded subsample beyond that)."""

_CLASS_STYLE: Final = {0: ("normal", "tab:blue"), 1: ("abnormal", "tab:red")}


def _figure(width: float, height: float) -> Figure:
    """Return a new figure with the Agg canvas attached."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out: PathLike) -> Path:
    """Write ``fig`` as a PNG atomically and return the path."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return Path(out)


def _message(fig: Figure, text: str) -> None:
    """Fill a figure with a single centred message."""
    fig.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=12)


def _labels(y_true: ArrayLike, n: int | None = None) -> NDArray[np.int8]:
    y = np.asarray(y_true)
    if y.ndim != 1 or (n is not None and y.size != n) or not np.isin(y, (0, 1)).all():
        raise DataError(
            f"expected 1-D 0/1 labels of length {n}, got shape {y.shape}", column="y_true"
        )
    return y.astype(np.int8)


def _label(name: str) -> str:
    """Human-readable name of a channel or feature."""
    return CHANNELS[name].label if name in CHANNELS else name.replace("_", " ")


def plot_roc_pr(y_true: ArrayLike, curves: Mapping[str, ArrayLike], out: PathLike) -> Path:
    """ROC and precision–recall curves side by side, one line per scorer.

    Parameters
    ----------
    y_true : array_like of {0, 1}, shape (n,)
        Labels, 1 = abnormal.
    curves : mapping of str to array_like, each shape (n,)
        Scorer name → scores (higher = more abnormal), e.g. the detector and the
        baselines. A scorer whose AUC is not computable (NaN scores, a single class) is
        listed as "n/a" in the legend without a line.
    out : path-like
        PNG to write.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    y = _labels(y_true)
    fig = _figure(11.0, 4.8)
    ax_roc, ax_pr = fig.subplots(1, 2)
    for name, raw in curves.items():
        scores = np.asarray(raw, dtype=np.float64)
        if scores.shape != y.shape:
            raise DataError(f"scores of {name!r} have shape {scores.shape}, expected {y.shape}")
        auc = ranking_metrics(y, scores)
        if auc["roc_auc"] is None or auc["pr_auc"] is None:
            ax_roc.plot([], [], label=f"{name} (n/a)")
            ax_pr.plot([], [], label=f"{name} (n/a)")
            continue
        fpr, tpr, _ = roc_curve(y, scores)
        precision, recall, _ = precision_recall_curve(y, scores)
        ax_roc.plot(fpr, tpr, label=f"{name} (AUC {auc['roc_auc']:.3f})")
        ax_pr.step(recall, precision, where="post", label=f"{name} (AP {auc['pr_auc']:.3f})")
    ax_roc.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax_roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    if y.size:
        ax_pr.axhline(float(y.mean()), color="grey", linestyle=":", label="chance (prevalence)")
    ax_pr.set(xlabel="recall", ylabel="precision", title="Precision–recall")
    for ax in (ax_roc, ax_pr):
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower right" if ax is ax_roc else "lower left", fontsize=8)
    return _save(fig, out)


def plot_score_distributions(
    scores: ArrayLike, y_true: ArrayLike, threshold: float | None, out: PathLike
) -> Path:
    """Histograms of the scores of each class, with the decision threshold.

    Parameters
    ----------
    scores : array_like of float, shape (n,)
        Scores (NaN values are left out).
    y_true : array_like of {0, 1}, shape (n,)
        Labels.
    threshold : float or None
        Drawn as a vertical line when given.
    out : path-like
        PNG to write.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = _labels(y_true, s.size)
    keep = np.isfinite(s)
    fig = _figure(7.0, 4.2)
    ax = fig.subplots()
    if not keep.any():
        _message(fig, "No finite scores to show.")
        return _save(fig, out)
    bins = np.histogram_bin_edges(s[keep], bins=40).tolist()
    for cls, (name, color) in _CLASS_STYLE.items():
        values = s[keep & (y == cls)]
        if values.size:
            ax.hist(
                values,
                bins=bins,
                density=True,
                alpha=0.55,
                color=color,
                label=f"{name} (n={values.size})",
            )
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set(
        xlabel="score (higher = more abnormal)",
        ylabel="density",
        title="Score distribution per class",
    )
    ax.legend(fontsize=8)
    return _save(fig, out)


def plot_embedding_pca(emb: ArrayLike, y_true: ArrayLike, out: PathLike, *, seed: int = 0) -> Path:
    """2-D PCA of embeddings, coloured by class.

    Parameters
    ----------
    emb : array_like, shape (n, d)
        Embeddings (d ≥ 2, n ≥ 2).
    y_true : array_like of {0, 1}, shape (n,)
        Labels.
    out : path-like
        PNG to write.
    seed : int, default 0
        Seed of the subsample drawn when n exceeds :data:`MAX_POINTS` (the PCA is
        fitted on all points).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    DataError
        Not a finite (n, d) array with n ≥ 2 and d ≥ 2, or labels of another length.
    """
    e = np.asarray(emb, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] < 2 or e.shape[1] < 2 or not np.isfinite(e).all():
        raise DataError(
            f"expected finite embeddings (n ≥ 2, d ≥ 2), got shape {e.shape}", column="emb"
        )
    y = _labels(y_true, e.shape[0])
    centred = e - e.mean(axis=0)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    total = float((sing**2).sum())
    share = (sing[:2] ** 2 / total) if total > 0 else np.zeros(2)
    shown = np.arange(e.shape[0])
    if shown.size > MAX_POINTS:
        shown = np.sort(np.random.default_rng(seed).choice(shown, MAX_POINTS, replace=False))
    fig = _figure(6.0, 5.0)
    ax = fig.subplots()
    for cls, (name, color) in _CLASS_STYLE.items():
        idx = shown[y[shown] == cls]
        ax.scatter(
            coords[idx, 0],
            coords[idx, 1],
            s=6,
            alpha=0.5,
            color=color,
            label=f"{name} (n={int((y == cls).sum())})",
        )
    ax.set(
        xlabel=f"PC1 ({share[0]:.0%} of variance)",
        ylabel=f"PC2 ({share[1]:.0%})",
        title="Embeddings, 2-D PCA",
    )
    ax.legend(fontsize=8, markerscale=3)
    return _save(fig, out)


def plot_training_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], out: PathLike) -> Path:
    """Training and validation loss per epoch, one panel per stage.

    Parameters
    ----------
    curves : mapping of str to sequence of mapping
        Stage name (e.g. ``"pretrain"``, ``"finetune"``) → records
        ``{"epoch", "train_loss", "val_loss"}``; a missing or None loss is not drawn.
    out : path-like
        PNG to write.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    stages = [(name, list(records)) for name, records in curves.items() if records]
    fig = _figure(5.0 * max(len(stages), 1), 4.0)
    if not stages:
        _message(fig, "No training history recorded.")
        return _save(fig, out)
    axes = np.atleast_1d(fig.subplots(1, len(stages)))
    for ax, (name, records) in zip(axes, stages, strict=True):
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
            if points:
                epochs, losses = zip(*points, strict=True)
                ax.plot(epochs, losses, style, marker=".", label=key.replace("_", " "))
        ax.set(xlabel="epoch", ylabel="loss", title=name)
        ax.legend(fontsize=8)
    return _save(fig, out)


def plot_before_after(rows: Sequence[Mapping[str, Any]], out: PathLike) -> Path:
    """Draw the seed's metric table as bars: before, target and achieved per metric.

    One small panel per metric, each on its own scale (a ratio near 2 and a rate near
    0.03 do not share an axis).

    Parameters
    ----------
    rows : sequence of mapping
        Rows with ``metric`` (display name), ``before``, ``target`` and ``achieved``
        (None = not computable: no bar, annotated "n/a"), and optionally
        ``direction`` (``">"`` or ``"<"``), e.g. from
        :func:`vitalsentry.evaluation.report.seed_table_rows`.
    out : path-like
        PNG to write.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    n_cols = min(max(len(rows), 1), 4)
    n_rows = max(-(-len(rows) // n_cols), 1)
    fig = _figure(3.0 * n_cols, 2.8 * n_rows + 0.6)
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    series = (
        ("before", "tab:grey", "before (seed)"),
        ("target", "tab:orange", "target"),
        ("achieved", "tab:green", "achieved"),
    )
    for ax, row in zip(axes, rows, strict=False):
        for k, (key, color, _) in enumerate(series):
            value = row[key]
            if value is None:
                ax.annotate(
                    "n/a",
                    (k, 0),
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
                continue
            ax.bar(k, float(value), 0.7, color=color)
            ax.annotate(
                f"{float(value):.3g}",
                (k, float(value)),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 2),
                textcoords="offset points",
            )
        ax.set_xticks(range(len(series)), ["before", "target", "achieved"], fontsize=8)
        direction = row.get("direction", "")
        ax.set_title(
            f"{row['metric']} ({direction} target)" if direction else row["metric"], fontsize=9
        )
        ax.set_xlim(-0.6, len(series) - 0.4)
        ax.margins(y=0.2)
    for ax in axes[len(rows) :]:
        ax.set_axis_off()
    fig.suptitle("Seed metrics: before (seed), target and achieved")
    return _save(fig, out)


def plot_attention(
    windows: ArrayLike,
    weights: ArrayLike | None,
    feature_names: Sequence[str],
    out: PathLike,
) -> Path:
    """Vitals of a few windows with the attention weights over time overlaid.

    Parameters
    ----------
    windows : array_like, shape (k, C, L)
        Windows (unscaled, so the vitals read in their units).
    weights : array_like, shape (k, T) or None
        Attention weight of each of the ``T`` encoder steps (``T = L / 4`` for the
        seed's two stride-2 convolutions); each covers ``L / T`` window steps. None
        (pooling "last"): the figure says attention pooling was not used.
    feature_names : sequence of str, length C
        Channel names; time features are not drawn.
    out : path-like
        PNG to write.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    DataError
        Shapes that do not match.
    """
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != len(feature_names):
        raise DataError(
            f"expected windows (k, {len(feature_names)}, L), got {x.shape}", column="windows"
        )
    if weights is None:
        fig = _figure(7.0, 2.5)
        _message(
            fig,
            "Attention pooling was not used (pooling = 'last'): the encoder has no "
            "attention weights to show.",
        )
        return _save(fig, out)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != x.shape[0] or w.shape[1] < 1:
        raise DataError(f"expected weights ({x.shape[0]}, T), got {w.shape}", column="weights")
    length = x.shape[2]
    step = length / w.shape[1]
    vitals = [i for i, n in enumerate(feature_names) if not is_input_only(n)]
    fig = _figure(9.0, 2.2 * max(x.shape[0], 1) + 0.5)
    axes = np.atleast_1d(fig.subplots(max(x.shape[0], 1), 1, sharex=True))
    for row, ax in enumerate(axes[: x.shape[0]]):
        for c in vitals:
            ax.plot(np.arange(length), x[row, c], label=_label(feature_names[c]))
        twin: Axes = ax.twinx()
        edges = np.arange(w.shape[1] + 1) * step
        twin.stairs(w[row], edges, fill=True, alpha=0.25, color="tab:purple", label="attention")
        twin.set_ylabel("attention", color="tab:purple")
        ax.set_ylabel(f"window {row + 1}")
        if row == 0:
            ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("step in window")
    fig.suptitle("Attention weights over a few windows")
    return _save(fig, out)


def _runs(flags: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(first, last) index of each run of True values."""
    padded = np.r_[False, flags, False].astype(np.int8)
    change = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(change[::2], change[1::2], strict=True)]


_SPARSE_SHARE: Final = 0.5
"""A channel measured at fewer than this share of the timeline's times is drawn as points."""
_MARKED_POINTS: Final = 2000
"""Most readings of a sparse channel drawn with a marker each (more: steps only)."""


def _draw_vital(ax: Axes, x: FloatArray, values: FloatArray) -> None:
    """Draw one channel: a line broken at gaps, or, when sparse, its readings held as steps."""
    measured = ~np.isnan(values)
    if measured.mean() >= _SPARSE_SHARE:
        ax.plot(x, values, linewidth=0.8)
        return
    xs, vs = x[measured], values[measured]
    (line,) = ax.step(xs, vs, where="post", linewidth=0.8, alpha=0.6)
    if xs.size <= _MARKED_POINTS:
        ax.plot(xs, vs, ".", markersize=3, color=line.get_color())


def plot_patient_timeline(
    time_s: ArrayLike,
    vitals: Mapping[str, ArrayLike],
    window_end_s: ArrayLike,
    risk: ArrayLike,
    risk_std: ArrayLike | None,
    alarm: ArrayLike,
    events: Sequence[tuple[float, float]],
    out: PathLike,
) -> Path:
    """One patient's vitals with risk, uncertainty band, alarms and labelled events.

    Parameters
    ----------
    time_s : array_like of float, shape (T,)
        Epoch seconds of the vital readings (or grid steps).
    vitals : mapping of str to array_like, each shape (T,)
        Channel → values (NaN = not measured at that time); one panel per channel with at
        least one value. A channel measured at under half of the times (e.g. blood
        pressure every 30 min among 1 Hz heart rate) is drawn as its readings, held as
        steps until the next one; the others as a line broken at missing values.
    window_end_s : array_like of float, shape (N,)
        Epoch seconds of each window's end.
    risk : array_like of float, shape (N,)
        Risk (0–1) of each window.
    risk_std : array_like of float, shape (N,) or None
        Standard deviation of the risk (Monte Carlo dropout), drawn as ±1 std.
    alarm : array_like of bool, shape (N,)
        Whether the alarm is on after each window (shaded).
    events : sequence of (onset_s, end_s)
        Labelled deterioration events (shaded on every panel).
    out : path-like
        PNG to write.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    DataError
        Arrays whose lengths do not match.
    """
    t, series = _timeline_vitals(time_s, vitals)
    ends, r, std, on = _timeline_risk(window_end_s, risk, risk_std, alarm)
    origin = float(np.nanmin(np.r_[t, ends])) if t.size + ends.size else 0.0
    fig, axes = _timeline_axes(len(series))
    ax_risk = axes[-1]
    for ax, (name, values) in zip(axes[:-1], series.items(), strict=True):
        _draw_vital_panel(ax, _hours(t, origin), name, values)
    _draw_risk(ax_risk, _hours(ends, origin), r, std)
    _shade_alarms(ax_risk, ends, on, origin)
    _shade_events(axes, events, origin)
    ax_risk.set(ylim=(0, 1), ylabel="risk", xlabel="hours since start")
    ax_risk.legend(fontsize=7, loc="upper left")
    fig.suptitle("Patient timeline: vitals, risk and alarms")
    return _save(fig, out)


def _timeline_vitals(
    time_s: ArrayLike, vitals: Mapping[str, ArrayLike]
) -> tuple[FloatArray, dict[str, FloatArray]]:
    """Return the times and the channels with a value, each checked to have their shape."""
    t = np.asarray(time_s, dtype=np.float64)
    series = {name: np.asarray(v, dtype=np.float64) for name, v in vitals.items()}
    if any(v.shape != t.shape for v in series.values()):
        raise DataError(f"every vital must have the shape of time_s {t.shape}", column="vitals")
    return t, {name: v for name, v in series.items() if not np.isnan(v).all()}


def _timeline_risk(
    window_end_s: ArrayLike, risk: ArrayLike, risk_std: ArrayLike | None, alarm: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray | None, NDArray[np.bool_]]:
    """Return window ends, risk, its std and alarm state, checked to share one shape."""
    ends = np.asarray(window_end_s, dtype=np.float64)
    r = np.asarray(risk, dtype=np.float64)
    on = np.asarray(alarm, dtype=bool)
    std = None if risk_std is None else np.asarray(risk_std, dtype=np.float64)
    if (
        r.shape != ends.shape
        or on.shape != ends.shape
        or (std is not None and std.shape != ends.shape)
    ):
        raise DataError(
            f"risk, risk_std and alarm must have the shape of window_end_s {ends.shape}",
            column="risk",
        )
    return ends, r, std, on


def _hours(seconds: ArrayLike, origin: float) -> FloatArray:
    """Return hours since ``origin`` (epoch seconds)."""
    return (np.asarray(seconds, dtype=np.float64) - origin) / 3600.0


def _timeline_axes(n_vitals: int) -> tuple[Figure, NDArray[Any]]:
    """Return a figure with one panel per vital and a taller risk panel last (shared x)."""
    fig = _figure(10.0, 1.8 * n_vitals + 2.8)
    axes = np.atleast_1d(
        fig.subplots(
            n_vitals + 1,
            1,
            sharex=True,
            gridspec_kw={"height_ratios": [1.0] * n_vitals + [1.4]},
        )
    )
    return fig, axes


def _draw_vital_panel(ax: Axes, x: FloatArray, name: str, values: FloatArray) -> None:
    """Draw one channel and label its panel with its name and unit."""
    _draw_vital(ax, x, values)
    unit = CHANNELS[name].unit if name in CHANNELS else ""
    ax.set_ylabel(f"{_label(name)}\n{unit}".strip(), fontsize=8)


def _draw_risk(ax: Axes, x: FloatArray, r: FloatArray, std: FloatArray | None) -> None:
    """Draw the risk line and, when given, its ±1 std band."""
    ax.plot(x, r, color="black", linewidth=1.0, label="risk")
    if std is not None:
        ax.fill_between(
            x,
            np.clip(r - std, 0, 1),
            np.clip(r + std, 0, 1),
            color="tab:blue",
            alpha=0.3,
            label="±1 std (MC dropout)",
        )


def _shade_alarms(ax: Axes, ends: FloatArray, on: NDArray[np.bool_], origin: float) -> None:
    """Shade each run of alarm-on windows, half a window spacing either side."""
    spacing = float(np.median(np.diff(ends))) if ends.size > 1 else 0.0
    for k, (first, last) in enumerate(_runs(on)):
        ax.axvspan(
            *_hours([ends[first] - spacing / 2, ends[last] + spacing / 2], origin),
            color="tab:orange",
            alpha=0.35,
            label="alarm" if k == 0 else None,
        )


def _shade_events(axes: NDArray[Any], events: Sequence[tuple[float, float]], origin: float) -> None:
    """Shade each labelled event on every panel; the last (risk) panel's legend names it."""
    for k, (onset, end) in enumerate(events):
        for ax in axes:
            ax.axvspan(
                *_hours([onset, end], origin),
                color="tab:red",
                alpha=0.12,
                label="event" if k == 0 and ax is axes[-1] else None,
            )
