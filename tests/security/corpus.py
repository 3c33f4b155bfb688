"""The bad-input corpus (``bad_inputs.json``) as requests, and the checks of each answer.

Shared by ``test_corpus.py`` (in-process) and ``benchmarks/bench_hardening.py`` (a real
server): :func:`corpus_cases` expands the data into one request per case and scoring
endpoint; :func:`problems` lists what is wrong with an answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

CORPUS: Final = Path(__file__).with_name("bad_inputs.json")
ENDPOINTS: Final = ("/v1/score", "/v1/score/batch", "/v1/fhir/score")
MAX_MESSAGE: Final = 200
PATIENT: Final = "MRN-7788991"
"""Patient id of every corpus request: it must never appear in a log."""
APPEND: Final = f"/v1/patients/{PATIENT}/readings"
"""The monitoring endpoint that takes readings (``corpus_cases(..., monitor=True)``)."""
LOINC: Final = {"heart_rate": ("8867-4", "/min"), "spo2": ("59408-5", "%")}


@dataclass(frozen=True)
class Case:
    """One request of the corpus and what its answer must be."""

    name: str
    path: str
    body: bytes | None
    status: int
    names: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    key: str | None = "valid"
    """``"valid"``: the test's key; None: no key; else that (wrong) key."""


def _fill(value: Any, entry: dict[str, Any]) -> Any:
    if isinstance(value, str) and "%s" in value:
        return value % (entry.get("repeat_text", "x") * entry["repeat"])
    return value


def _fhir(readings: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """FHIR entries of readings (one Observation per channel); the last reading's entries."""
    entries: list[dict[str, Any]] = []
    last: dict[str, int] = {}
    for reading in readings:
        last = {}
        for name in [c for c in LOINC if c in reading] or ["heart_rate"]:
            code, unit = LOINC[name]
            last[name] = len(entries)
            entries.append(
                {
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                        "subject": {"reference": f"Patient/{PATIENT}"},
                        "effectiveDateTime": reading.get("timestamp"),
                        "valueQuantity": {
                            "value": reading.get(name, 70.0),
                            "system": "http://unitsofmeasure.org",
                            "code": unit,
                        },
                    }
                }
            )
    return entries, last


def _reading_cases(entry: dict[str, Any], valid: list[dict[str, Any]], monitor: bool) -> list[Case]:
    bad = dict(valid[-1]) | {"timestamp": "2024-05-01T09:30:00Z"}
    bad |= {k: _fill(v, entry) for k, v in entry["reading"].items()}
    bad = {k: v for k, v in bad.items() if not (k == "timestamp" and v is None)}
    readings = [*valid, bad]
    name, field_name = entry["name"], entry["field"]
    where = f"readings[{len(valid)}].{field_name}"
    span = name.startswith("span")  # the earliest reading is blamed, wherever it is
    if monitor:
        where = f"readings[{len(valid)}].{entry.get('monitor_field', field_name)}"
        return [
            Case(name, APPEND, _json({"readings": readings}), 422, "readings[" if span else where)
        ]
    patient = {"patient_id": PATIENT, "readings": readings}
    batch = {"patients": [{"patient_id": "a-" + PATIENT, "readings": valid}, patient]}
    cases = [
        Case(name, "/v1/score", _json(patient), 422, ".timestamp" if span else where),
        Case(
            name,
            "/v1/score/batch",
            _json(batch),
            422,
            "patients[1].readings[" if span else f"patients[1].{where}",
        ),
    ]
    if entry.get("fhir", True):
        entries, last = _fhir(readings)
        at = f"entry[{last.get(field_name, min(last.values()))}].resource"
        names = {
            "span": "effectiveDateTime",
            "duplicate": at,
            "timestamp": f"{at}.effectiveDateTime",
        }.get("span" if span else name.split()[0] if name.startswith("dup") else field_name)
        fhir = {"resourceType": "Bundle", "entry": entries}
        cases.append(
            Case(name, "/v1/fhir/score", _json(fhir), 422, names or f"{at}.valueQuantity.value")
        )
    return cases


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def corpus_cases(valid: list[dict[str, Any]], monitor: bool = False) -> list[Case]:
    """Every request of the corpus, given a patient's valid readings.

    ``monitor``: the cases of the monitoring endpoints instead of the scoring ones
    (readings and bodies sent to :data:`APPEND`, and the ``monitor_requests``).
    """
    data = json.loads(CORPUS.read_text())
    cases = [case for entry in data["readings"] for case in _reading_cases(entry, valid, monitor)]
    for entry in data["bodies"]:
        raw = (
            bytes.fromhex(entry["body_hex"])
            if "body_hex" in entry
            else _fill(entry["body"], entry).encode()
        )
        cases += [
            Case(entry["name"], path, raw, entry["status"], entry["names"])
            for path in ((APPEND,) if monitor else ENDPOINTS)
        ]
    for entry in data["monitor_requests" if monitor else "requests"]:
        content_type = entry.get("content_type", "application/json")
        body = entry.get("body")
        cases.append(
            Case(
                entry["name"],
                _fill(entry["path"], entry),
                None if body is None else body.encode(),
                entry["status"],
                entry["names"],
                method=entry.get("method", "POST"),
                headers={}
                if content_type is None or body is None
                else {"content-type": content_type},
                key=entry.get("key", "valid"),
            )
        )
    return cases


@dataclass(frozen=True)
class Step:
    """One append of a monitoring sequence and what its answer must be."""

    path: str
    body: bytes
    status: int
    windows: int
    """Fewest windows the append must score."""


def monitor_sequences() -> dict[str, list[Step]]:
    """The corpus's sequences of valid appends to one patient, by name (see its ``about``)."""
    out = {}
    for entry in json.loads(CORPUS.read_text())["monitor_sequences"]:
        path = f"/v1/patients/{entry['patient']}/readings"
        out[entry["name"]] = [
            Step(
                path,
                _json({"readings": _series(s["start"], s["seconds"])}),
                s["status"],
                s["windows"],
            )
            for s in entry["steps"]
        ]
    return out


def _series(start: str, seconds: int) -> list[dict[str, Any]]:
    """Heart rate and SpO2 readings one second apart from ``start`` (ISO 8601, UTC)."""
    first = datetime.fromisoformat(start)
    return [
        {
            "timestamp": (first + timedelta(seconds=k)).isoformat(),
            "heart_rate": 70.0 + k % 7,
            "spo2": 96.0 + k % 3,
        }
        for k in range(seconds)
    ]


def _messages(payload: Any) -> list[str]:
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, str):
        return [detail]
    if isinstance(detail, list):
        return [str(item.get("msg", "")) for item in detail if isinstance(item, dict)]
    return []


def problems(case: Case, status: int, text: str) -> list[str]:
    """What is wrong with an answer: status, not JSON, unnamed field, long echo, traceback."""
    found = []
    if status != case.status:
        found.append(f"status {status}, expected {case.status}")
    if not 400 <= status < 500:
        found.append(f"not a 4xx: {status}")
    try:
        messages = _messages(json.loads(text))
    except ValueError:
        return [*found, "answer is not JSON"]
    if not messages:
        found.append("no error message")
    if case.names and not any(case.names in m for m in messages):
        found.append(f"no message names {case.names!r}: {messages[:2]}")
    if any(len(m) > MAX_MESSAGE for m in messages):
        found.append(f"a message over {MAX_MESSAGE} characters")
    if (
        case.body is not None
        and _longest_echo(case.body.decode(errors="replace"), text) > MAX_MESSAGE
    ):
        found.append(f"echoes over {MAX_MESSAGE} characters of the input")
    if "Traceback" in text or 'File "' in text:
        found.append("a traceback in the answer")
    return found


def _longest_echo(sent: str, answer: str, probe: int = MAX_MESSAGE + 1) -> int:
    """``probe`` if some ``probe``-character piece of ``sent`` appears in ``answer``, else 0."""
    step = probe // 2
    pieces = (sent[i : i + probe] for i in range(0, max(1, len(sent) - probe + 1), step))
    return probe if any(len(p) == probe and p in answer for p in pieces) else 0
