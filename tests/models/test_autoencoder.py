from __future__ import annotations

import itertools
import threading

import pytest
import torch
from torch import nn

from vitalsentry.config import ModelConfig
from vitalsentry.errors import VitalSentryError
from vitalsentry.models.autoencoder import (
    Autoencoder,
    Decoder,
    Dropout,
    Encoder,
    StackedLSTM,
    count_parameters,
    dropout_generator,
    fused_dropout_on,
    set_lstm_path,
)

SEED_PARAMETERS = 89_380

COMBOS = [
    ModelConfig(
        input_channels=c,
        seq_len=length,
        use_lstm=lstm,
        pooling=pool,
        lstm_layers=layers,
        latent_dim=8,
        lstm_hidden=16,
    )
    for c, length, lstm, pool, layers in itertools.product(
        (2, 4, 6), (64, 256), (True, False), ("last", "attention"), (1, 2)
    )
    if lstm or pool == "last"
]


@pytest.mark.parametrize(
    "config",
    COMBOS,
    ids=lambda c: (
        f"c{c.input_channels}-L{c.seq_len}-lstm{int(c.use_lstm)}-{c.pooling}-l{c.lstm_layers}"
    ),
)
def test_shapes_of_every_configuration(config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = Autoencoder(config).eval()
    x = torch.randn(3, config.input_channels, config.seq_len)
    assert model.encoder.conv(x).shape == (3, 32, config.seq_len // 4)
    z = model.encoder(x)
    assert z.shape == (3, config.latent_dim)
    assert model.decoder(z).shape == x.shape
    assert model(x).shape == x.shape
    if config.pooling == "attention":
        z2, weights = model.encoder(x, return_attention=True)
        assert weights.shape == (3, config.seq_len // 4)
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
        assert bool((weights >= 0).all())
        torch.testing.assert_close(z2, z)
    else:
        with pytest.raises(VitalSentryError, match="attention"):
            model.encoder(x, return_attention=True)


def test_attention_needs_lstm() -> None:
    with pytest.raises(VitalSentryError, match="use_lstm=True"):
        Encoder(ModelConfig(use_lstm=False, pooling="attention"))


def test_seed_config_has_89380_parameters() -> None:
    model = Autoencoder(ModelConfig())
    assert count_parameters(model) == SEED_PARAMETERS
    assert count_parameters(model.encoder) + count_parameters(model.decoder) == SEED_PARAMETERS
    conv = sum(count_parameters(m) for m in model.conv_modules())
    for module in model.conv_modules():
        module.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == SEED_PARAMETERS - conv


def test_seed_shape_flow_matches_the_diagram() -> None:
    model = Autoencoder(ModelConfig())
    x = torch.randn(2, 4, 256)
    features = model.encoder.conv(x)
    assert features.shape == (2, 32, 64)
    assert model.encoder.lstm is not None
    steps = model.encoder.lstm(features.transpose(1, 2))
    assert steps.shape == (2, 64, 64)
    assert model.encoder.head.in_features == 64 and model.encoder.head.out_features == 32
    assert isinstance(model.decoder.conv, nn.Sequential)
    assert isinstance(model.decoder, Decoder)


def test_flatten_variant_is_the_seed_before_diagram() -> None:
    model = Autoencoder(ModelConfig(input_channels=2, use_lstm=False))
    assert model.encoder.lstm is None and model.decoder.lstm is None
    assert model.encoder.head.in_features == 32 * 64 == 2048


def test_stacked_lstm_equals_torch_multilayer_lstm_in_eval() -> None:
    config = ModelConfig(lstm_layers=2, dropout=0.5)
    torch.manual_seed(0)
    reference = nn.LSTM(32, 64, 2, batch_first=True, dropout=0.5).eval()
    stacked = StackedLSTM(32, 64, config).eval()
    for layer, lstm in enumerate(stacked.layers):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{name}_l0").data.copy_(getattr(reference, f"{name}_l{layer}"))
    x = torch.randn(4, 16, 32)
    torch.testing.assert_close(stacked(x), reference(x)[0])


def test_dropout_rate_scale_and_eval_identity() -> None:
    torch.manual_seed(0)
    drop = Dropout(0.5)
    x = torch.ones(200, 500)
    out = drop(x)
    zero_share = float((out == 0).float().mean())
    assert 0.48 < zero_share < 0.52
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_dropout_masks_come_from_this_threads_generator() -> None:
    drop, x = Dropout(0.5), torch.ones(64, 64)
    with dropout_generator(torch.Generator().manual_seed(3)):
        first = drop(x)
    with dropout_generator(torch.Generator().manual_seed(3)):
        again = drop(x)
        elsewhere: list[torch.Tensor] = []
        thread = threading.Thread(target=lambda: elsewhere.append(drop(x)))
        torch.manual_seed(5)
        thread.start()
        thread.join()
    torch.manual_seed(5)
    assert torch.equal(first, again)
    assert torch.equal(elsewhere[0], drop(x))  # another thread keeps torch's default generator


def test_dropout_gradient_flows_through_kept_elements() -> None:
    torch.manual_seed(1)
    x = torch.ones(10, 10, requires_grad=True)
    out = Dropout(0.5)(x)
    out.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, out.detach())


def _both_paths(config: ModelConfig) -> tuple[Autoencoder, Autoencoder]:
    torch.manual_seed(0)
    layers = Autoencoder(config)
    fused = Autoencoder(config)
    fused.load_state_dict(layers.state_dict())
    set_lstm_path(layers, "layers")
    set_lstm_path(fused, "fused")
    return layers, fused


@pytest.mark.parametrize("pooling", ["last", "attention"])
def test_fused_path_gives_the_layer_paths_outputs_in_eval(pooling: str) -> None:
    layers, fused = _both_paths(ModelConfig(seq_len=64, pooling=pooling))  # type: ignore[arg-type]
    x = torch.randn(8, 4, 64)
    with torch.no_grad():
        torch.testing.assert_close(fused.eval()(x), layers.eval()(x), rtol=1e-5, atol=1e-6)


def test_fused_path_gives_the_same_gradients_without_dropout() -> None:
    layers, fused = _both_paths(ModelConfig(seq_len=64, lstm_layers=3, dropout=0.0))
    x = torch.randn(8, 4, 64)
    for model in (layers, fused):
        (model.train()(x) - x).square().mean().backward()  # type: ignore[no-untyped-call]
    for (name, a), b in zip(layers.named_parameters(), fused.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None, name
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_both_paths_share_one_state_dict() -> None:
    layers, fused = _both_paths(ModelConfig(seq_len=64))
    assert list(fused.state_dict()) == list(layers.state_dict())
    assert "encoder.lstm.layers.1.weight_hh_l0" in fused.state_dict()
    back = Autoencoder(ModelConfig(seq_len=64))
    back.load_state_dict(fused.state_dict())  # a bundle of one path loads into the other
    x = torch.randn(4, 4, 64)
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(x), fused.eval()(x), rtol=1e-5, atol=1e-6)


def test_fused_path_trains_with_dropout_between_layers() -> None:
    _, fused = _both_paths(ModelConfig(seq_len=64, dropout=0.5))
    x = torch.randn(4, 4, 64)
    fused.train()
    torch.manual_seed(3)
    first = fused(x)
    torch.manual_seed(3)
    torch.testing.assert_close(fused(x), first)  # masks follow torch's seed
    assert not torch.allclose(fused(x), first)  # and change between calls
    with torch.no_grad():
        assert not torch.allclose(fused.eval()(x), first)


def test_auto_path_is_fused_on_cuda_only() -> None:
    lstm = StackedLSTM(4, 8, ModelConfig())
    assert lstm.path == "auto"
    assert lstm.fused_on(torch.device("cuda")) and not lstm.fused_on(torch.device("cpu"))
    assert not fused_dropout_on(Autoencoder(ModelConfig()), torch.device("cpu"))
    assert fused_dropout_on(Autoencoder(ModelConfig()), torch.device("cuda"))
    assert not fused_dropout_on(Autoencoder(ModelConfig(dropout=0.0)), torch.device("cuda"))
    with pytest.raises(VitalSentryError, match="auto, fused or layers"):
        set_lstm_path(lstm, "cudnn")  # type: ignore[arg-type]
