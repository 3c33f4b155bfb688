"""Simulators of the two Kaggle schemas: Human Vital Signs 2024 and Healthcare IoT.

:func:`simulate_vitals2024` and :func:`simulate_iot` return tables with exactly the columns of
the Human Vital Signs 2024 file and of the Healthcare IoT file, with the distributions measured
in ``datasets/README.md`` (rules documented on each function). Everything is drawn from one
``numpy.random.Generator`` seeded by ``seed``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vitalsentry.data.schema import IOT_COLUMNS, VITALS2024_COLUMNS
from vitalsentry.errors import DataError

FloatArray = NDArray[np.float64]


def _check_rows(rows: int) -> int:
    """Return ``rows`` if it is a positive integer, else raise :class:`DataError`."""
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows < 1:
        raise DataError(f"must be a positive integer, got {rows!r}", column="rows")
    return int(rows)


def _round_significant(values: FloatArray, digits: int = 10) -> FloatArray:
    """Round positive values to ``digits`` significant digits, shape kept."""
    scale = 10.0 ** (digits - 1 - np.floor(np.log10(values)))
    return np.asarray(np.round(values * scale) / scale, dtype=np.float64)


def _datetime_text(values: NDArray[np.datetime64]) -> NDArray[np.str_]:
    """Format naive datetimes as ``YYYY-MM-DD HH:MM:SS``, shape kept."""
    text = np.datetime_as_string(values.astype("datetime64[s]"), unit="s")
    return np.asarray(np.char.replace(text, "T", " "))


_VITALS2024_FIRST: Final = np.datetime64("2024-07-19T21:53:46", "s")


def simulate_vitals2024(rows: int, seed: int = 0) -> pd.DataFrame:
    """Simulate a table in the exact schema of the Human Vital Signs 2024 file.

    Reproduces the measured file (``datasets/README.md``): one row per patient, Patient ID
    1..rows, Timestamp from 2024-07-19 21:53:46 decreasing by 60 s per row, independent
    uniform columns (HR 60–99, RR 12–19, SBP 110–139, DBP 70–89 and age 18–89 integers;
    temperature 36.0–37.5, SpO2 95–100, weight 50–100 kg, height 1.50–2.00 m, Derived_HRV
    0.05–0.15), Gender Male/Female, pulse pressure = SBP − DBP, BMI = weight / height²,
    MAP = DBP + PP / 3, floats rounded to 10 significant digits like the file, and the
    file's label rule: ``High Risk`` iff HR > 90 or BMI > 30 or BMI < 18.5 (about 52.6 %).

    Parameters
    ----------
    rows : int
        Number of rows (e.g. 200,020 like the full file).
    seed : int
        Seed of the draws.

    Returns
    -------
    pandas.DataFrame
        Shape (rows, 17), columns :data:`VITALS2024_COLUMNS`, dtypes as ``pandas.read_csv``
        gives for the real file (int64, float64, str).

    """
    n = _check_rows(rows)
    rng = np.random.default_rng(seed)
    heart_rate = rng.integers(60, 100, n)
    respiratory_rate = rng.integers(12, 20, n)
    temperature = _round_significant(rng.uniform(36.0, 37.5, n))
    spo2 = _round_significant(rng.uniform(95.0, 100.0, n))
    systolic = rng.integers(110, 140, n)
    diastolic = rng.integers(70, 90, n)
    age = rng.integers(18, 90, n)
    gender = np.where(rng.random(n) < 0.5, "Male", "Female")
    weight = _round_significant(rng.uniform(50.0, 100.0, n))
    height = _round_significant(rng.uniform(1.5, 2.0, n))
    hrv = _round_significant(rng.uniform(0.05, 0.15, n))
    pulse_pressure = systolic - diastolic
    bmi = _round_significant(weight / height**2)
    mean_arterial = _round_significant(diastolic + pulse_pressure / 3.0)
    high = (heart_rate > 90) | (bmi > 30.0) | (bmi < 18.5)
    timestamps = _VITALS2024_FIRST - np.arange(n, dtype=np.int64) * np.timedelta64(60, "s")
    values = (
        np.arange(1, n + 1, dtype=np.int64),
        heart_rate,
        respiratory_rate,
        _datetime_text(timestamps),
        temperature,
        spo2,
        systolic,
        diastolic,
        age,
        gender,
        weight,
        height,
        hrv,
        pulse_pressure,
        bmi,
        mean_arterial,
        np.where(high, "High Risk", "Low Risk"),
    )
    return pd.DataFrame(dict(zip(VITALS2024_COLUMNS, values, strict=True)))


IOT_SENSOR_TYPES: Final = ("Temperature", "Blood Pressure", "Heart Rate", "Battery")
_IOT_FIRST: Final = np.datetime64("2024-01-01T00:00:00", "s")
_IOT_HOURS: Final = 200
_IOT_BP_PAIRS: Final = ((120, 80), (130, 80), (130, 85), (90, 60), (140, 90), (150, 95))
_IOT_BP_WEIGHTS: Final = (0.30, 0.20, 0.15, 0.10, 0.15, 0.10)
IOT_LABEL_NOISE: Final = 0.05
"""Share of IoT rows whose label is flipped after the rule."""


def simulate_iot(rows: int, seed: int = 0) -> pd.DataFrame:
    """Simulate a table in the exact schema of the Healthcare IoT file.

    Ranges and formats follow ``datasets/README.md`` and ``iot_schema_sample.csv``:
    Patient_ID uniform 1189–9958 (drawn with replacement, so mostly one row per patient at
    the file's 202 rows), Timestamp a random hour from 2024-01-01 00:00 to 2024-01-09 07:00
    (rows in random order, ``YYYY-MM-DD HH:MM:SS``), Sensor_ID 1–4 and Sensor_Type drawn
    independently, temperature 36.5–37.5 °C with one decimal, blood pressure as the cuff-style
    pairs of the sample (120/80, 130/80, 130/85, 90/60, 150/95, plus 140/90), HR 60–99,
    Device_Battery_Level 80–99, Battery_Level 80–100, Target_Blood_Pressure in
    {120, 130, 140, 150}, Target_Heart_Rate in {70, 80, 90}.

    The real file's label rule is unknown. This simulator uses: ``Unhealthy`` iff
    HR > Target_Heart_Rate + 10 or SBP > Target_Blood_Pressure + 10, then flips
    :data:`IOT_LABEL_NOISE` (5 %) of the labels at random; about 68 % of rows are
    ``Healthy``, close to the imbalance the seed's class weights 0.6 / 1.4 suggest.

    Parameters
    ----------
    rows : int
        Number of rows (202 in the real file).
    seed : int
        Seed of the draws.

    Returns
    -------
    pandas.DataFrame
        Shape (rows, 13), columns :data:`IOT_COLUMNS`; integers int64, temperature float64,
        text columns str.

    """
    n = _check_rows(rows)
    rng = np.random.default_rng(seed)
    hours = rng.integers(0, _IOT_HOURS, n)
    pairs = np.array(_IOT_BP_PAIRS, dtype=np.int64)[
        rng.choice(len(_IOT_BP_PAIRS), size=n, p=_IOT_BP_WEIGHTS)
    ]
    systolic, diastolic = pairs[:, 0], pairs[:, 1]
    heart_rate = rng.integers(60, 100, n)
    target_bp = rng.choice(np.array([120, 130, 140, 150], dtype=np.int64), size=n)
    target_hr = rng.choice(np.array([70, 80, 90], dtype=np.int64), size=n)
    unhealthy = (heart_rate > target_hr + 10) | (systolic > target_bp + 10)
    unhealthy ^= rng.random(n) < IOT_LABEL_NOISE
    values = (
        rng.integers(1189, 9959, n),
        _datetime_text(_IOT_FIRST + hours * np.timedelta64(3600, "s")),
        rng.integers(1, 5, n),
        np.array(IOT_SENSOR_TYPES)[rng.integers(0, len(IOT_SENSOR_TYPES), n)],
        np.round(rng.uniform(36.5, 37.5, n), 1),
        systolic,
        diastolic,
        heart_rate,
        rng.integers(80, 100, n),
        target_bp,
        target_hr,
        np.where(unhealthy, "Unhealthy", "Healthy"),
        rng.integers(80, 101, n),
    )
    return pd.DataFrame(dict(zip(IOT_COLUMNS, values, strict=True)))
