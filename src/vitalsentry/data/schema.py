"""Canonical vital-sign channels: names, units, plausible ranges and LOINC codes.

One table, :data:`CHANNELS` (defined in :mod:`vitalsentry.channels`, below the configs), is
the single source of truth used by the readers, the audit, the simulator, NEWS2 and the
HTTP schemas.
"""

from __future__ import annotations

from vitalsentry.channels import CHANNELS as CHANNELS
from vitalsentry.channels import STAY_FEATURE

VITAL_CHANNELS: tuple[str, ...] = tuple(CHANNELS)
"""Names of all canonical vital channels, in canonical order."""

TIME_FEATURES: tuple[str, ...] = ("hour_sin", "hour_cos", "dow_sin", "dow_cos")
"""Names of cyclical time features; these are never scaled."""

STATIC_FIELDS: tuple[str, ...] = ("age", "sex", "bmi")
"""Per-patient static context columns (sex coded 0 = female, 1 = male)."""

BP_PANEL_LOINC = "85354-9"
"""LOINC code of the blood-pressure panel whose components carry SBP and DBP."""

VITALS2024_COLUMNS: tuple[str, ...] = (
    "Patient ID",
    "Heart Rate",
    "Respiratory Rate",
    "Timestamp",
    "Body Temperature",
    "Oxygen Saturation",
    "Systolic Blood Pressure",
    "Diastolic Blood Pressure",
    "Age",
    "Gender",
    "Weight (kg)",
    "Height (m)",
    "Derived_HRV",
    "Derived_Pulse_Pressure",
    "Derived_BMI",
    "Derived_MAP",
    "Risk Category",
)
"""Header of the Human Vital Signs Dataset 2024."""

IOT_COLUMNS: tuple[str, ...] = (
    "Patient_ID",
    "Timestamp",
    "Sensor_ID",
    "Sensor_Type",
    "Temperature (°C)",
    "Systolic_BP (mmHg)",
    "Diastolic_BP (mmHg)",
    "Heart_Rate (bpm)",
    "Device_Battery_Level (%)",
    "Target_Blood_Pressure",
    "Target_Heart_Rate",
    "Target_Health_Status",
    "Battery_Level (%)",
)
"""Header of the Healthcare IoT file (``healthcare_iot_target_dataset.csv``)."""

PHYSIONET2019_VITALS: dict[str, str] = {
    "HR": "heart_rate",
    "O2Sat": "spo2",
    "Temp": "temperature",
    "SBP": "systolic_bp",
    "MAP": "map",
    "DBP": "diastolic_bp",
    "Resp": "respiratory_rate",
    "EtCO2": "etco2",
}
"""PhysioNet/CinC 2019 vital columns → canonical channels, in file order."""

PHYSIONET2019_LABS: tuple[str, ...] = (
    "BaseExcess",
    "HCO3",
    "FiO2",
    "pH",
    "PaCO2",
    "SaO2",
    "AST",
    "BUN",
    "Alkalinephos",
    "Calcium",
    "Chloride",
    "Creatinine",
    "Bilirubin_direct",
    "Glucose",
    "Lactate",
    "Magnesium",
    "Phosphate",
    "Potassium",
    "Bilirubin_total",
    "TroponinI",
    "Hct",
    "Hgb",
    "PTT",
    "WBC",
    "Fibrinogen",
    "Platelets",
)
"""PhysioNet/CinC 2019 laboratory columns, in file order."""

PHYSIONET2019_DEMOGRAPHICS: tuple[str, ...] = (
    "Age",
    "Gender",
    "Unit1",
    "Unit2",
    "HospAdmTime",
    "ICULOS",
)
"""PhysioNet/CinC 2019 demographic and stay columns, in file order."""

PHYSIONET2019_COLUMNS: tuple[str, ...] = (
    *PHYSIONET2019_VITALS,
    *PHYSIONET2019_LABS,
    *PHYSIONET2019_DEMOGRAPHICS,
    "SepsisLabel",
)
"""The 41 columns of a PhysioNet/CinC 2019 training ``.psv`` file, in file order."""

LABEL_COLUMN = "label"
PATIENT_COLUMN = "patient_id"
TIMESTAMP_COLUMN = "timestamp"


def plausible_range_text(name: str) -> str:
    """Return the plausible range of a channel as text, e.g. ``"20–300 /min"``.

    Parameters
    ----------
    name : str
        Canonical channel name.

    Returns
    -------
    str
        The range and unit.
    """
    spec = CHANNELS[name]
    return f"{spec.low:g}–{spec.high:g} {spec.unit}"


def is_time_feature(name: str) -> bool:
    """Return whether a feature name is a cyclical time feature (never scaled)."""
    return name in TIME_FEATURES


GAP_FEATURE_SUFFIXES: tuple[str, ...] = ("_observed", "_since")
"""Suffixes of the per-channel observed-mask and time-since inputs (``<channel>_observed``)."""


def is_input_only(name: str) -> bool:
    """Return whether a window channel is an input only, never scaled or reconstructed.

    Time features (clock or stay) and the gap features (observed mask, time since the
    latest reading) are; vital channels are not.
    """
    return is_time_feature(name) or name == STAY_FEATURE or name.endswith(GAP_FEATURE_SUFFIXES)
