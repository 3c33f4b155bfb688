"""Evaluation report: the seed's metric table, schema validation, JSON and Markdown.

Report schema (``report.json``)::

    {"datasets": {NAME: {
        "tier1": {"separation_ratio", "embedding_variance"},
        "tier2": {"accuracy", "precision", "recall", "fpr", "roc_auc", "pr_auc"},
        "tier3": {"accuracy", "f1", "roc_auc"},
        "baselines": {"news2" | "iforest_raw" | "gbm" | "recon_error": {"roc_auc", "pr_auc"}},
        "alarms": {"per_patient_day", "event_recall", "median_delay_s"},
        "ci95": {DOTTED.METRIC.PATH: [low, high] | null},
        "reasons": {DOTTED.PATH: "why it is null"},
        "findings": [str], "notes": [str], "counts": {...}}},
     "definitions": {name: text}, "plots": [path], "meta": {...}}

Every metric is a finite number or ``null``; a ``null`` metric (or confidence interval,
under ``"ci95.<metric path>"``) has a reason in its dataset's ``"reasons"`` at its own
dotted path or at an enclosing one (``"tier3"`` covers all of Tier 3). Sections may hold
extra metrics (e.g. an ablation) under the same rules.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from vitalsentry.errors import VitalSentryError
from vitalsentry.io import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class SeedRow:
    """One row of the seed's "Expected Performance Improvements" table.

    Attributes
    ----------
    key : str
        Dotted path of the metric in a dataset result, e.g. ``"tier2.fpr"``.
    name : str
        Display name.
    before : float
        The seed's "Before (Synthetic)" value.
    target : float
        The seed's "After" target.
    direction : {">", "<"}
        Whether the achieved value must be above or below the target.
    tier : int
        1 autoencoder, 2 anomaly detection, 3 fusion.
    """

    key: str
    name: str
    before: float
    target: float
    direction: Literal[">", "<"]
    tier: int


SEED_TABLE: Final[tuple[SeedRow, ...]] = (
    SeedRow("tier1.separation_ratio", "Separation ratio", 1.56, 2.0, ">", 1),
    SeedRow("tier1.embedding_variance", "Embedding variance (normal)", 0.06, 0.15, ">", 1),
    SeedRow("tier2.accuracy", "Accuracy", 0.965, 0.98, ">", 2),
    SeedRow("tier2.precision", "Precision", 0.935, 0.95, ">", 2),
    SeedRow("tier2.fpr", "False-positive rate", 0.07, 0.03, "<", 2),
    SeedRow("tier3.accuracy", "Fusion accuracy", 0.75, 0.85, ">", 3),
    SeedRow("tier3.f1", "F1-score", 0.667, 0.80, ">", 3),
    SeedRow("tier3.roc_auc", "ROC-AUC", 0.797, 0.90, ">", 3),
)
"""The seed's metric table (mission/seed-implementation-summary.md)."""

TIER_TITLES: Final = {
    1: "Tier 1: Autoencoder",
    2: "Tier 2: Anomaly detection",
    3: "Tier 3: Fusion",
}

METRIC_SECTIONS: Final[dict[str, tuple[str, ...]]] = {
    "tier1": ("separation_ratio", "embedding_variance"),
    "tier2": ("accuracy", "precision", "recall", "fpr", "roc_auc", "pr_auc"),
    "tier3": ("accuracy", "f1", "roc_auc"),
    "alarms": ("per_patient_day", "event_recall", "median_delay_s"),
}
"""Required metrics of each flat section of a dataset result."""

BASELINES: Final[dict[str, str]] = {
    "news2": "NEWS2 (clinical score)",
    "iforest_raw": "IsolationForest on raw window features",
    "gbm": "Gradient boosting, supervised (ceiling)",
    "recon_error": "Reconstruction error alone",
}
"""Required baselines and their display names."""

BASELINE_METRICS: Final[tuple[str, ...]] = ("roc_auc", "pr_auc")

DATASET_KEYS: Final[tuple[str, ...]] = (
    *METRIC_SECTIONS,
    "baselines",
    "ci95",
    "reasons",
    "findings",
    "notes",
    "counts",
)

REPORT_KEYS: Final[tuple[str, ...]] = ("datasets", "definitions", "plots", "meta")

_METRIC_ROOTS: Final = (*METRIC_SECTIONS, "baselines")


def _fail(path: str, reason: str) -> VitalSentryError:
    return VitalSentryError(f"report: {path}: {reason}" if path else f"report: {reason}")


def _lookup(result: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted path of a dataset result."""
    node: Any = result
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise _fail(path, "missing")
        node = node[part]
    return node


def split_reasons(
    metrics: Mapping[str, Any], section: str
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Split a metrics dict of :mod:`vitalsentry.evaluation.metrics` for the report.

    Parameters
    ----------
    metrics : mapping
        E.g. the output of :func:`~vitalsentry.evaluation.metrics.detection_metrics`
        (metric values plus ``"reasons"``).
    section : str
        Dotted path of the section in the dataset result, e.g. ``"tier2"`` or
        ``"baselines.news2"``.

    Returns
    -------
    values : dict of str to float or None
        The metric values.
    reasons : dict of str to str
        The reasons keyed by full dotted path (``"tier2.precision"``), ready to merge
        into the dataset's ``"reasons"``.
    """
    values = {k: v for k, v in metrics.items() if k != "reasons"}
    reasons = {f"{section}.{k}": str(v) for k, v in metrics.get("reasons", {}).items()}
    return values, reasons


def seed_table_rows(dataset_result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the seed's table with the achieved values of one dataset.

    Parameters
    ----------
    dataset_result : mapping
        One entry of the report's ``"datasets"``.

    Returns
    -------
    list of dict
        One dict per :data:`SEED_TABLE` row: ``key``, ``tier``, ``metric`` (display
        name), ``direction``, ``before``, ``target``, ``achieved`` (None if not
        computable), ``ci95`` (``[low, high]`` or None) and ``met`` (True / False, None
        when not computable).

    Raises
    ------
    VitalSentryError
        A metric of the table is missing from the result.
    """
    ci = dataset_result.get("ci95") or {}
    rows = []
    for row in SEED_TABLE:
        achieved = _lookup(dataset_result, row.key)
        met = None
        if achieved is not None:
            met = bool(achieved > row.target if row.direction == ">" else achieved < row.target)
        rows.append(
            {
                "key": row.key,
                "tier": row.tier,
                "metric": row.name,
                "direction": row.direction,
                "before": row.before,
                "target": row.target,
                "achieved": achieved,
                "ci95": ci.get(row.key),
                "met": met,
            }
        )
    return rows


# ---------------------------------------------------------------------- validation


def _jsonable(obj: Any) -> Any:
    """Builtins-only copy of ``obj`` (numpy scalars and arrays, tuples, paths converted)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def _walk(obj: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) of a nested structure, containers included."""
    yield path, obj
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def _require_keys(node: Any, keys: tuple[str, ...] | list[str], path: str) -> None:
    if not isinstance(node, Mapping):
        raise _fail(path, f"expected an object, got {type(node).__name__}")
    missing = [k for k in keys if k not in node]
    if missing:
        raise _fail(path, f"missing key(s) {', '.join(missing)}")


def _metric_leaves(result: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted path → value of every metric (tiers, alarms, baselines, extras included)."""
    leaves: dict[str, Any] = {}
    for root in _METRIC_ROOTS:
        for path, value in _walk(result[root], root):
            if not isinstance(value, Mapping):
                leaves[path] = value
    return leaves


def _has_reason(reasons: Mapping[str, Any], path: str) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:i]) in reasons for i in range(len(parts), 0, -1))


def _validate_dataset(result: Any, where: str) -> None:
    """Check one dataset result; the first broken rule raises, naming its dotted path."""
    _check_layout(result, where)
    leaves = _metric_leaves(result)
    _check_metric_values(leaves, where)
    ci = _checked_intervals(result["ci95"], leaves, where)
    reasons = _checked_reasons(result, where)
    _check_nulls_explained(leaves, ci, reasons, where)
    _check_texts(result, where)
    _check_counts(result["counts"], where)


def _check_layout(result: Any, where: str) -> None:
    """Require the dataset's keys, each section's metrics and each baseline's metrics."""
    _require_keys(result, DATASET_KEYS, where)
    for section, metrics in METRIC_SECTIONS.items():
        _require_keys(result[section], metrics, f"{where}.{section}")
    _require_keys(result["baselines"], list(BASELINES), f"{where}.baselines")
    for name, value in result["baselines"].items():
        _require_keys(value, BASELINE_METRICS, f"{where}.baselines.{name}")


def _check_metric_values(leaves: Mapping[str, Any], where: str) -> None:
    """Require every metric to be a number or null."""
    for path, value in leaves.items():
        if value is not None and not _is_number(value):
            raise _fail(f"{where}.{path}", f"expected a number or null, got {value!r}")


def _is_interval(interval: Any) -> bool:
    """Whether ``interval`` is ``[low, high]`` of numbers with ``low <= high``."""
    return (
        isinstance(interval, list | tuple)
        and len(interval) == 2
        and all(_is_number(v) for v in interval)
        and interval[0] <= interval[1]
    )


def _checked_intervals(ci: Any, leaves: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """Return ``ci95`` once each key is a metric's path and each value an interval or null."""
    if not isinstance(ci, Mapping):
        raise _fail(f"{where}.ci95", "expected an object")
    for key, interval in ci.items():
        if key not in leaves:
            raise _fail(f"{where}.ci95.{key}", "not the dotted path of a metric")
        if interval is not None and not _is_interval(interval):
            raise _fail(f"{where}.ci95.{key}", f"expected [low, high] or null, got {interval!r}")
    return ci


def _checked_reasons(result: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """Return ``reasons`` once it maps paths of metrics or sections to non-empty strings."""
    reasons = result["reasons"]
    if not isinstance(reasons, Mapping) or not all(
        isinstance(v, str) and v for v in reasons.values()
    ):
        raise _fail(f"{where}.reasons", "expected an object of non-empty strings")
    known = {path for path, _ in _walk({k: result[k] for k in (*_METRIC_ROOTS, "ci95")}, "")}
    for key in reasons:
        if key not in known:
            raise _fail(f"{where}.reasons.{key}", "not the dotted path of a metric or section")
    return reasons


def _check_nulls_explained(
    leaves: Mapping[str, Any], ci: Mapping[str, Any], reasons: Mapping[str, Any], where: str
) -> None:
    """Require a reason for every null metric and every null interval."""
    for path, value in leaves.items():
        if value is None and not _has_reason(reasons, path):
            raise _fail(f"{where}.{path}", "null without a reason in 'reasons'")
    for key, interval in ci.items():
        # an interval of a metric that is itself null inherits the metric's reason
        if interval is None and not (
            _has_reason(reasons, f"ci95.{key}") or _has_reason(reasons, key)
        ):
            raise _fail(f"{where}.ci95.{key}", "null without a reason in 'reasons'")


def _check_texts(result: Mapping[str, Any], where: str) -> None:
    """Require ``findings`` and ``notes`` to be lists of strings."""
    for key in ("findings", "notes"):
        items = result[key]
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise _fail(f"{where}.{key}", "expected a list of strings")


def _check_counts(counts: Any, where: str) -> None:
    """Require every leaf of ``counts`` to be a number."""
    for path, value in _walk(counts, f"{where}.counts"):
        if not (isinstance(value, Mapping) or _is_number(value)):
            raise _fail(path, f"expected a number, got {value!r}")


def validate_report(report: Mapping[str, Any]) -> None:
    """Check a report against the schema of this module.

    Parameters
    ----------
    report : mapping
        The report (numpy scalars allowed).

    Raises
    ------
    VitalSentryError
        A required key is missing, a value has the wrong type, a number is NaN or
        infinite, or a null metric has no reason; the message names the dotted path.
    """
    _require_keys(report, REPORT_KEYS, "")
    for path, value in _walk(report, ""):
        if _is_number(value) and not math.isfinite(float(value)):
            raise _fail(path, f"{value} is not a finite number (use null and a reason)")
    datasets = report["datasets"]
    if not isinstance(datasets, Mapping) or not datasets:
        raise _fail("datasets", "expected a non-empty object")
    for name, result in datasets.items():
        _validate_dataset(result, f"datasets.{name}")
    definitions = report["definitions"]
    if not isinstance(definitions, Mapping) or not all(
        isinstance(v, str) for v in definitions.values()
    ):
        raise _fail("definitions", "expected an object of strings")
    plots = report["plots"]
    if not isinstance(plots, list | tuple) or not all(
        isinstance(p, str | os.PathLike) for p in plots
    ):
        raise _fail("plots", "expected a list of paths")
    if not isinstance(report["meta"], Mapping):
        raise _fail("meta", "expected an object")


# ------------------------------------------------------------------------ Markdown


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not _is_number(value):
        return str(value)
    if isinstance(value, Integral):
        return str(value)
    number = float(value)
    return f"{number:.1f}" if abs(number) >= 100 else f"{number:.3f}"


def _with_ci(value: Any, interval: Any) -> str:
    text = _fmt(value)
    if value is not None and interval is not None:
        text += f" ({_fmt(interval[0])}–{_fmt(interval[1])})"
    return text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _seed_section(result: Mapping[str, Any]) -> list[str]:
    rows: list[list[str]] = []
    tier = 0
    table = seed_table_rows(result)
    for row in table:
        if row["tier"] != tier:
            tier = row["tier"]
            rows.append([f"**{TIER_TITLES[tier]}**", "", "", "", ""])
        met = {True: "yes", False: "no", None: "n/a"}[row["met"]]
        rows.append(
            [
                row["metric"],
                f"{row['before']:g}",
                f"{row['direction']} {row['target']:g}",
                _with_ci(row["achieved"], row["ci95"]),
                met,
            ]
        )
    lines = ["### The seed's metric table", ""]
    lines += _table(["Metric", "Before (seed)", "Target", "Achieved (95% CI)", "Met?"], rows)
    tier2 = result["tier2"]
    ci = result["ci95"]
    lines += [
        f"Detector recall {_with_ci(tier2['recall'], ci.get('tier2.recall'))}, ROC-AUC "
        f"{_with_ci(tier2['roc_auc'], ci.get('tier2.roc_auc'))}, PR-AUC "
        f"{_with_ci(tier2['pr_auc'], ci.get('tier2.pr_auc'))}.",
        "",
    ]
    findings = result["findings"]
    if findings:
        gap = any(row["met"] is not True for row in table)
        title = "that explain the gaps" if gap else "for this dataset"
        lines += [f"#### Data audit findings {title}", ""]
        for finding in findings:
            lines += [f"> {line}" for line in finding.splitlines()] + [""]
    return lines


def _baseline_section(result: Mapping[str, Any]) -> list[str]:
    ci = result["ci95"]
    scorers = [("Detector: autoencoder + IsolationForest", "tier2", result["tier2"])]
    scorers += [
        (BASELINES.get(name, name), f"baselines.{name}", values)
        for name, values in result["baselines"].items()
    ]
    rows = [
        [label] + [_with_ci(values[m], ci.get(f"{path}.{m}")) for m in BASELINE_METRICS]
        for label, path, values in scorers
    ]
    return ["### Baselines (same windows)", "", *_table(["Scorer", "ROC-AUC", "PR-AUC"], rows)]


def _alarm_section(result: Mapping[str, Any]) -> list[str]:
    alarms = result["alarms"]
    ci = result["ci95"]
    row = [_with_ci(alarms[m], ci.get(f"alarms.{m}")) for m in METRIC_SECTIONS["alarms"]]
    header = ["Alarms per patient-day", "Event recall", "Median detection delay (s)"]
    lines = ["### Alarms", "", *_table(header, [row])]
    if "false_per_patient_day" in alarms and "events_per_patient_day" in alarms:
        lines += [
            "",
            f"Of these, {alarms['false_per_patient_day']:.3f} per patient-day are false alarms "
            "(alarm episodes on during no labelled event). The test patients "
            f"had {alarms['events_per_patient_day']:.3f} labelled events per patient-day, the "
            "fewest alarms that can reach full event recall.",
        ]
    return lines


def _extra_and_reasons(result: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    required = {f"{s}.{m}" for s, ms in METRIC_SECTIONS.items() for m in ms}
    required |= {f"baselines.{b}.{m}" for b in result["baselines"] for m in BASELINE_METRICS}
    extra = {p: v for p, v in _metric_leaves(result).items() if p not in required}
    if extra:
        lines += ["### Other values", ""]
        lines += [f"- `{p}`: {_with_ci(v, result['ci95'].get(p))}" for p, v in extra.items()]
        lines.append("")
    if result["reasons"]:
        lines += ["### Not computable", ""]
        lines += [f"- `{p}`: {reason}" for p, reason in result["reasons"].items()]
        lines.append("")
    return lines


def _provenance(report: Mapping[str, Any]) -> list[str]:
    lines = ["## Data provenance", ""]
    for name, result in report["datasets"].items():
        lines += [f"### `{name}`", ""]
        lines += [f"- {note}" for note in result["notes"]] or ["- (no transforms to note)"]
        counts = [f"{p}: {_fmt(v)}" for p, v in _walk(result["counts"], "") if p and _is_number(v)]
        if counts:
            lines.append(f"- counts: {'; '.join(counts)}")
        lines.append("")
    return lines


def _plot_link(path: str, out_dir: Path | None) -> str:
    target = Path(path)
    if out_dir is not None and target.is_absolute():
        with contextlib.suppress(ValueError):
            target = target.resolve().relative_to(out_dir.resolve())
    return f"![{target.stem.replace('_', ' ')}]({target.as_posix()})"


def render_markdown(
    report: Mapping[str, Any], out_dir: str | os.PathLike[str] | None = None
) -> str:
    """Render a (valid) report as Markdown.

    Parameters
    ----------
    report : mapping
        A report that passes :func:`validate_report`.
    out_dir : path-like, optional
        Folder of ``report.md``; absolute plot paths inside it are linked relatively.

    Returns
    -------
    str
        The Markdown text: title, run information, data provenance, per dataset the
        seed's table with confidence intervals and audit findings, baselines, alarms,
        values not computable and why, metric definitions and figures.
    """
    folder = None if out_dir is None else Path(out_dir)
    lines = ["# vitalsentry evaluation report", ""]
    meta = report["meta"]
    if meta:
        lines += [
            f"- {key}: {value if isinstance(value, str) else json.dumps(value)}"
            for key, value in meta.items()
        ]
        lines.append("")
    lines += _provenance(report)
    for name, result in report["datasets"].items():
        lines += [f"## Results: `{name}`", ""]
        lines += _seed_section(result)
        lines += _baseline_section(result)
        lines += _alarm_section(result)
        lines += _extra_and_reasons(result)
    if report["definitions"]:
        lines += ["## Metric definitions", ""]
        for key, text in report["definitions"].items():
            lines += [f"### {key}", "", text, ""]
    if report["plots"]:
        lines += ["## Figures", ""]
        lines += [_plot_link(os.fspath(p), folder) + "\n" for p in report["plots"]]
    return "\n".join(lines).rstrip() + "\n"


def write_report(report: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Validate a report and write ``report.json`` and ``report.md`` atomically.

    Parameters
    ----------
    report : mapping
        The report (numpy scalars and arrays, tuples and paths are converted).
    out_dir : path-like
        Folder to write to (created if missing).

    Returns
    -------
    tuple of pathlib.Path
        Paths of ``report.json`` and ``report.md``.

    Raises
    ------
    VitalSentryError
        The report does not pass :func:`validate_report`; nothing is written.
    """
    data = _jsonable(report)
    validate_report(data)
    folder = Path(out_dir)
    json_path, md_path = folder / "report.json", folder / "report.md"
    atomic_write_json(json_path, data)
    atomic_write_text(md_path, render_markdown(data, folder))
    return json_path, md_path
