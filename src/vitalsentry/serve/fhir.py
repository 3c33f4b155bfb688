"""FHIR R4 input: a Bundle of vital-sign Observations → per-patient readings.

Observations are recognised by LOINC code (``http://loinc.org``): heart rate 8867-4,
SpO2 2708-6 or 59408-5, respiratory rate 9279-1, body temperature 8310-5, systolic and
diastolic blood pressure 8480-6 / 8462-4, standalone or as components of the
blood-pressure panel 85354-9. Values are UCUM quantities; :data:`UNITS` lists the units
accepted per channel and how each converts to the canonical unit (e.g. ``[degF]`` →
``Cel``). The patient is the Observation's ``subject.reference``; the time its
``effectiveDateTime`` or ``effectiveInstant``. Observations whose status is
``cancelled`` or ``entered-in-error`` are not measurements and are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from vitalsentry.data.schema import BP_PANEL_LOINC, CHANNELS, plausible_range_text
from vitalsentry.serve.inputs import Loc, PatientReadings, RequestError, clip
from vitalsentry.serve.schemas import Timestamp
from vitalsentry.serve.settings import MAX_READINGS_CEILING

LOINC_SYSTEM: Final = "http://loinc.org"
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"
SKIPPED_STATUS: Final = frozenset({"cancelled", "entered-in-error"})

MMHG_PER_KPA: Final = 7.500615613


def _same(value: float) -> float:
    return value


UNITS: Final[Mapping[str, Mapping[str, Callable[[float], float]]]] = {
    "heart_rate": {"/min": _same, "{beats}/min": _same, "{Beats}/min": _same},
    "spo2": {"%": _same},
    "respiratory_rate": {"/min": _same, "{breaths}/min": _same, "{Breaths}/min": _same},
    "temperature": {
        "Cel": _same,
        "[degF]": lambda f: (f - 32.0) * 5.0 / 9.0,
        "K": lambda k: k - 273.15,
    },
    "systolic_bp": {"mm[Hg]": _same, "kPa": lambda p: p * MMHG_PER_KPA},
    "diastolic_bp": {"mm[Hg]": _same, "kPa": lambda p: p * MMHG_PER_KPA},
    "map": {"mm[Hg]": _same, "kPa": lambda p: p * MMHG_PER_KPA},
    "etco2": {"mm[Hg]": _same, "kPa": lambda p: p * MMHG_PER_KPA},
}
"""UCUM units accepted per channel → conversion to the channel's canonical unit."""

CHANNEL_OF_LOINC: Final[Mapping[str, str]] = {
    code: name for name, spec in CHANNELS.items() for code in spec.loinc
}

Text = Annotated[str | None, Field(max_length=256)]
"""A FHIR string element used here (bounded: codes, units, systems, display texts)."""

_FHIR = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False, populate_by_name=True)


class Coding(BaseModel):
    """A code in a code system."""

    model_config = _FHIR

    system: Text = None
    code: Text = None
    display: Text = None


class CodeableConcept(BaseModel):
    """What was observed."""

    model_config = _FHIR

    coding: list[Coding] = Field(default_factory=list, max_length=32)
    text: Text = None


class Quantity(BaseModel):
    """A measured amount with its UCUM unit."""

    model_config = _FHIR

    value: float | None = None
    unit: Text = None
    system: Text = None
    code: Text = None


def _REQUIRED_STRING(name: str) -> dict[str, Any]:  # noqa: N802 (reads as a schema constant)
    """JSON Schema of an object whose ``name`` is a string (present, not null)."""
    return {"type": "object", "required": [name], "properties": {name: {"type": "string"}}}


SKIPPED: Final[dict[str, Any]] = {
    "required": ["status"],
    "properties": {"status": {"enum": sorted(SKIPPED_STATUS)}},
}
"""JSON Schema of an Observation that is skipped (not a measurement)."""


def _loinc(codes: Sequence[str]) -> dict[str, Any]:
    """JSON Schema of a CodeableConcept with a LOINC coding of one of ``codes``."""
    coding = {
        "type": "object",
        "required": ["system", "code"],
        "properties": {"system": {"const": LOINC_SYSTEM}, "code": {"enum": list(codes)}},
    }
    return {
        "type": "object",
        "required": ["coding"],
        "properties": {"coding": {"contains": coding}},
    }


def _bound(convert: Callable[[float], float], limit: float, *, low: bool) -> float:
    """Return the most extreme value whose conversion stays within ``limit`` (low or high)."""
    offset, scale = convert(0.0), convert(1.0) - convert(0.0)  # every conversion is increasing
    out, outward = (limit - offset) / scale, -np.inf if low else np.inf

    def inside(v: float) -> bool:
        return convert(v) >= limit if low else convert(v) <= limit

    while not inside(out):
        out = float(np.nextafter(out, -outward))
    while inside(float(np.nextafter(out, outward))):
        out = float(np.nextafter(out, outward))
    return out


def _measured(name: str) -> dict[str, Any]:
    """JSON Schema of an Observation (or component) of channel ``name`` that :func:`_value` takes.

    Its quantity has an accepted UCUM unit (``code`` with the UCUM system or none, else
    ``unit``) and a value that converts into the plausible range.
    """
    spec, quantities = CHANNELS[name], []
    for unit, convert in UNITS[name].items():
        value = {
            "type": "number",
            "minimum": _bound(convert, spec.low, low=True),
            "maximum": _bound(convert, spec.high, low=False),
        }
        quantities += [
            {
                "required": ["value", "code"],
                "properties": {
                    "value": value,
                    "code": {"const": unit},
                    "system": {"enum": [UCUM_SYSTEM, None]},
                },
            },
            {
                "required": ["value", "unit"],
                "properties": {"value": value, "unit": {"const": unit}, "code": {"type": "null"}},
            },
        ]
    return {
        "required": ["code", "valueQuantity"],
        "properties": {
            "code": _loinc(spec.loinc),
            "valueQuantity": {"type": "object", "anyOf": quantities},
        },
    }


def _usable() -> dict[str, Any]:
    """JSON Schema of what :func:`_measurements` takes: a vital sign or a blood-pressure panel.

    Observations with a skipped status are not checked. Like the service, a panel takes
    every systolic or diastolic component it has (at least one).
    """
    bp = ("systolic_bp", "diastolic_bp")
    parts = [_measured(name) for name in bp]
    codes = [code for name in bp for code in CHANNELS[name].loinc]
    panel = {
        "required": ["code", "component"],
        "properties": {
            "code": _loinc([BP_PANEL_LOINC]),
            "component": {
                "contains": {"anyOf": parts},
                "items": {"anyOf": [{"not": {"properties": {"code": _loinc(codes)}}}, *parts]},
            },
        },
    }
    singles = [_measured(name) for name in dict.fromkeys(CHANNEL_OF_LOINC.values())]
    return {"anyOf": [SKIPPED, *singles, panel]}


class Reference(BaseModel):
    """A reference to another resource, e.g. ``Patient/123``."""

    model_config = _FHIR

    reference: str | None = Field(None, min_length=1, max_length=256)


class ObservationComponent(BaseModel):
    """One component of a panel (e.g. systolic within the blood-pressure panel)."""

    model_config = _FHIR

    code: CodeableConcept
    value_quantity: Quantity | None = Field(None, alias="valueQuantity")


class Observation(BaseModel):
    """A vital-sign Observation (only the elements used here).

    The schema also states what the service checks itself (with messages naming the
    entry): a subject, an effective time, and a supported code with a value in an
    accepted unit and in the plausible range (unless the status is a skipped one).
    """

    model_config = ConfigDict(
        **_FHIR,
        json_schema_extra={
            "required": ["resourceType", "code", "subject"],
            "allOf": [
                {"properties": {"subject": _REQUIRED_STRING("reference")}},
                {
                    "anyOf": [
                        _REQUIRED_STRING("effectiveDateTime"),
                        _REQUIRED_STRING("effectiveInstant"),
                    ]
                },
                _usable(),
            ],
        },
    )

    resource_type: Literal["Observation"] = Field(alias="resourceType")
    status: Text = None
    code: CodeableConcept
    subject: Reference | None = None
    effective_date_time: Timestamp | None = Field(None, alias="effectiveDateTime")
    effective_instant: Timestamp | None = Field(None, alias="effectiveInstant")
    value_quantity: Quantity | None = Field(None, alias="valueQuantity")
    component: list[ObservationComponent] = Field(default_factory=list, max_length=16)


class BundleEntry(BaseModel):
    """One entry of a Bundle."""

    model_config = _FHIR

    full_url: Text = Field(None, alias="fullUrl")
    resource: Observation


class FhirBundle(BaseModel):
    """A FHIR R4 Bundle of vital-sign Observations (at least one not skipped)."""

    model_config = ConfigDict(
        **_FHIR,
        json_schema_extra={
            "allOf": [
                {
                    "properties": {
                        "entry": {"contains": {"properties": {"resource": {"not": SKIPPED}}}}
                    }
                }
            ]
        },
    )

    resource_type: Literal["Bundle"] = Field(alias="resourceType")
    type: Text = None
    entry: list[BundleEntry] = Field(min_length=1, max_length=MAX_READINGS_CEILING)


def _channel(concept: CodeableConcept) -> str | None:
    """Channel (or the BP panel's code) of the first supported LOINC coding."""
    for coding in concept.coding:
        code = coding.code
        if coding.system == LOINC_SYSTEM and (code == BP_PANEL_LOINC or code in CHANNEL_OF_LOINC):
            return CHANNEL_OF_LOINC.get(str(code), BP_PANEL_LOINC)
    return None


def _value(quantity: Quantity | None, name: str, where: Loc) -> float:
    """Return the quantity in the channel's canonical unit, range-checked."""
    if quantity is None or quantity.value is None:
        raise RequestError(where, f"missing value of {CHANNELS[name].label}")
    if quantity.code is not None and quantity.system not in (None, UCUM_SYSTEM):
        raise RequestError((*where, "system"), f"unit system must be {UCUM_SYSTEM} (UCUM)")
    unit = quantity.code if quantity.code is not None else quantity.unit
    accepted = UNITS[name]
    convert = accepted.get(unit) if unit is not None else None
    if convert is None:
        field = "code" if quantity.code is not None else "unit"
        raise RequestError(
            (*where, field),
            f"unit {unit if unit is None else clip(unit)!r} is not accepted for {CHANNELS[name].label} (UCUM: {', '.join(accepted)})",
        )
    value = convert(quantity.value)
    spec = CHANNELS[name]
    if not spec.low <= value <= spec.high:
        shown = (
            f"{value:g}"
            if unit == spec.unit
            else f"{quantity.value:g} {unit} = {value:.4g} {spec.unit}"
        )
        raise RequestError((*where, "value"), f"{shown} is outside {plausible_range_text(name)}")
    return value


def _measurements(obs: Observation, where: Loc) -> list[tuple[str, float]]:
    """(channel, value) pairs of one Observation."""
    kind = _channel(obs.code)
    if kind is None:
        supported = ", ".join(
            f"{code} {CHANNELS[name].label}" for code, name in CHANNEL_OF_LOINC.items()
        )
        raise RequestError(
            (*where, "code"),
            f"no supported LOINC code ({supported}, {BP_PANEL_LOINC} blood-pressure panel)",
        )
    if kind != BP_PANEL_LOINC:
        return [(kind, _value(obs.value_quantity, kind, (*where, "valueQuantity")))]
    out = []
    for k, part in enumerate(obs.component):
        name = _channel(part.code)
        if name in ("systolic_bp", "diastolic_bp"):
            out.append(
                (name, _value(part.value_quantity, name, (*where, "component", k, "valueQuantity")))
            )
    if not out:
        raise RequestError(
            (*where, "component"),
            "blood-pressure panel without a systolic (8480-6) or diastolic (8462-4) component",
        )
    return out


def bundle_patients(bundle: FhirBundle) -> list[PatientReadings]:
    """Per-patient readings of a Bundle, patients in order of first appearance.

    Raises
    ------
    RequestError
        An entry without subject or time, with an unsupported code or unit, a value
        outside its plausible range, the same channel twice at one instant for one
        patient, or no usable entry at all; the location names the entry.
    """
    seen: dict[str, dict[tuple[datetime, str], tuple[float, int]]] = {}
    for i, entry in enumerate(bundle.entry):
        obs = entry.resource
        where: Loc = ("entry", i, "resource")
        if obs.status in SKIPPED_STATUS:
            continue
        if obs.subject is None or obs.subject.reference is None:
            raise RequestError((*where, "subject"), "missing subject reference (e.g. Patient/123)")
        when = obs.effective_date_time or obs.effective_instant
        if when is None:
            raise RequestError(
                (*where, "effectiveDateTime"), "missing effectiveDateTime or effectiveInstant"
            )
        measured = seen.setdefault(obs.subject.reference, {})
        for name, value in _measurements(obs, where):
            if (when, name) in measured:
                raise RequestError(
                    where,
                    f"a second {CHANNELS[name].label} at {when.isoformat()} for the same subject "
                    f"(also entry[{measured[when, name][1]}])",
                )
            measured[when, name] = (value, i)
    if not seen:
        raise RequestError(("entry",), "no usable Observation (all cancelled or entered-in-error)")
    return [_patient(reference, measured) for reference, measured in seen.items()]


def _patient(
    reference: str, measured: Mapping[tuple[datetime, str], tuple[float, int]]
) -> PatientReadings:
    """Pivot one subject's (time, channel) → value map into :class:`PatientReadings`."""
    instants = sorted({when for when, _ in measured})
    row = {when: k for k, when in enumerate(instants)}
    values: dict[str, np.ndarray] = {}
    entries = np.full(len(instants), np.iinfo(np.int64).max)
    for (when, name), (value, i) in measured.items():
        values.setdefault(name, np.full(len(instants), np.nan))[row[when]] = value
        entries[row[when]] = min(entries[row[when]], i)
    ordered = {name: values[name] for name in CHANNELS if name in values}
    return PatientReadings(
        reference, pd.DatetimeIndex(instants).as_unit("ns"), ordered, entries=entries
    )
