from __future__ import annotations

import numpy as np
import pytest
import torch

from vitalsentry.config import LstmPath, ModelConfig
from vitalsentry.errors import DataError, VitalSentryError
from vitalsentry.models.autoencoder import Autoencoder, set_lstm_path
from vitalsentry.models.inference import (
    attention_weights,
    encode,
    encode_with_error,
    encode_with_step_error,
    mc_dropout_encode,
    reconstruction_error,
)

CONFIG = ModelConfig(
    input_channels=3, seq_len=32, latent_dim=6, lstm_hidden=8, lstm_layers=2, dropout=0.3
)


def _model(**changes: object) -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(CONFIG.replace(**changes))


@pytest.fixture
def windows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(37, 3, 32)).astype(np.float32)


def test_encode_matches_the_encoder_in_eval_mode(windows: np.ndarray) -> None:
    model = _model()
    z = encode(model, windows, batch_size=8)
    assert z.shape == (37, 6) and z.dtype == np.float32
    with torch.no_grad():
        expected = model.eval().encoder(torch.from_numpy(windows)).numpy()
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-6)


def test_encode_does_not_depend_on_the_batch_size(windows: np.ndarray) -> None:
    model = _model()
    np.testing.assert_allclose(
        encode(model, windows, batch_size=5), encode(model, windows), rtol=1e-5, atol=1e-6
    )


def test_encode_restores_training_mode_and_is_deterministic(windows: np.ndarray) -> None:
    model = _model().train()
    first = encode(model, windows)
    assert model.training
    np.testing.assert_array_equal(first, encode(model, windows))


def test_reconstruction_error_per_channel(windows: np.ndarray) -> None:
    model = _model()
    err = reconstruction_error(model, windows, batch_size=16)
    assert err.shape == (37, 3) and err.dtype == np.float32
    with torch.no_grad():
        x = torch.from_numpy(windows)
        expected = ((model.eval()(x) - x) ** 2).mean(dim=2).numpy()
    np.testing.assert_allclose(err, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", ["layers", "fused"])
def test_mc_dropout_samples_only_dropout_and_is_seeded(windows: np.ndarray, path: LstmPath) -> None:
    model = _model()
    set_lstm_path(model, path)  # the fused LSTM call must sample its inter-layer dropout too
    state = torch.get_rng_state()
    draws = mc_dropout_encode(model, windows, passes=5, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    assert draws.shape == (5, 37, 6)
    np.testing.assert_array_equal(draws, mc_dropout_encode(model, windows, passes=5, seed=3))
    assert not np.allclose(draws[0], draws[1])
    assert not np.array_equal(draws, mc_dropout_encode(model, windows, passes=5, seed=4))
    assert draws.std(axis=0).mean() > 0


def test_mc_dropout_refuses_models_without_dropout(windows: np.ndarray) -> None:
    model = _model(dropout=0.0)
    with pytest.raises(VitalSentryError, match="MC dropout needs dropout"):
        mc_dropout_encode(model, windows, passes=2, seed=0)
    with pytest.raises(VitalSentryError, match="MC dropout needs dropout"):
        mc_dropout_encode(_model(lstm_layers=1), windows, passes=2, seed=0)
    with pytest.raises(VitalSentryError, match="passes"):
        mc_dropout_encode(_model(), windows, passes=0, seed=0)


def test_attention_weights(windows: np.ndarray) -> None:
    weights = attention_weights(_model(pooling="attention"), windows, batch_size=10)
    assert weights.shape == (37, 8)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(VitalSentryError, match="pooling='attention'"):
        attention_weights(_model(), windows)


@pytest.mark.parametrize("shape", [(4, 2, 32), (4, 3, 16), (3, 32)])
def test_wrong_window_shape_is_a_data_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match=r"expected windows of shape \(N, 3, 32\)"):
        encode(_model(), np.zeros(shape, np.float32))


def test_non_finite_windows_are_refused(windows: np.ndarray) -> None:
    windows[3, 1, 7] = np.nan
    with pytest.raises(DataError, match="NaN"):
        reconstruction_error(_model(), windows)


def test_empty_input_gives_empty_output() -> None:
    assert encode(_model(), np.zeros((0, 3, 32), np.float32)).shape == (0, 6)


def test_encode_with_error_equals_the_separate_passes(windows: np.ndarray) -> None:
    model = _model()
    emb, err = encode_with_error(model, windows, batch_size=7)
    np.testing.assert_allclose(emb, encode(model, windows), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(err, reconstruction_error(model, windows), rtol=1e-5, atol=1e-6)


def test_encode_with_step_error_adds_each_steps_error_to_the_same_pass(windows: np.ndarray) -> None:
    model = _model()
    emb, err, step = encode_with_step_error(model, windows, batch_size=7)
    assert step.shape == (37, 3, 32) and step.dtype == np.float32
    np.testing.assert_array_equal(emb, encode_with_error(model, windows, batch_size=7)[0])
    np.testing.assert_array_equal(err, encode_with_error(model, windows, batch_size=7)[1])
    np.testing.assert_allclose(step.mean(axis=2), err, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        x = torch.from_numpy(windows)
        expected = (model.eval().decoder(model.encoder(x)) - x).square()
    np.testing.assert_allclose(step, expected.numpy(), rtol=1e-4, atol=1e-5)
    assert encode_with_step_error(model, windows[:0])[2].shape == (0, 3, 32)
