"""An untrained but complete bundle and plausible readings, for the service-side tests.

A plain module (not a conftest) so that test modules of several folders import it by one
unambiguous name; ``benchmarks/bench_api.py`` and ``bench_hardening.py`` load it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitalsentry.bundle import DECODER, ENCODER, SCALER, BundleWriter
from vitalsentry.config import (
    DataConfig,
    DetectorConfig,
    ModelConfig,
    PipelineConfig,
    TimeFeatures,
    WindowConfig,
)
from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.data.timefeatures import series_time_features
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.models.inference import encode
from vitalsentry.pipeline import CALIBRATION_FILE, DETECTOR_FILE
from vitalsentry.risk.calibrate import fit_calibration
from vitalsentry.risk.detector import EmbeddingIsolationForest, save_detector

LENGTH = 64
START = 1_714_550_400  # 2024-05-01T08:00:00Z


def build_bundle(
    out: Path,
    *,
    length: int = LENGTH,
    n_estimators: int = 50,
    seed: int = 0,
    time_features: TimeFeatures = "clock",
) -> Path:
    """Write a bundle with an untrained autoencoder, a detector and a calibration.

    Windows of heart rate and SpO2 (plus ``time_features``: hour of day by default) are
    random around normal values; the scaler, detector and calibration are fitted on them,
    so the bundle scores like a trained one without any training.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    data = DataConfig(channels=("heart_rate", "spo2"), time_features=time_features)
    config = PipelineConfig(
        data=data,
        window=WindowConfig(length=length, stride=length // 2),
        model=ModelConfig(input_channels=len(data.feature_names), seq_len=length),
        detector=DetectorConfig(n_estimators=n_estimators),
    )
    model = Autoencoder(config.model).eval()
    n = 96
    epoch = START + rng.uniform(0, 86_400, (n, 1)) + np.arange(length)
    vitals = np.stack(
        [
            75 + rng.normal(0, 6, (n, 1)) + rng.normal(0, 2, (n, length)),
            97 + rng.normal(0, 1, (n, length)),
        ],
        axis=1,
    )
    times = series_time_features(time_features, epoch.ravel(), START)
    times = times.reshape(-1, n, length).transpose(1, 0, 2)
    windows = np.concatenate([vitals, times], axis=1).astype(np.float32)
    scaler = ChannelScaler(data.feature_names).fit(windows)
    emb = encode(model, scaler.transform(windows))
    detector = EmbeddingIsolationForest(n_estimators=n_estimators, random_state=seed).fit(emb[:64])
    scores = detector.score_samples(emb)
    calibration = fit_calibration(scores[:64], None, val_normal_scores=scores[64:], target_fpr=0.1)
    with BundleWriter(out) as writer:
        writer.put_tensors(ENCODER, model.encoder.state_dict())
        writer.put_tensors(DECODER, model.decoder.state_dict())
        writer.put_json(SCALER, scaler.to_dict())
        writer.put_file(DETECTOR_FILE, lambda p: save_detector(detector, p))
        writer.put_json(CALIBRATION_FILE, calibration.to_dict())
        writer.manifest.update(
            config=config.to_dict(),
            feature_names=list(data.feature_names),
            data={
                "fingerprint": "test-fingerprint",
                "source": "synthetic",
                "notes": ["untrained test bundle"],
            },
            metrics={"detector": {"val_fpr": calibration.val_fpr}},
        )
    return out


def make_readings(
    n: int = LENGTH + 16,
    *,
    start: float = START,
    step: float = 1.0,
    seed: int = 1,
    channels: tuple[str, ...] = ("heart_rate", "spo2"),
) -> list[dict[str, Any]]:
    """``n`` readings ``step`` seconds apart with plausible values of ``channels``."""
    rng = np.random.default_rng(seed)
    base = {
        "heart_rate": (78.0, 4.0),
        "spo2": (96.5, 0.8),
        "respiratory_rate": (16.0, 1.0),
        "temperature": (36.8, 0.1),
        "systolic_bp": (122.0, 5.0),
        "diastolic_bp": (78.0, 3.0),
    }
    out = []
    for k in range(n):
        when = np.datetime64(int((start + k * step) * 1e6), "us").astype(str) + "Z"
        reading: dict[str, Any] = {"timestamp": when}
        for name in channels:
            mean, sd = base[name]
            reading[name] = round(
                float(np.clip(mean + rng.normal(0, sd), mean - 3 * sd, mean + 3 * sd)), 2
            )
        out.append(reading)
    return out
