from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from vitalsentry.bundle import load_bundle, manifest_sha256
from vitalsentry.config import ModelConfig, TrainConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.errors import BundleError
from vitalsentry.training.finetune import finetune
from vitalsentry.training.module import AutoencoderModule
from vitalsentry.training.pretrain import pretrain


@pytest.fixture(scope="module")
def parent(prepared: PreparedData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("parent") / "pre"
    config = ModelConfig(input_channels=4, seq_len=64, latent_dim=8, lstm_hidden=16)
    pretrain(prepared, config, TrainConfig(batch_size=16, max_epochs=2), out, progress=False)
    return out


@pytest.fixture(scope="module")
def target(make_data: Callable[..., PreparedData]) -> PreparedData:
    return make_data(n_patients=8, per_patient=6, split=(0.7, 0.3), seed=1)


class FrozenProbe(Callback):
    """Record, at every training batch, whether the conv stacks are frozen and in eval mode."""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: object, batch_idx: int
    ) -> None:
        assert isinstance(pl_module, AutoencoderModule)
        convs = pl_module.model.conv_modules()
        self.seen.append(
            all(not m.training for c in convs for m in c.modules())
            and all(not p.requires_grad for c in convs for p in c.parameters())
            and pl_module.model.encoder.lstm is not None
            and pl_module.model.encoder.lstm.dropout.training
        )


def test_finetune_freezes_conv_layers_bit_for_bit(
    parent: Path, target: PreparedData, tmp_path: Path
) -> None:
    probe = FrozenProbe()
    train = TrainConfig.finetune().replace(max_epochs=3, lr=1e-2)
    result = finetune(parent, target, train, tmp_path / "ft", progress=False, callbacks=[probe])
    assert probe.seen and all(probe.seen)
    before, after = load_bundle(parent).autoencoder(), load_bundle(tmp_path / "ft").autoencoder()
    for old, new in zip(before.conv_modules(), after.conv_modules(), strict=True):
        for (name, a), (_, b) in zip(
            old.state_dict().items(), new.state_dict().items(), strict=True
        ):
            assert torch.equal(a, b), name
    assert before.encoder.lstm is not None and after.encoder.lstm is not None
    old_lstm, new_lstm = before.encoder.lstm.state_dict(), after.encoder.lstm.state_dict()
    assert any(not torch.equal(old_lstm[k], new_lstm[k]) for k in old_lstm)
    assert not torch.equal(before.encoder.head.weight, after.encoder.head.weight)
    assert result.epochs == 3 and "no validation split" in result.validation


def test_finetune_manifest_records_the_parent_and_the_recipe(
    parent: Path, target: PreparedData, tmp_path: Path
) -> None:
    finetune(
        parent,
        target,
        TrainConfig.finetune().replace(max_epochs=1),
        tmp_path / "ft",
        progress=False,
    )
    bundle = load_bundle(tmp_path / "ft")
    manifest = bundle.manifest
    assert manifest["parent"]["manifest_sha256"] == manifest_sha256(parent)
    assert (
        manifest["parent"]["data_fingerprint"]
        == load_bundle(parent).manifest["data"]["fingerprint"]
    )
    assert manifest["training"]["phase"] == "finetune"
    assert manifest["training"]["trainable_parameters"] < manifest["training"]["parameters"]
    assert manifest["data"]["fingerprint"] == target.fingerprint
    train = bundle.config.train
    assert (train.lr, train.batch_size, train.freeze_conv, train.weighted_sampling) == (
        1e-4,
        16,
        True,
        True,
    )
    assert train.class_weights == (0.6, 1.4)
    assert bundle.config.model == load_bundle(parent).config.model
    assert bundle.scaler.to_dict() == target.scaler.to_dict()


def test_finetune_defaults_to_the_seed_recipe(
    parent: Path, target: PreparedData, tmp_path: Path
) -> None:
    class StopAfterOne(Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            trainer.should_stop = True

    finetune(parent, target, None, tmp_path / "ft", progress=False, callbacks=[StopAfterOne()])
    assert load_bundle(tmp_path / "ft").config.train == TrainConfig.finetune()


def test_class_weights_change_the_result(
    parent: Path, target: PreparedData, tmp_path: Path
) -> None:
    base = TrainConfig.finetune().replace(max_epochs=1, weighted_sampling=False, lr=1e-2)
    finetune(parent, target, base, tmp_path / "a", progress=False)
    finetune(parent, target, base.replace(class_weights=(1.0, 1.0)), tmp_path / "b", progress=False)
    a = load_bundle(tmp_path / "a").autoencoder().encoder.head.weight
    b = load_bundle(tmp_path / "b").autoencoder().encoder.head.weight
    assert not torch.equal(a, b)


def test_feature_mismatch_is_a_bundle_error(
    parent: Path, make_data: Callable[..., PreparedData], tmp_path: Path
) -> None:
    other = make_data(channels=("heart_rate", "respiratory_rate"), n_patients=6)
    with pytest.raises(
        BundleError,
        match=r"trained on features \(heart_rate, spo2, hour_sin, hour_cos\) but the data has \(heart_rate, respiratory_rate",
    ):
        finetune(parent, other, None, tmp_path / "ft", progress=False)
    longer = make_data(length=128, n_patients=6)
    with pytest.raises(BundleError, match="takes windows of 64 steps but the data's have 128"):
        finetune(parent, longer, None, tmp_path / "ft", progress=False)


def test_finetune_refuses_a_tampered_parent(
    parent: Path, target: PreparedData, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in parent.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    (copy / "scaler.json").write_text("{}")
    with pytest.raises(BundleError, match=r"'scaler\.json' does not match its sha256"):
        finetune(copy, target, None, tmp_path / "ft", progress=False)
