"""The whole seed pipeline on embedded default data: what ``vitalsentry demo`` runs.

simulate → audit → prepare → pretrain → finetune → fit detector → fit fusion → evaluate,
for two datasets:

- ``simulated``: a per-patient multi-rate cohort with labelled events (the realistic
  time-series evidence). Cardio encoder pre-trained on its training patients, detector
  and fusion fitted on them, evaluated on its held-out patients. Its final bundle is the
  one ``make serve`` serves.
- ``vitals2024``: the seed recipe. Pre-trained on the Vitals 2024 file (stream mode),
  fine-tuned on the IoT file (frozen conv, class weights), detector and fusion fitted on
  Vitals 2024 training patients, evaluated on its held-out patients. The real files are
  used when given; otherwise files in the same schemas are simulated.

Each dataset's stages are composed in memory (:class:`vitalsentry.stages.Stages`) and only
the two final bundles are written; ``keep_intermediate`` also writes each intermediate
composition under ``bundles/``. Training epochs are capped (``DemoSettings.pretrain_epochs``)
so the demo fits its time budget on a 2-core CPU; the caps are recorded in every bundle and
in the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitalsentry.bundle import load_stages, save_stages
from vitalsentry.config import (
    DataConfig,
    DetectorConfig,
    FusionConfig,
    ModelConfig,
    Pooling,
    TrainConfig,
    WindowConfig,
)
from vitalsentry.data import simulate as sim
from vitalsentry.data import simulate_kaggle, writers
from vitalsentry.data.audit import audit_readings
from vitalsentry.data.prepared import PreparedData, prepare, save_prepared
from vitalsentry.data.readings import Readings
from vitalsentry.data.sources import read_readings
from vitalsentry.evaluation.evaluate import write_evaluation
from vitalsentry.io import atomic_write_json
from vitalsentry.stages import EncoderStage, FitInputs, Stages
from vitalsentry.training.loop import TrainOptions, TrainResult, checkpoint_dir

CARDIO = ("heart_rate", "spo2")
RESPIRATORY = ("respiratory_rate", "spo2")


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and caps of a demo run (``quick`` shrinks everything for a CI smoke test)."""

    out: Path
    quick: bool = False
    vitals_csv: Path | None = None
    iot_csv: Path | None = None
    seed: int = 0
    keep_intermediate: bool = False

    @property
    def patients(self) -> int:
        """Simulated cohort size."""
        return 12 if self.quick else 30

    @property
    def hours(self) -> float:
        """Hours per simulated patient."""
        return 3.0 if self.quick else 8.0

    @property
    def vitals_rows(self) -> int:
        """Rows of the simulated Vitals 2024 file when no real one is given."""
        return 2_000 if self.quick else 10_649

    @property
    def pretrain_epochs(self) -> int:
        """Epoch cap of each pre-training run (the seed allows 100 with early stopping)."""
        return 2 if self.quick else 12

    @property
    def finetune_epochs(self) -> int:
        """Epoch cap of fine-tuning (the seed's 50)."""
        return 2 if self.quick else 20

    @property
    def mc_passes(self) -> int:
        """Monte Carlo dropout passes in the evaluation."""
        return 5 if self.quick else 20


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its outputs, and its headline numbers."""

    bundle: Path
    vitals_bundle: Path
    report: Path
    seconds: float
    report_json: dict[str, Any]


class _Run:
    """One demo run: paths and the step logger."""

    def __init__(self, settings: DemoSettings, log: Callable[[str], None]) -> None:
        self.s = settings
        self.log = log
        self.out = settings.out
        self.started = time.perf_counter()

    def step(self, text: str) -> None:
        self.log(f"[{time.perf_counter() - self.started:6.1f} s] {text}")

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def prepared(
        self, readings: Readings, name: str, channels: tuple[str, ...], split: tuple[float, ...]
    ) -> PreparedData:
        data = prepare(
            readings, DataConfig(channels=channels, split=split, seed=self.s.seed), WindowConfig()
        )
        save_prepared(data, self.path("prepared", name))
        counts = data.counts()
        self.step(
            f"prepared {name}: windows {tuple(data.windows.shape)}; "
            + ", ".join(
                f"{k} {v['windows']:,} ({v['abnormal']:,} abnormal)" for k, v in counts.items()
            )
        )
        return data

    def options(self, name: str) -> TrainOptions:
        """CPU training with checkpoints in ``<out>/<name>.ckpt`` (removed after the run)."""
        return TrainOptions(checkpoint_dir(self.path(name)), accelerator="cpu", progress=True)

    def keep(self, stages: Stages, name: str) -> Stages:
        """Write an intermediate composition under ``bundles/`` when asked to; return it."""
        if not self.s.keep_intermediate:
            return stages
        return load_stages(save_stages(stages, self.path("bundles", name)))

    def trained(self, stages: Stages, name: str, what: str) -> Stages:
        """Log a training run's outcome (``what``: e.g. "pre-trained x"); keep it if asked to."""
        result: TrainResult | None = stages.get(EncoderStage).result
        if result is not None:
            self.step(
                f"{what}: {result.epochs} epochs, best validation loss {result.best_val_loss:.4f}"
            )
        return self.keep(stages, name)

    def pretrain(self, data: PreparedData, name: str, pooling: Pooling = "last") -> Stages:
        model = ModelConfig(
            input_channels=data.windows.shape[1], seq_len=data.window.length, pooling=pooling
        )
        train = TrainConfig(max_epochs=self.s.pretrain_epochs, seed=self.s.seed)
        inputs = FitInputs(data, model=model, train=train, options=self.options(name))
        stages = Stages().fit(("scaler", "encoder"), inputs)
        return self.trained(stages, name, f"pre-trained {name}")


def _audit(run: _Run, readings: Readings, name: str) -> tuple[str, ...]:
    report = audit_readings(readings, seed=run.s.seed)
    atomic_write_json(run.path("audit", f"{name}.json"), report.to_dict())
    run.step(f"audited {name}: {len(report.findings)} findings (audit/{name}.json)")
    return report.findings


def _data_files(run: _Run) -> tuple[Path, Path, Path]:
    """Write the cohort file, and the Vitals 2024 and IoT files unless given."""
    s = run.s
    cohort_path = run.path("data", "cohort.parquet")
    readings, events = sim.simulate_cohort(
        sim.SimulationConfig(patients=s.patients, hours=s.hours, seed=s.seed)
    )
    writers.write_cohort(readings, events, cohort_path)
    run.step(
        f"simulated {s.patients} patients × {s.hours:g} h: {len(readings):,} readings, {len(events)} events"
    )
    vitals = s.vitals_csv
    if vitals is None:
        vitals = run.path("data", "vitals2024.csv")
        writers.write_table(simulate_kaggle.simulate_vitals2024(s.vitals_rows, s.seed), vitals)
        run.step(
            f"simulated a Vitals 2024-schema file of {s.vitals_rows:,} rows (no real file given)"
        )
    iot = s.iot_csv
    if iot is None:
        iot = run.path("data", "iot.csv")
        writers.write_table(simulate_kaggle.simulate_iot(202, s.seed), iot)
        run.step("simulated an IoT-schema file of 202 rows (no real file given)")
    return cohort_path, vitals, iot


def run_demo(settings: DemoSettings, log: Callable[[str], None]) -> DemoResult:
    """Run the whole pipeline and write bundles, audits and the report under ``settings.out``."""
    run = _Run(settings, log)
    cohort_path, vitals_path, iot_path = _data_files(run)
    cohort = read_readings(cohort_path, "tidy")
    vitals = read_readings(vitals_path, "vitals2024")
    iot = read_readings(iot_path, "iot")
    findings = {
        name: _audit(run, r, name)
        for name, r in (("simulated", cohort), ("vitals2024", vitals), ("iot", iot))
    }

    three, two = (0.7, 0.15, 0.15), (0.7, 0.3)
    sim_cardio = run.prepared(cohort, "simulated_cardio", CARDIO, three)
    sim_resp = run.prepared(cohort, "simulated_resp", RESPIRATORY, three)
    vit_cardio = run.prepared(vitals, "vitals2024_cardio", CARDIO, three)
    vit_resp_data = run.prepared(vitals, "vitals2024_resp", RESPIRATORY, three)
    iot_cardio = run.prepared(iot, "iot_cardio", CARDIO, two)

    detector = DetectorConfig(random_state=settings.seed)
    fusion = FusionConfig(seed=settings.seed)
    bundle = run.path("bundle")
    pre = run.pretrain(sim_cardio, "simulated_pretrained")
    resp = run.pretrain(sim_resp, "simulated_respiratory")
    fitted = run.keep(
        pre.fit(("detector", "alarm"), FitInputs(sim_cardio, detector=detector)),
        "simulated_detector",
    )
    run.step("fitted the detector on simulated training embeddings")
    fused = FitInputs(sim_cardio, fusion=fusion, respiratory=(resp, sim_resp))
    save_stages(fitted.fit(("fusion",), fused), bundle)
    run.step(f"fitted the fusion model; final bundle: {bundle}")

    vit_bundle = run.path("vitals2024_bundle")
    # Attention pooling here, so the report shows the seed's attention plot for a real model.
    vit_pre = run.pretrain(vit_cardio, "vitals2024_pretrained", pooling="attention")
    vit_resp = run.pretrain(vit_resp_data, "vitals2024_respiratory")
    train = TrainConfig.finetune().replace(max_epochs=settings.finetune_epochs, seed=settings.seed)
    tuned = vit_pre.partial_fit(FitInputs(iot_cardio, train=train, options=run.options("iot")))
    ft = run.trained(tuned, "iot_finetuned", "fine-tuned on IoT")
    vit_fitted = run.keep(
        ft.fit(("detector", "alarm"), FitInputs(vit_cardio, detector=detector)),
        "vitals2024_detector",
    )
    vit_fused = FitInputs(vit_cardio, fusion=fusion, respiratory=(vit_resp, vit_resp_data))
    save_stages(vit_fitted.fit(("fusion",), vit_fused), vit_bundle)
    run.step(f"fitted detector and fusion for Vitals 2024; bundle: {vit_bundle}")

    report_dir = run.path("report")
    report = write_evaluation(
        {
            "simulated": (bundle, cohort, findings["simulated"]),
            "vitals2024": (vit_bundle, vitals, findings["vitals2024"]),
        },
        report_dir,
        mc_passes=settings.mc_passes,
        seed=settings.seed,
        meta={
            "demo": {
                "quick": settings.quick,
                "pretrain_epochs": settings.pretrain_epochs,
                "finetune_epochs": settings.finetune_epochs,
                "patients": settings.patients,
                "hours": settings.hours,
            }
        },
    )
    run.step(f"evaluated on held-out patients; report: {report_dir / 'report.md'}")
    return DemoResult(bundle, vit_bundle, report_dir, time.perf_counter() - run.started, report)
