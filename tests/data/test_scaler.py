from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.errors import DataError, VitalSentryError

NAMES = ("heart_rate", "spo2", "hour_sin", "hour_cos")


def _windows(n: int = 20, length: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty((n, 4, length), dtype=np.float32)
    x[:, 0] = rng.normal(80, 12, size=(n, length))
    x[:, 1] = rng.normal(96, 2, size=(n, length))
    angle = rng.uniform(0, 2 * np.pi, size=(n, length))
    x[:, 2], x[:, 3] = np.sin(angle), np.cos(angle)
    return x


def test_fit_learns_vitals_and_leaves_time_features() -> None:
    x = _windows()
    scaler = ChannelScaler(NAMES).fit(x)
    assert scaler.is_fitted
    np.testing.assert_allclose(scaler.mean_[:2], x[:, :2].astype(np.float64).mean(axis=(0, 2)))
    np.testing.assert_allclose(scaler.scale_[:2], x[:, :2].astype(np.float64).std(axis=(0, 2)))
    np.testing.assert_array_equal(scaler.mean_[2:], [0.0, 0.0])
    np.testing.assert_array_equal(scaler.scale_[2:], [1.0, 1.0])
    z = scaler.transform(x)
    np.testing.assert_allclose(z[:, :2].mean(axis=(0, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(z[:, :2].std(axis=(0, 2)), 1.0, atol=1e-4)


def test_fit_ignores_nans() -> None:
    x = _windows().astype(np.float64)
    clean = ChannelScaler(NAMES).fit(x)
    x_nan = np.concatenate([x, np.full((3, 4, x.shape[2]), np.nan)])
    x_nan[0, 0, 0] = np.nan
    fitted = ChannelScaler(NAMES).fit(x_nan)
    values = x[:, 0].ravel()[1:]
    assert fitted.mean_[0] == pytest.approx(values.mean())
    assert fitted.scale_[1] == pytest.approx(clean.scale_[1])
    assert np.isnan(fitted.transform(x_nan)[0, 0, 0])


def test_constant_channel_gets_unit_scale() -> None:
    x = _windows()
    x[:, 1] = 97.0
    scaler = ChannelScaler(NAMES).fit(x)
    assert scaler.scale_[1] == 1.0 and scaler.mean_[1] == pytest.approx(97.0)
    np.testing.assert_allclose(scaler.transform(x)[:, 1], 0.0, atol=1e-5)


def test_all_nan_vital_channel_cannot_be_fitted() -> None:
    x = _windows()
    x[:, 1] = np.nan
    with pytest.raises(DataError, match="'spo2' has no finite value"):
        ChannelScaler(NAMES).fit(x)


@settings(max_examples=50, deadline=None)
@given(
    x=arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.just(4), st.integers(1, 12)),
        elements=st.floats(-500, 500),
    )
)
def test_round_trip_and_time_features_untouched(x: np.ndarray) -> None:
    scaler = ChannelScaler(NAMES).fit(x)
    z = scaler.transform(x)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_array_equal(z[:, 2:], x[:, 2:].astype(np.float32))
    back = scaler.inverse_transform(z)
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-3)
    restored = ChannelScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(restored.transform(x), z)
    np.testing.assert_array_equal(restored.inverse_transform(z), back)


def test_transform_returns_a_new_array() -> None:
    x = _windows()
    scaler = ChannelScaler(NAMES).fit(x)
    z = scaler.transform(x)
    assert not np.shares_memory(z, x)
    before = x.copy()
    scaler.inverse_transform(z)
    np.testing.assert_array_equal(x, before)


def test_single_window_broadcasts() -> None:
    x = _windows()
    scaler = ChannelScaler(NAMES).fit(x)
    np.testing.assert_array_equal(scaler.transform(x[3]), scaler.transform(x)[3])
    z = scaler.transform(x)
    np.testing.assert_array_equal(scaler.inverse_transform(z[3]), scaler.inverse_transform(z)[3])


def test_channel_count_and_rank_checked() -> None:
    scaler = ChannelScaler(NAMES).fit(_windows())
    with pytest.raises(DataError, match=r"expected 4 channels .*got 3"):
        scaler.transform(_windows()[:, :3])
    with pytest.raises(DataError, match="expected 4 channels"):
        ChannelScaler(NAMES).fit(_windows()[:, :2])
    with pytest.raises(DataError, match="shape"):
        scaler.transform(np.zeros(4))
    with pytest.raises(DataError, match=r"\(N, C, L\)"):
        ChannelScaler(NAMES).fit(_windows()[0])


def test_unfitted_scaler_refuses() -> None:
    scaler = ChannelScaler(NAMES)
    assert not scaler.is_fitted
    for call in (scaler.transform, scaler.inverse_transform):
        with pytest.raises(VitalSentryError, match="not fitted"):
            call(_windows())
    with pytest.raises(VitalSentryError, match="not fitted"):
        scaler.to_dict()


@pytest.mark.parametrize("names", [(), ("heart_rate", "heart_rate")])
def test_bad_feature_names(names: tuple[str, ...]) -> None:
    with pytest.raises(VitalSentryError, match="non-empty and unique"):
        ChannelScaler(names)


def test_to_dict_is_json_ready() -> None:
    scaler = ChannelScaler(NAMES).fit(_windows())
    d = scaler.to_dict()
    assert d["feature_names"] == list(NAMES)
    assert json.loads(json.dumps(d)) == d
    assert d["mean"][2:] == [0.0, 0.0] and d["scale"][2:] == [1.0, 1.0]


def _valid_dict() -> dict[str, Any]:
    return {
        "feature_names": list(NAMES),
        "mean": [80.0, 96.0, 0.0, 0.0],
        "scale": [12.0, 2.0, 1.0, 1.0],
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mean": [80.0, 96.0, 0.0]}, "4 feature names but 3 means"),
        ({"scale": [12.0, float("nan"), 1.0, 1.0]}, "finite"),
        ({"mean": [80.0, float("inf"), 0.0, 0.0]}, "finite"),
        ({"mean": ["80", 96.0, 0.0, 0.0]}, "finite numbers"),
        ({"scale": [12.0, 0.0, 1.0, 1.0]}, "> 0"),
        ({"scale": [12.0, 2.0, 3.0, 1.0]}, "time features"),
        ({"feature_names": "heart_rate"}, "lists"),
        ({"extra": 1}, "exactly the keys"),
    ],
)
def test_from_dict_validates(change: dict[str, Any], message: str) -> None:
    with pytest.raises(VitalSentryError, match=message):
        ChannelScaler.from_dict({**_valid_dict(), **change})


def test_from_dict_missing_key() -> None:
    d = _valid_dict()
    del d["scale"]
    with pytest.raises(VitalSentryError, match="exactly the keys"):
        ChannelScaler.from_dict(d)


def test_json_round_trip(tmp_path: Path) -> None:
    x = _windows()
    scaler = ChannelScaler(NAMES).fit(x)
    path = tmp_path / "bundle" / "scaler.json"
    scaler.to_json(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["scaler.json"]  # no temp file left
    restored = ChannelScaler.from_json(path)
    assert restored.feature_names == NAMES
    np.testing.assert_array_equal(restored.transform(x), scaler.transform(x))


def test_from_json_errors(tmp_path: Path) -> None:
    with pytest.raises(VitalSentryError, match="cannot read"):
        ChannelScaler.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(VitalSentryError, match="cannot read"):
        ChannelScaler.from_json(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text("[1, 2]")
    with pytest.raises(VitalSentryError, match="exactly the keys"):
        ChannelScaler.from_json(wrong)
