"""Per-channel z-score scaler for windows, fitted on the training split only.

Cyclical time features (``hour_sin`` …) keep mean 0 and scale 1, so they pass through
unchanged. The fitted state is plain JSON (feature names, means, scales) stored in the bundle.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vitalsentry.data.schema import is_input_only
from vitalsentry.errors import DataError, VitalSentryError
from vitalsentry.io import atomic_write_json

MIN_SCALE = 1e-6
"""A channel whose standard deviation is below this gets scale 1 (it is near constant)."""


class ChannelScaler:
    """Standardise each channel of (N, C, L) windows; never scale time features.

    Parameters
    ----------
    feature_names : sequence of str
        Names of the ``C`` window channels, in order (e.g. ``DataConfig.feature_names``).

    Attributes
    ----------
    mean_ : numpy.ndarray, shape (C,), float64
        Per-channel mean (0 for time features). Set by :meth:`fit`.
    scale_ : numpy.ndarray, shape (C,), float64
        Per-channel standard deviation, 1 where below :data:`MIN_SCALE` and for time
        features. Set by :meth:`fit`.

    """

    mean_: NDArray[np.float64]
    scale_: NDArray[np.float64]

    def __init__(self, feature_names: Sequence[str]) -> None:
        self.feature_names = tuple(feature_names)
        if not self.feature_names or len(set(self.feature_names)) != len(self.feature_names):
            names = list(self.feature_names)
            raise VitalSentryError(
                f"scaler: feature names must be non-empty and unique, got {names}"
            )

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_dict`) has set ``mean_`` and ``scale_``."""
        return hasattr(self, "mean_")

    def _time_mask(self) -> NDArray[np.bool_]:
        """Return which channels are inputs only (time, gap features; never scaled), shape (C,)."""
        return np.array([is_input_only(n) for n in self.feature_names], dtype=bool)

    def _check_windows(self, windows: ArrayLike, shapes: tuple[int, ...]) -> NDArray[Any]:
        """Return ``windows`` as an array after checking its rank and channel count."""
        x = np.asarray(windows)
        if x.ndim not in shapes:
            expected = " or ".join({2: "(C, L)", 3: "(N, C, L)"}[d] for d in shapes)
            raise DataError(f"scaler: expected windows of shape {expected}, got {x.shape}")
        if x.shape[-2] != len(self.feature_names):
            raise DataError(
                f"scaler: expected {len(self.feature_names)} channels "
                f"({', '.join(self.feature_names)}), got {x.shape[-2]}"
            )
        return x

    def fit(self, windows: ArrayLike) -> ChannelScaler:
        """Learn per-channel mean and standard deviation, ignoring NaNs.

        Parameters
        ----------
        windows : array_like, shape (N, C, L)
            Training windows.

        Returns
        -------
        ChannelScaler
            ``self``.

        Raises
        ------
        DataError
            Wrong shape or channel count, or a non-time channel with no finite value.

        """
        x = self._check_windows(windows, (3,))
        time = self._time_mask()
        mean = np.zeros(len(self.feature_names))
        scale = np.ones(len(self.feature_names))
        for c in np.flatnonzero(~time):
            channel = x[:, c, :]
            if not np.isfinite(channel).any():
                raise DataError(
                    f"scaler: channel '{self.feature_names[c]}' has no finite value to fit on"
                )
            mean[c] = np.nanmean(channel, dtype=np.float64)
            std = float(np.nanstd(channel, dtype=np.float64))
            scale[c] = std if std >= MIN_SCALE else 1.0
        self.mean_, self.scale_ = mean, scale
        return self

    def _params(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Return mean and scale as float32 (C, 1) columns, refusing an unfitted scaler."""
        if not self.is_fitted:
            raise VitalSentryError("scaler: not fitted yet (call fit first)")
        return (
            self.mean_.astype(np.float32)[:, None],
            self.scale_.astype(np.float32)[:, None],
        )

    def transform(self, windows: ArrayLike) -> NDArray[np.float32]:
        """Standardise windows.

        Parameters
        ----------
        windows : array_like, shape (N, C, L) or (C, L)
            Windows to scale.

        Returns
        -------
        numpy.ndarray, same shape, float32
            New array ``(x - mean_) / scale_`` per channel; time features unchanged.

        Raises
        ------
        VitalSentryError
            Not fitted.
        DataError
            Wrong rank or channel count.

        """
        mean, scale = self._params()
        x = self._check_windows(windows, (2, 3))
        out: NDArray[np.float32] = np.subtract(x, mean, dtype=np.float32)
        out /= scale
        return out

    def inverse_transform(self, windows: ArrayLike) -> NDArray[np.float32]:
        """Undo :meth:`transform`.

        Parameters
        ----------
        windows : array_like, shape (N, C, L) or (C, L)
            Scaled windows.

        Returns
        -------
        numpy.ndarray, same shape, float32
            New array ``x * scale_ + mean_`` per channel.

        """
        mean, scale = self._params()
        x = self._check_windows(windows, (2, 3))
        out: NDArray[np.float32] = np.multiply(x, scale, dtype=np.float32)
        out += mean
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return the fitted state as JSON-ready builtins.

        Returns
        -------
        dict
            ``{"feature_names": [...], "mean": [...], "scale": [...]}``.

        """
        self._params()
        return {
            "feature_names": list(self.feature_names),
            "mean": [float(v) for v in self.mean_],
            "scale": [float(v) for v in self.scale_],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a fitted scaler from :meth:`to_dict` output.

        Raises
        ------
        VitalSentryError
            Missing keys, lengths that disagree, non-finite values, a scale ≤ 0, or a
            time feature with mean ≠ 0 or scale ≠ 1.

        """
        if not isinstance(data, dict) or set(data) != {"feature_names", "mean", "scale"}:
            raise VitalSentryError("scaler: expected exactly the keys feature_names, mean, scale")
        names, mean, scale = data["feature_names"], data["mean"], data["scale"]
        if not all(isinstance(v, list) for v in (names, mean, scale)):
            raise VitalSentryError("scaler: feature_names, mean and scale must be lists")
        if not all(isinstance(n, str) for n in names):
            raise VitalSentryError("scaler: feature names must be strings")
        if not len(names) == len(mean) == len(scale):
            raise VitalSentryError(
                f"scaler: {len(names)} feature names but {len(mean)} means and {len(scale)} scales"
            )
        numbers = [*mean, *scale]
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in numbers
        ):
            raise VitalSentryError("scaler: means and scales must be finite numbers")
        if any(s <= 0 for s in scale):
            raise VitalSentryError("scaler: scales must be > 0")
        scaler = cls(names)
        if any(
            (m, s) != (0, 1) for m, s, t in zip(mean, scale, scaler._time_mask(), strict=True) if t
        ):
            raise VitalSentryError(
                "scaler: time features must have mean 0 and scale 1 (never scaled)"
            )
        scaler.mean_ = np.asarray(mean, dtype=np.float64)
        scaler.scale_ = np.asarray(scale, dtype=np.float64)
        return scaler

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` to ``path`` as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Self:
        """Read a scaler written by :meth:`to_json`.

        Raises
        ------
        VitalSentryError
            The file cannot be read, is not JSON, or holds an invalid scaler.

        """
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise VitalSentryError(f"scaler: cannot read {path}: {exc}") from exc
        return cls.from_dict(data)
