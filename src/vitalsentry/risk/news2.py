"""NEWS2, the National Early Warning Score 2 (Royal College of Physicians, 2017).

The clinical baseline wherever its inputs exist. Every function is vectorised: inputs
are scalars or arrays that broadcast together, outputs are arrays of the broadcast
shape (0-d for scalar inputs).

Chart (SpO2 scale 1; scale 2, for hypercapnic respiratory failure, is not implemented),
sub-score in brackets:

- respiratory rate /min: ≤ 8 [3], 9–11 [1], 12–20 [0], 21–24 [2], ≥ 25 [3]
- SpO2 %: ≤ 91 [3], 92–93 [2], 94–95 [1], ≥ 96 [0]
- air or oxygen: oxygen [2], air [0]
- systolic BP mmHg: ≤ 90 [3], 91–100 [2], 101–110 [1], 111–219 [0], ≥ 220 [3]
- pulse /min: ≤ 40 [3], 41–50 [1], 51–90 [0], 91–110 [1], 111–130 [2], ≥ 131 [3]
- consciousness: alert [0], new confusion, voice, pain or unresponsive [3]
- temperature °C: ≤ 35.0 [3], 35.1–36.0 [1], 36.1–38.0 [0], 38.1–39.0 [1], ≥ 39.1 [2]

Non-integer inputs (rule): each measured value is first rounded to the chart's
resolution — whole numbers for respiratory rate, SpO2, systolic BP and pulse, one decimal
for temperature — with halves rounded up (away from zero), after discarding binary
floating-point noise below 1e-6 of the resolution. So RR 20.5 → 21 (scores 2), RR 20.4
→ 20 (scores 0), temperature 36.05 → 36.1 (scores 0), 35.95 → 36.0 (scores 1).

Missing values (rule): NaN means "not measured". Its sub-score is NaN; the aggregate is
NaN unless ``allow_partial=True``, which sums the parameters that are present (a partial
score, a lower bound of the full one) and is NaN only when all five measured parameters
(respiratory rate, SpO2, systolic BP, pulse, temperature) are missing. Air/oxygen and
consciousness are booleans and are never missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vitalsentry.data.schema import CHANNELS, plausible_range_text
from vitalsentry.errors import DataError

FloatArray = NDArray[np.float64]

_FLOAT_NOISE_DECIMALS: Final = 6


class _Band:
    """One chart row: inclusive upper edges (in chart units) and the score of each band."""

    def __init__(self, scale: int, upper_edges: tuple[int, ...], scores: tuple[int, ...]) -> None:
        self.scale = scale
        self.upper_edges = np.asarray(upper_edges, dtype=np.float64)
        self.scores = np.asarray(scores, dtype=np.float64)

    def score(self, values: FloatArray) -> FloatArray:
        """Sub-scores of ``values`` (any shape); NaN stays NaN."""
        units = np.floor(np.round(values * self.scale, _FLOAT_NOISE_DECIMALS) + 0.5)
        index = np.searchsorted(self.upper_edges, np.nan_to_num(units), side="left")
        return np.where(np.isnan(values), np.nan, self.scores[index])


_BANDS: Final[Mapping[str, _Band]] = {
    "respiratory_rate": _Band(1, (8, 11, 20, 24), (3, 1, 0, 2, 3)),
    "spo2": _Band(1, (91, 93, 95), (3, 2, 1, 0)),
    "systolic_bp": _Band(1, (90, 100, 110, 219), (3, 2, 1, 0, 3)),
    "heart_rate": _Band(1, (40, 50, 90, 110, 130), (3, 1, 0, 1, 2, 3)),
    "temperature": _Band(10, (350, 360, 380, 390), (3, 1, 0, 1, 2)),
}
"""Measured parameters, keyed by canonical channel name (temperature in tenths of °C)."""

COMPONENTS: Final[tuple[str, ...]] = (
    "respiratory_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "heart_rate",
    "consciousness",
    "temperature",
)
"""Keys of :func:`news2_components`, in chart order."""


def _measured(name: str, value: ArrayLike) -> FloatArray:
    """Validate one measured parameter: numeric, no ±inf, inside the plausible range."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"not numeric ({exc})", column=name) from exc
    if np.isinf(arr).any():
        raise DataError("infinite value", column=name)
    spec = CHANNELS[name]
    with np.errstate(invalid="ignore"):
        bad = (arr < spec.low) | (arr > spec.high)
    if bad.any():
        example = float(arr[bad].flat[0])
        raise DataError(
            f"value {example:g} outside the plausible range {plausible_range_text(name)}",
            column=name,
        )
    return arr


def _flag(name: str, value: ArrayLike) -> NDArray[np.bool_]:
    """Validate a boolean parameter (``on_oxygen``, ``consciousness_alert``)."""
    arr = np.asarray(value)
    if arr.dtype != np.bool_:
        raise DataError(f"expected booleans, got dtype {arr.dtype}", column=name)
    return arr


def news2_components(
    respiratory_rate: ArrayLike,
    spo2: ArrayLike,
    systolic_bp: ArrayLike,
    heart_rate: ArrayLike,
    temperature: ArrayLike,
    *,
    on_oxygen: ArrayLike = False,
    consciousness_alert: ArrayLike = True,
) -> dict[str, FloatArray]:
    """Per-parameter NEWS2 sub-scores.

    Parameters
    ----------
    respiratory_rate, spo2, systolic_bp, heart_rate, temperature : array_like of float
        Measured values (breaths/min, %, mmHg, beats/min, °C), any broadcastable
        shapes; NaN = not measured.
    on_oxygen : array_like of bool, default False
        Supplemental oxygen (scores 2) rather than room air (0).
    consciousness_alert : array_like of bool, default True
        Alert (0) rather than new confusion, or responding only to voice or pain, or
        unresponsive (3).

    Returns
    -------
    dict of str to ndarray of float64
        Keys :data:`COMPONENTS`; each array has the broadcast shape, NaN where the
        parameter is missing.

    Raises
    ------
    DataError
        A value is not numeric, infinite or outside the plausible range of its channel,
        a flag is not boolean, or the shapes do not broadcast.

    """
    measured = {
        "respiratory_rate": _measured("respiratory_rate", respiratory_rate),
        "spo2": _measured("spo2", spo2),
        "systolic_bp": _measured("systolic_bp", systolic_bp),
        "heart_rate": _measured("heart_rate", heart_rate),
        "temperature": _measured("temperature", temperature),
    }
    oxygen = _flag("on_oxygen", on_oxygen)
    alert = _flag("consciousness_alert", consciousness_alert)
    try:
        shape = np.broadcast_shapes(
            *(a.shape for a in measured.values()), oxygen.shape, alert.shape
        )
    except ValueError as exc:
        raise DataError(f"NEWS2 inputs have shapes that do not broadcast ({exc})") from exc
    scores = {name: _BANDS[name].score(np.broadcast_to(v, shape)) for name, v in measured.items()}
    scores["air_or_oxygen"] = np.broadcast_to(np.where(oxygen, 2.0, 0.0), shape)
    scores["consciousness"] = np.broadcast_to(np.where(alert, 0.0, 3.0), shape)
    return {name: np.array(scores[name], dtype=np.float64) for name in COMPONENTS}


def aggregate_score(
    components: Mapping[str, FloatArray], *, allow_partial: bool = False
) -> FloatArray:
    """Aggregate NEWS2 score from :func:`news2_components` output.

    Parameters
    ----------
    components : mapping of str to ndarray of float64
        Sub-scores keyed by :data:`COMPONENTS`.
    allow_partial : bool, default False
        Sum only the present parameters (see the module docstring) instead of
        returning NaN when any is missing.

    Returns
    -------
    ndarray of float64
        Aggregate score (0–20), NaN where it cannot be computed.

    """
    stacked = np.stack([components[name] for name in COMPONENTS])
    if not allow_partial:
        return np.asarray(stacked.sum(axis=0), dtype=np.float64)
    measured = np.stack([components[name] for name in _BANDS])
    partial = np.nansum(stacked, axis=0)
    return np.where(np.isnan(measured).all(axis=0), np.nan, partial)


def red_score(components: Mapping[str, FloatArray]) -> NDArray[np.bool_]:
    """Whether any single parameter scores 3 (a "red score").

    Parameters
    ----------
    components : mapping of str to ndarray of float64
        Sub-scores keyed by :data:`COMPONENTS`.

    Returns
    -------
    ndarray of bool
        Broadcast shape of the components; missing parameters count as not 3.

    """
    return np.asarray(
        np.stack([components[name] == 3.0 for name in COMPONENTS]).any(axis=0), dtype=np.bool_
    )


def news2_score(
    respiratory_rate: ArrayLike,
    spo2: ArrayLike,
    systolic_bp: ArrayLike,
    heart_rate: ArrayLike,
    temperature: ArrayLike,
    *,
    on_oxygen: ArrayLike = False,
    consciousness_alert: ArrayLike = True,
    allow_partial: bool = False,
) -> FloatArray:
    """Aggregate NEWS2 score.

    Parameters are those of :func:`news2_components`, plus ``allow_partial`` of
    :func:`aggregate_score`.

    Returns
    -------
    ndarray of float64
        Aggregate score (0–20) of the broadcast shape; NaN where a parameter is missing
        (unless ``allow_partial``).

    """
    components = news2_components(
        respiratory_rate,
        spo2,
        systolic_bp,
        heart_rate,
        temperature,
        on_oxygen=on_oxygen,
        consciousness_alert=consciousness_alert,
    )
    return aggregate_score(components, allow_partial=allow_partial)


def news2_level(score: ArrayLike, any_single_three: ArrayLike) -> NDArray[np.str_]:
    """Clinical risk level of an aggregate NEWS2 score.

    Parameters
    ----------
    score : array_like of float
        Aggregate scores (NaN = cannot be computed).
    any_single_three : array_like of bool
        Whether a single parameter scored 3 (see :func:`red_score`); broadcast
        against ``score``.

    Returns
    -------
    ndarray of str
        ``"low"`` (0–4), ``"low-medium"`` (0–4 with a single parameter scoring 3),
        ``"medium"`` (5–6), ``"high"`` (≥ 7), ``"unknown"`` where the score is NaN.

    Raises
    ------
    DataError
        A score is negative or infinite, or ``any_single_three`` is not boolean.

    """
    try:
        values = np.asarray(score, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"not numeric ({exc})", column="score") from exc
    red = _flag("any_single_three", any_single_three)
    if np.isinf(values).any() or (values < 0).any():
        raise DataError("NEWS2 scores must be finite and ≥ 0", column="score")
    values, red = np.broadcast_arrays(values, red)
    return np.select(
        [np.isnan(values), values >= 7, values >= 5, red],
        ["unknown", "high", "medium", "low-medium"],
        default="low",
    )


@dataclass(frozen=True)
class News2Summary:
    """NEWS2 of one set of latest values: aggregate score, level and sub-scores."""

    score: int
    level: str
    components: dict[str, int]


def news2_summaries(
    latest: Sequence[Mapping[str, float | None]],
    *,
    on_oxygen: Sequence[bool],
    consciousness_alert: Sequence[bool],
) -> list[News2Summary | None]:
    """NEWS2 of several sets of latest values of the measured parameters, in one pass.

    Parameters
    ----------
    latest : sequence of mappings of str to float or None
        Per set: ``respiratory_rate, spo2, systolic_bp, heart_rate, temperature`` → value.
    on_oxygen, consciousness_alert : sequence of bool
        Per set: its context (supplemental oxygen; alert).

    Returns
    -------
    list of News2Summary or None
        Per set; None unless all five parameters have a value.
    """
    if not latest:
        return []
    values = np.array(  # _BANDS lists the measured parameters in news2_components' order
        [[np.nan if (v := row.get(name)) is None else v for name in _BANDS] for row in latest],
        dtype=np.float64,
    )
    parts = news2_components(
        *values.T,
        on_oxygen=np.asarray(on_oxygen, dtype=np.bool_),
        consciousness_alert=np.asarray(consciousness_alert, dtype=np.bool_),
    )
    score = aggregate_score(parts)
    levels: list[str] = news2_level(score, red_score(parts)).tolist()
    subs: list[list[float]] = np.stack([parts[name] for name in COMPONENTS], axis=1).tolist()
    missing: list[bool] = np.isnan(values).sum(axis=1).astype(bool).tolist()
    return [
        None
        if gap
        else News2Summary(int(total), level, dict(zip(COMPONENTS, map(int, sub), strict=True)))
        for total, level, sub, gap in zip(score.tolist(), levels, subs, missing, strict=True)
    ]
