import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitalsentry.data import audit as audit_module
from vitalsentry.data.audit import AuditReport, audit_readings, interpret_lag1
from vitalsentry.data.readings import Readings, validate_frame
from vitalsentry.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
VITALS2024 = SHARED / "raw" / "human_vital_signs_dataset_2024__mlh_subset.csv"
VITALS2024_CHANNELS = {
    "Heart Rate": "heart_rate",
    "Respiratory Rate": "respiratory_rate",
    "Body Temperature": "temperature",
    "Oxygen Saturation": "spo2",
    "Systolic Blood Pressure": "systolic_bp",
    "Diastolic Blood Pressure": "diastolic_bp",
}
START = pd.Timestamp("2024-03-01 08:00", tz="UTC")


def read_vitals2024(path: Path) -> Readings:
    raw = pd.read_csv(path)
    frame = pd.DataFrame(
        {
            "patient_id": raw["Patient ID"].astype(str),
            "timestamp": pd.to_datetime(raw["Timestamp"], utc=True),
        }
    )
    for column, channel in VITALS2024_CHANNELS.items():
        frame[channel] = raw[column].astype(np.float64)
    frame["label"] = (raw["Risk Category"] == "High Risk").astype(np.int8)
    static = pd.DataFrame(
        {
            "age": raw["Age"].astype(np.float64).to_numpy(),
            "sex": (raw["Gender"] == "Male").astype(np.float64).to_numpy(),
            "bmi": raw["Derived_BMI"].to_numpy(np.float64),
        },
        index=pd.Index(frame["patient_id"], name="patient_id"),
    )
    return Readings(validate_frame(frame, str(path)), static, "vitals2024", True, str(path))


def make_readings(
    frame: pd.DataFrame, *, stream: bool = False, static: pd.DataFrame | None = None
) -> Readings:
    if static is None:
        static = pd.DataFrame(index=pd.Index([], name="patient_id", dtype=str))
    return Readings(validate_frame(frame, "synthetic.csv"), static, "tidy", stream, "synthetic.csv")


def ar1_series(
    rng: np.random.Generator, patients: int, length: int, phi: float = 0.97
) -> pd.DataFrame:
    """Smooth AR(1) heart rate around 80/min, one reading a second per patient."""
    parts = []
    for p in range(patients):
        noise = rng.normal(0.0, 1.0, length)
        hr = np.empty(length)
        hr[0] = noise[0]
        for t in range(1, length):
            hr[t] = phi * hr[t - 1] + noise[t]
        parts.append(
            pd.DataFrame(
                {
                    "patient_id": f"p{p}",
                    "timestamp": START + pd.to_timedelta(np.arange(length), unit="s"),
                    "heart_rate": 80.0 + 2.0 * hr,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def assert_json_ready(report: AuditReport) -> dict[str, object]:
    data = report.to_dict()
    json.dumps(data, allow_nan=False)
    return data


@pytest.fixture(scope="module")
def vitals_report() -> AuditReport:
    if not VITALS2024.exists():
        pytest.skip(f"../shared/datasets absent: {VITALS2024} not found")
    return audit_readings(read_vitals2024(VITALS2024))


def test_vitals2024_has_no_per_patient_series(vitals_report: AuditReport) -> None:
    assert (vitals_report.rows, vitals_report.patients) == (10_649, 10_649)
    assert vitals_report.per_patient == (1, 1.0, 1)
    assert vitals_report.findings[0].startswith(
        "No per-patient time series: every patient has exactly one reading; the file is read "
        "as one monitoring feed (stream mode)"
    )
    for channel in vitals_report.channels:
        assert channel.step_s == 60.0
        assert channel.lag1 is not None and abs(channel.lag1) < 0.05
    assert any("carry no temporal signal" in f for f in vitals_report.findings)


def test_vitals2024_label_is_the_heart_rate_bmi_rule(vitals_report: AuditReport) -> None:
    check = vitals_report.label_check
    assert check is not None and check.deterministic
    assert check.accuracy >= 0.99
    assert set(check.used) == {"heart_rate", "bmi"}
    assert check.vitals_accuracy is not None and check.vitals_accuracy < 0.8
    rules = [rule.text() for rule in check.rules]
    assert any("heart_rate > 90.5" in r and "THEN abnormal (1)" in r for r in rules)
    assert any("bmi ≤ 18.5" in r for r in rules)
    finding = next(f for f in vitals_report.findings if "near-deterministic rule" in f)
    assert finding.startswith("The label is a near-deterministic rule of ")
    assert "heart_rate" in finding and "bmi" in finding
    assert "depends on static context" in finding
    balance = vitals_report.class_balance
    assert balance is not None and dict(balance.counts) == {0: 5_052, 1: 5_597}


def test_vitals2024_report_renders_and_serialises(vitals_report: AuditReport) -> None:
    data = assert_json_ready(vitals_report)
    assert data["label_check"]["deterministic"] is True  # type: ignore[index]
    text = vitals_report.render()
    assert "nan" not in text.lower()
    for finding in vitals_report.findings:
        assert finding in text
    for channel in ("heart_rate", "spo2", "respiratory_rate", "temperature", "systolic_bp"):
        assert channel in text


def test_smooth_series_and_noise_label() -> None:
    rng = np.random.default_rng(1)
    frame = ar1_series(rng, patients=8, length=500)
    frame["label"] = rng.integers(0, 2, len(frame)).astype(np.int8)
    report = audit_readings(make_readings(frame))
    (hr,) = report.channels
    assert hr.lag1 is not None and hr.lag1 > 0.9
    assert hr.step_s == 1.0
    assert report.per_patient == (500, 500.0, 500)
    assert report.findings[0] == "Per-patient time series: every patient has 500 readings."
    assert "heart_rate" in report.findings[1] and "strongly related" in report.findings[1]
    check = report.label_check
    assert check is not None and not check.deterministic
    assert 0.4 < check.accuracy < 0.6
    assert (check.train_patients, check.test_patients) == (5, 3)
    assert check.vitals_accuracy is None
    assert not any(f.startswith("The label is a near-deterministic") for f in report.findings)
    assert any(f.startswith("The label is not a near-deterministic rule") for f in report.findings)
    data = assert_json_ready(report)
    assert "vitals_accuracy_reason" in data["label_check"]  # type: ignore[operator]


def test_rule_of_one_vital_is_found_without_static_context() -> None:
    rng = np.random.default_rng(2)
    frame = ar1_series(rng, patients=6, length=300, phi=0.5)
    frame["label"] = (frame["heart_rate"] > 82.0).astype(np.int8)
    report = audit_readings(make_readings(frame))
    check = report.label_check
    assert check is not None and check.deterministic and check.used == ("heart_rate",)
    finding = report.findings[-1]
    assert finding.startswith("The label is a near-deterministic rule of heart_rate (")
    assert "IF heart_rate > 82" in finding and finding.endswith("otherwise normal (0).")


def test_lag1_follows_feed_time_order_in_stream_mode() -> None:
    rng = np.random.default_rng(3)
    frame = ar1_series(rng, patients=1, length=400)
    # one reading per patient, with patient ids unrelated to time order
    frame["patient_id"] = [f"id{i}" for i in rng.permutation(len(frame))]
    stream = audit_readings(make_readings(frame, stream=True))
    (hr,) = stream.channels
    assert hr.lag1 is not None and hr.lag1 > 0.9 and hr.step_s == 1.0
    per_patient = audit_readings(make_readings(frame, stream=False))
    (hr,) = per_patient.channels
    assert hr.lag1 is None and hr.step_s is None
    assert hr.lag1_reason is not None and "patient series" in hr.lag1_reason
    assert per_patient.findings[0].startswith(
        "No per-patient time series: every patient has exactly one reading; per-patient "
        "windows cannot be formed"
    )
    channel = assert_json_ready(per_patient)["channels"][0]  # type: ignore[index]
    assert channel["lag1"] is None and channel["lag1_reason"] == hr.lag1_reason
    assert channel["step_reason"] == hr.step_reason


def test_multi_rate_channels_report_measured_share_and_step() -> None:
    rng = np.random.default_rng(4)
    frame = ar1_series(rng, patients=3, length=600)
    spo2 = np.full(len(frame), np.nan)
    spo2[::60] = rng.uniform(93.0, 99.0, len(frame[::60]))
    frame["spo2"] = spo2
    report = audit_readings(make_readings(frame))
    hr, sp = report.channels
    assert hr.measured_share == 1.0 and sp.measured == 30
    assert sp.measured_share == pytest.approx(1 / 60)
    assert sp.step_s == 60.0
    assert sp.quantiles is not None and 93.0 <= sp.quantiles[0] <= sp.quantiles[-1] <= 99.0
    finding = next(f for f in report.findings if f.startswith("Not every channel"))
    assert "spo2 measured in 1.7% of rows (median step 1 min)" in finding
    assert "heart_rate measured in 100.0% of rows (median step 1 s)" in finding


def test_rules_say_where_unmeasured_values_go() -> None:
    rng = np.random.default_rng(5)
    frame = ar1_series(rng, patients=6, length=300)
    spo2 = np.full(len(frame), np.nan)
    spo2[::5] = rng.uniform(88.0, 99.0, len(frame[::5]))
    frame["spo2"] = spo2
    frame["label"] = (frame["spo2"] < 92.0).astype(np.int8)  # NaN compares False: normal
    report = audit_readings(make_readings(frame))
    check = report.label_check
    assert check is not None and check.deterministic and check.used == ("spo2",)
    texts = [rule.text() for rule in check.rules]
    assert any(t.startswith("IF spo2 ≤ 92") and "(measured) THEN abnormal (1)" in t for t in texts)
    assert any("or spo2 not measured) THEN normal (0)" in t for t in texts)


def test_values_outside_normal_range_are_counted() -> None:
    frame = pd.DataFrame(
        {
            "patient_id": ["a"] * 5,
            "timestamp": START + pd.to_timedelta(np.arange(5), unit="min"),
            "heart_rate": [50.0, 70.0, 80.0, 120.0, 130.0],
            "temperature": [36.5, 36.6, 36.7, 36.8, 36.9],
        }
    )
    report = audit_readings(make_readings(frame))
    hr, temp = report.channels
    assert (hr.below_normal, hr.above_normal) == (1, 2)
    assert hr.outside_normal_share == pytest.approx(0.6)
    assert hr.quantiles == pytest.approx((50.0, 50.8, 80.0, 129.6, 130.0))
    assert (temp.below_normal, temp.above_normal) == (0, 0)
    finding = next(f for f in report.findings if f.startswith("Values outside"))
    assert "heart_rate 60.0% outside 60–100 /min (1 below, 2 above)" in finding
    assert finding.endswith("none for temperature.")


def test_without_labels_balance_and_check_are_not_computable() -> None:
    frame = ar1_series(np.random.default_rng(6), patients=2, length=50)
    report = audit_readings(make_readings(frame))
    assert report.class_balance is None and report.label_check is None
    assert report.class_balance_reason == report.label_check_reason == "no label column"
    data = assert_json_ready(report)
    assert data["class_balance"] == {"computable": False, "reason": "no label column"}
    assert data["label_check"] == {"computable": False, "reason": "no label column"}
    assert report.findings[-1] == (
        "Class balance and the label determinism check are not computable: no label column."
    )
    assert "not computable (no label column)" in report.render()


def test_single_class_label_makes_check_not_computable() -> None:
    frame = ar1_series(np.random.default_rng(7), patients=3, length=40)
    frame["label"] = np.int8(0)
    report = audit_readings(make_readings(frame))
    assert report.class_balance is not None and report.class_balance.counts == ((0, 120),)
    assert report.label_check is None
    assert report.label_check_reason == "only one class: all 120 rows are normal (0)"
    assert report.findings[-1] == (
        "The label determinism check is not computable: only one class: all 120 rows are "
        "normal (0)."
    )
    assert assert_json_ready(report)["label_check"]["computable"] is False  # type: ignore[index]


def test_one_patient_cannot_be_split() -> None:
    frame = ar1_series(np.random.default_rng(8), patients=1, length=40)
    frame["label"] = (np.arange(40) % 2).astype(np.int8)
    report = audit_readings(make_readings(frame))
    assert report.label_check is None
    assert report.label_check_reason == "only one patient: rows cannot be split by patient"


def test_per_patient_label_share() -> None:
    frame = ar1_series(np.random.default_rng(9), patients=3, length=10)
    frame["label"] = np.r_[np.zeros(10), np.ones(10), np.r_[np.zeros(6), np.ones(4)]].astype(
        np.int8
    )
    balance = audit_readings(make_readings(frame)).class_balance
    assert balance is not None
    assert (balance.patients_normal, balance.patients_abnormal, balance.patients_mixed) == (1, 1, 1)
    assert balance.patient_share == (0.0, 0.4, 1.0)
    assert balance.describe() == "16 normal (0, 53.3%), 14 abnormal (1, 46.7%)"


def test_large_files_are_subsampled_for_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_module, "TREE_MAX_ROWS", 300)
    rng = np.random.default_rng(10)
    frame = ar1_series(rng, patients=10, length=100)
    frame["label"] = (frame["heart_rate"] > 80.0).astype(np.int8)
    report = audit_readings(make_readings(frame), seed=3)
    check = report.label_check
    assert check is not None and check.sampled_from == 1_000
    assert check.train_rows + check.test_rows == 300
    assert check.sample_text() == "fitted on a seeded random sample of 300 of 1,000 rows"
    assert check.sample_text() in report.render()
    assert audit_readings(make_readings(frame), seed=3).to_dict() == report.to_dict()


def test_empty_readings_raise_data_error() -> None:
    empty = pd.DataFrame(
        {"patient_id": pd.Series([], dtype=str), "timestamp": pd.Series([], dtype="M8[ns, UTC]")}
    )
    readings = Readings(empty, pd.DataFrame(), "tidy", False, "empty.csv")
    with pytest.raises(DataError, match=r"empty\.csv: no readings"):
        audit_readings(readings)


@pytest.mark.parametrize(
    ("value", "start"),
    [(0.02, "about 0"), (-0.05, "about 0"), (0.95, "high"), (0.4, "moderate"), (-0.5, "negative")],
)
def test_interpret_lag1(value: float, start: str) -> None:
    assert interpret_lag1(value).startswith(start)


def test_lag1_is_a_length_weighted_mean_over_patient_series() -> None:
    series = {
        "a": np.arange(12.0) + 70.0,  # rising ramp
        "b": 90.0 - np.arange(20.0),  # falling ramp: starts far above its mean, like "a" ends
        "c": np.full(15, 75.0),  # constant: left out
        "d": np.array([70.0, 90.0, 70.0, 90.0, 70.0]),  # too short: left out
    }
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "patient_id": pid,
                    "timestamp": START + pd.to_timedelta(np.arange(v.size), unit="s"),
                    "heart_rate": v,
                }
            )
            for pid, v in series.items()
        ],
        ignore_index=True,
    )

    def lag1(v: np.ndarray) -> float:
        d = v - v.mean()
        return float(np.sum(d[1:] * d[:-1]) / np.sum(d * d))

    expected = (12 * lag1(series["a"]) + 20 * lag1(series["b"])) / 32
    (hr,) = audit_readings(make_readings(frame)).channels
    assert hr.lag1 == pytest.approx(expected)
