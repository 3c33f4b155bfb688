"""Evaluation on held-out patients: tiers 1–3, baselines, alarms, confidence intervals.

Everything here is measured on the test split (2) of the data prepared with the bundle's
own settings; training and validation windows are used only to fit baselines the same
way the model was fitted (normal training windows for the raw-feature IsolationForest,
labelled training windows for the gradient-boosting ceiling and the fusion ablation).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitalsentry import __version__
from vitalsentry.bundle import CURVE
from vitalsentry.config import DataConfig, FusionConfig, WindowConfig
from vitalsentry.data.prepared import PreparedData, WindowSet, feed_names, prepare, stream_feeds
from vitalsentry.data.readings import Readings
from vitalsentry.data.schema import LABEL_COLUMN, PATIENT_COLUMN, TIMESTAMP_COLUMN, VITAL_CHANNELS
from vitalsentry.errors import DataError
from vitalsentry.evaluation import baselines, metrics, plots
from vitalsentry.evaluation.report import seed_table_rows, write_report
from vitalsentry.models.fusion import make_fusion_classifier
from vitalsentry.models.inference import attention_weights
from vitalsentry.pipeline import VitalRiskPipeline, WindowScores
from vitalsentry.risk.alarms import AlarmPolicy, evaluate_alarms
from vitalsentry.scoring import Cut, ScoreTable, score_readings

EVENT_MERGE_GAP_S = 120.0
"""Labelled runs of one patient closer than this are one event (readings drop out)."""


@dataclass
class DatasetResult:
    """One dataset's section of report.json, filled step by step."""

    tier1: dict[str, Any] = field(default_factory=dict)
    tier2: dict[str, Any] = field(default_factory=dict)
    tier3: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    alarms: dict[str, Any] = field(default_factory=dict)
    ci95: dict[str, Any] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def put(self, section: str, values: Mapping[str, Any], keys: tuple[str, ...]) -> None:
        """Copy ``keys`` of a metrics dict into a section (``"tier2"``, ``"baselines.gbm"``).

        Metrics that are None carry their reason into ``reasons``.
        """
        root, _, sub = section.partition(".")
        target = getattr(self, root)
        if sub:
            target = target.setdefault(sub, {})
        reasons = values.get("reasons") or {}
        for key in keys:
            target[key] = values.get(key)
            if target[key] is None:
                self.reasons[f"{section}.{key}"] = reasons.get(key) or "not computable"

    def missing(self, section: str, keys: tuple[str, ...], reason: str) -> None:
        """Mark metrics of a section as not computable, with the reason."""
        for key in keys:
            getattr(self, section)[key] = None
            self.reasons[f"{section}.{key}"] = reason

    def to_dict(self) -> dict[str, Any]:
        """Return the dataset's JSON section."""
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        return out | self.extra


TIER1 = ("separation_ratio", "embedding_variance")
TIER2 = ("accuracy", "precision", "recall", "fpr", "roc_auc", "pr_auc")
TIER3 = ("accuracy", "f1", "roc_auc")
ALARMS = ("per_patient_day", "event_recall", "median_delay_s")


def label_events(frame: pd.DataFrame, patients: set[str]) -> dict[str, list[tuple[float, float]]]:
    """Labelled events per patient: runs of label 1 in the readings, in epoch seconds.

    Runs closer than :data:`EVENT_MERGE_GAP_S` are merged (readings drop out mid-event).
    """
    if LABEL_COLUMN not in frame.columns:
        return {}
    rows = frame[frame[PATIENT_COLUMN].isin(patients) & (frame[LABEL_COLUMN] == 1)]
    events: dict[str, list[tuple[float, float]]] = {}
    for patient, part in rows.groupby(PATIENT_COLUMN, sort=True):
        t = part[TIMESTAMP_COLUMN].to_numpy("datetime64[ns]").astype(np.int64) / 1e9
        breaks = np.flatnonzero(np.diff(t) > EVENT_MERGE_GAP_S)
        starts = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [t.size - 1]])
        events[str(patient)] = [
            (float(t[a]), float(t[b])) for a, b in zip(starts, ends, strict=True)
        ]
    return events


@dataclass
class HeldOutSplit:
    """The test split (2) of readings as a window source of the scoring path.

    Each data config asked for (the bundle's, the fusion head's) is prepared once, as
    :func:`~vitalsentry.data.prepared.prepare` splits it; its test windows are what
    :func:`~vitalsentry.scoring.score_readings` scores.

    Attributes
    ----------
    readings : Readings
        The evaluated data.
    """

    readings: Readings
    _prepared: dict[str, PreparedData] = field(default_factory=dict, init=False, repr=False)

    @property
    def static(self) -> pd.DataFrame:
        """Per-patient static context of the readings."""
        return self.readings.static

    def missing(self, channels: Sequence[str]) -> list[str]:
        """Channels of ``channels`` the readings lack."""
        return [c for c in channels if c not in self.readings.channels]

    def prepared(self, data: DataConfig, window: WindowConfig) -> PreparedData:
        """Return the readings prepared with ``data`` and ``window`` (every split; prepared once)."""
        key = json.dumps([data.to_dict(), window.to_dict()], sort_keys=True)
        if key not in self._prepared:
            self._prepared[key] = prepare(self.readings, data, window)
        return self._prepared[key]

    def cut(self, data: DataConfig, window: WindowConfig, *, latest_only: bool) -> Cut:
        """Return the test windows of the readings prepared with ``data`` (every one, not the latest)."""
        if latest_only:
            raise ValueError("the evaluation scores every test window")
        test = self.prepared(data, window).split_part(2)
        windows = WindowSet(test.windows, test.labels, test.patient, test.start_s)
        return Cut(windows, test.context_patient)


def _auc_pair(y: np.ndarray, scores: np.ndarray | None, reason: str) -> dict[str, Any]:
    if scores is None:
        return {"roc_auc": None, "pr_auc": None, "reasons": {"roc_auc": reason, "pr_auc": reason}}
    return dict(metrics.ranking_metrics(y, scores))


def _news2_scores(
    readings: Readings, prepared: PreparedData, test: PreparedData
) -> tuple[np.ndarray | None, str]:
    """NEWS2 at each test window's end from the latest reading of every parameter.

    Returns the scores (NaN where an input was not yet measured at a window's end) and a
    note on coverage, or None and the reason when NEWS2 cannot be scored at all.
    """
    absent = baselines.news2_unavailable_inputs(readings.frame)
    if absent:
        return None, f"NEWS2 needs {', '.join(absent)}, never measured in the data"
    frame = readings.frame
    if prepared.stream:
        feed_of = feed_names(frame, prepared.data)
        needed = [c for c in VITAL_CHANNELS if c in frame.columns]
        frame, _ = stream_feeds(frame, feed_of, needed, prepared.data.step_s)
    scores = baselines.news2_at_windows(frame, test.patient, test.end_s)
    covered = ~np.isnan(scores)
    if not covered.any():
        return None, "no test window has every NEWS2 input measured before its end"
    return scores, (
        f"NEWS2 (room air and alert assumed) is compared on the {covered.mean():.1%} of test "
        "windows with every input measured before the window end"
    )


def _baselines(
    recon_error: np.ndarray,
    readings: Readings,
    prepared: PreparedData,
    result: DatasetResult,
    curves: dict[str, np.ndarray],
    seed: int,
) -> None:
    """Baselines on the test split, fitted on the training split as the model was."""
    train, test = prepared.split_part(0), prepared.split_part(2)
    known = test.labels >= 0
    f_train, _ = baselines.window_summary_features(train.windows, prepared.feature_names)
    f_test, _ = baselines.window_summary_features(test.windows, prepared.feature_names)
    normal_train = train.labels == 0
    found: dict[str, tuple[np.ndarray | None, str]] = {}
    found["news2"] = _news2_scores(readings, prepared, test)
    found["iforest_raw"] = (
        (baselines.raw_iforest_scores(f_train[normal_train], f_test, seed), "")
        if normal_train.sum() >= 2
        else (None, "fewer than 2 normal training windows")
    )
    labelled = train.labels >= 0
    try:
        found["gbm"] = (
            baselines.gbm_scores(f_train[labelled], train.labels[labelled], f_test, seed),
            "",
        )
    except metrics.NotComputableError as exc:
        found["gbm"] = (None, str(exc))
    found["recon_error"] = (recon_error, "")
    for key, (scores, text) in found.items():
        use = known if scores is None else known & ~np.isnan(scores)
        pair = _auc_pair(test.labels[use], None if scores is None else scores[use], text)
        result.put(f"baselines.{key}", pair, ("roc_auc", "pr_auc"))
        if scores is not None and np.array_equal(use, known):
            curves[key] = scores[known]
    if found["news2"][0] is not None:
        result.notes.append(found["news2"][1])


def _fusion(
    pipe: VitalRiskPipeline,
    source: HeldOutSplit,
    table: ScoreTable,
    result: DatasetResult,
    seed: int,
) -> None:
    """Tier 3 (the bundle's fused risk), its confidence interval and the static-context ablation."""
    head, fused = pipe.fusion, table.fused_risk
    if head is None or fused is None:
        result.missing("tier3", TIER3, table.fused_note or "no fused risk")
        return
    test = ~np.isnan(fused) & (table.cut.windows.labels >= 0)
    y_test, proba = table.cut.windows.labels[test], fused[test]
    found = metrics.classification_metrics(y_test, proba)
    result.put("tier3", found, TIER3)
    if found["roc_auc"] is not None:
        _ci(result, "tier3.roc_auc", y_test, proba, table.cut.context[test], seed)
    ablation: dict[str, Any] = {
        "with_static": head.config.use_static,
        **{k: found.get(k) for k in TIER3},
    }
    inputs = head.inputs(
        pipe,
        source.prepared(pipe.data_config, pipe.window_config),
        source.prepared(head.respiratory_data, pipe.window_config),
    )
    train = (inputs.split == 0) & (inputs.labels >= 0)
    if np.unique(inputs.labels[train]).size == 2:
        other = not head.config.use_static
        held = (inputs.split == 2) & (inputs.labels >= 0)
        model = make_fusion_classifier(FusionConfig(use_static=other, seed=seed))
        model.fit(inputs.matrix(other, train), inputs.labels[train])
        alt = metrics.classification_metrics(
            inputs.labels[held], model.predict_proba(inputs.matrix(other, held))[:, 1]
        )
        ablation = {
            "configured": ablation,
            "ablation": {"with_static": other, **{k: alt.get(k) for k in TIER3}},
        }
    result.extra["fusion_ablation"] = ablation


def _ci(
    result: DatasetResult,
    key: str,
    y: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    seed: int,
) -> None:
    """95% interval of ``key`` (``"tier2.roc_auc"``) by resampling patients.

    Windows of one patient are correlated, so whole patients are resampled; with too few
    patients (or classes) in the resamples the interval is null with the reason.
    """
    metric = key.rsplit(".", 1)[1]
    try:
        low, high = metrics.bootstrap_interval(metric, y, scores, groups=groups, seed=seed)
        result.ci95[key] = [float(low), float(high)]
    except metrics.NotComputableError as exc:
        result.ci95[key] = None
        result.reasons[f"ci95.{key}"] = f"bootstrap by patient: {exc}"


def _alarms(
    pipe: VitalRiskPipeline,
    readings: Readings,
    prepared: PreparedData,
    test: PreparedData,
    level: np.ndarray,
    policy: AlarmPolicy,
    result: DatasetResult,
) -> None:
    """Alarm burden and event recall of the alarm policy (per-patient series only)."""
    if prepared.stream:
        result.missing(
            "alarms", ALARMS, "stream-mode data has no per-patient series to raise alarms on"
        )
        return
    report = evaluate_alarms(
        test.patient,
        test.end_s,
        level == "high",
        label_events(readings.frame, set(test.patient)),
        policy,
        window_s=pipe.window_config.length * pipe.data_config.step_s,
    )
    values = {
        "per_patient_day": report.alarms_per_patient_day,
        "event_recall": report.event_recall,
        "median_delay_s": report.median_delay_s,
        "reasons": {
            "per_patient_day": report.reasons.get("alarms_per_patient_day"),
            "event_recall": report.reasons.get("event_recall"),
            "median_delay_s": report.reasons.get("median_delay_s"),
        },
    }
    result.put("alarms", values, ALARMS)
    if report.patient_days > 0:
        result.alarms["false_per_patient_day"] = report.false_alarms / report.patient_days
        result.alarms["events_per_patient_day"] = report.events / report.patient_days
    result.extra["alarm_detail"] = report.to_dict() | {"policy": dataclasses.asdict(policy)}


def evaluate_dataset(
    name: str,
    pipe: VitalRiskPipeline,
    readings: Readings,
    plots_dir: Path,
    *,
    findings: tuple[str, ...] = (),
    policy: AlarmPolicy | None = None,
    mc_passes: int = 20,
    seed: int = 0,
) -> tuple[dict[str, Any], list[Path]]:
    """Evaluate one dataset's held-out patients.

    Parameters
    ----------
    name : str
        Dataset name in the report (e.g. ``simulated``, ``vitals2024``).
    pipe : VitalRiskPipeline
        Bundle with detector (and optionally fusion).
    readings : Readings
        The data; it is prepared with the bundle's settings and only split 2 is scored.
    plots_dir : Path
        Folder for this dataset's PNGs.
    findings : tuple of str
        Data-audit findings quoted in the report.
    policy : AlarmPolicy, optional
        Alarm policy (default :class:`AlarmPolicy`).
    mc_passes : int
        Monte Carlo dropout passes for the uncertainty band (0 = off).
    seed : int
        Seed of baselines and bootstrap.

    Returns
    -------
    (dict, list of Path)
        The dataset's report section and the plots written.
    """
    policy = policy or pipe.alarm_policy
    result = DatasetResult(findings=list(findings))
    source = HeldOutSplit(readings)
    prepared = source.prepared(pipe.data_config, pipe.window_config)
    result.notes.extend(prepared.notes)
    if prepared.fingerprint != pipe.bundle.manifest.get("detector_data", {}).get("fingerprint"):
        result.notes.append(
            "evaluated on data other than the detector's training data; its test split is used"
        )
    test = prepared.split_part(2)
    if len(test) == 0:
        raise DataError(f"{name}: the test split has no window")
    result.counts = prepared.counts()
    y = test.labels
    known = y >= 0
    table = score_readings(
        pipe, source, mc_passes=mc_passes, seed=seed, history=None if prepared.stream else {}
    )
    scored = table.scores
    emb = scored.embedding
    result.put("tier1", metrics.embedding_metrics(emb[y == 0], emb[y == 1]), TIER1)
    detection = metrics.detection_metrics(
        y[known], scored.anomaly_score[known], pipe.calibration.threshold_high
    )
    result.put("tier2", detection, TIER2)
    for metric in ("roc_auc", "pr_auc"):
        if detection[metric] is not None:
            _ci(
                result,
                f"tier2.{metric}",
                y[known],
                scored.anomaly_score[known],
                test.context_patient[known],
                seed,
            )
    curves: dict[str, np.ndarray] = {"AE + IsolationForest": scored.anomaly_score[known]}
    _baselines(scored.recon_error, readings, prepared, result, curves, seed)
    _fusion(pipe, source, table, result, seed)
    _alarms(pipe, readings, prepared, test, scored.level, policy, result)
    written = _plots(name, pipe, prepared, test, table, curves, readings, plots_dir)
    return result.to_dict(), written


def _plots(
    name: str,
    pipe: VitalRiskPipeline,
    prepared: PreparedData,
    test: PreparedData,
    table: ScoreTable,
    curves: dict[str, np.ndarray],
    readings: Readings,
    out: Path,
) -> list[Path]:
    """Write the dataset's PNGs."""
    out.mkdir(parents=True, exist_ok=True)
    scored = table.scores
    y = test.labels
    known = y >= 0
    written = []
    if len(np.unique(y[known])) == 2:
        written.append(plots.plot_roc_pr(y[known], curves, out / f"{name}_roc_pr.png"))
        written.append(
            plots.plot_score_distributions(
                scored.anomaly_score[known],
                y[known],
                pipe.calibration.threshold_high,
                out / f"{name}_scores.png",
            )
        )
    written.append(plots.plot_embedding_pca(scored.embedding, y, out / f"{name}_pca.png"))
    pick = np.linspace(0, len(test) - 1, num=min(4, len(test))).astype(int)
    weights = (
        attention_weights(pipe.model, pipe.bundle.scaler.transform(test.windows[pick]))
        if pipe.model.config.pooling == "attention"
        else None
    )
    written.append(
        plots.plot_attention(
            test.windows[pick], weights, prepared.feature_names, out / f"{name}_attention.png"
        )
    )
    if table.alarm is not None:
        alarm_on = np.array([state.on for state in table.alarm])
        written.append(_timeline(name, test, scored, alarm_on, readings, out))
    return written


def _timeline(
    name: str,
    test: PreparedData,
    scored: WindowScores,
    alarm_on: np.ndarray,
    readings: Readings,
    out: Path,
) -> Path:
    """One test patient's vitals with risk, uncertainty band and alarms (the one with most events)."""
    events = label_events(readings.frame, set(test.patient))
    patient = max(sorted(set(test.patient)), key=lambda p: len(events.get(p, [])))
    sel = test.patient == patient
    rows = readings.frame[readings.frame[PATIENT_COLUMN] == patient]
    t = rows[TIMESTAMP_COLUMN].to_numpy("datetime64[ns]").astype(np.int64) / 1e9
    vitals = {c: rows[c].to_numpy(np.float64) for c in VITAL_CHANNELS if c in rows.columns}
    order = np.argsort(test.end_s[sel])
    return plots.plot_patient_timeline(
        t,
        vitals,
        test.end_s[sel][order],
        scored.risk[sel][order] if scored.risk_mean is None else scored.risk_mean[sel][order],
        None if scored.risk_std is None else scored.risk_std[sel][order],
        alarm_on[sel][order],
        events.get(patient, []),
        out / f"{name}_timeline.png",
    )


def write_evaluation(
    datasets: Mapping[str, tuple[Path, Readings, tuple[str, ...]]],
    report_dir: str | Path,
    *,
    mc_passes: int = 20,
    seed: int = 0,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate one or more datasets and write report.json, report.md and the PNGs.

    Parameters
    ----------
    datasets : mapping
        Dataset name → (bundle path, readings, audit findings).
    report_dir : path-like
        Output folder (plots go to ``plots/`` inside it).
    mc_passes, seed : int
        As in :func:`evaluate_dataset`.
    meta : mapping, optional
        Extra run information for the report header.

    Returns
    -------
    dict
        The report as written to report.json.
    """
    folder = Path(report_dir)
    plots_dir = folder / "plots"
    report: dict[str, Any] = {
        "datasets": {},
        "definitions": dict(metrics.DEFINITIONS),
        "plots": [],
        "meta": {"vitalsentry": __version__, "mc_passes": mc_passes, "seed": seed}
        | dict(meta or {}),
    }
    curves: dict[str, Any] = {}
    for name, (bundle_path, readings, findings) in datasets.items():
        pipe = VitalRiskPipeline.from_bundle(bundle_path)
        section, written = evaluate_dataset(
            name, pipe, readings, plots_dir, findings=findings, mc_passes=mc_passes, seed=seed
        )
        section["bundle"] = {"path": str(bundle_path), "model_version": pipe.model_version}
        report["datasets"][name] = section
        report["plots"] += [str(p) for p in written]
        if pipe.bundle.has(CURVE):
            curves[name] = pipe.bundle.read_json(CURVE)
        rows = seed_table_rows(section)
        report["plots"].append(
            str(plots.plot_before_after(rows, plots_dir / f"{name}_before_after.png"))
        )
    if curves:
        report["plots"].append(
            str(plots.plot_training_curves(curves, plots_dir / "training_curves.png"))
        )
    write_report(report, folder)
    return report
