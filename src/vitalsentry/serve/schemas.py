"""Request and response bodies of the HTTP API (pydantic v2), apart from domain types.

Requests are strict: numbers must be JSON numbers (no ``"72"``), NaN and Infinity are
refused, unknown fields are refused, timestamps are ISO-8601 strings with a UTC offset,
and every vital must lie in its plausible range (:data:`vitalsentry.data.schema.CHANNELS`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from vitalsentry.data.schema import CHANNELS, plausible_range_text
from vitalsentry.serve.settings import MAX_PATIENTS_CEILING, MAX_READINGS_CEILING

FIRST_YEAR, LAST_YEAR = 1970, 2199
"""Accepted years of a timestamp as written (the grid works in epoch seconds)."""

_TIME_OF_DAY: Final = (
    r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_ISO: Final = re.compile(r"([0-9]{4})" + _TIME_OF_DAY)
TIMESTAMP_PATTERN: Final = r"^(19[7-9][0-9]|2[01][0-9][0-9])" + _TIME_OF_DAY + "$"
"""What a timestamp must look like (published in the schema): ``YYYY-MM-DDThh:mm:ss``,
optional fraction (up to µs), ``Z`` or ``±hh:mm``, year 1970–2199."""


def _iso_string(value: Any) -> Any:
    """Refuse anything but an ISO-8601 string with a UTC offset and a year in 1970–2199.

    Numbers are refused (pydantic would read them as Unix times), and so are years that
    could leave datetime's range once converted to UTC.
    """
    shape = _ISO.fullmatch(value) if isinstance(value, str) else None
    if shape is None:
        raise ValueError(
            "expected an ISO-8601 date-time string with a UTC offset, e.g. 2024-05-01T08:00:00Z"
        )
    if not FIRST_YEAR <= int(shape.group(1)) <= LAST_YEAR:
        raise ValueError(f"year {shape.group(1)} is outside 1970–2200")
    return value


def _to_utc(value: datetime) -> datetime:
    """Convert to UTC."""
    return value.astimezone(UTC)


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_string),
    AfterValidator(_to_utc),
    Field(
        strict=False,
        description="ISO-8601 date-time with a UTC offset, e.g. 2024-05-01T08:00:00Z",
        json_schema_extra={"pattern": TIMESTAMP_PATTERN},
    ),
]


def _vital(name: str) -> Any:
    """Declare an optional vital-sign field bounded by its plausible range."""
    spec = CHANNELS[name]
    return Field(
        None,
        ge=spec.low,
        le=spec.high,
        description=f"{spec.label} in {spec.unit} (plausible {plausible_range_text(name)})",
    )


_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Reading(BaseModel):
    """One instant of measurements; channels not measured are left out (or null)."""

    model_config = _STRICT

    timestamp: Timestamp
    heart_rate: float | None = _vital("heart_rate")
    spo2: float | None = _vital("spo2")
    respiratory_rate: float | None = _vital("respiratory_rate")
    temperature: float | None = _vital("temperature")
    systolic_bp: float | None = _vital("systolic_bp")
    diastolic_bp: float | None = _vital("diastolic_bp")
    map: float | None = _vital("map")
    etco2: float | None = _vital("etco2")


PatientId = Annotated[str, Field(min_length=1, max_length=128, description="Patient identifier")]
PATIENT_ID_PATTERN: Final = r"^[^\x00-\x1f\x7f]+$"
"""A stored patient id has no control characters (PostgreSQL text refuses NUL)."""


SEXES: Final = {"female": 0, "male": 1}
"""Sex as the fusion head's static context codes it."""

MAX_ALARM_LOOKBACK: Final = 64
"""Longest ``recent`` list of an alarm state (an alarm policy's look-back is shorter)."""


class AlarmStateBody(BaseModel):
    """Where a patient's alarm stands (k-of-n hysteresis of the bundle's alarm policy).

    Send back the ``alarm`` of a patient's previous result to continue its alarm.
    """

    model_config = _STRICT

    on: bool = Field(description="Whether the alarm is raised")
    quiet: int = Field(  # lax: JSON Schema's integer admits 2.0
        0, ge=0, le=10**9, strict=False, description="Non-high windows since the alarm was raised"
    )
    recent: list[bool] = Field(
        default_factory=list,
        max_length=MAX_ALARM_LOOKBACK,
        description="While off: the last windows' high flags since the last clear",
    )


class ScoreRequest(BaseModel):
    """One patient's recent readings, in any order, irregular sampling allowed."""

    model_config = _STRICT

    patient_id: PatientId
    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS_CEILING)
    on_oxygen: bool = Field(False, description="NEWS2: supplemental oxygen (else room air)")
    consciousness_alert: bool = Field(
        True, description="NEWS2: alert (else new confusion, V, P or U)"
    )
    age: float | None = Field(None, ge=0, le=130, description="Fusion context: age in years")
    sex: Literal["female", "male"] | None = Field(None, description="Fusion context: sex")
    bmi: float | None = Field(None, ge=5, le=150, description="Fusion context: BMI in kg/m²")
    alarm_state: AlarmStateBody | None = Field(
        None,
        description="The patient's alarm state before these readings (the previous result's "
        "alarm); with it the result carries the alarm state after its window",
    )


class BatchRequest(BaseModel):
    """Several patients scored in one batched forward pass."""

    model_config = _STRICT

    patients: list[ScoreRequest] = Field(min_length=1, max_length=MAX_PATIENTS_CEILING)


Level = Literal["low", "medium", "high"]


class Uncertainty(BaseModel):
    """Monte Carlo dropout spread of the risk."""

    mean: float = Field(ge=0, le=1)
    std: float = Field(ge=0)
    passes: int = Field(ge=2)


class News2(BaseModel):
    """NEWS2 from the latest value of each parameter (room air and alert unless stated)."""

    score: int = Field(ge=0, le=20)
    level: Literal["low", "low-medium", "medium", "high"]
    components: dict[str, int]


class ScoreResult(BaseModel):
    """Risk of one patient's latest complete window."""

    patient_id: str
    model_version: str
    window_start: datetime
    window_end: datetime
    risk: float = Field(ge=0, le=1, description="Calibrated deterioration risk")
    level: Level
    anomaly_score: float = Field(description="Raw detector score, higher = more anomalous")
    contributions: dict[str, float] = Field(
        description="Share of each vital channel in the reconstruction error (sums to 1)"
    )
    uncertainty: Uncertainty | None = None
    news2: News2 | None = None
    views: dict[str, float | None] = Field(
        default_factory=dict,
        description="Standardised score of each detector view (null: the view had no input)",
    )
    fused_risk: float | None = Field(
        None, ge=0, le=1, description="Probability of the bundle's fusion head, when computed"
    )
    fused_risk_note: str | None = Field(
        None, description="Why fused_risk is null, or the static context it was scored without"
    )
    alarm: AlarmStateBody | None = Field(
        None, description="Alarm state after this window (when the request gave alarm_state)"
    )


class PatientError(BaseModel):
    """A patient of a batch that could not be scored (the others were)."""

    index: int = Field(ge=0, description="Position of the patient in the request")
    patient_id: str
    detail: str


class BatchResult(BaseModel):
    """Results of a batch, in request order, and the patients that could not be scored."""

    model_version: str
    results: list[ScoreResult]
    errors: list[PatientError]


class WindowInfo(BaseModel):
    """The window the model scores."""

    length: int
    stride: int
    step_s: float
    seconds: float = Field(description="Span covered by one window, (length - 1) × step")
    max_gap_s: float


class ModelCard(BaseModel):
    """What the served model is, what it was trained on and how well it did."""

    model_version: str
    created: str | None
    vitalsentry_version: str | None
    data_fingerprint: str | None
    data_source: str | None
    notes: list[str]
    channels: list[str]
    feature_names: list[str]
    window: WindowInfo
    risk_thresholds: dict[str, float]
    metrics: dict[str, Any]


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    """Readiness: the bundle is loaded and verified."""

    status: Literal["ready"] = "ready"
    model_version: str


class ErrorMessage(BaseModel):
    """Error body of every non-422 error."""

    detail: str
