"""Command-line interface: thin typer commands over the package's functions.

Every user-facing failure is a :class:`~vitalsentry.errors.VitalSentryError`, printed as
one line on stderr with a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from vitalsentry import __version__
from vitalsentry.config import (
    DataConfig,
    DetectorConfig,
    FusionConfig,
    ModelConfig,
    TrainConfig,
    WindowConfig,
)
from vitalsentry.errors import VitalSentryError

if TYPE_CHECKING:
    from vitalsentry.archive import ArchiveJob
    from vitalsentry.data.readings import Readings
    from vitalsentry.training.loop import TrainResult

app = typer.Typer(
    name="vitalsentry",
    help="Calibrated, explained deterioration risk from vital-sign time series.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

SourceOpt = Annotated[
    str,
    typer.Option(
        "--source",
        help="auto | vitals2024 | iot | heart-rate | tidy | physionet2019 | wfdb "
        "(auto reads the header)",
    ),
]
StepOpt = Annotated[
    float | None,
    typer.Option("--step", help="Sampling interval in seconds for files without timestamps"),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed")]
RequireSignatureOpt = Annotated[
    bool,
    typer.Option(
        "--require-signature",
        help="Refuse a bundle not signed by a trusted key (see `vitalsentry sign`)",
    ),
]
TrustedKeyOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--trusted-key",
        help="Trusted Ed25519 public key, PEM (repeatable; default VITALSENTRY_SIGNING_PUBLIC_KEYS)",
    ),
]


def _check_signed(bundle: Path, trusted: list[Path], manifest_sha256: str) -> None:
    """Verify ``bundle``'s signature once, for the manifest whose hash the workers will check."""
    from vitalsentry.bundle import load_bundle

    if load_bundle(bundle, trusted_keys=trusted).manifest_sha256 != manifest_sha256:
        raise VitalSentryError(f"bundle {bundle}: its manifest changed while it was checked")


def _trusted_keys(require: bool, keys: list[Path] | None) -> list[Path] | None:
    """Public keys a bundle must be signed by, or None when no signature is required."""
    if not require:
        if keys:
            raise VitalSentryError("--trusted-key: only with --require-signature")
        return None
    listed = os.environ.get("VITALSENTRY_SIGNING_PUBLIC_KEYS", "")
    given = keys or [Path(p.strip()) for p in listed.split(",") if p.strip()]
    if not given:
        raise VitalSentryError(
            "--require-signature: give --trusted-key PUBLIC_KEY (or VITALSENTRY_SIGNING_PUBLIC_KEYS)"
        )
    return given


StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict", help="Refuse the file at an implausible reading (default: set it missing)"
    ),
]


def _parse_channels(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _parse_map(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise VitalSentryError(f"--map: expected SOURCE_COLUMN=channel, got '{pair}'")
        src, dst = pair.split("=", 1)
        out[src.strip()] = dst.strip()
    return out


def _read(
    path: Path,
    source: str,
    step: float | None,
    column_map: list[str] | None,
    spo2_proxy: bool = True,
    strict: bool = False,
) -> Readings:
    from vitalsentry.data.sources import read_readings

    readings = read_readings(
        path,
        source,
        step_s=step,
        column_map=_parse_map(column_map),
        spo2_proxy=spo2_proxy,
        strict=strict,
    )
    if source == "auto":
        console.print(f"[dim]source: detected '{readings.source}' from the header of {path}[/dim]")
    for note in readings.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    return readings


@app.command()
def version() -> None:
    """Print the package version."""
    console.print(__version__)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Output file (.csv or .parquet)")],
    schema: Annotated[str, typer.Option("--schema", help="tidy | vitals2024 | iot")] = "tidy",
    patients: Annotated[
        int, typer.Option("--patients", min=1, help="tidy: number of patients")
    ] = 40,
    hours: Annotated[
        float, typer.Option("--hours", min=0.1, help="tidy: hours per patient")
    ] = 12.0,
    rows: Annotated[
        int | None, typer.Option("--rows", min=1, help="vitals2024 / iot: number of rows")
    ] = None,
    seed: SeedOpt = 0,
) -> None:
    """Write simulated vital signs (per-patient tidy series, or a Kaggle schema)."""
    from vitalsentry.data import simulate as sim
    from vitalsentry.data import simulate_kaggle, writers

    started = time.perf_counter()
    if schema == "tidy":
        if rows is not None:
            raise VitalSentryError(
                "--rows applies to --schema vitals2024 or iot; use --patients and --hours for tidy"
            )
        readings, events = sim.simulate_cohort(
            sim.SimulationConfig(patients=patients, hours=hours, seed=seed)
        )
        data_path, events_path = writers.write_cohort(readings, events, out)
        console.print(
            f"wrote {len(readings):,} readings of {patients} patients × {hours:g} h to {data_path}\n"
            f"wrote {len(events)} labelled events to {events_path}"
        )
    elif schema in ("vitals2024", "iot"):
        n = rows if rows is not None else (200_020 if schema == "vitals2024" else 202)
        frame = (
            simulate_kaggle.simulate_vitals2024(n, seed)
            if schema == "vitals2024"
            else simulate_kaggle.simulate_iot(n, seed)
        )
        writers.write_table(frame, out)
        console.print(f"wrote {len(frame):,} rows in the {schema} schema to {out}")
    else:
        raise VitalSentryError(f"--schema: unknown schema '{schema}' (tidy, vitals2024 or iot)")
    console.print(f"[dim]{time.perf_counter() - started:.1f} s[/dim]")


@app.command()
def audit(
    path: Annotated[Path, typer.Argument(help="Input file (CSV or Parquet)")],
    source: SourceOpt = "auto",
    step: StepOpt = None,
    column_map: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="SOURCE_COLUMN=channel, =patient_id, =timestamp, or = to leave it out (tidy)",
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the facts as JSON")
    ] = None,
    seed: SeedOpt = 0,
    strict: StrictOpt = False,
) -> None:
    """Audit a data file: size, sampling, missingness, ranges, balance, label determinism."""
    from vitalsentry.data.audit import audit_readings
    from vitalsentry.io import atomic_write_json

    readings = _read(path, source, step, column_map, strict=strict)
    report = audit_readings(readings, seed=seed)
    console.print(report.render(), markup=False, highlight=False, soft_wrap=True)
    if json_out is not None:
        atomic_write_json(json_out, report.to_dict())
        console.print(f"wrote {json_out}")


@app.command()
def prepare(
    path: Annotated[Path, typer.Argument(help="Input file (CSV or Parquet)")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")],
    source: SourceOpt = "auto",
    channels: Annotated[
        str, typer.Option("--channels", help="Comma-separated vital channels")
    ] = "heart_rate,spo2",
    window: Annotated[int, typer.Option("--window", help="Window length in steps")] = 256,
    stride: Annotated[int, typer.Option("--stride", help="Stride between windows in steps")] = 128,
    step: Annotated[float, typer.Option("--step", help="Grid step in seconds")] = 1.0,
    max_gap: Annotated[
        float,
        typer.Option("--max-gap", help="Longest gap (s) of HR/SpO2/RR bridged by interpolation"),
    ] = 300.0,
    gap: Annotated[
        list[str] | None,
        typer.Option(
            "--gap",
            help="CHANNEL=INTERPOLATE[:CARRY] gap limits, e.g. systolic_bp=2h:1h (all= for every channel)",
        ),
    ] = None,
    observed_mask: Annotated[
        bool, typer.Option("--observed-mask", help="Add a <channel>_observed input per channel")
    ] = False,
    time_since: Annotated[
        bool,
        typer.Option("--time-since", help="Add a <channel>_since input (time since last reading)"),
    ] = False,
    time_features: Annotated[
        str,
        typer.Option(
            "--time-features",
            help="auto | clock (hour of day) | stay (hours since first reading) | none",
        ),
    ] = "auto",
    label_mode: Annotated[str, typer.Option("--label-mode", help="last | any | majority")] = "last",
    split: Annotated[
        str, typer.Option("--split", help="Patient fractions, e.g. 0.7,0.15,0.15 or 0.7,0.3")
    ] = "0.7,0.15,0.15",
    time_encoding: Annotated[
        str, typer.Option("--time-encoding", help="per_timestep | per_window")
    ] = "per_timestep",
    day_of_week: Annotated[
        bool, typer.Option("--day-of-week", help="Add the day-of-week pair")
    ] = False,
    no_spo2_proxy: Annotated[
        bool, typer.Option("--no-spo2-proxy", help="iot: no SpO2 proxy from temperature")
    ] = False,
    column_map: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="SOURCE_COLUMN=channel, =patient_id, =timestamp, or = to leave it out (tidy)",
        ),
    ] = None,
    seed: SeedOpt = 0,
    strict: StrictOpt = False,
    split_by: Annotated[
        str,
        typer.Option(
            "--split-by",
            help="patient | time (contiguous time blocks of each series, one window apart)",
        ),
    ] = "patient",
) -> None:
    """Turn a data file into windows, labels, splits and a scaler for training."""
    from vitalsentry.data.prepared import prepare as run_prepare
    from vitalsentry.data.prepared import save_prepared

    try:
        fractions = tuple(float(x) for x in split.split(","))
    except ValueError:
        raise VitalSentryError(
            f"--split: expected comma-separated fractions, got '{split}'"
        ) from None
    from vitalsentry.data.gaps import describe_limits, parse_gap_options, resolve_limits

    names = _parse_channels(channels)
    interp, carry = resolve_limits(names, parse_gap_options(gap or [], names), max_gap, step)
    data_cfg = DataConfig(
        channels=names,
        step_s=step,
        max_gap_s=max_gap,
        time_encoding=time_encoding,  # type: ignore[arg-type]
        day_of_week=day_of_week,
        split=fractions,
        seed=seed,
        spo2_proxy=not no_spo2_proxy,
        split_by=split_by,  # type: ignore[arg-type]
        gap_interpolate_s=interp,
        gap_carry_s=carry,
        observed_mask=observed_mask,
        time_since=time_since,
        time_features=time_features,  # type: ignore[arg-type]
    )
    window_cfg = WindowConfig(length=window, stride=stride, label_mode=label_mode)  # type: ignore[arg-type]
    started = time.perf_counter()
    readings = _read(path, source, step, column_map, spo2_proxy=data_cfg.spo2_proxy, strict=strict)
    read_s = time.perf_counter() - started
    prepared = run_prepare(readings, data_cfg, window_cfg)
    prep_s = time.perf_counter() - started - read_s
    manifest = save_prepared(prepared, out)
    total_s = time.perf_counter() - started
    table = Table(title=f"prepared {out}")
    for col in ("split", "windows", "normal", "abnormal", "unknown", "patients"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for name, c in manifest["counts"].items():
        table.add_row(
            name, *(f"{c[k]:,}" for k in ("windows", "normal", "abnormal", "unknown", "patients"))
        )
    console.print(table)
    shape = "×".join(str(d) for d in manifest["shape"])
    console.print(f"windows: ({shape}) float32 = {', '.join(prepared.feature_names)}")
    console.print(f"gap policy: {describe_limits(names, interp, carry)}")
    for note in prepared.notes[len(readings.notes) :]:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"time: read {read_s:.1f} s, prepare {prep_s:.1f} s, total {total_s:.1f} s")


# ---- training -------------------------------------------------------------------------

MaxEpochs = Annotated[
    int | None, typer.Option("--max-epochs", help="Most epochs (recipe default if unset)")
]
BatchSize = Annotated[int | None, typer.Option("--batch-size", help="Batch size")]
LearningRate = Annotated[float | None, typer.Option("--lr", help="Learning rate")]
Patience = Annotated[
    int | None, typer.Option("--patience", help="Early-stopping patience (epochs)")
]
MinDelta = Annotated[
    float | None, typer.Option("--min-delta", help="Early-stopping minimum improvement")
]
Precision = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="32 | bf16 (bf16 autocast where it is fast: CUDA, or a CPU with AMX; float32 elsewhere)",
    ),
]
TimeWarp = Annotated[
    bool, typer.Option("--time-warp", help="Time-warp augmentation of training batches")
]
Jitter = Annotated[
    bool, typer.Option("--jitter", help="Amplitude-jitter augmentation of training batches")
]
BatchSplits = Annotated[
    int | None,
    typer.Option(
        "--batch-splits",
        min=1,
        help="CPU, one process: train each batch as N parts on N threads (one intra-op "
        "thread each, gradients summed); --fast sets it to the torch thread count (2–4)",
    ),
]
CudaGraph = Annotated[
    bool,
    typer.Option(
        "--cuda-graph",
        help="CUDA, one process: replay each training step as one captured CUDA graph "
        "(same results, far fewer launches); --fast turns it on there",
    ),
]
LstmPathOpt = Annotated[
    str | None,
    typer.Option(
        "--lstm-path",
        help="auto | fused | layers: the stacked LSTM layers as one multi-layer call (cuDNN-"
        "fused) or one call per layer; auto: fused on CUDA (same parameters either way)",
    ),
]
Accelerator = Annotated[str, typer.Option("--accelerator", help="auto | cpu | cuda | mps")]
Devices = Annotated[
    int, typer.Option("--devices", min=1, help="Devices (processes) per node; >1 uses DDP")
]
NumNodes = Annotated[int, typer.Option("--num-nodes", min=1, help="Nodes for multi-node DDP")]
Resume = Annotated[
    bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint")
]
Fast = Annotated[
    bool,
    typer.Option(
        "--fast",
        help="Batch 64, lr scaled, one-cycle schedule, clipping, 18 epochs (changes the recipe)",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bar")]


def _train_config(base: TrainConfig, seed: int, **overrides: object) -> TrainConfig:
    """Return the recipe ``base`` with the options the user set."""
    changes = {k: v for k, v in overrides.items() if v is not None and v is not False}
    return base.replace(seed=seed, **changes)


def _report_training(result: TrainResult) -> None:
    console.print(
        f"wrote bundle {result.bundle}: {result.epochs} epochs, best validation loss "
        f"{result.best_val_loss:.4f}{' (early stop)' if result.stopped_early else ''}, "
        f"{result.seconds:.0f} s; validation on {result.validation}"
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")


@app.command()
def pretrain(
    data: Annotated[Path, typer.Argument(help="Prepared data folder (vitalsentry prepare)")],
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write")],
    max_epochs: MaxEpochs = None,
    batch_size: BatchSize = None,
    lr: LearningRate = None,
    patience: Patience = None,
    min_delta: MinDelta = None,
    precision: Precision = None,
    time_warp: TimeWarp = False,
    jitter: Jitter = False,
    batch_splits: BatchSplits = None,
    cuda_graph: CudaGraph = False,
    lstm_path: LstmPathOpt = None,
    latent_dim: Annotated[int, typer.Option("--latent-dim")] = 32,
    lstm_hidden: Annotated[int, typer.Option("--lstm-hidden")] = 64,
    lstm_layers: Annotated[int, typer.Option("--lstm-layers")] = 2,
    dropout: Annotated[float, typer.Option("--dropout")] = 0.5,
    no_lstm: Annotated[
        bool, typer.Option("--no-lstm", help="The seed's pre-LSTM flatten variant")
    ] = False,
    pooling: Annotated[str, typer.Option("--pooling", help="last | attention")] = "last",
    accelerator: Accelerator = "auto",
    devices: Devices = 1,
    num_nodes: NumNodes = 1,
    resume: Resume = False,
    fast: Fast = False,
    quiet: Quiet = False,
    seed: SeedOpt = 0,
) -> None:
    """Pre-train the Conv1d + LSTM autoencoder on prepared windows (seed recipe by default)."""
    from vitalsentry.data.prepared import load_prepared
    from vitalsentry.training.pretrain import pretrain as run

    prepared = load_prepared(data)
    model = ModelConfig(
        input_channels=prepared.windows.shape[1],
        seq_len=prepared.window.length,
        latent_dim=latent_dim,
        lstm_hidden=lstm_hidden,
        lstm_layers=lstm_layers,
        dropout=dropout,
        use_lstm=not no_lstm,
        pooling=pooling,  # type: ignore[arg-type]
    )
    train = _train_config(
        TrainConfig(),
        seed,
        max_epochs=max_epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        min_delta=min_delta,
        precision=precision,
        time_warp=time_warp,
        jitter=jitter,
        batch_splits=batch_splits,
        cuda_graph=cuda_graph,
        lstm_path=lstm_path,
    )
    result = run(
        prepared,
        model,
        train,
        out,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        resume=resume,
        progress=not quiet,
        fast=fast,
    )
    if result.rank == 0:
        _report_training(result)


@app.command()
def finetune(
    bundle: Annotated[Path, typer.Argument(help="Pre-trained bundle")],
    data: Annotated[Path, typer.Argument(help="Prepared target data folder")],
    out: Annotated[Path, typer.Option("--out", help="New bundle folder")],
    max_epochs: MaxEpochs = None,
    batch_size: BatchSize = None,
    lr: LearningRate = None,
    patience: Patience = None,
    min_delta: MinDelta = None,
    precision: Precision = None,
    time_warp: TimeWarp = False,
    jitter: Jitter = False,
    batch_splits: BatchSplits = None,
    cuda_graph: CudaGraph = False,
    lstm_path: LstmPathOpt = None,
    class_weights: Annotated[
        str | None, typer.Option("--class-weights", help="NORMAL,ABNORMAL (default 0.6,1.4)")
    ] = None,
    accelerator: Accelerator = "auto",
    devices: Devices = 1,
    num_nodes: NumNodes = 1,
    resume: Resume = False,
    fast: Fast = False,
    quiet: Quiet = False,
    seed: SeedOpt = 0,
) -> None:
    """Fine-tune a bundle on a small target dataset (conv layers frozen, seed recipe)."""
    from vitalsentry.data.prepared import load_prepared
    from vitalsentry.training.finetune import finetune as run

    weights = None if class_weights is None else tuple(float(x) for x in class_weights.split(","))
    train = _train_config(
        TrainConfig.finetune(),
        seed,
        max_epochs=max_epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        min_delta=min_delta,
        precision=precision,
        time_warp=time_warp,
        jitter=jitter,
        batch_splits=batch_splits,
        cuda_graph=cuda_graph,
        lstm_path=lstm_path,
        class_weights=weights,
    )
    result = run(
        bundle,
        load_prepared(data),
        train,
        out,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        resume=resume,
        progress=not quiet,
        fast=fast,
    )
    if result.rank == 0:
        _report_training(result)


# ---- risk heads, evaluation, scoring -----------------------------------------------------


@app.command("fit-detector")
def fit_detector(
    bundle: Annotated[Path, typer.Argument(help="Bundle with a trained encoder")],
    data: Annotated[
        Path, typer.Argument(help="Prepared data folder (same channels as the bundle)")
    ],
    out: Annotated[Path, typer.Option("--out", help="New bundle folder")],
    n_estimators: Annotated[int, typer.Option("--n-estimators")] = 200,
    contamination: Annotated[
        float | None, typer.Option("--contamination", help="Default: from the class balance")
    ] = None,
    target_fpr: Annotated[
        float, typer.Option("--target-fpr", help="False-positive rate on validation patients")
    ] = 0.03,
    fpr_confidence: Annotated[
        float,
        typer.Option(
            "--fpr-confidence",
            help="Confidence of the patient-bootstrap bound on the threshold; 0 = plain quantile",
        ),
    ] = 0.9,
    seed: SeedOpt = 0,
    views: Annotated[
        str,
        typer.Option(
            "--views",
            help="Comma-separated views the combination may use (default: all; "
            "embedding_iforest,embedding_knn,recon_error,summary,baseline_shift,news2)",
        ),
    ] = "",
    cv_folds: Annotated[
        int, typer.Option("--cv-folds", help="Leave-patients-out folds of the cross-fitting")
    ] = 5,
) -> None:
    """Fit the multi-view detector on normal training windows and calibrate the risk."""
    from vitalsentry.data.prepared import load_prepared
    from vitalsentry.pipeline import fit_detector as run

    config = DetectorConfig(
        n_estimators=n_estimators,
        contamination=contamination,
        random_state=seed,
        target_fpr=target_fpr,
        fpr_confidence=fpr_confidence,
        views=tuple(v.strip() for v in views.split(",") if v.strip()),
        cv_folds=cv_folds,
    )
    summary = run(bundle, load_prepared(data), out, config)
    recall = summary["val_recall"]
    folds = summary["fold_fpr"]
    console.print(
        f"wrote bundle {out}: detector on {summary['fit_windows']:,} normal windows; threshold from "
        f"{summary['threshold_source']}: FPR {summary['val_fpr']:.1%}"
        + ("" if recall is None else f", recall {recall:.1%}")
        + f"; views {'+'.join(summary['views'])} ({summary['combine']}); FPR on unseen patients "
        f"above {target_fpr:.0%} in {folds['exceeded']} of {folds['folds']} folds"
    )


@app.command("fit-fusion")
def fit_fusion(
    bundle: Annotated[Path, typer.Argument(help="Cardio bundle (HR, SpO2, time)")],
    resp_bundle: Annotated[Path, typer.Argument(help="Respiratory bundle (RR, SpO2, time)")],
    cardio_data: Annotated[Path, typer.Argument(help="Prepared cardio data folder")],
    resp_data: Annotated[Path, typer.Argument(help="Prepared respiratory data folder")],
    out: Annotated[Path, typer.Option("--out", help="New bundle folder")],
    no_static: Annotated[
        bool, typer.Option("--no-static", help="Leave out static context (age, sex, BMI)")
    ] = False,
    seed: SeedOpt = 0,
) -> None:
    """Fit the fusion classifier on cardio + respiratory embeddings (+ static context)."""
    from vitalsentry.data.prepared import load_prepared
    from vitalsentry.pipeline import fit_fusion as run

    summary = run(
        bundle,
        resp_bundle,
        load_prepared(cardio_data),
        load_prepared(resp_data),
        out,
        FusionConfig(use_static=not no_static, seed=seed),
    )
    console.print(
        f"wrote bundle {out}: fusion on {summary['train_windows']:,} training windows "
        f"({summary['abnormal']:,} abnormal), {summary['features']} features"
    )


@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Bundle with a detector")],
    data: Annotated[Path, typer.Argument(help="Data file (its test split is evaluated)")],
    report: Annotated[Path, typer.Option("--report", help="Report folder")],
    source: SourceOpt = "auto",
    step: StepOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="Dataset name in the report")] = None,
    mc_passes: Annotated[
        int, typer.Option("--mc-passes", min=0, help="MC dropout passes (0 = off)")
    ] = 20,
    seed: SeedOpt = 0,
) -> None:
    """Evaluate a bundle on held-out patients: tiers 1–3, baselines, alarms, plots."""
    from vitalsentry.data.audit import audit_readings
    from vitalsentry.evaluation.evaluate import write_evaluation

    readings = _read(data, source, step, None)
    findings = audit_readings(readings, seed=seed).findings
    write_evaluation(
        {name or readings.source: (bundle, readings, findings)},
        report,
        mc_passes=mc_passes,
        seed=seed,
    )
    console.print(f"wrote {report / 'report.md'} and {report / 'report.json'}")


@app.command()
def score(
    bundle: Annotated[Path, typer.Argument(help="Bundle with a detector")],
    data: Annotated[Path, typer.Argument(help="Data file (CSV or Parquet)")],
    out: Annotated[Path, typer.Option("--out", help="Output file (.csv or .parquet)")],
    source: SourceOpt = "auto",
    step: StepOpt = None,
    column_map: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="SOURCE_COLUMN=channel, =patient_id, =timestamp, or = to leave it out (tidy)",
        ),
    ] = None,
    mc_passes: Annotated[
        int, typer.Option("--mc-passes", min=0, help="MC dropout passes (0 = off)")
    ] = 0,
    require_signature: RequireSignatureOpt = False,
    trusted_key: TrustedKeyOpt = None,
    engine: Annotated[
        str, typer.Option("--engine", help="Archive (a directory): local | dask")
    ] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="Dask scheduler to join (default: local)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Local Dask workers (default: CPUs)")
    ] = None,
) -> None:
    """Write per-window risk for any readable input, with the bundle's channels and window.

    DATA may be a directory of per-patient CSV/Parquet partitions: each is scored into the
    same name under --out (a folder), on one process or a Dask cluster; reruns resume.
    """
    trusted = _trusted_keys(require_signature, trusted_key)
    if data.is_dir():
        from vitalsentry.archive import ArchiveJob

        job = ArchiveJob.create(
            bundle,
            source=source,
            step_s=step,
            column_map=_parse_map(column_map),
            mc_passes=mc_passes,
        )
        if trusted is not None:
            _check_signed(bundle, trusted, job.bundle_sha256)
        _score_archive(job, data, out, engine, address, workers)
        return
    if engine != "local" or address is not None or workers is not None:
        raise VitalSentryError(
            "--engine, --address and --workers apply to a directory of partitions"
        )
    from vitalsentry.data.writers import write_table
    from vitalsentry.pipeline import VitalRiskPipeline
    from vitalsentry.scoring import readings_table

    pipe = VitalRiskPipeline.from_bundle(bundle, trusted_keys=trusted)
    readings = _read(data, source, step, column_map)
    table, fused_note = readings_table(pipe, readings, mc_passes=mc_passes)
    write_table(table, out)
    if fused_note:
        console.print(f"[yellow]note:[/yellow] fused risk: {fused_note}")
    levels = table["level"].value_counts()
    console.print(
        f"wrote {len(table):,} windows to {out}: "
        + ", ".join(f"{levels.get(k, 0):,} {k}" for k in ("low", "medium", "high"))
    )


def _score_archive(
    job: ArchiveJob, data: Path, out: Path, engine: str, address: str | None, workers: int | None
) -> None:
    """Score an archive directory with a progress bar and print a one-line summary."""
    from rich.progress import Progress

    from vitalsentry.archive import list_partitions, score_archive

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("scoring partitions", total=len(list_partitions(data)))
        results = score_archive(
            job,
            data,
            out,
            engine=engine,  # type: ignore[arg-type]
            address=address,
            workers=workers,
            on_result=lambda _: bar.advance(task),
        )
    for note in sorted({n for r in results for n in r.notes}):
        console.print(f"[yellow]note:[/yellow] {note}")
    skipped = sum(r.skipped for r in results)
    windows = sum(r.windows for r in results)
    levels = {k: sum(r.levels.get(k, 0) for r in results) for k in ("low", "medium", "high")}
    console.print(
        f"scored {len(results) - skipped} of {len(results)} partitions into {out} "
        f"({skipped} already done): {windows:,} windows, "
        + ", ".join(f"{v:,} {k}" for k, v in levels.items())
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = Path("demo-output"),
    quick: Annotated[
        bool, typer.Option("--quick", help="Small sizes (about 3 minutes; CI smoke test)")
    ] = False,
    vitals_csv: Annotated[
        Path | None, typer.Option("--vitals-csv", help="Real Vitals 2024 file")
    ] = None,
    iot_csv: Annotated[
        Path | None, typer.Option("--iot-csv", help="Real Healthcare IoT file")
    ] = None,
    seed: SeedOpt = 0,
    keep_intermediate: Annotated[
        bool,
        typer.Option(
            "--keep-intermediate", help="Also write each intermediate bundle under OUT/bundles"
        ),
    ] = False,
) -> None:
    """Run the whole seed pipeline on embedded default data and print the headline table."""
    from vitalsentry.demo import DemoSettings, run_demo
    from vitalsentry.evaluation.report import seed_table_rows

    for given in (vitals_csv, iot_csv):
        if given is not None and not given.is_file():
            raise VitalSentryError(f"{given}: no such file")
    result = run_demo(
        DemoSettings(
            out=out,
            quick=quick,
            vitals_csv=vitals_csv,
            iot_csv=iot_csv,
            seed=seed,
            keep_intermediate=keep_intermediate,
        ),
        lambda line: console.print(line, highlight=False),
    )
    for name, section in result.report_json["datasets"].items():
        table = Table(title=f"{name}: seed metric table (held-out patients)")
        for col in ("metric", "before", "target", "achieved", "met"):
            table.add_column(col)
        for row in seed_table_rows(section):
            achieved = "n/a" if row["achieved"] is None else f"{row['achieved']:.3f}"
            met = {True: "yes", False: "no", None: "—"}[row["met"]]
            target = f"{row['direction']} {row['target']:g}"
            table.add_row(
                f"tier {row['tier']}: {row['metric']}", f"{row['before']:g}", target, achieved, met
            )
        console.print(table)
    console.print(
        f"bundle: {result.bundle}\nVitals 2024 bundle: {result.vitals_bundle}\n"
        f"report: {result.report / 'report.md'} (JSON: {result.report / 'report.json'}, plots in "
        f"{result.report / 'plots'})\ntotal {result.seconds / 60:.1f} min"
    )


# ---- service ------------------------------------------------------------------------------


@app.command()
def serve(
    bundle: Annotated[Path, typer.Option("--bundle", help="Model bundle with a detector")],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1)] = 1,
    require_signature: RequireSignatureOpt = False,
    trusted_key: TrustedKeyOpt = None,
) -> None:
    """Serve a bundle over HTTP (API keys from VITALSENTRY_API_KEYS; see `vitalsentry keygen`)."""
    from vitalsentry.serve.app import run

    trusted = _trusted_keys(require_signature, trusted_key)
    run(bundle, host=host, port=port, workers=workers, trusted_keys=trusted)


@app.command()
def sign(
    bundle: Annotated[Path, typer.Argument(help="Model bundle to sign")],
    key: Annotated[Path, typer.Option("--key", help="Ed25519 private key (PEM)")],
) -> None:
    """Verify a bundle and sign its manifest (writes manifest.sig beside it)."""
    from vitalsentry.bundle import sign_bundle

    out = sign_bundle(bundle, key)
    console.print(f"signed {bundle}: {out}", highlight=False)


@app.command("sign-keygen")
def sign_keygen(
    out: Annotated[Path, typer.Option("--out", help="Private key file to create (PEM, mode 600)")],
) -> None:
    """Create an Ed25519 signing key pair for `vitalsentry sign` (public key: OUT.pub)."""
    from vitalsentry.signing import generate_signing_key

    private, public = generate_signing_key(out)
    console.print(
        f"private key (keep it secret; `vitalsentry sign --key`): {private}\n"
        f"public key (give it to servers; `--trusted-key`): {public}",
        highlight=False,
    )


@app.command()
def keygen(
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="score | embed | admin | view (repeatable)")
    ] = None,
    plain: Annotated[
        bool, typer.Option("--plain", help="Print 'KEY ENTRY' on one line (for scripts)")
    ] = False,
) -> None:
    """Print a new random API key and its VITALSENTRY_API_KEYS entry (only the hash is stored)."""
    from vitalsentry.serve.security import new_key

    key, entry = new_key(scope or ["score"])
    if plain:
        console.print(f"{key} {entry}", soft_wrap=True, highlight=False)
    else:
        console.print(
            f"API key (give it to the client, header X-API-Key): {key}\n"
            f"server entry (append to VITALSENTRY_API_KEYS, comma-separated): {entry}",
            soft_wrap=True,
            highlight=False,
        )


@app.command()
def replay(
    data: Annotated[Path, typer.Argument(help="Data file (CSV or Parquet)")],
    url: Annotated[str, typer.Option("--url", help="Service base URL")] = "http://127.0.0.1:8000",
    key: Annotated[
        str | None,
        typer.Option("--key", envvar="VITALSENTRY_API_KEY", help="API key with the score scope"),
    ] = None,
    every: Annotated[
        float, typer.Option("--every", min=0.001, help="Seconds of readings per request")
    ] = 60.0,
    check: Annotated[
        Path | None,
        typer.Option("--check", help="Bundle: compare the served scores and alarms with offline"),
    ] = None,
    source: SourceOpt = "auto",
    step: StepOpt = None,
    column_map: Annotated[
        list[str] | None, typer.Option("--map", help="SOURCE_COLUMN=channel (tidy)")
    ] = None,
) -> None:
    """Replay a file through a running service's streaming API, patient by patient, in time order."""
    import httpx

    from vitalsentry.monitor import replay as stream_replay

    readings = _read(data, source, step, column_map)
    batches = stream_replay.arrival_batches(readings.frame, every)
    headers = {"X-API-Key": key} if key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=60.0) as client:
        stats = stream_replay.replay(client, batches)
        console.print(
            f"replayed {stats.requests:,} requests: {stats.accepted:,} readings stored, "
            f"{stats.duplicates:,} already stored, {stats.windows:,} windows scored, "
            f"{stats.retries:,} retries, {len(stats.errors):,} refused"
        )
        for line in stats.errors[:10]:
            err_console.print(f"refused: {line}", highlight=False, markup=False)
        if check is not None:
            from vitalsentry.pipeline import VitalRiskPipeline

            expected = stream_replay.offline_reference(
                VitalRiskPipeline.from_bundle(check), readings.frame
            )
            patients = sorted({b.patient_id for b in batches})
            problems = stream_replay.compare(
                expected, stream_replay.served_reference(client, patients)
            )
            if problems:
                raise VitalSentryError(
                    "replay differs from offline scoring: " + "; ".join(problems)
                )
            console.print(
                f"identical to offline scoring: {len(expected.scores):,} windows, "
                f"{sum(map(len, expected.episodes.values())):,} alarm episodes"
            )
    if stats.errors:
        raise SystemExit(1)


benchmark_app = typer.Typer(help="Benchmarks on public data.", no_args_is_help=True)
app.add_typer(benchmark_app, name="benchmark")


@benchmark_app.command("physionet2019")
def benchmark_physionet2019(
    path: Annotated[Path, typer.Argument(help="PhysioNet 2019 folder, archive or merged file")],
    out: Annotated[Path, typer.Option("--out", help="Report folder (its cache/ resumes a run)")],
    test: Annotated[
        Path | None, typer.Option("--test", help="Another file in the format to report on")
    ] = None,
    patients: Annotated[
        int | None, typer.Option("--patients", min=10, help="Seeded subset of patients per file")
    ] = None,
    window: Annotated[int, typer.Option("--window", help="Window length in hours")] = 12,
    step: Annotated[int, typer.Option("--step", min=1, help="Hours between predictions")] = 1,
    n_boot: Annotated[
        int, typer.Option("--n-boot", min=10, help="Patient-bootstrap resamples of the CIs")
    ] = 200,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Autoencoder epochs (most)")] = 8,
    trees: Annotated[
        int, typer.Option("--trees", min=1, help="Most boosting iterations per GBM (early stop)")
    ] = 500,
    seed: SeedOpt = 0,
    quiet: Quiet = False,
) -> None:
    """Sepsis benchmark: causal hourly risk, utility, baselines (see the README)."""
    from vitalsentry.evaluation.sepsis.baselines import GbmConfig
    from vitalsentry.evaluation.sepsis.benchmark import SepsisBenchmarkConfig, run_benchmark
    from vitalsentry.evaluation.sepsis.model import AutoencoderSettings

    config = SepsisBenchmarkConfig(
        step=step,
        max_patients=patients,
        n_boot=n_boot,
        seed=seed,
        autoencoder=AutoencoderSettings(window=window, epochs=epochs, seed=seed),
        gbm=GbmConfig(max_iter=trees, seed=seed),
    )
    report = run_benchmark(
        path,
        out,
        test=test,
        config=config,
        progress=(lambda _: None) if quiet else (lambda s: console.print(f"[dim]stage: {s}[/dim]")),
        bars=not quiet,
    )
    risk, gbm = report["results"]["risk"], report["results"]["gbm_all"]
    console.print(
        f"risk: utility {risk['utility']:.3f}, ROC-AUC {risk['roc_auc']:.3f} "
        f"(all-columns gradient boosting {gbm['utility']:.3f}, {gbm['roc_auc']:.3f}); "
        f"report: {out / 'report.md'}"
    )


def _configure_threads() -> None:
    """Leave one core free for torch's intra-op threads unless told otherwise.

    With every core busy, torch's OpenMP threads wait on each other whenever another
    process competes for a core, and a training step slows by orders of magnitude.
    ``VITALSENTRY_TORCH_THREADS`` (or ``OMP_NUM_THREADS``) overrides the default.
    """
    setting = os.environ.get("VITALSENTRY_TORCH_THREADS") or os.environ.get("OMP_NUM_THREADS")
    threads = int(setting) if setting and setting.isdigit() else max(1, (os.cpu_count() or 2) - 1)
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def main() -> None:
    """Entry point: run the app, turning user-facing errors into one line and exit 2."""
    _configure_threads()
    try:
        app(standalone_mode=False)
    except VitalSentryError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(2) from None
    except OSError as exc:  # unreadable input, unwritable output, full disk
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(
            f"error: {where}{exc.strerror or exc}", highlight=False, markup=False, soft_wrap=True
        )
        raise SystemExit(2) from None
    except typer.Abort:
        err_console.print("aborted")
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise SystemExit(130) from None
    except typer.TyperException as exc:  # usage errors (typer's click): usage, hint, message
        show = getattr(exc, "show", None)
        if show is None:
            err_console.print(f"error: {exc.format_message()}", highlight=False, markup=False)
        else:
            show()
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
