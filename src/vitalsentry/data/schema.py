"""Canonical vital-sign channels: names, units, plausible ranges and LOINC codes.

One table, :data:`CHANNELS`, is the single source of truth used by the readers, the
audit, the simulator, NEWS2 and the HTTP schemas.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelSpec:
    """Description of one canonical vital-sign channel.

    Attributes
    ----------
    name : str
        Canonical column name.
    unit : str
        UCUM unit of the stored values.
    low, high : float
        Plausible physiological range (inclusive); values outside are rejected.
    loinc : tuple of str
        LOINC codes that map to this channel.
    label : str
        Human-readable name.
    """

    name: str
    unit: str
    low: float
    high: float
    loinc: tuple[str, ...]
    label: str


CHANNELS: dict[str, ChannelSpec] = {
    spec.name: spec
    for spec in (
        ChannelSpec("heart_rate", "/min", 20.0, 300.0, ("8867-4",), "heart rate"),
        ChannelSpec("spo2", "%", 50.0, 100.0, ("2708-6", "59408-5"), "SpO2"),
        ChannelSpec("respiratory_rate", "/min", 2.0, 80.0, ("9279-1",), "respiratory rate"),
        ChannelSpec("temperature", "Cel", 30.0, 45.0, ("8310-5",), "body temperature"),
        ChannelSpec("systolic_bp", "mm[Hg]", 40.0, 300.0, ("8480-6",), "systolic blood pressure"),
        ChannelSpec("diastolic_bp", "mm[Hg]", 20.0, 200.0, ("8462-4",), "diastolic blood pressure"),
        ChannelSpec("map", "mm[Hg]", 20.0, 250.0, ("8478-0",), "mean arterial pressure"),
        ChannelSpec("etco2", "mm[Hg]", 5.0, 100.0, ("19889-5",), "end-tidal CO2"),
    )
}
"""Canonical channels in their canonical order."""

VITAL_CHANNELS: tuple[str, ...] = tuple(CHANNELS)
"""Names of all canonical vital channels, in canonical order."""

TIME_FEATURES: tuple[str, ...] = ("hour_sin", "hour_cos", "dow_sin", "dow_cos")
"""Names of cyclical time features; these are never scaled."""

SEED_CHANNELS: tuple[str, ...] = ("heart_rate", "spo2")
"""Vital channels of the seed configuration (with hour_sin, hour_cos → 4 channels)."""

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
