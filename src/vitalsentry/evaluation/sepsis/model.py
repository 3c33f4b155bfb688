"""The project's model on the sepsis task: autoencoder embeddings + context → fusion head.

The seed's Conv1d + LSTM autoencoder (trained with the project's training loop) encodes
each causal vitals window (values and observed masks); its embedding and reconstruction
error (the anomaly score) join the context, the baselines' rolling features and, if set,
longer-horizon stay features (``trend_hours``: vitals statistics and trends, how often each
lab was measured) in a gradient-boosting fusion head trained on training patients (on what
the run's :class:`~vitalsentry.evaluation.sepsis.recipe.HeadRecipe` says), whose probabilities
are calibrated (Platt, on the logit) on validation patients.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from vitalsentry.bundle import load_bundle
from vitalsentry.config import DataConfig, ModelConfig, TrainConfig, WindowConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.data.schema import CHANNELS
from vitalsentry.evaluation.sepsis.features import (
    Cohort,
    causal_windows,
    forward_fill,
    stay_features,
    tabular_features,
)
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.models.inference import encode_with_error
from vitalsentry.training.pretrain import pretrain

if TYPE_CHECKING:
    from vitalsentry.stages import ContextHeadStage

ENCODE_CHUNK = 65_536
"""Patient-hours windowed and encoded per step (bounds memory)."""

ENCODE_BATCH = 4096
"""Windows per encoder call (the fastest on one CPU thread; larger batches are slower)."""

SCORE_CHUNK = 16_384
"""Patient-hours (whole patients) per task of :meth:`RiskScorer.score`."""


@dataclass(frozen=True)
class AutoencoderSettings:
    """How the autoencoder is trained on the causal vitals windows.

    Attributes
    ----------
    window : int
        Window length in hours (multiple of 4).
    latent_dim : int
        Embedding size.
    epochs, patience : int
        Most epochs and early-stopping patience (validation patients).
    batch_size : int
        Training batch.
    max_windows : int
        Most training windows (an even subsample of the training patient-hours).
    seed : int
        Seed of weights, batches and the subsample.
    """

    window: int = 12
    latent_dim: int = 16
    epochs: int = 8
    patience: int = 2
    batch_size: int = 256
    max_windows: int = 60_000
    seed: int = 0


@dataclass(frozen=True)
class VitalInputs:
    """Forward-filled vitals with no gap left, and where each was measured.

    Attributes
    ----------
    filled : ndarray of float32, shape (n, V)
        Last value in the stay, else the training median.
    observed : ndarray of bool, shape (n, V)
    names : tuple of str
        Window channel names: the vitals, then ``<vital>_observed``.
    """

    filled: NDArray[np.float32]
    observed: NDArray[np.bool_]
    names: tuple[str, ...]


def vital_inputs(cohort: Cohort, medians: NDArray[np.float32]) -> VitalInputs:
    """Vitals as autoencoder inputs; ``medians`` (V,) come from training patients."""
    filled, _ = forward_fill(cohort.vitals, cohort.starts)
    filled = np.where(np.isnan(filled), medians[None, :], filled).astype(np.float32)
    names = (*cohort.vital_names, *(f"{v}_observed" for v in cohort.vital_names))
    return VitalInputs(filled, ~np.isnan(cohort.vitals), names)


def training_medians(cohort: Cohort, train: NDArray[np.bool_]) -> NDArray[np.float32]:
    """(V,) median of each vital over training rows (0 for a vital never measured)."""
    with np.errstate(all="ignore"):
        part = cohort.vitals[train]
        med = np.array(
            [np.nanmedian(c) if np.isfinite(c).any() else 0.0 for c in part.T], np.float32
        )
    return med


def _prepared(
    cohort: Cohort, inputs: VitalInputs, split: NDArray[np.int8], settings: AutoencoderSettings
) -> PreparedData:
    """Training (split 0) and validation (split 1) windows as the training loop takes them."""
    rng = np.random.default_rng(settings.seed)
    rows = np.flatnonzero(split <= 1)
    if rows.size > settings.max_windows:
        rows = np.sort(rng.choice(rows, settings.max_windows, replace=False))
    starts = cohort.starts
    windows = causal_windows(inputs.filled, inputs.observed, starts, rows, settings.window)
    codes = split[rows]
    scaler = ChannelScaler(inputs.names).fit(windows[codes == 0])
    canonical = tuple(v for v in cohort.vital_names if v in CHANNELS) or ("heart_rate",)
    return PreparedData(
        windows=windows,
        labels=cohort.label[rows].astype(np.int8),
        split=codes.astype(np.int8),
        patient=cohort.patient[rows],
        start_s=(rows - settings.window + 1).astype(np.float64) * 3600.0,
        feature_names=inputs.names,
        scaler=scaler,
        data=DataConfig(
            channels=canonical,
            step_s=3600.0,
            max_gap_s=3600.0,
            observed_mask=True,
            time_features="none",
        ),
        window=WindowConfig(length=settings.window, stride=1),
        source="physionet2019",
        stream=False,
        notes=("causal hourly windows of the sepsis benchmark",),
        input_sha256="",
        static=pd.DataFrame(),
    )


def train_autoencoder(
    cohort: Cohort,
    inputs: VitalInputs,
    split: NDArray[np.int8],
    settings: AutoencoderSettings,
    out: Path,
    *,
    progress: bool,
) -> tuple[Autoencoder, ChannelScaler, dict[str, Any]]:
    """Train (or load the cached bundle at ``out``) and return model, scaler, summary."""
    if not (out / "manifest.json").is_file():
        data = _prepared(cohort, inputs, split, settings)
        config = ModelConfig(
            input_channels=len(inputs.names),
            seq_len=settings.window,
            latent_dim=settings.latent_dim,
        )
        train = TrainConfig(
            lr=1e-3,
            batch_size=settings.batch_size,
            max_epochs=settings.epochs,
            patience=settings.patience,
            seed=settings.seed,
        )
        resume = (out.parent / f"{out.name}.ckpt" / "last.ckpt").is_file()
        pretrain(data, config, train, out, accelerator="cpu", resume=resume, progress=progress)
    bundle = load_bundle(out)
    summary = {k: bundle.manifest["training"][k] for k in ("epochs", "best_val_loss", "seconds")}
    return bundle.autoencoder(), bundle.scaler, summary


def embed(
    model: Autoencoder, scaler: ChannelScaler, cohort: Cohort, inputs: VitalInputs, window: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Embedding and anomaly score (mean reconstruction error of the vitals) of every hour.

    Returns
    -------
    (embeddings, anomaly) : ndarray of float32, shapes (n, latent) and (n,)
    """
    starts, n, v = cohort.starts, len(cohort), len(cohort.vital_names)
    emb = np.empty((n, model.config.latent_dim), np.float32)
    anomaly = np.empty(n, np.float32)
    for lo in range(0, n, ENCODE_CHUNK):
        rows = np.arange(lo, min(n, lo + ENCODE_CHUNK), dtype=np.intp)
        x = scaler.transform(causal_windows(inputs.filled, inputs.observed, starts, rows, window))
        z, err = encode_with_error(model, x, batch_size=ENCODE_BATCH)
        emb[rows], anomaly[rows] = z, err[:, :v].mean(axis=1)
    return emb, anomaly


@dataclass(frozen=True)
class PlattCalibration:
    """Calibrated probability ``sigmoid(a · logit(p) + b)``: strictly monotone, keeps ranks.

    Attributes
    ----------
    a, b : float
        Slope and intercept fitted on validation patients.
    """

    a: float
    b: float

    @classmethod
    def fit(cls, proba: NDArray[np.float64], y: NDArray[np.int8]) -> PlattCalibration:
        """Fit on validation probabilities and labels."""
        x = logit(np.clip(proba, 1e-6, 1 - 1e-6))[:, None]
        lr = LogisticRegression(C=1e6).fit(x, y)
        return cls(float(lr.coef_[0, 0]), float(lr.intercept_[0]))

    def __call__(self, proba: NDArray[np.float64]) -> NDArray[np.float64]:
        """Calibrated probabilities of raw ``proba``."""
        out: NDArray[np.float64] = expit(self.a * logit(np.clip(proba, 1e-6, 1 - 1e-6)) + self.b)
        return out


def risk_blocks(
    features: NDArray[np.float32],
    stay: NDArray[np.float32],
    embeddings: NDArray[np.float32],
    anomaly: NDArray[np.float32],
) -> list[NDArray[np.float32]]:
    """Return the risk head's column blocks: features, stay features, embedding, anomaly."""
    return [features, stay, embeddings, anomaly[:, None]]


@dataclass(frozen=True)
class RiskInputs:
    """What the risk head reads, built from raw hourly rows: features, embedding, anomaly.

    Attributes
    ----------
    autoencoder : Autoencoder
    scaler : ChannelScaler
        The autoencoder's input scaler.
    medians : ndarray of float32, shape (V,)
        Training medians filling vitals not yet measured (:func:`vital_inputs`).
    window : int
        Window length in hours.
    roll_hours : int
    trend_hours : int or None
    """

    autoencoder: Autoencoder
    scaler: ChannelScaler
    medians: NDArray[np.float32]
    window: int
    roll_hours: int
    trend_hours: int | None

    def blocks(self, cohort: Cohort) -> list[NDArray[np.float32]]:
        """Return the head's column blocks (:func:`risk_blocks`) of every hour of ``cohort``.

        Causal features (:func:`tabular_features`, and :func:`stay_features` with
        ``trend_hours``), then causal windows + encoder (:func:`embed`).
        """
        x = tabular_features(cohort, roll_hours=self.roll_hours)[0]
        stay = (
            np.empty((len(cohort), 0), np.float32)
            if self.trend_hours is None
            else stay_features(cohort, trend_hours=self.trend_hours)[0]
        )
        inputs = vital_inputs(cohort, self.medians)
        z, anomaly = embed(self.autoencoder, self.scaler, cohort, inputs, self.window)
        return risk_blocks(x, stay, z, anomaly)


@dataclass(frozen=True)
class RiskScorer:
    """The risk's whole scoring path: hourly rows of stays → calibrated risk of every hour.

    Per chunk of whole stays: :meth:`RiskInputs.blocks`, then the context head. Chunks run
    on ``workers`` threads of one library thread each (numpy, torch and the trees release
    the GIL), so the path uses that many cores without library threads waiting on each
    other.

    Attributes
    ----------
    inputs : RiskInputs
    head : ContextHeadStage
        The fitted risk head.
    """

    inputs: RiskInputs
    head: ContextHeadStage

    def _chunk(self, cohort: Cohort) -> NDArray[np.float64]:
        with threadpool_limits(1, user_api="openmp"):
            return np.asarray(self.head.predict(self.inputs.blocks(cohort)), np.float64)

    def score(self, cohort: Cohort, workers: int = 2) -> NDArray[np.float64]:
        """(n,) calibrated risk of every hour of ``cohort``, from the data up to that hour."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(max(workers, 1)) as pool:
                parts = list(pool.map(self._chunk, patient_chunks(cohort, SCORE_CHUNK)))
        finally:
            torch.set_num_threads(threads)
        return np.concatenate(parts)


def patient_chunks(cohort: Cohort, rows: int) -> Sequence[Cohort]:
    """Consecutive parts of ``cohort`` of about ``rows`` hours each, cut between stays."""
    starts = np.flatnonzero(np.r_[True, cohort.patient[1:] != cohort.patient[:-1]])
    at = np.searchsorted(starts, np.arange(rows, len(cohort), rows))
    edges = np.unique(np.r_[0, starts[at[at < starts.size]], len(cohort)])
    return [cohort.part(int(lo), int(hi)) for lo, hi in itertools.pairwise(edges)]
