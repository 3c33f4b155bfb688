"""Command-line interface: thin typer commands over the package's functions.

Every user-facing failure is a :class:`~vitalsentry.errors.VitalSentryError`, printed as
one line on stderr with a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.table import Table

from vitalsentry import __version__
from vitalsentry.config import DataConfig, WindowConfig
from vitalsentry.errors import VitalSentryError

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
    str, typer.Option("--source", help="auto | vitals2024 | iot | heart-rate | tidy (auto reads the header)")
]
StepOpt = Annotated[
    float | None, typer.Option("--step", help="Sampling interval in seconds for files without timestamps")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed")]


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


def _read(path: Path, source: str, step: float | None, column_map: list[str] | None, spo2_proxy: bool = True):  # type: ignore[no-untyped-def]
    from vitalsentry.data.sources import read_readings

    readings = read_readings(path, source, step_s=step, column_map=_parse_map(column_map), spo2_proxy=spo2_proxy)
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
    patients: Annotated[int, typer.Option("--patients", min=1, help="tidy: number of patients")] = 40,
    hours: Annotated[float, typer.Option("--hours", min=0.1, help="tidy: hours per patient")] = 12.0,
    rows: Annotated[int | None, typer.Option("--rows", min=1, help="vitals2024 / iot: number of rows")] = None,
    seed: SeedOpt = 0,
) -> None:
    """Write simulated vital signs (per-patient tidy series, or a Kaggle schema)."""
    from vitalsentry.data import simulate as sim

    started = time.perf_counter()
    if schema == "tidy":
        if rows is not None:
            raise VitalSentryError("--rows applies to --schema vitals2024 or iot; use --patients and --hours for tidy")
        readings, events = sim.simulate_cohort(sim.SimulationConfig(patients=patients, hours=hours, seed=seed))
        data_path, events_path = sim.write_cohort(readings, events, out)
        console.print(
            f"wrote {len(readings):,} readings of {patients} patients × {hours:g} h to {data_path}\n"
            f"wrote {len(events)} labelled events to {events_path}"
        )
    elif schema in ("vitals2024", "iot"):
        n = rows if rows is not None else (200_020 if schema == "vitals2024" else 202)
        frame = sim.simulate_vitals2024(n, seed) if schema == "vitals2024" else sim.simulate_iot(n, seed)
        sim.write_table(frame, out)
        console.print(f"wrote {len(frame):,} rows in the {schema} schema to {out}")
    else:
        raise VitalSentryError(f"--schema: unknown schema '{schema}' (tidy, vitals2024 or iot)")
    console.print(f"[dim]{time.perf_counter() - started:.1f} s[/dim]")


@app.command()
def audit(
    path: Annotated[Path, typer.Argument(help="Input file (CSV or Parquet)")],
    source: SourceOpt = "auto",
    step: StepOpt = None,
    column_map: Annotated[list[str] | None, typer.Option("--map", help="SOURCE_COLUMN=channel (tidy)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the facts as JSON")] = None,
    seed: SeedOpt = 0,
) -> None:
    """Audit a data file: size, sampling, missingness, ranges, balance, label determinism."""
    from vitalsentry.data.audit import audit_readings
    from vitalsentry.io import atomic_write_json

    readings = _read(path, source, step, column_map)
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
    channels: Annotated[str, typer.Option("--channels", help="Comma-separated vital channels")] = "heart_rate,spo2",
    window: Annotated[int, typer.Option("--window", help="Window length in steps")] = 256,
    stride: Annotated[int, typer.Option("--stride", help="Stride between windows in steps")] = 128,
    step: Annotated[float, typer.Option("--step", help="Grid step in seconds")] = 1.0,
    max_gap: Annotated[float, typer.Option("--max-gap", help="Longest gap (s) bridged by interpolation")] = 300.0,
    label_mode: Annotated[str, typer.Option("--label-mode", help="last | any | majority")] = "last",
    split: Annotated[str, typer.Option("--split", help="Patient fractions, e.g. 0.7,0.15,0.15 or 0.7,0.3")] = "0.7,0.15,0.15",
    time_encoding: Annotated[str, typer.Option("--time-encoding", help="per_timestep | per_window")] = "per_timestep",
    day_of_week: Annotated[bool, typer.Option("--day-of-week", help="Add the day-of-week pair")] = False,
    no_spo2_proxy: Annotated[bool, typer.Option("--no-spo2-proxy", help="iot: no SpO2 proxy from temperature")] = False,
    column_map: Annotated[list[str] | None, typer.Option("--map", help="SOURCE_COLUMN=channel (tidy)")] = None,
    seed: SeedOpt = 0,
) -> None:
    """Turn a data file into windows, labels, splits and a scaler for training."""
    from vitalsentry.data.prepared import prepare as run_prepare
    from vitalsentry.data.prepared import save_prepared

    try:
        fractions = tuple(float(x) for x in split.split(","))
    except ValueError:
        raise VitalSentryError(f"--split: expected comma-separated fractions, got '{split}'") from None
    data_cfg = DataConfig(
        channels=_parse_channels(channels),
        step_s=step,
        max_gap_s=max_gap,
        time_encoding=time_encoding,  # type: ignore[arg-type]
        day_of_week=day_of_week,
        split=fractions,
        seed=seed,
        spo2_proxy=not no_spo2_proxy,
    )
    window_cfg = WindowConfig(length=window, stride=stride, label_mode=label_mode)  # type: ignore[arg-type]
    started = time.perf_counter()
    readings = _read(path, source, step, column_map, spo2_proxy=data_cfg.spo2_proxy)
    read_s = time.perf_counter() - started
    prepared = run_prepare(readings, data_cfg, window_cfg)
    prep_s = time.perf_counter() - started - read_s
    manifest = save_prepared(prepared, out)
    total_s = time.perf_counter() - started
    table = Table(title=f"prepared {out}")
    for col in ("split", "windows", "normal", "abnormal", "unknown", "patients"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for name, c in manifest["counts"].items():
        table.add_row(name, *(f"{c[k]:,}" for k in ("windows", "normal", "abnormal", "unknown", "patients")))
    console.print(table)
    shape = "×".join(str(d) for d in manifest["shape"])
    console.print(f"windows: ({shape}) float32 = {', '.join(prepared.feature_names)}")
    console.print(f"time: read {read_s:.1f} s, prepare {prep_s:.1f} s, total {total_s:.1f} s")


def main() -> None:
    """Entry point: run the app, turning user-facing errors into one line and exit 2."""
    try:
        app(standalone_mode=False)
    except VitalSentryError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(2) from None
    except typer.Abort:
        err_console.print("aborted")
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise SystemExit(130) from None
    except click.ClickException as exc:  # usage errors, as click formats them
        exc.show()
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
