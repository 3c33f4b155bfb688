import copy
import json
import re

import numpy as np
import pytest

from vitalsentry.errors import VitalSentryError
from vitalsentry.evaluation.metrics import detection_metrics, metric_definitions
from vitalsentry.evaluation.report import (
    SEED_TABLE,
    render_markdown,
    seed_table_rows,
    split_reasons,
    validate_report,
    write_report,
)

FINDING = (
    "The label is a rule of heart rate and BMI: High Risk ⇔ HR > 90 or BMI > 30 or BMI < 18.5."
)


def _dataset() -> dict:
    return {
        "tier1": {"separation_ratio": np.float64(2.31), "embedding_variance": np.float32(0.125)},
        "tier2": {
            "accuracy": 0.99,
            "precision": 0.96,
            "recall": 0.9,
            "fpr": 0.02,
            "roc_auc": 0.97,
            "pr_auc": 0.9,
        },
        "tier3": {"accuracy": None, "f1": None, "roc_auc": None},
        "baselines": {
            "news2": {"roc_auc": 0.7, "pr_auc": 0.4},
            "iforest_raw": {"roc_auc": 0.8, "pr_auc": 0.5},
            "gbm": {"roc_auc": None, "pr_auc": None},
            "recon_error": {"roc_auc": 0.85, "pr_auc": 0.6},
        },
        "alarms": {"per_patient_day": 0.8, "event_recall": 0.95, "median_delay_s": np.int64(1200)},
        "ci95": {"tier2.roc_auc": (0.95, 0.985), "tier3.roc_auc": None, "tier2.fpr": None},
        "reasons": {
            "tier3": "the bundle has no fusion model",
            "baselines.gbm": "the training split has a single class",
            "ci95.tier2.fpr": "cluster bootstrap needs at least 2 groups (patients), got 1",
        },
        "findings": [FINDING],
        "notes": ["SpO2 is a proxy derived from temperature"],
        "counts": {"windows": np.int64(120), "by_class": {"normal": 100, "abnormal": 20}},
    }


def _report() -> dict:
    return {
        "datasets": {"vitals2024": _dataset()},
        "definitions": metric_definitions(),
        "plots": [],
        "meta": {"version": "0.1.0", "bundle": "bundle/"},
    }


def test_seed_table_matches_the_seed():
    assert [(r.key, r.before, r.target, r.direction, r.tier) for r in SEED_TABLE] == [
        ("tier1.separation_ratio", 1.56, 2.0, ">", 1),
        ("tier1.embedding_variance", 0.06, 0.15, ">", 1),
        ("tier2.accuracy", 0.965, 0.98, ">", 2),
        ("tier2.precision", 0.935, 0.95, ">", 2),
        ("tier2.fpr", 0.07, 0.03, "<", 2),
        ("tier3.accuracy", 0.75, 0.85, ">", 3),
        ("tier3.f1", 0.667, 0.80, ">", 3),
        ("tier3.roc_auc", 0.797, 0.90, ">", 3),
    ]


def test_seed_table_rows_compare_with_the_targets():
    rows = {r["key"]: r for r in seed_table_rows(_dataset())}
    assert rows["tier1.separation_ratio"]["met"] is True
    assert rows["tier1.embedding_variance"]["met"] is False
    assert rows["tier2.fpr"]["met"] is True  # 0.02 < 0.03
    assert rows["tier3.f1"]["achieved"] is None and rows["tier3.f1"]["met"] is None
    assert rows["tier2.accuracy"]["before"] == 0.965
    assert rows["tier2.accuracy"]["ci95"] is None
    result = _dataset()
    result["tier2"]["fpr"] = 0.03  # not strictly below
    assert {r["key"]: r for r in seed_table_rows(result)}["tier2.fpr"]["met"] is False
    del result["tier2"]["precision"]
    with pytest.raises(VitalSentryError, match=r"tier2\.precision: missing"):
        seed_table_rows(result)


def test_split_reasons_prefixes_paths():
    out = detection_metrics(np.zeros(20, int), np.linspace(0, 1, 20), 0.5)
    values, reasons = split_reasons(out, "tier2")
    assert "reasons" not in values and values["roc_auc"] is None
    assert "single class" in reasons["tier2.roc_auc"]
    assert "tier2.fpr" not in reasons


def test_valid_report_passes():
    validate_report(_report())


def _broken(mutate) -> dict:
    report = _report()
    mutate(report["datasets"]["vitals2024"])
    return report


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["tier2"].pop("pr_auc"), r"tier2: missing key\(s\) pr_auc"),
        (lambda d: d.pop("counts"), r"vitals2024: missing key\(s\) counts"),
        (lambda d: d["baselines"].pop("news2"), r"baselines: missing key\(s\) news2"),
        (lambda d: d["tier2"].update(fpr=float("nan")), r"tier2\.fpr: nan is not a finite"),
        (lambda d: d["alarms"].update(event_recall=np.float64("inf")), "not a finite"),
        (lambda d: d["tier2"].update(fpr=None), r"tier2\.fpr: null without a reason"),
        (lambda d: d["tier2"].update(fpr=True), "expected a number or null"),
        (lambda d: d["tier2"].update(fpr="0.1"), "expected a number or null"),
        (lambda d: d["ci95"].update({"tier2.auc": [0.1, 0.2]}), "not the dotted path of a metric"),
        (lambda d: d["ci95"].update({"tier2.pr_auc": [0.9, 0.1]}), r"\[low, high\]"),
        (lambda d: d["ci95"].update({"tier2.pr_auc": None}), r"ci95\.tier2\.pr_auc: null without"),
        (lambda d: d["reasons"].update({"tier9.x": "why"}), "not the dotted path"),
        (lambda d: d["reasons"].update({"tier2.fpr": ""}), "non-empty strings"),
        (lambda d: d.update(findings="text"), "list of strings"),
        (lambda d: d["counts"].update(windows=None), "expected a number"),
        (
            lambda d: d.update(tier1=[1.0]),
            r"^report: datasets\.vitals2024\.tier1: expected an object, got list$",
        ),
        (
            lambda d: d["baselines"]["gbm"].pop("pr_auc"),
            r"baselines\.gbm: missing key\(s\) pr_auc$",
        ),
        (
            lambda d: d["baselines"].update(extra=0.5),
            r"baselines\.extra: expected an object, got float$",
        ),
        (lambda d: d.update(ci95=[]), r"^report: datasets\.vitals2024\.ci95: expected an object$"),
        (
            lambda d: d["ci95"].update({"tier2.pr_auc": [0.1]}),
            r"ci95\.tier2\.pr_auc: expected \[low, high\] or null, got \[0\.1\]$",
        ),
        (lambda d: d["ci95"].update({"tier2.pr_auc": [0.1, "0.2"]}), r"\[low, high\] or null"),
        (
            lambda d: d.update(reasons=["why"]),
            r"vitals2024\.reasons: expected an object of non-empty strings$",
        ),
        (lambda d: d["reasons"].update({"tier2.fpr": 3}), "non-empty strings"),
        (
            lambda d: d["reasons"].update({"ci95.tier2.auc": "why"}),
            r"reasons\.ci95\.tier2\.auc: not the dotted path of a metric or section$",
        ),
        (
            lambda d: d["reasons"].pop("ci95.tier2.fpr"),
            r"^report: datasets\.vitals2024\.ci95\.tier2\.fpr: null without a reason in 'reasons'$",
        ),
        (
            lambda d: d["reasons"].pop("baselines.gbm"),
            r"vitals2024\.baselines\.gbm\.roc_auc: null without a reason",
        ),
        (lambda d: d.update(notes=["ok", 3]), r"vitals2024\.notes: expected a list of strings$"),
        (
            lambda d: d["counts"]["by_class"].update(normal="100"),
            r"counts\.by_class\.normal: expected a number, got '100'$",
        ),
    ],
)
def test_invalid_reports_are_refused(mutate, message):
    with pytest.raises(VitalSentryError, match=message):
        validate_report(_broken(mutate))


def test_top_level_keys_and_nan_in_meta_are_checked():
    report = _report()
    del report["plots"]
    with pytest.raises(VitalSentryError, match=r"missing key\(s\) plots"):
        validate_report(report)
    report = _report()
    report["meta"]["seconds"] = float("nan")
    with pytest.raises(VitalSentryError, match=r"meta\.seconds"):
        validate_report(report)
    report = _report()
    report["datasets"] = {}
    with pytest.raises(VitalSentryError, match="non-empty"):
        validate_report(report)


def test_a_null_interval_of_a_null_metric_inherits_its_reason():
    report = _report()
    ds = report["datasets"]["vitals2024"]
    ds["ci95"]["baselines.gbm.roc_auc"] = None  # no ci95 reason: the metric's own one covers it
    ds["tier2"]["pr_auc"] = None
    ds["reasons"]["tier2.pr_auc"] = "one class"
    ds["ci95"]["tier2.pr_auc"] = None
    validate_report(report)


def test_extra_metrics_follow_the_same_rules():
    report = _report()
    tier3 = report["datasets"]["vitals2024"]["tier3"]
    tier3["without_static"] = {"accuracy": 0.6, "roc_auc": None}
    validate_report(report)  # covered by the "tier3" reason
    report["datasets"]["vitals2024"]["tier2"]["balanced_accuracy"] = None
    with pytest.raises(VitalSentryError, match="balanced_accuracy: null without a reason"):
        validate_report(report)


def test_write_report_round_trip(tmp_path):
    plot = tmp_path / "plots" / "vitals2024_roc_pr.png"
    report = _report()
    report["plots"] = [plot]
    json_path, md_path = write_report(report, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]
    loaded = json.loads(json_path.read_text())
    validate_report(loaded)
    ds = loaded["datasets"]["vitals2024"]
    assert ds["tier1"]["embedding_variance"] == pytest.approx(0.125)
    assert ds["ci95"]["tier2.roc_auc"] == [0.95, 0.985]
    assert ds["tier3"]["roc_auc"] is None
    assert ds["alarms"]["median_delay_s"] == 1200 and isinstance(
        ds["alarms"]["median_delay_s"], int
    )
    assert loaded["plots"] == [str(plot)]
    again_json, _ = write_report(loaded, tmp_path / "again")
    assert json.loads(again_json.read_text()) == loaded

    md = md_path.read_text()
    assert md.startswith("# vitalsentry evaluation report")
    assert "| Separation ratio | 1.56 | > 2 | 2.310 | yes |" in md
    assert "| **Tier 3: Fusion** |" in md
    assert "| ROC-AUC | 0.797 | > 0.9 | n/a | n/a |" in md
    assert "0.970 (0.950–0.985)" in md
    assert "| 0.800 | 0.950 | 1200 |" in md
    assert "counts: windows: 120; by_class.normal: 100" in md
    assert f"> {FINDING}" in md
    assert "SpO2 is a proxy derived from temperature" in md
    assert "- `baselines.gbm`: the training split has a single class" in md
    assert "| Gradient boosting, supervised (ceiling) | n/a | n/a |" in md
    assert "](plots/vitals2024_roc_pr.png)" in md
    assert "## Metric definitions" in md and "centroid" in md
    tables = "\n".join(line for line in md.splitlines() if line.startswith("|"))
    assert not re.search(r"\bnan\b", tables, flags=re.IGNORECASE)


def test_invalid_report_writes_nothing(tmp_path):
    report = _report()
    report["datasets"]["vitals2024"]["tier2"]["fpr"] = np.nan
    with pytest.raises(VitalSentryError):
        write_report(report, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_render_markdown_notes_when_targets_are_met():
    report = _report()
    ds = report["datasets"]["vitals2024"]
    met = copy.deepcopy(ds)
    met["tier1"]["embedding_variance"] = 0.2
    met["tier3"] = {"accuracy": 0.9, "f1": 0.85, "roc_auc": 0.95}
    met["reasons"].pop("tier3")
    met["ci95"].pop("tier3.roc_auc")
    report["datasets"]["simulated"] = met
    validate_report(report)
    md = render_markdown(report)
    assert "#### Data audit findings that explain the gaps" in md
    assert "#### Data audit findings for this dataset" in md


def test_alarm_section_states_false_alarms_and_event_density():
    report = _report()
    alarms = report["datasets"]["vitals2024"]["alarms"]
    assert "false alarms" not in render_markdown(report)
    alarms.update(false_per_patient_day=0.25, events_per_patient_day=6.0)
    validate_report(report)
    md = render_markdown(report)
    assert "Of these, 0.250 per patient-day are false alarms" in md
    assert "6.000 labelled events per patient-day" in md
