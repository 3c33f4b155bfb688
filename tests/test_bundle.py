from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vitalsentry import __version__
from vitalsentry.bundle import (
    CURVE,
    DECODER,
    ENCODER,
    FORMAT,
    MANIFEST,
    SCALER,
    BundleWriter,
    load_bundle,
    manifest_sha256,
)
from vitalsentry.config import DataConfig, ModelConfig, PipelineConfig, WindowConfig
from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.errors import BundleError
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.models.inference import encode

MODEL = ModelConfig(input_channels=4, seq_len=32, latent_dim=5, lstm_hidden=8)
WINDOW = WindowConfig(length=32, stride=16)
NAMES = DataConfig().feature_names


def _windows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(9, 4, 32)).astype(np.float32)


def _write(out: Path, model: Autoencoder, extra: dict[str, bytes] | None = None) -> None:
    scaler = ChannelScaler(NAMES).fit(_windows() * 10 + 50)
    with BundleWriter(out) as writer:
        for name, content in (extra or {}).items():
            writer.put_file(name, lambda p, c=content: p.write_bytes(c))
        writer.put_tensors(ENCODER, model.encoder.state_dict())
        writer.put_tensors(DECODER, model.decoder.state_dict())
        writer.put_json(SCALER, scaler.to_dict())
        writer.put_json(CURVE, [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.5}])
        writer.manifest.update(
            config=PipelineConfig(model=MODEL, window=WINDOW).to_dict(), feature_names=list(NAMES)
        )


@pytest.fixture
def model() -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(MODEL).eval()


@pytest.fixture
def bundle_dir(tmp_path: Path, model: Autoencoder) -> Path:
    out = tmp_path / "bundle"
    _write(out, model)
    return out


def test_round_trip_gives_identical_embeddings(bundle_dir: Path, model: Autoencoder) -> None:
    bundle = load_bundle(bundle_dir)
    loaded = bundle.autoencoder()
    assert not loaded.training
    np.testing.assert_array_equal(encode(loaded, _windows()), encode(model, _windows()))
    assert bundle.config.model == MODEL
    assert bundle.feature_names == NAMES
    assert bundle.scaler.feature_names == NAMES
    assert bundle.read_json(CURVE)[0]["val_loss"] == 1.5
    assert bundle.has(ENCODER) and not bundle.has("detector.skops")


def test_manifest_lists_versions_and_the_hash_of_every_file(bundle_dir: Path) -> None:
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    assert manifest["format"] == FORMAT
    assert manifest["versions"]["vitalsentry"] == __version__
    assert {"torch", "sklearn", "safetensors"} <= set(manifest["versions"])
    assert sorted(manifest["files"]) == sorted([CURVE, DECODER, ENCODER, SCALER])
    assert manifest_sha256(bundle_dir) == load_bundle(bundle_dir).manifest_sha256


def test_no_pickle_anywhere(bundle_dir: Path) -> None:
    for file in bundle_dir.iterdir():
        assert not file.read_bytes().startswith(b"\x80"), f"{file.name} looks like a pickle"


def test_a_changed_byte_is_refused_naming_the_file(bundle_dir: Path) -> None:
    data = bytearray((bundle_dir / ENCODER).read_bytes())
    data[-1] ^= 0x01
    (bundle_dir / ENCODER).write_bytes(bytes(data))
    with pytest.raises(
        BundleError, match=r"'encoder\.safetensors' does not match its sha256"
    ) as err:
        load_bundle(bundle_dir)
    assert "\n" not in str(err.value)


def test_a_deleted_file_is_refused(bundle_dir: Path) -> None:
    (bundle_dir / SCALER).unlink()
    with pytest.raises(BundleError, match=r"'scaler\.json' listed in manifest\.json is missing"):
        load_bundle(bundle_dir)


def test_an_unlisted_file_is_refused(bundle_dir: Path) -> None:
    (bundle_dir / "extra.safetensors").write_bytes(b"x")
    with pytest.raises(BundleError, match=r"'extra\.safetensors' is not listed"):
        load_bundle(bundle_dir)


def _edit_manifest(bundle_dir: Path, **changes: object) -> None:
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    manifest.update(changes)
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest))


def test_a_wrong_format_version_is_refused(bundle_dir: Path) -> None:
    _edit_manifest(bundle_dir, format="vitalsentry-bundle/0")
    with pytest.raises(
        BundleError, match=r"format 'vitalsentry-bundle/0' is not 'vitalsentry-bundle/1'"
    ):
        load_bundle(bundle_dir)


def test_a_bundle_from_a_newer_vitalsentry_is_refused(bundle_dir: Path) -> None:
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    _edit_manifest(bundle_dir, versions={**manifest["versions"], "vitalsentry": "99.0.0"})
    with pytest.raises(BundleError, match="newer than this"):
        load_bundle(bundle_dir)


def test_skops_files_need_the_same_sklearn(tmp_path: Path, model: Autoencoder) -> None:
    bundle_dir = tmp_path / "with-skops"
    _write(bundle_dir, model, {"detector.skops": b"not really skops"})
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    manifest["versions"]["sklearn"] = "0.1.0"
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"'detector\.skops' was saved with scikit-learn 0\.1\.0"):
        load_bundle(bundle_dir)


def test_not_a_bundle_and_broken_manifest(tmp_path: Path, bundle_dir: Path) -> None:
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path / "nothing")
    (bundle_dir / MANIFEST).write_text("{ nope")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle_dir)


def test_weights_that_do_not_fit_the_config_are_refused(bundle_dir: Path) -> None:
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    manifest["config"]["model"]["lstm_hidden"] = 12
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(
        BundleError,
        match=r"'(en|de)coder\.safetensors' is malformed \(tensor '.+' does not fit the model",
    ):
        load_bundle(bundle_dir)


def test_a_failed_write_leaves_the_old_bundle(bundle_dir: Path) -> None:
    before = (bundle_dir / MANIFEST).read_bytes()
    with (
        pytest.raises(RuntimeError, match="boom"),
        BundleWriter(bundle_dir) as writer,
    ):
        writer.put_json("half.json", {})
        raise RuntimeError("boom")
    assert (bundle_dir / MANIFEST).read_bytes() == before
    assert not (bundle_dir / "half.json").exists()
    assert [p.name for p in bundle_dir.parent.iterdir()] == ["bundle"]


def test_incomplete_bundles_are_not_written(tmp_path: Path, model: Autoencoder) -> None:
    out = tmp_path / "incomplete"
    with (
        pytest.raises(
            BundleError, match=r"cannot save without decoder\.safetensors, scaler\.json, config"
        ),
        BundleWriter(out) as writer,
    ):
        writer.put_tensors(ENCODER, model.encoder.state_dict())
        writer.manifest["feature_names"] = list(NAMES)
    assert not out.exists()


@pytest.mark.parametrize("name", ["../evil.json", "manifest.json", ".hidden", "a/b.json", ""])
def test_file_names_must_be_plain(tmp_path: Path, name: str) -> None:
    with (
        pytest.raises(BundleError, match="plain file name"),
        BundleWriter(tmp_path / "b") as writer,
    ):
        writer.put_json(name, {})
    assert list(tmp_path.iterdir()) == []


def test_path_of_an_unlisted_file(bundle_dir: Path) -> None:
    with pytest.raises(BundleError, match=r"has no file 'fusion\.skops'"):
        load_bundle(bundle_dir).path_of("fusion.skops")
