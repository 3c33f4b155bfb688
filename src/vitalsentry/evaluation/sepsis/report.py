"""Report of the sepsis benchmark: JSON, Markdown and plots."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve

from vitalsentry.evaluation import plots
from vitalsentry.evaluation.sepsis.utility import CohortUtility
from vitalsentry.io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from vitalsentry.evaluation.sepsis.benchmark import Prepared

Scores = Mapping[str, NDArray[np.float64]]


def _label(name: str) -> str:
    from vitalsentry.evaluation.sepsis.benchmark import METHOD_LABELS

    return METHOD_LABELS.get(name, name)


def _finite(s: NDArray[np.float64]) -> NDArray[np.float64]:
    """NaN scores (nothing measured yet) ranked below every other score."""
    low = np.nanmin(s) - 1.0 if np.isfinite(s).any() else 0.0
    return np.where(np.isnan(s), low, s)


def _utility_plot(
    test: Scores, util: CohortUtility, chosen: Mapping[str, float], out: Path
) -> None:
    fig = plots._figure(7.5, 4.8)
    ax = fig.subplots()
    for name, s in test.items():
        thresholds, utilities = util.curve(s)
        ascending = np.sort(s[~np.isnan(s)])
        share = (ascending.size - np.searchsorted(ascending, thresholds, side="left")) / s.size
        ax.plot(share, utilities, label=_label(name))
        t = chosen[name]
        if np.isfinite(t):
            ax.plot([(s >= t).mean()], [util.normalised(s >= t)], "o", color="black", ms=3)
    ax.axhline(0.0, color="grey", linestyle=":")
    ax.set(
        xscale="log",
        xlabel="share of test hours alarmed (threshold swept)",
        ylabel="normalised utility",
        title="Utility against threshold (dots: validation choice)",
    )
    ax.legend(fontsize=7)
    plots._save(fig, out)


def _lead_plot(leads: Mapping[str, NDArray[np.float64]], out: Path) -> None:
    fig = plots._figure(7.0, 4.0)
    ax = fig.subplots()
    bins = [float(b) for b in np.arange(-3.5, 48.5, 1.0)]
    for name, lead in leads.items():
        ax.hist(
            np.clip(lead, -3, 48),
            bins=bins,
            histtype="step",
            label=f"{_label(name)} (n={lead.size})",
        )
    ax.axvline(6, color="grey", linestyle=":")
    ax.set(
        xlabel="hours of the first alarm before onset (48 = 48 or more)",
        ylabel="septic test patients",
        title="Lead time at the validation threshold",
    )
    ax.legend(fontsize=7)
    plots._save(fig, out)


def _calibration_plot(y: NDArray[np.int8], probs: Scores, out: Path) -> None:
    fig = plots._figure(5.5, 5.0)
    ax = fig.subplots()
    for name, p in probs.items():
        frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(mean, frac, marker="o", ms=3, label=_label(name))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="mean predicted probability",
        ylabel="observed share of positive hours",
        title="Reliability (test hours, deciles)",
    )
    ax.legend(fontsize=7)
    plots._save(fig, out)


def _timeline_plot(
    prep: Prepared, scores: Scores, thresholds: Mapping[str, float], out: Path
) -> None:
    cohort = prep.cohort
    test = prep.split == 2
    septic = np.unique(cohort.patient[test & (cohort.label == 1)])
    clean = np.setdiff1d(
        np.unique(cohort.patient[test]), np.unique(cohort.patient[cohort.label == 1])
    )
    fig = plots._figure(11.0, 6.0)
    axes = fig.subplots(2, 2, sharex="col")
    for col, (title, pool) in enumerate((("septic", septic), ("non-septic", clean))):
        if pool.size == 0:
            continue
        rows = np.flatnonzero(cohort.patient == pool[0])
        hours = np.arange(rows.size)
        for j, name in enumerate(cohort.vital_names[:4]):
            axes[0, col].plot(hours, cohort.vitals[rows, j], ".-", ms=3, lw=0.8, label=name)
        for name in ("risk", "gbm_all"):
            axes[1, col].plot(hours, scores[name][rows], label=_label(name))
            if np.isfinite(thresholds[name]):
                axes[1, col].axhline(thresholds[name], lw=0.6, linestyle="--")
        positive = np.flatnonzero(cohort.label[rows] == 1)
        if positive.size:
            for ax in axes[:, col]:
                ax.axvline(positive[0] + 6, color="red", lw=1, label="onset")
                ax.axvspan(positive[0] - 6, positive[0] + 9, color="red", alpha=0.08)
        axes[0, col].set(title=f"{title} test patient {pool[0]}")
        axes[1, col].set(xlabel="hours since ICU admission", ylabel="probability")
        axes[0, col].legend(fontsize=6)
        axes[1, col].legend(fontsize=6)
    plots._save(fig, out)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ci(r: Mapping[str, Any], name: str) -> str:
    ci = r.get(f"{name}_ci")
    text = _fmt(r[name])
    return f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else text


def _difference(c: Mapping[str, Any]) -> str:
    ci = c["ci"]
    interval = f" (paired 95 % CI [{ci[0]:+.3f}, {ci[1]:+.3f}])" if ci else ""
    return f"{c['difference']:+.3f}{interval}"


def _settled(c: Mapping[str, Any]) -> bool:
    """Whether the paired CI excludes 0 (a difference the test set can resolve)."""
    return c["ci"] is not None and (c["ci"][0] > 0 or c["ci"][1] < 0)


def _targets(report: Mapping[str, Any]) -> list[str]:
    results, comp = report["results"], report["comparisons"]
    risk, gbm, news2 = results["risk"], results["gbm_all"], results["news2"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    emb = comp["embeddings"]
    if _settled(emb):
        said = "the embeddings change the ROC-AUC measurably."
    else:
        said = "the CI includes 0: the embeddings add nothing measurable on this test set."
    return [
        f"- risk utility {risk['utility']:.3f} vs all-columns gradient boosting "
        f"{gbm['utility']:.3f}: {verdict(risk['utility'] >= gbm['utility'])}; difference "
        f"{_difference(comp['utility_risk_vs_gbm_all'])}",
        f"- risk ROC-AUC {risk['roc_auc']:.3f} vs all-columns gradient boosting "
        f"{gbm['roc_auc']:.3f}: {verdict(risk['roc_auc'] >= gbm['roc_auc'])}; difference "
        f"{_difference(comp['risk_vs_gbm_all'])}",
        f"- risk ROC-AUC ≥ NEWS2's + 0.15 ({news2['roc_auc']:.3f} + 0.15 = "
        f"{news2['roc_auc'] + 0.15:.3f}): {verdict(risk['roc_auc'] >= news2['roc_auc'] + 0.15)}",
        f"- what the autoencoder embeddings add (risk minus the ablation without them): "
        f"ROC-AUC {_difference(emb)}, utility "
        f"{risk['utility'] - results['risk_no_embeddings']['utility']:+.3f}; {said}",
        f"- what the context adds (risk minus the ablation without it): ROC-AUC "
        f"{_difference(comp['context'])}",
    ]


def _recipe(report: Mapping[str, Any]) -> str:
    """Return what the risk's head and its ablations fit on, beside the baselines' recipe."""
    head = report["config"].get("head", {"target": "label"})
    if head["target"] == "label":
        return (
            "Head recipe: the risk's head and its ablations fit SepsisLabel, every hour "
            "weighing 1, as the gradient-boosting baselines do."
        )
    return (
        "Head recipe: the risk's head and its ablations are trained on utility-weighted hours "
        "(label SepsisLabel or an alarm's utility gain > 0, so also the hours 6 to 12 h before "
        f"onset; weight max(|gain|, {head['floor']})); the gradient-boosting baselines on "
        "SepsisLabel, every hour weighing 1. Both stop early on validation patients and the "
        "heads are Platt-calibrated there on SepsisLabel; the ablation without embeddings "
        "has the risk's recipe, so it shows how much of a gain is the recipe's."
    )


def render_markdown(report: Mapping[str, Any]) -> str:
    """Render the report as Markdown: counts, the results table, targets, timings, plots."""
    lines = [
        "# PhysioNet 2019 sepsis benchmark",
        "",
        f"Trained on `{report['inputs']['train']}`; reported on "
        + (
            f"`{report['inputs']['test']}` (another file)."
            if "test" in report["inputs"]
            else "its held-out test patients."
        ),
        "Hourly predictions from data up to each hour; thresholds chosen on validation patients "
        "for utility; CIs: 95 % patient bootstrap.",
        "",
        "| split | patients | septic | patient-hours | positive hours |",
        "|---|---|---|---|---|",
    ]
    for split, c in report["counts"].items():
        lines.append(
            f"| {split} | {c['patients']} | {c['septic_patients']} | {c['patient_hours']} | {c['positive_hours']} |"
        )
    lines += [
        "",
        "| method | utility | ROC-AUC | PR-AUC | median lead (h) | detected | alarms / patient-day | Brier |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["results"].items():
        lines.append(
            f"| {_label(name)} | {_fmt(r['utility'])} | {_ci(r, 'roc_auc')} | {_ci(r, 'pr_auc')} | "
            f"{_fmt(r['lead_time_median_h'], 1)} | {r['detected']} | {_fmt(r['alarms_per_patient_day'], 2)} | "
            f"{_fmt(r['brier'], 4)} |"
        )
    lines += ["", _recipe(report), "", "## Targets", "", *_targets(report), "", "## Run", ""]
    lines += [f"- data: {note}" for note in report["data_notes"]]
    lines.append(
        "Stage times (s): " + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items())
    )
    lines.append(f"Peak resident memory: {report['peak_rss_mib']:.0f} MiB.")
    ae = report["autoencoder"]
    lines.append(
        f"Autoencoder: {ae.get('epochs')} epochs; encoding "
        f"{_fmt(ae.get('encode_patient_hours_per_s'), 0)} patient-hours/s (windows built and "
        f"encoded). Risk's whole scoring path (features, windows + encoder, head; "
        f"{ae.get('score_workers')} threads): {_fmt(ae.get('score_patient_hours_per_s'), 0)} "
        f"patient-hours/s, {_fmt(ae.get('score_patient_hours_per_cpu_s'), 0)} per CPU second "
        f"(load average {ae.get('score_load_average')})."
    )
    lines += ["", "## Plots", ""]
    lines += [f"![{p}]({p})" for p in report["plots"]]
    return "\n".join(lines) + "\n"


def write_sepsis_report(report: dict[str, Any], prep: Prepared, scores: Scores, out: Path) -> None:
    """Draw the plots and write ``report.json`` and ``report.md`` into ``out``."""
    test = prep.split == 2
    y = prep.cohort.label[test]
    util = CohortUtility.of(prep.cohort.patient[test], y)
    thresholds = {
        k: np.inf if r["threshold"] is None else r["threshold"]
        for k, r in report["results"].items()
    }
    shown = {k: scores[k][test] for k in report["results"]}
    plots.plot_roc_pr(y, {_label(k): _finite(s) for k, s in shown.items()}, out / "roc_pr.png")
    _utility_plot(shown, util, thresholds, out / "utility.png")
    from vitalsentry.evaluation.sepsis.scoring import Patients, lead_times

    patients = Patients.of(prep.cohort.patient[test], y)
    leads = {
        k: lead_times(patients, np.nan_to_num(shown[k], nan=-np.inf) >= thresholds[k])[0]
        for k in ("risk", "gbm_all", "news2")
    }
    _lead_plot(leads, out / "lead_time.png")
    probs = {k: shown[k] for k in ("risk", "gbm_all", "gbm_vitals")}
    _calibration_plot(y, probs, out / "calibration.png")
    _timeline_plot(prep, scores, thresholds, out / "timeline.png")
    report["plots"] = [
        "roc_pr.png",
        "utility.png",
        "lead_time.png",
        "calibration.png",
        "timeline.png",
    ]
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", render_markdown(report))
