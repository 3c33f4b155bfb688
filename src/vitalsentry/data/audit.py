"""Data audit: what a readings file holds and what a model can learn from it.

:func:`audit_readings` measures a :class:`~vitalsentry.data.readings.Readings` — size,
per-patient series, sampling steps, missingness, value ranges against plausible and normal
ranges, class balance, lag-1 autocorrelation — and checks whether the label is a simple,
near-deterministic rule of single readings (a shallow decision tree fitted on some patients
and scored on others). The result, an :class:`AuditReport`, carries plain-words findings
that the evaluation report quotes verbatim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit
from sklearn.tree import DecisionTreeClassifier

from vitalsentry.data.readings import Quarantine, Readings
from vitalsentry.data.schema import (
    CHANNELS,
    LABEL_COLUMN,
    PATIENT_COLUMN,
    STATIC_FIELDS,
    TIMESTAMP_COLUMN,
    plausible_range_text,
)
from vitalsentry.errors import DataError

NORMAL_RANGES: dict[str, tuple[float, float]] = {
    "heart_rate": (60.0, 100.0),
    "spo2": (95.0, 100.0),
    "respiratory_rate": (12.0, 20.0),
    "temperature": (36.1, 37.8),
    "systolic_bp": (90.0, 140.0),
    "diastolic_bp": (60.0, 90.0),
    "map": (70.0, 100.0),
    "etco2": (35.0, 45.0),
}
"""Normal adult resting range (inclusive) of each canonical channel, in its schema unit."""

LABEL_NAMES: dict[int, str] = {0: "normal", 1: "abnormal"}
"""Plain names of the label values of a readings frame."""

NO_SIGNAL_LAG1 = 0.1
"""Lag-1 autocorrelations with absolute value below this count as about 0."""
SMOOTH_LAG1 = 0.7
"""Lag-1 autocorrelations at or above this count as a smooth series."""
LAG1_MIN_READINGS = 10
"""Shortest series (measured readings) that enters the lag-1 average."""
TREE_DEPTH = 3
"""Depth of the decision tree of the label determinism check."""
TREE_MAX_ROWS = 200_000
"""Rows the tree sees at most; larger files are subsampled (seeded)."""
TEST_SHARE = 0.3
"""Share of patients held out to score the tree."""
DETERMINISTIC_ACCURACY = 0.99
"""Held-out accuracy and balanced accuracy from which the label counts as a rule."""
RULE_MIN_SHARE = 0.01
"""Tree leaves holding a smaller share of the training rows are left out of the rules."""
STATIC_EFFECT = 0.05
"""Accuracy drop without static context from which the label is said to depend on it."""


@dataclass(frozen=True)
class ChannelAudit:
    """Audit of one vital-sign channel.

    Attributes
    ----------
    name : str
        Canonical channel name.
    measured : int
        Rows where the channel holds a value.
    measured_share : float
        ``measured`` over all rows (in multi-rate files a missing value means "not measured").
    step_s : float or None
        Median step in seconds between consecutive measured readings of a patient (of the
        feed in stream mode); None with ``step_reason`` when there is no such pair.
    quantiles : tuple of 5 float or None
        Min, 1st percentile, median, 99th percentile and max of the measured values; None
        when the channel is never measured.
    below_normal, above_normal : int
        Measured values below and above :data:`NORMAL_RANGES`.
    lag1 : float or None
        Lag-1 autocorrelation within each series of at least :data:`LAG1_MIN_READINGS`
        varying readings, averaged weighted by length; None with ``lag1_reason`` otherwise.
    step_reason, lag1_reason : str or None
        Why ``step_s`` or ``lag1`` is None.

    """

    name: str
    measured: int
    measured_share: float
    step_s: float | None
    quantiles: tuple[float, ...] | None
    below_normal: int
    above_normal: int
    lag1: float | None
    step_reason: str | None = None
    lag1_reason: str | None = None

    @property
    def outside_normal_share(self) -> float | None:
        """Share of measured values outside the normal range (None when never measured)."""
        if self.measured == 0:
            return None
        return (self.below_normal + self.above_normal) / self.measured

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (no NaN; None comes with a reason)."""
        spec = CHANNELS[self.name]
        low, high = NORMAL_RANGES[self.name]
        out: dict[str, Any] = {
            "name": self.name,
            "unit": spec.unit,
            "measured_rows": self.measured,
            "measured_share": self.measured_share,
            "step_s": self.step_s,
            "range": None
            if self.quantiles is None
            else dict(zip(("min", "p1", "median", "p99", "max"), self.quantiles, strict=True)),
            "plausible": {"low": spec.low, "high": spec.high},
            "normal": {"low": low, "high": high},
            "below_normal": self.below_normal,
            "above_normal": self.above_normal,
            "outside_normal_share": self.outside_normal_share,
            "lag1": self.lag1,
            "lag1_interpretation": None if self.lag1 is None else interpret_lag1(self.lag1),
        }
        if self.step_reason is not None:
            out["step_reason"] = self.step_reason
        if self.quantiles is None:
            out["range_reason"] = "never measured"
        if self.lag1_reason is not None:
            out["lag1_reason"] = self.lag1_reason
        return out


@dataclass(frozen=True)
class ClassBalance:
    """Label counts over rows and patients.

    Attributes
    ----------
    counts : tuple of (label, rows)
        Rows per label value, ascending by label.
    patient_share : tuple of 3 float
        Min, median and max over patients of the share of their rows labelled 1.
    patients_normal, patients_abnormal, patients_mixed : int
        Patients whose rows are all 0, all 1, or both.

    """

    counts: tuple[tuple[int, int], ...]
    patient_share: tuple[float, float, float]
    patients_normal: int
    patients_abnormal: int
    patients_mixed: int

    @property
    def rows(self) -> int:
        """Labelled rows."""
        return sum(n for _, n in self.counts)

    def describe(self) -> str:
        """Return the counts in words, e.g. ``"5,597 abnormal (1, 52.6%), ..."``."""
        return ", ".join(
            f"{n:,} {_label_name(label)} ({label}, {_pct(n / self.rows)})"
            for label, n in sorted(self.counts, key=lambda c: -c[1])
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "computable": True,
            "counts": {str(label): n for label, n in self.counts},
            "shares": {str(label): n / self.rows for label, n in self.counts},
            "patient_share_abnormal": dict(
                zip(("min", "median", "max"), self.patient_share, strict=True)
            ),
            "patients_all_normal": self.patients_normal,
            "patients_all_abnormal": self.patients_abnormal,
            "patients_mixed": self.patients_mixed,
        }


@dataclass(frozen=True)
class TreeRule:
    """One leaf of the decision tree as a rule.

    Attributes
    ----------
    conditions : tuple of str
        Conditions on the path to the leaf, one per feature (empty for a single-leaf tree).
    label : int
        Predicted label.
    share : float
        Share of the training rows that reach the leaf.
    purity : float
        Share of those rows that carry the predicted label.

    """

    conditions: tuple[str, ...]
    label: int
    share: float
    purity: float

    @property
    def condition(self) -> str:
        """The conditions joined with AND (``"every reading"`` when there are none)."""
        return " AND ".join(self.conditions) if self.conditions else "every reading"

    def text(self) -> str:
        """Return the rule in words, e.g. ``"IF heart_rate > 90.5 THEN abnormal (1) ..."``."""
        return (
            f"IF {self.condition} THEN {_label_name(self.label)} ({self.label}): "
            f"{_pct(self.share)} of training rows, purity {_pct(self.purity)}"
        )


@dataclass(frozen=True)
class LabelCheck:
    """Whether the label is a simple rule of single readings (label determinism check).

    Attributes
    ----------
    features : tuple of str
        Features offered to the tree: the channels, then the static context joined on
        ``patient_id``.
    used : tuple of str
        Features the tree splits on, most important first.
    accuracy, balanced_accuracy : float
        Held-out accuracy and balanced accuracy (mean recall of the classes present) of the
        tree on the held-out patients.
    majority_accuracy : float
        Held-out accuracy of always predicting the training majority class.
    vitals_accuracy : float or None
        Held-out accuracy of the same tree on the channels only; None when there is no
        static context (``accuracy`` then already uses the channels only).
    rules : tuple of TreeRule
        Leaves holding at least :data:`RULE_MIN_SHARE` of the training rows.
    train_rows, test_rows, train_patients, test_patients : int
        Size of the two sides of the patient split.
    sampled_from : int or None
        Rows in the data when the tree saw a seeded random sample of
        :data:`TREE_MAX_ROWS` of them; None when it saw every row.

    """

    features: tuple[str, ...]
    used: tuple[str, ...]
    accuracy: float
    balanced_accuracy: float
    majority_accuracy: float
    vitals_accuracy: float | None
    rules: tuple[TreeRule, ...]
    train_rows: int
    test_rows: int
    train_patients: int
    test_patients: int
    sampled_from: int | None

    @property
    def deterministic(self) -> bool:
        """Whether the tree splits and predicts unseen patients near-perfectly (both ≥ 0.99)."""
        return bool(self.used) and min(self.accuracy, self.balanced_accuracy) >= (
            DETERMINISTIC_ACCURACY
        )

    def sample_text(self) -> str:
        """Return how many rows the tree saw, in words."""
        if self.sampled_from is None:
            return "fitted on every row"
        return (
            f"fitted on a seeded random sample of {self.train_rows + self.test_rows:,} "
            f"of {self.sampled_from:,} rows"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (no NaN; None comes with a reason)."""
        out: dict[str, Any] = {
            "computable": True,
            "model": f"DecisionTreeClassifier(max_depth={TREE_DEPTH})",
            "split": f"by patient, {1 - TEST_SHARE:.0%} train / {TEST_SHARE:.0%} held out",
            "features": list(self.features),
            "features_used": list(self.used),
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "majority_accuracy": self.majority_accuracy,
            "vitals_accuracy": self.vitals_accuracy,
            "deterministic": self.deterministic,
            "rules": [rule.text() for rule in self.rules],
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "train_patients": self.train_patients,
            "test_patients": self.test_patients,
            "sampled_from": self.sampled_from,
            "sample": self.sample_text(),
        }
        if self.vitals_accuracy is None:
            out["vitals_accuracy_reason"] = (
                "no static context: accuracy already uses the vitals only"
            )
        return out


@dataclass(frozen=True)
class AuditReport:
    """Result of :func:`audit_readings`.

    Attributes
    ----------
    source, path : str
        Reader and file of the audited readings.
    stream : bool
        Whether the readings are read as one monitoring feed ordered by time.
    seed : int
        Seed of the patient split and the row sample of the label check.
    rows, patients : int
        Readings and distinct patients.
    per_patient : tuple of (int, float, int)
        Min, median and max readings per patient.
    first, last : str
        ISO 8601 timestamps of the first and last reading.
    channels : tuple of ChannelAudit
        One entry per channel present, in canonical order.
    class_balance : ClassBalance or None
        None with ``class_balance_reason`` when it cannot be computed.
    label_check : LabelCheck or None
        None with ``label_check_reason`` when it cannot be computed.
    notes : tuple of str
        Notes carried by the readings (e.g. a proxy channel).
    findings : tuple of str
        Plain-words findings, quotable verbatim.
    class_balance_reason, label_check_reason : str or None
        Why the corresponding part is None.
    quarantine : Quarantine
        Implausible readings the reader set missing, per channel and reason.

    """

    source: str
    path: str
    stream: bool
    seed: int
    rows: int
    patients: int
    per_patient: tuple[int, float, int]
    first: str
    last: str
    channels: tuple[ChannelAudit, ...]
    class_balance: ClassBalance | None
    label_check: LabelCheck | None
    notes: tuple[str, ...]
    findings: tuple[str, ...]
    class_balance_reason: str | None = None
    label_check_reason: str | None = None
    quarantine: Quarantine = field(default_factory=Quarantine)

    @property
    def span_s(self) -> float:
        """Seconds from the first to the last reading."""
        return (pd.Timestamp(self.last) - pd.Timestamp(self.first)).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (no NaN; a part that cannot be computed has a reason)."""
        return {
            "source": self.source,
            "path": self.path,
            "stream": self.stream,
            "seed": self.seed,
            "rows": self.rows,
            "patients": self.patients,
            "readings_per_patient": dict(
                zip(("min", "median", "max"), self.per_patient, strict=True)
            ),
            "time_span": {"first": self.first, "last": self.last, "seconds": self.span_s},
            "channels": [c.to_dict() for c in self.channels],
            "class_balance": _part_dict(self.class_balance, self.class_balance_reason),
            "label_check": _part_dict(self.label_check, self.label_check_reason),
            "notes": list(self.notes),
            "findings": list(self.findings),
            "quarantine": self.quarantine.to_dict(),
        }

    def render(self) -> str:
        """Return the audit as a plain-text block for a terminal."""
        lo, med, hi = self.per_patient
        mode = (
            "stream (the readings are read as one monitoring feed ordered by time)"
            if self.stream
            else "per-patient series"
        )
        lines = [
            f"Data audit: {self.path} (source {self.source})",
            f"Mode: {mode}",
            f"Rows {self.rows:,}; patients {self.patients:,}; readings per patient "
            f"min {lo:,} / median {med:,g} / max {hi:,}",
            f"Time span {self.first} to {self.last} ({_duration(self.span_s)})",
            "",
        ]
        lines += _table(
            (
                "channel",
                "measured",
                "step",
                "min",
                "p1",
                "median",
                "p99",
                "max",
                "plausible",
                "normal",
                "outside normal",
                "lag-1",
            ),
            [_channel_row(c) for c in self.channels],
        )
        lines += ["", "Class balance: " + _or_reason(self.class_balance, self.class_balance_reason)]
        lines += ["", f"Label determinism check (depth-{TREE_DEPTH} tree, split by patient):"]
        lines += _check_lines(self.label_check, self.label_check_reason)
        lines += ["", "Findings:"] + [f"  - {f}" for f in self.findings]
        if self.notes:
            lines += ["", "Notes:"] + [f"  - {n}" for n in self.notes]
        return "\n".join(lines)


def interpret_lag1(value: float) -> str:
    """Return what a lag-1 autocorrelation says about consecutive readings.

    Parameters
    ----------
    value : float
        Lag-1 autocorrelation in [-1, 1].

    Returns
    -------
    str
        Interpretation in plain words.

    """
    if abs(value) < NO_SIGNAL_LAG1:
        return "about 0: consecutive readings carry no temporal signal"
    if value >= SMOOTH_LAG1:
        return "high: consecutive readings are strongly related, a smooth series"
    if value > 0:
        return "moderate: consecutive readings are weakly related"
    return "negative: consecutive readings tend to alternate"


def audit_readings(readings: Readings, *, seed: int = 0) -> AuditReport:
    """Audit readings: size, series, sampling, ranges, balance and label determinism.

    Parameters
    ----------
    readings : Readings
        Validated readings (frame of n rows, optional labels and static context).
    seed : int, default 0
        Seed of the patient split and of the row sample of the label check.

    Returns
    -------
    AuditReport
        The measured facts and the findings in plain words.

    Raises
    ------
    DataError
        The frame has no rows.

    """
    frame = readings.frame
    if frame.empty:
        raise DataError("no readings (the file is empty)", file=readings.path)
    codes, uniques = pd.factorize(frame[PATIENT_COLUMN], sort=True)
    times = pd.DatetimeIndex(frame[TIMESTAMP_COLUMN]).as_unit("ns")
    ns = times.asi8
    order = np.argsort(ns, kind="stable") if readings.stream else np.lexsort((ns, codes))
    series = np.zeros(len(frame), dtype=np.intp) if readings.stream else codes[order]
    what = "feed" if readings.stream else "patient series"
    channels = tuple(
        _audit_channel(
            name, frame[name].to_numpy(np.float64, na_value=np.nan)[order], ns[order], series, what
        )
        for name in readings.channels
    )
    counts = np.bincount(codes, minlength=len(uniques))
    balance, balance_reason = _class_balance(readings, codes)
    check, check_reason = _label_check(readings, codes, seed)
    findings = (
        _series_finding(readings.stream, counts),
        _lag1_finding(channels, readings.stream),
        *_measured_finding(channels),
        _range_finding(channels),
        *_label_findings(balance, balance_reason, check, check_reason),
    )
    return AuditReport(
        source=readings.source,
        path=readings.path,
        stream=readings.stream,
        seed=seed,
        rows=len(frame),
        patients=len(uniques),
        per_patient=(int(counts.min()), float(np.median(counts)), int(counts.max())),
        first=times.min().isoformat(),
        last=times.max().isoformat(),
        channels=channels,
        class_balance=balance,
        label_check=check,
        notes=readings.notes,
        findings=findings,
        class_balance_reason=balance_reason,
        label_check_reason=check_reason,
        quarantine=readings.quarantine,
    )


def _audit_channel(
    name: str, values: np.ndarray, ns: np.ndarray, series: np.ndarray, what: str
) -> ChannelAudit:
    """Audit one channel ordered by series then time.

    Parameters
    ----------
    name : str
        Canonical channel name.
    values, ns, series : numpy.ndarray
        (n,) values (NaN = not measured), timestamps in ns, and series codes, sorted so that
        each series is contiguous and in time order.
    what : str
        What a series is (``"feed"`` or ``"patient series"``), for the reasons.

    """
    measured = ~np.isnan(values)
    v, t, s = values[measured], ns[measured], series[measured]
    low, high = NORMAL_RANGES[name]
    same = s[1:] == s[:-1]
    step = float(np.median(np.diff(t)[same])) / 1e9 if same.any() else None
    lag1 = _lag1(v, s)
    quantiles = np.quantile(v, [0.0, 0.01, 0.5, 0.99, 1.0]) if v.size else None
    return ChannelAudit(
        name=name,
        measured=int(v.size),
        measured_share=float(v.size / values.size),
        step_s=step,
        quantiles=None if quantiles is None else (*(float(q) for q in quantiles),),
        below_normal=int(np.count_nonzero(v < low)),
        above_normal=int(np.count_nonzero(v > high)),
        lag1=lag1,
        step_reason=None if step is not None else f"fewer than two measured readings in any {what}",
        lag1_reason=None
        if lag1 is not None
        else f"no {what} with at least {LAG1_MIN_READINGS} measured readings that vary",
    )


def _lag1(values: np.ndarray, series: np.ndarray) -> float | None:
    """Return the length-weighted mean lag-1 autocorrelation of contiguous series.

    Parameters
    ----------
    values : numpy.ndarray
        (m,) measured values, each series contiguous and in time order.
    series : numpy.ndarray
        (m,) series code of each value.

    Returns
    -------
    float or None
        Mean over series with at least :data:`LAG1_MIN_READINGS` values that vary of
        ``sum(d[t] * d[t+1]) / sum(d[t] ** 2)`` (``d`` centred on the series mean), weighted
        by length; None when no series qualifies.

    """
    if values.size == 0:
        return None
    starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
    n = np.diff(np.r_[starts, values.size])
    centred = values - np.repeat(np.add.reduceat(values, starts) / n, n)
    products = np.r_[centred[1:] * centred[:-1], 0.0]
    products[starts + n - 1] = 0.0
    varies = np.maximum.reduceat(values, starts) > np.minimum.reduceat(values, starts)
    keep = (n >= LAG1_MIN_READINGS) & varies
    if not keep.any():
        return None
    ratio = np.add.reduceat(products, starts)[keep] / np.add.reduceat(centred**2, starts)[keep]
    return float(np.average(ratio, weights=n[keep]))


def _class_balance(readings: Readings, codes: np.ndarray) -> tuple[ClassBalance | None, str | None]:
    """Count labels over rows and patients; None with a reason when there are no labels."""
    if not readings.has_labels:
        return None, "no label column"
    labels = readings.frame[LABEL_COLUMN].to_numpy(np.int64)
    values, counts = np.unique(labels, return_counts=True)
    rows = np.bincount(codes)
    share = np.bincount(codes, weights=(labels == 1).astype(np.float64)) / rows
    return (
        ClassBalance(
            counts=tuple((int(v), int(c)) for v, c in zip(values, counts, strict=True)),
            patient_share=(float(share.min()), float(np.median(share)), float(share.max())),
            patients_normal=int(np.count_nonzero(share == 0.0)),
            patients_abnormal=int(np.count_nonzero(share == 1.0)),
            patients_mixed=int(np.count_nonzero((share > 0.0) & (share < 1.0))),
        ),
        None,
    )


def _label_check(
    readings: Readings, codes: np.ndarray, seed: int
) -> tuple[LabelCheck | None, str | None]:
    """Fit a shallow tree on some patients and score it on the others.

    Returns None with the reason when the check cannot be computed: no labels, one class,
    fewer than two patients, or training patients of one class only.
    """
    if not readings.has_labels:
        return None, "no label column"
    frame = readings.frame
    labels = frame[LABEL_COLUMN].to_numpy(np.int64)
    present = np.unique(labels)
    if present.size < 2:
        label = int(present[0])
        return None, f"only one class: all {labels.size:,} rows are {_label_name(label)} ({label})"
    rows = np.arange(len(frame))
    sampled_from = None
    if rows.size > TREE_MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, TREE_MAX_ROWS, replace=False))
        sampled_from = len(frame)
    groups = codes[rows]
    if np.unique(groups).size < 2:
        return None, "only one patient: rows cannot be split by patient"
    sample = frame.iloc[rows]
    channels = list(readings.channels)
    static = [c for c in STATIC_FIELDS if c in readings.static.columns]
    x = np.column_stack(
        [
            sample[channels].to_numpy(np.float64, na_value=np.nan),
            readings.static[static]
            .reindex(sample[PATIENT_COLUMN])
            .to_numpy(np.float64, na_value=np.nan),
        ]
    )
    y = labels[rows]
    splitter = GroupShuffleSplit(n_splits=1, test_size=TEST_SHARE, random_state=seed)
    train, test = next(splitter.split(x, y, groups=groups))
    if np.unique(y[train]).size < 2:
        return None, "the training patients carry only one class"
    features = (*channels, *static)
    tree = _fit_tree(x[train], y[train], seed)
    accuracy, balanced = _scores(tree.predict(x[test]), y[test])
    majority = np.bincount(y[train]).argmax()
    vitals_accuracy = None
    if static:
        only = slice(0, len(channels))
        vitals_tree = _fit_tree(x[train][:, only], y[train], seed)
        vitals_accuracy = _scores(vitals_tree.predict(x[test][:, only]), y[test])[0]
    importance = tree.feature_importances_
    used = tuple(features[i] for i in np.argsort(-importance, kind="stable") if importance[i] > 0)
    missing = {name for name, col in zip(features, x[train].T, strict=True) if np.isnan(col).any()}
    return (
        LabelCheck(
            features=features,
            used=used,
            accuracy=accuracy,
            balanced_accuracy=balanced,
            majority_accuracy=float(np.mean(y[test] == majority)),
            vitals_accuracy=vitals_accuracy,
            rules=_tree_rules(tree, features, missing),
            train_rows=int(train.size),
            test_rows=int(test.size),
            train_patients=int(np.unique(groups[train]).size),
            test_patients=int(np.unique(groups[test]).size),
            sampled_from=sampled_from,
        ),
        None,
    )


def _fit_tree(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """Fit the shallow decision tree of the label check on (n, f) features."""
    return DecisionTreeClassifier(max_depth=TREE_DEPTH, random_state=seed).fit(x, y)


def _scores(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Return accuracy and balanced accuracy (mean recall of the classes in ``truth``)."""
    hits = predicted == truth
    recalls = [hits[truth == label].mean() for label in np.unique(truth)]
    return float(hits.mean()), float(np.mean(recalls))


def _tree_rules(tree: Any, features: Sequence[str], missing: set[str]) -> tuple[TreeRule, ...]:
    """Turn the leaves of a fitted tree into rules, left branch first.

    Parameters
    ----------
    tree : DecisionTreeClassifier
        Fitted tree.
    features : sequence of str
        Feature names, in column order.
    missing : set of str
        Features that had missing values in the training rows (their conditions say where
        missing values go).

    """
    nodes = tree.tree_
    total = nodes.weighted_n_node_samples[0]
    rules: list[TreeRule] = []
    # each path maps a feature to (lower bound, upper bound, whether missing values reach here)
    stack: list[tuple[int, dict[str, tuple[float, float, bool]]]] = [(0, {})]
    while stack:
        node, path = stack.pop()
        left, right = nodes.children_left[node], nodes.children_right[node]
        if left == -1:
            share = nodes.weighted_n_node_samples[node] / total
            if share >= RULE_MIN_SHARE:
                votes = nodes.value[node][0]
                best = int(np.argmax(votes))
                rules.append(
                    TreeRule(
                        conditions=tuple(
                            _condition(name, *bounds, name in missing)
                            for name, bounds in path.items()
                        ),
                        label=int(tree.classes_[best]),
                        share=float(share),
                        purity=float(votes[best] / votes.sum()),
                    )
                )
            continue
        name = features[nodes.feature[node]]
        threshold = float(nodes.threshold[node])
        low, high, gets_missing = path.get(name, (-np.inf, np.inf, True))
        to_left = bool(nodes.missing_go_to_left[node])
        stack.append(
            (right, {**path, name: (max(low, threshold), high, gets_missing and not to_left)})
        )
        stack.append((left, {**path, name: (low, min(high, threshold), gets_missing and to_left)}))
    return tuple(rules)


def _condition(name: str, low: float, high: float, gets_missing: bool, has_missing: bool) -> str:
    """Return a bound on one feature in words, e.g. ``"18.5 < bmi ≤ 30"``."""
    if np.isfinite(low) and np.isfinite(high):
        text = f"{_num(low)} < {name} ≤ {_num(high)}"
    elif np.isfinite(high):
        text = f"{name} ≤ {_num(high)}"
    else:
        text = f"{name} > {_num(low)}"
    if has_missing:
        text = f"({text} or {name} not measured)" if gets_missing else f"{text} (measured)"
    return text


def _series_finding(stream: bool, counts: np.ndarray) -> str:
    """Say whether the readings hold per-patient time series (``counts``: (p,) per patient)."""
    if counts.max() == 1:
        how = (
            "the file is read as one monitoring feed (stream mode) ordered by time"
            if stream
            else "per-patient windows cannot be formed; read it as one monitoring feed "
            "(stream mode) ordered by time"
        )
        return (
            "No per-patient time series: every patient has exactly one reading; "
            f"{how}, in which consecutive readings come from different people."
        )
    singles = int(np.count_nonzero(counts == 1))
    text = (
        f"Per-patient time series: every patient has {counts.max():,} readings"
        if counts.min() == counts.max()
        else f"Per-patient time series: readings per patient range from {counts.min():,} to "
        f"{counts.max():,} (median {np.median(counts):,g})"
    )
    if singles:
        text += f"; {singles:,} patients have a single reading"
    if stream:
        text += "; the file is nevertheless read as one monitoring feed (stream mode)"
    return text + "."


def _lag1_finding(channels: tuple[ChannelAudit, ...], stream: bool) -> str:
    """Summarise the lag-1 autocorrelations, grouping channels by interpretation."""
    where = "in feed time order" if stream else "within patient series"
    groups: dict[str, list[str]] = {}
    for c in channels:
        meaning = "not computable" if c.lag1 is None else interpret_lag1(c.lag1)
        value = "" if c.lag1 is None else f" {c.lag1:.2f}"
        groups.setdefault(meaning, []).append(f"{c.name}{value}")
    parts = [f"{', '.join(names)} ({meaning})" for meaning, names in groups.items()]
    return f"Lag-1 autocorrelation {where}: " + "; ".join(parts) + "."


def _measured_finding(channels: tuple[ChannelAudit, ...]) -> tuple[str, ...]:
    """Report the share of rows measured per channel when some channel has gaps."""
    if all(c.measured_share == 1.0 for c in channels):
        return ()
    return (
        "Not every channel is measured in every row: "
        + ", ".join(
            f"{c.name} measured in {_pct(c.measured_share)} of rows"
            + ("" if c.step_s is None else f" (median step {_duration(c.step_s)})")
            for c in channels
        )
        + "; an empty value means 'not measured at that instant'.",
    )


def _range_finding(channels: tuple[ChannelAudit, ...]) -> str:
    """Report which channels leave the normal adult resting range, and how often."""
    outside = [c for c in channels if c.below_normal + c.above_normal > 0]
    inside = [c.name for c in channels if c.measured and c not in outside]
    parts = [
        f"{c.name} {_pct((c.below_normal + c.above_normal) / c.measured)} outside "
        f"{_normal_text(c.name)} ({c.below_normal:,} below, {c.above_normal:,} above)"
        for c in outside
    ]
    if inside:
        parts.append(f"none for {', '.join(inside)}")
    return "Values outside the normal adult resting range: " + "; ".join(parts) + "."


def _label_findings(
    balance: ClassBalance | None,
    balance_reason: str | None,
    check: LabelCheck | None,
    check_reason: str | None,
) -> tuple[str, ...]:
    """Report the class balance and whether the label is a rule of single readings."""
    if balance is None:
        return (
            f"Class balance and the label determinism check are not computable: {balance_reason}.",
        )
    labels = f"Labels: {balance.describe()}."
    if check is None:
        return labels, f"The label determinism check is not computable: {check_reason}."
    return labels, _check_finding(check)


def _check_finding(check: LabelCheck) -> str:
    """State whether the label is a near-deterministic rule of single readings."""
    tree = f"depth-{TREE_DEPTH} decision tree"
    if check.deterministic:
        abnormal = [r for r in check.rules if r.label == 1]
        rules = "; ".join(r.text() for r in abnormal or check.rules)
        otherwise = f"; otherwise {_label_name(0)} (0)" if abnormal else ""
        text = (
            f"The label is a near-deterministic rule of {_join(check.used)} ({tree} held-out "
            f"accuracy {_pct(check.accuracy)} on unseen patients): {rules}{otherwise}."
        )
    else:
        text = (
            f"The label is not a near-deterministic rule of single readings: a {tree} on "
            f"{_join(check.features)} reaches {_pct(check.accuracy)} held-out accuracy on unseen "
            f"patients (always predicting the majority class: {_pct(check.majority_accuracy)})."
        )
    if check.vitals_accuracy is not None:
        static = [f for f in check.features if f in STATIC_FIELDS]
        drop = check.accuracy - check.vitals_accuracy
        effect = (
            "so the label depends on static context that a model of vital-sign windows does not see"
            if drop >= STATIC_EFFECT
            else "so static context adds little"
        )
        text += (
            f" On the vital signs alone (without {_join(static)}) the same tree reaches "
            f"{_pct(check.vitals_accuracy)}, {effect}."
        )
    return text


def _part_dict(part: ClassBalance | LabelCheck | None, reason: str | None) -> dict[str, Any]:
    """Return a part's dict, or ``computable: false`` with the reason."""
    if part is None:
        return {"computable": False, "reason": reason}
    return part.to_dict()


def _or_reason(balance: ClassBalance | None, reason: str | None) -> str:
    """Return the class balance in words, or why it is not computable."""
    if balance is None:
        return f"not computable ({reason})"
    if balance.patients_mixed == 0 and balance.patients_normal + balance.patients_abnormal > 0:
        patients = (
            f"; patients: {balance.patients_normal:,} all normal, "
            f"{balance.patients_abnormal:,} all abnormal, none mixed"
        )
    else:
        lo, med, hi = balance.patient_share
        patients = (
            f"; {balance.patients_mixed:,} patients with both labels; per-patient share of "
            f"abnormal rows min {_pct(lo)} / median {_pct(med)} / max {_pct(hi)}"
        )
    return balance.describe() + patients


def _check_lines(check: LabelCheck | None, reason: str | None) -> list[str]:
    """Return the label check as indented lines."""
    if check is None:
        return [f"  not computable ({reason})"]
    lines = [
        f"  {check.train_patients:,} training patients ({check.train_rows:,} rows), "
        f"{check.test_patients:,} held out ({check.test_rows:,} rows); {check.sample_text()}",
        f"  held-out accuracy {_pct(check.accuracy)} (balanced {_pct(check.balanced_accuracy)}) "
        f"on {_join(check.features)}; majority class {_pct(check.majority_accuracy)}",
    ]
    if check.vitals_accuracy is not None:
        lines.append(f"  held-out accuracy on the vital signs only {_pct(check.vitals_accuracy)}")
    lines.append(f"  rules (leaves with at least {RULE_MIN_SHARE:.0%} of training rows):")
    lines += [f"    {rule.text()}" for rule in check.rules]
    return lines


def _channel_row(c: ChannelAudit) -> list[str]:
    """Return the table cells of one channel."""
    quantiles = ["-"] * 5 if c.quantiles is None else [_num(q) for q in c.quantiles]
    outside = c.outside_normal_share
    return [
        c.name,
        _pct(c.measured_share),
        "-" if c.step_s is None else _duration(c.step_s),
        *quantiles,
        plausible_range_text(c.name),
        _normal_text(c.name),
        "-" if outside is None else _pct(outside),
        "-" if c.lag1 is None else f"{c.lag1:.2f}",
    ]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Return a left-aligned text table: header, rule, rows."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def _normal_text(name: str) -> str:
    """Return the normal range of a channel, e.g. ``"60–100 /min"``."""
    low, high = NORMAL_RANGES[name]
    return f"{low:g}–{high:g} {CHANNELS[name].unit}"


def _duration(seconds: float) -> str:
    """Return a duration in the largest fitting unit, e.g. ``"1 s"``, ``"2.5 h"``."""
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if abs(seconds) >= 2 * size or seconds == size:
            return f"{seconds / size:.4g} {unit}"
    return f"{seconds:.4g} s"


def _pct(share: float) -> str:
    """Return a share as a percentage that never rounds a non-zero share to 0 or 100%."""
    if 0.0 < share < 0.0005:
        return "<0.1%"
    if 0.9995 <= share < 1.0:
        return ">99.9%"
    return f"{share:.1%}"


def _num(value: float) -> str:
    """Return a value with four significant digits."""
    return f"{value:.4g}"


def _join(names: Sequence[str]) -> str:
    """Return names as ``"a, b and c"``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _label_name(label: int) -> str:
    """Return the plain name of a label value."""
    return LABEL_NAMES.get(label, f"label {label}")
