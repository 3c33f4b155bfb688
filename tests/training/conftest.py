"""Synthetic prepared data for the training tests (seeded, tiny)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from vitalsentry.bundle import ENCODER, load_bundle
from vitalsentry.config import DataConfig, ModelConfig, TrainConfig, WindowConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.data.timefeatures import time_features
from vitalsentry.training.loop import TrainResult

LENGTH = 64


def make_prepared(
    *,
    n_patients: int = 10,
    per_patient: int = 8,
    length: int = LENGTH,
    channels: tuple[str, ...] = ("heart_rate", "spo2"),
    split: tuple[float, ...] = (0.6, 0.2, 0.2),
    abnormal_share: float = 0.25,
    seed: int = 0,
) -> PreparedData:
    """Sine-plus-noise normal windows, shifted and spiky abnormal ones, split by patient."""
    rng = np.random.default_rng(seed)
    data = DataConfig(channels=channels, split=split)
    window = WindowConfig(length=length, stride=length // 2)
    n = n_patients * per_patient
    patient = np.repeat([f"p{i:02d}" for i in range(n_patients)], per_patient)
    cuts = np.cumsum(np.round(np.array(split) * n_patients).astype(int))[:-1]
    codes = np.searchsorted(cuts, np.arange(n_patients), side="right")
    if len(split) == 2:  # train / test: the test split keeps code 2
        codes = np.array([0, 2])[codes]
    split_codes = np.repeat(codes, per_patient).astype(np.int8)
    start_s = (
        1.7e9
        + np.tile(np.arange(per_patient) * length / 2.0, n_patients)
        + np.repeat(np.arange(n_patients) * 3600.0, per_patient)
    )
    labels = (rng.random(n) < abnormal_share).astype(np.int8)
    t = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    vitals = np.empty((n, len(channels), length), np.float32)
    for c in range(len(channels)):
        base = 70.0 + 25.0 * c
        vitals[:, c] = base + 5 * np.sin(2 * np.pi * t / 32 + phase) + rng.normal(0, 1, (n, length))
    spikes = rng.random((n, 1, length)) < 0.1
    vitals += labels[:, None, None] * (15.0 + 20.0 * spikes)
    epoch = start_s[:, None] + t[None, :]
    tf = time_features(epoch.ravel()).reshape(-1, n, length).transpose(1, 0, 2)
    windows = np.concatenate([vitals, tf.astype(np.float32)], axis=1)
    scaler = ChannelScaler(data.feature_names).fit(windows[split_codes == 0])
    return PreparedData(
        windows=windows,
        labels=labels,
        split=split_codes,
        patient=patient,
        start_s=start_s,
        feature_names=data.feature_names,
        scaler=scaler,
        data=data,
        window=window,
        source="synthetic",
        stream=False,
        notes=("synthetic test data",),
        input_sha256="",
        static=pd.DataFrame(index=pd.Index([], name="patient_id")),
    )


@pytest.fixture(scope="session")
def prepared() -> PreparedData:
    return make_prepared()


@pytest.fixture(scope="session")
def make_data() -> Callable[..., PreparedData]:
    return make_prepared


@pytest.fixture
def tiny_model() -> ModelConfig:
    return ModelConfig(
        input_channels=4, seq_len=LENGTH, latent_dim=8, lstm_hidden=16, lstm_layers=2
    )


@pytest.fixture
def quick_train() -> TrainConfig:
    return TrainConfig(batch_size=16, max_epochs=3, patience=5, seed=0)


@pytest.fixture
def assert_same_training() -> Callable[..., None]:
    """Check that two runs' curves (``rel``) and encoder weights (``rtol``, ``atol``) agree."""

    def check(
        first: TrainResult, second: TrainResult, *, rel: float, rtol: float, atol: float
    ) -> None:
        for a, b in zip(first.curve, second.curve, strict=True):
            assert b["train_loss"] == pytest.approx(a["train_loss"], rel=rel)
            assert b["val_loss"] == pytest.approx(a["val_loss"], rel=rel)
        a, b = (load_bundle(run.bundle).read_tensors(ENCODER) for run in (first, second))
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=rtol, atol=atol)

    return check
