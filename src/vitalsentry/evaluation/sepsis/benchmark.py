"""``vitalsentry benchmark physionet2019``: train on one PhysioNet 2019 file, report hourly.

Stages (each cached under ``<out>/cache/<key>/`` by the data fingerprint and the config,
written atomically as safetensors, skops or JSON, so an interrupted run resumes):
cohort → causal features → clinical scores → gradient-boosting baselines → autoencoder →
embeddings → fusion head and its ablations → validation thresholds → test metrics → report.
The autoencoder and each fusion head are bundles: the head is the ``context_head`` stage
(:class:`~vitalsentry.stages.ContextHeadStage`), fitted after the autoencoder's stages and
saved with them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import resource
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import safetensors.numpy
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from vitalsentry import __version__
from vitalsentry.bundle import MANIFEST, load_stages, save_stages
from vitalsentry.data.physionet import read_physionet2019
from vitalsentry.data.schema import CHANNELS, LABEL_COLUMN, PATIENT_COLUMN
from vitalsentry.data.splits import split_patients
from vitalsentry.errors import DataError
from vitalsentry.evaluation.sepsis import baselines, model, scoring
from vitalsentry.evaluation.sepsis.bootstrap import PatientBootstrap
from vitalsentry.evaluation.sepsis.features import Cohort, stay_features, tabular_features
from vitalsentry.evaluation.sepsis.recipe import HeadRecipe
from vitalsentry.io import atomic_path, sha256_file
from vitalsentry.persist import load_skops, save_skops
from vitalsentry.stages import ContextHeadStage, ContextInputs, FitInputs, Stages

Arrays = dict[str, NDArray[Any]]

METHOD_LABELS: dict[str, str] = {
    **baselines.BASELINE_LABELS,
    "risk": "vitalsentry risk (AE embeddings + anomaly + context)",
    "risk_no_embeddings": "ablation: without embeddings",
    "risk_no_context": "ablation: without context",
}
"""Every method of the report, in table order."""

PROBABILISTIC = ("gbm_vitals", "gbm_all", "risk", "risk_no_embeddings", "risk_no_context")


@dataclass(frozen=True)
class SepsisBenchmarkConfig:
    """Settings of a benchmark run (saved in the report).

    Attributes
    ----------
    split : tuple of float
        Patient split of ``PATH`` (train, val, test) without ``--test``.
    external_val : float
        Share of ``PATH``'s patients that validate when ``--test`` is given.
    roll_hours : int
        Hours of the rolling statistics.
    trend_hours : int or None
        Hours of the fusion head's longer-horizon statistics (:func:`stay_features`);
        None (default) leaves them out: on a 4,000-patient subset of set A they lowered
        the risk's validation utility (0.398 → 0.370).
    step : int
        Hours between fresh predictions (the last one holds in between).
    max_patients : int or None
        Seeded subset of each file's patients (development runs), None = all.
    n_boot : int
        Patient-bootstrap resamples of the confidence intervals (and of the bagged
        threshold).
    threshold : {"bagged", "argmax"}
        How each method's alarm threshold is chosen on the validation patients: the
        median of the utility argmaxes over their bootstrap resamples
        (:func:`scoring.bagged_threshold`), or the one argmax of their utility curve.
    seed : int
        Seed of the split, the subset and every model.
    autoencoder : model.AutoencoderSettings
    gbm : baselines.GbmConfig
        Settings of every gradient-boosting model (baselines and heads).
    head : HeadRecipe
        What the risk's head and its ablations fit on (:mod:`.recipe`); the
        gradient-boosting baselines always fit ``SepsisLabel``, every hour weighing 1.
    """

    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    external_val: float = 0.15
    roll_hours: int = 6
    trend_hours: int | None = None
    step: int = 1
    max_patients: int | None = None
    n_boot: int = 200
    threshold: Literal["bagged", "argmax"] = "bagged"
    seed: int = 0
    autoencoder: model.AutoencoderSettings = field(default_factory=model.AutoencoderSettings)
    gbm: baselines.GbmConfig = field(default_factory=baselines.GbmConfig)
    head: HeadRecipe = field(default_factory=lambda: HeadRecipe(target="utility"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return dataclasses.asdict(self)


def fingerprint(path: Path) -> str:
    """sha256 of a file, or of a directory's relative names, sizes and mtimes."""
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise DataError(f"{path}: no such file or directory")
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Cache:
    """One run's cache folder: arrays (safetensors), models (skops) and JSON, atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def arrays(self, name: str, compute: Callable[[], Arrays]) -> Arrays:
        """Load ``name.safetensors`` or compute and store it."""
        path = self.root / f"{name}.safetensors"
        if path.is_file():
            return safetensors.numpy.load_file(str(path))
        out = {k: np.ascontiguousarray(v) for k, v in compute().items()}
        with atomic_path(path) as tmp:
            safetensors.numpy.save_file(out, str(tmp))
        return out

    def gbm(
        self, name: str, fit: Callable[[], HistGradientBoostingClassifier]
    ) -> HistGradientBoostingClassifier:
        """Load ``name.skops`` (allow-listed types only) or fit and store it."""
        path = self.root / f"{name}.skops"
        if path.is_file():
            return load_skops(path, baselines.GBM_TRUSTED_TYPES, HistGradientBoostingClassifier)
        fitted = fit()
        save_skops(fitted, path)
        return fitted


@contextmanager
def _stage(timings: dict[str, float], name: str, progress: Callable[[str], None]) -> Iterator[None]:
    progress(name)
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 2)


@contextmanager
def _rates(out: dict[str, float], name: str, n: int) -> Iterator[None]:
    """Record ``n`` patient-hours over the block's wall and CPU seconds (``<name>_...``)."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    out[f"{name}_patient_hours_per_s"] = n / max(time.perf_counter() - wall, 1e-9)
    out[f"{name}_patient_hours_per_cpu_s"] = n / max(time.process_time() - cpu, 1e-9)


def _cohort_arrays(path: Path, prefix: str) -> Arrays:
    """Read a PhysioNet 2019 file into cohort arrays (patients as codes)."""
    readings = read_physionet2019(path)
    frame, context = readings.frame, readings.context
    if LABEL_COLUMN not in frame.columns:
        raise DataError(f"{path}: no SepsisLabel column (a benchmark needs labels)")
    if context is None:
        raise DataError(f"{path}: the reader returned no context columns")
    vitals = [c for c in CHANNELS if c in frame.columns]
    ids, codes = np.unique(frame[PATIENT_COLUMN].astype(str).to_numpy(), return_inverse=True)
    names = json.dumps(
        {
            "patients": [prefix + i for i in ids],
            "vitals": vitals,
            "context": [str(c) for c in context.columns],
            "notes": [f"{path.name}: {note}" for note in readings.notes],
        }
    )
    return {
        "patient": codes.astype(np.int64),
        "vitals": frame[vitals].to_numpy(np.float32),
        "context": context.to_numpy(np.float32),
        "label": frame[LABEL_COLUMN].to_numpy(np.int8),
        "names": np.frombuffer(names.encode(), dtype=np.uint8),
    }


def _notes(arrays: Arrays) -> tuple[str, ...]:
    """Return the reader's notes stored with :func:`_cohort_arrays` output."""
    return tuple(json.loads(arrays["names"].tobytes().decode()).get("notes", []))


def _to_cohort(arrays: Arrays, vitals: list[str] | None = None) -> Cohort:
    """Cohort from :func:`_cohort_arrays` output, vitals reindexed to ``vitals``."""
    names = json.loads(arrays["names"].tobytes().decode())
    have = names["vitals"]
    want = have if vitals is None else vitals
    v = np.full((arrays["vitals"].shape[0], len(want)), np.nan, np.float32)
    for j, name in enumerate(want):
        if name in have:
            v[:, j] = arrays["vitals"][:, have.index(name)]
    patient = np.asarray(names["patients"])[arrays["patient"]]
    return Cohort(
        patient, v, tuple(want), arrays["context"], tuple(names["context"]), arrays["label"]
    )


def _subset(cohort: Cohort, max_patients: int | None, seed: int) -> Cohort:
    """Return a seeded subset of whole patients (all of them when ``max_patients`` is None)."""
    ids = np.unique(cohort.patient)
    if max_patients is None or ids.size <= max_patients:
        return cohort
    keep = np.random.default_rng(seed).choice(ids, max_patients, replace=False)
    return cohort.select_patients(np.isin(cohort.patient, keep))


def _concat(a: Cohort, b: Cohort) -> Cohort:
    """Rows of ``a`` then ``b`` (same vitals; context columns matched by name)."""
    if a.context_names != b.context_names:
        raise DataError("the --test file has other context columns than the training file")
    return Cohort(
        np.concatenate([a.patient, b.patient]),
        np.concatenate([a.vitals, b.vitals]),
        a.vital_names,
        np.concatenate([a.context, b.context]),
        a.context_names,
        np.concatenate([a.label, b.label]),
    )


def _split_rows(cohort: Cohort, fractions: tuple[float, ...], seed: int) -> NDArray[np.int8]:
    """Split code of every row from a patient split stratified by sepsis."""
    septic = {str(p): 1 for p in np.unique(cohort.patient[cohort.label == 1])}
    ids = [str(p) for p in np.unique(cohort.patient)]
    strata = {p: septic.get(p, 0) for p in ids}
    codes = split_patients(ids, fractions, seed, strata)
    lookup = np.array([codes[p] for p in ids], np.int8)
    return lookup[np.searchsorted(np.asarray(ids), cohort.patient.astype(str))]


def _hold(scores: NDArray[np.float64], cohort: Cohort, step: int) -> NDArray[np.float64]:
    """Keep each fresh prediction (every ``step`` hours of a stay) until the next one."""
    if step == 1:
        return scores
    fresh = cohort.hour % step == 0
    last = np.maximum.accumulate(np.where(fresh, np.arange(len(cohort)), 0))
    return scores[last]


@dataclass(frozen=True)
class Prepared:
    """The cohort of a run, its split and cache.

    Attributes
    ----------
    cohort : Cohort
        Training-file rows, then (with ``--test``) the test file's.
    split : ndarray of int8, shape (n,)
        0 train, 1 validation, 2 test.
    cache : Cache
        Folder of this data + config.
    inputs : dict
        File names and fingerprints.
    notes : tuple of str
        The reader's notes (channels left out, quarantined readings).
    """

    cohort: Cohort
    split: NDArray[np.int8]
    cache: Cache
    inputs: dict[str, str]
    notes: tuple[str, ...] = ()


def prepare_cohort(
    path: Path, out: Path, test: Path | None, config: SepsisBenchmarkConfig
) -> Prepared:
    """Read (or load the cached) cohorts, take the subset and split the patients."""
    cohorts = Cache(out / "cache" / "cohorts")
    prints = {"train": fingerprint(path)}
    arrays = cohorts.arrays(prints["train"][:24], lambda: _cohort_arrays(path, ""))
    cohort = _subset(_to_cohort(arrays), config.max_patients, config.seed)
    notes = _notes(arrays)
    if test is None:
        split = _split_rows(cohort, config.split, config.seed)
    else:
        prints["test"] = fingerprint(test)
        extra = cohorts.arrays(f"{prints['test'][:24]}-test", lambda: _cohort_arrays(test, "test:"))
        other = _subset(
            _to_cohort(extra, list(cohort.vital_names)), config.max_patients, config.seed
        )
        fractions = (1.0 - config.external_val, config.external_val)
        inner = np.where(_split_rows(cohort, fractions, config.seed) == 0, 0, 1).astype(np.int8)
        split = np.r_[inner, np.full(len(other), 2, np.int8)]
        cohort = _concat(cohort, other)
        notes += _notes(extra)
    identity = {
        "inputs": prints,
        "rows": [config.split, config.external_val, config.max_patients, config.seed],
        "version": __version__,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    inputs = {"train": str(path), **({"test": str(test)} if test else {})}
    inputs |= {f"{k}_sha256": v for k, v in prints.items()}
    return Prepared(cohort, split, Cache(out / "cache" / key), inputs, notes)


def _tag(name: str, *settings: Any) -> str:
    """Cache name of a stage: its name and a hash of the settings it depends on."""
    blob = json.dumps(settings, default=dataclasses.asdict)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _vital_feature_count(cohort: Cohort) -> int:
    """Leading columns of :func:`tabular_features` that come from the vitals alone."""
    return 7 * len(cohort.vital_names)


def _head_settings(config: SepsisBenchmarkConfig) -> tuple[Any, ...]:
    """Return the settings a head's cache tag depends on (a labels recipe keeps old tags)."""
    settings = (config.gbm, config.roll_hours, config.trend_hours, config.autoencoder)
    return settings if config.head == HeadRecipe() else (*settings, config.head)


def _context_head(encoder: Stages, folder: Path, table: ContextInputs) -> ContextHeadStage:
    """Load the head's bundle at ``folder``, or fit the head after ``encoder`` and save it there."""
    if (folder / MANIFEST).is_file():
        return load_stages(folder).get(ContextHeadStage)
    fitted = encoder.fit((ContextHeadStage.name,), FitInputs(context=table))
    save_stages(fitted, folder)
    return fitted.get(ContextHeadStage)


def method_scores(
    prep: Prepared,
    config: SepsisBenchmarkConfig,
    timings: dict[str, float],
    progress: Callable[[str], None],
    bars: bool,
) -> tuple[dict[str, NDArray[np.float64]], dict[str, Any]]:
    """Hourly scores of every method on every row, and notes on the autoencoder."""
    cohort, split, cache = prep.cohort, prep.split, prep.cache
    train = split == 0
    with _stage(timings, "features", progress):
        x = cache.arrays(
            _tag("features", config.roll_hours),
            lambda: {"x": tabular_features(cohort, roll_hours=config.roll_hours)[0]},
        )["x"]
        longer = (
            np.empty((len(cohort), 0), np.float32)
            if config.trend_hours is None
            else cache.arrays(
                _tag("stay_features", config.trend_hours),
                lambda: {"x": stay_features(cohort, trend_hours=config.trend_hours or 0)[0]},
            )["x"]
        )
    nv = _vital_feature_count(cohort)
    ns = 0 if config.trend_hours is None else 5 * len(cohort.vital_names)
    with _stage(timings, "clinical scores", progress):
        scores = dict(cache.arrays("clinical", lambda: baselines.clinical_scores(cohort)))
    y = cohort.label
    scored = split >= 1  # only validation and test hours are ever read
    trees: dict[str, int] = {}

    def gbm(name: str, features: baselines.Columns) -> NDArray[np.float64]:
        with _stage(timings, name, progress):
            fitted = cache.gbm(
                _tag(name, config.gbm, config.roll_hours),
                lambda: baselines.fit_gbm(features, y, train, config.gbm, split == 1),
            )
            trees[f"{name}_trees"] = int(fitted.n_iter_)
            return baselines.gbm_proba(fitted, features, scored)

    scores |= _concurrently(
        {
            "gbm_vitals": lambda: gbm("gbm_vitals", [x[:, :nv]]),
            "gbm_all": lambda: gbm("gbm_all", [x]),
        }
    )
    ae_folder = cache.root / _tag("autoencoder", config.autoencoder)
    with _stage(timings, "autoencoder", progress):
        medians = model.training_medians(cohort, train)
        inputs = model.vital_inputs(cohort, medians)
        ae, scaler, ae_summary = model.train_autoencoder(
            cohort,
            inputs,
            split,
            config.autoencoder,
            ae_folder,
            progress=bars,
        )
    with _stage(timings, "embeddings", progress):

        def encode_all() -> Arrays:
            rates: dict[str, float] = {}
            with _rates(rates, "encode", len(cohort)):
                z, anomaly = model.embed(ae, scaler, cohort, inputs, config.autoencoder.window)
            rate, cpu_rate = (rates[f"encode_patient_hours_per_{u}"] for u in ("s", "cpu_s"))
            return {
                "emb": z,
                "anomaly": anomaly,
                "rate": np.array([rate]),
                "cpu": np.array([cpu_rate]),
            }

        emb = cache.arrays(_tag("embeddings", config.autoencoder), encode_all)
    ae_summary["encode_patient_hours_per_s"] = float(emb["rate"][0])
    if "cpu" in emb:  # caches written before the CPU rate was recorded lack it
        ae_summary["encode_patient_hours_per_cpu_s"] = float(emb["cpu"][0])
    z, anomaly = emb["emb"], emb["anomaly"]
    variants: dict[str, baselines.Columns] = {
        "risk": model.risk_blocks(x, longer, z, anomaly),
        "risk_no_embeddings": [x, longer, anomaly[:, None]],
        "risk_no_context": [x[:, :nv], longer[:, :ns], z, anomaly[:, None]],
    }
    encoder = load_stages(ae_folder)

    def head(name: str) -> ContextHeadStage:
        with _stage(timings, name, progress):
            folder = cache.root / _tag(name, *_head_settings(config))
            table = ContextInputs(variants[name], y, split, config.gbm, config.head, cohort.patient)
            fitted = _context_head(encoder, folder, table)
            if name != "risk":  # the risk itself is scored below, by its whole path
                scores[name] = fitted.predict(variants[name], scored)
            return fitted

    # the small head beside the risk's, so the two large fits overlap least (memory)
    order = ("risk", "risk_no_context", "risk_no_embeddings")
    heads = _concurrently({name: functools.partial(head, name) for name in order})
    for name, fitted in heads.items():
        ae_summary[f"{name}_calibration"] = dataclasses.asdict(fitted.platt)
        trees[f"{name}_trees"] = int(fitted.model.n_iter_)
    ae_summary |= trees
    window, roll, trend = config.autoencoder.window, config.roll_hours, config.trend_hours
    risk_inputs = model.RiskInputs(ae, scaler, medians, window, roll, trend)
    scorer = model.RiskScorer(risk_inputs, heads["risk"])
    with _stage(timings, "scoring", progress):
        scores["risk"] = score_hours(scorer, cohort, scored, ae_summary)
    return {
        k: _hold(np.asarray(scores[k], np.float64), cohort, config.step) for k in METHOD_LABELS
    }, ae_summary


FIT_WORKERS = 2
"""Gradient-boosting models fitted at once (the benchmark machine has two cores)."""

T = TypeVar("T")


def _concurrently(tasks: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Run named tasks on :data:`FIT_WORKERS` threads; return their results by name.

    Each task runs with one OpenMP thread: the models are independent (the trees release
    the GIL), so no thread waits for another at a barrier while the machine is busy.
    """

    def alone(task: Callable[[], T]) -> T:
        with threadpool_limits(1, user_api="openmp"):
            return task()

    with ThreadPoolExecutor(FIT_WORKERS) as pool:
        futures = {name: pool.submit(alone, task) for name, task in tasks.items()}
        return {name: future.result() for name, future in futures.items()}


SCORING_WORKERS = 2
"""Threads of the risk's whole scoring path (the benchmark machine has two cores)."""


def score_hours(
    scorer: model.RiskScorer, cohort: Cohort, rows: NDArray[np.bool_], notes: dict[str, Any]
) -> NDArray[np.float64]:
    """Risk at ``rows`` (whole stays; NaN elsewhere) by the scorer's whole path.

    The path starts from the raw rows (features, windows, encoder, head); its rates
    (patient-hours per wall and per CPU second), threads and the machine's load average at
    that moment go into ``notes`` (keys ``score_...``).
    """
    part = cohort.select_patients(rows)
    risk = np.full(len(cohort), np.nan)
    with _rates(notes, "score", len(part)):
        risk[rows] = scorer.score(part, workers=SCORING_WORKERS)
    notes["score_workers"] = SCORING_WORKERS
    notes["score_load_average"] = [round(x, 2) for x in os.getloadavg()]
    return risk


def _counts(prep: Prepared) -> dict[str, dict[str, int]]:
    """Patients, septic patients and patient-hours per split."""
    out = {}
    for code, name in ((0, "train"), (1, "validation"), (2, "test")):
        rows = prep.split == code
        out[name] = {
            "patients": int(np.unique(prep.cohort.patient[rows]).size),
            "septic_patients": int(
                np.unique(prep.cohort.patient[rows & (prep.cohort.label == 1)]).size
            ),
            "patient_hours": int(rows.sum()),
            "positive_hours": int(prep.cohort.label[rows].sum()),
        }
    return out


COMPARISONS = {
    "risk_vs_gbm_all": ("risk", "gbm_all"),
    "risk_vs_news2": ("risk", "news2"),
    "embeddings": ("risk", "risk_no_embeddings"),
    "context": ("risk", "risk_no_context"),
}
"""Paired ROC-AUC differences reported (name: (method, reference))."""


def _comparisons(
    scores: dict[str, NDArray[np.float64]],
    prep: Prepared,
    boot: PatientBootstrap,
    patients: scoring.Patients,
    thresholds: dict[str, float],
) -> dict[str, dict[str, Any]]:
    """Paired patient-bootstrap differences on the test ``patients``' hours.

    ROC-AUC of :data:`COMPARISONS`, and (``utility_risk_vs_gbm_all``) the utility of the
    risk's alarms minus that of the all-columns baseline's, each at its validation
    ``thresholds``.
    """
    test = prep.split == 2
    y = prep.cohort.label[test]

    def ranked(name: str) -> NDArray[np.float64]:
        return np.asarray(np.nan_to_num(scores[name][test], nan=-1e9), dtype=np.float64)

    out = {
        key: scoring.paired_auc_difference(y, ranked(a), ranked(b), boot)
        for key, (a, b) in COMPARISONS.items()
    }
    alarms = {k: ranked(k) >= thresholds[k] for k in ("risk", "gbm_all")}
    out["utility_risk_vs_gbm_all"] = scoring.paired_utility_difference(
        patients, alarms["risk"], alarms["gbm_all"], boot
    )
    return out


def run_benchmark(
    path: Path,
    out: Path,
    *,
    test: Path | None = None,
    config: SepsisBenchmarkConfig = SepsisBenchmarkConfig(),
    progress: Callable[[str], None] = lambda _: None,
    bars: bool = False,
) -> dict[str, Any]:
    """Run the whole benchmark; write ``report.json``, ``report.md`` and plots to ``out``.

    Parameters
    ----------
    path : Path
        PhysioNet 2019 data (directory, archive, ``.psv`` or merged file) to train on.
    out : Path
        Output folder (its ``cache/`` makes a rerun resume).
    test : Path, optional
        Another file in the same format to report on (training then uses all of ``path``
        but the validation patients).
    config : SepsisBenchmarkConfig
        Settings.
    progress : callable
        Called with the name of each stage as it starts.
    bars : bool
        Show the training progress bars.

    Returns
    -------
    dict
        The report (as written to ``report.json``).
    """
    from vitalsentry.evaluation.sepsis.report import write_sepsis_report

    started = time.perf_counter()
    timings: dict[str, float] = {}
    with _stage(timings, "read", progress):
        prep = prepare_cohort(path, out, test, config)
    if not (prep.split == 2).any() or not (prep.cohort.label[prep.split == 2] == 1).any():
        raise DataError("the test patients include no septic patient: use more patients")
    scores, notes = method_scores(prep, config, timings, progress, bars)
    with _stage(timings, "metrics", progress):
        val = scoring.Patients.of(
            prep.cohort.patient[prep.split == 1], prep.cohort.label[prep.split == 1]
        )
        tst = scoring.Patients.of(
            prep.cohort.patient[prep.split == 2], prep.cohort.label[prep.split == 2]
        )
        boot = PatientBootstrap.draw(tst.patient, config.n_boot, config.seed)
        val_boot = PatientBootstrap.draw(val.patient, config.n_boot, config.seed)
        results, thresholds = {}, {}
        for name, s in scores.items():
            threshold, val_utility = (
                scoring.bagged_threshold(s[prep.split == 1], val, val_boot)
                if config.threshold == "bagged"
                else val.utility.best_threshold(s[prep.split == 1])
            )
            thresholds[name] = threshold
            results[name] = scoring.evaluate_scores(
                s[prep.split == 2],
                tst,
                threshold,
                probability=name in PROBABILISTIC,
                boot=boot,
            ) | {"validation_utility": val_utility}
        comparisons = _comparisons(scores, prep, boot, tst, thresholds)
    timings["total"] = round(time.perf_counter() - started, 2)
    report = {
        "benchmark": "physionet2019",
        "version": __version__,
        "inputs": prep.inputs,
        "config": config.to_dict(),
        "counts": _counts(prep),
        "vitals": list(prep.cohort.vital_names),
        "context": list(prep.cohort.context_names),
        "data_notes": list(prep.notes),
        "results": results,
        "comparisons": comparisons,
        "autoencoder": notes,
        "timings_s": timings,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    with _stage(timings, "report", progress):
        write_sepsis_report(report, prep, scores, out)
    return report
