"""Hardening figures of a real server: the bad-input corpus, peak memory, logs.

1. Builds a seed-size bundle (256-step windows, 4 channels, 200-tree detector) and serves
   it with ``vitalsentry.serve.app.run`` in a subprocess on 127.0.0.1, logs captured.
2. Sends the bad-input corpus of ``tests/security/bad_inputs.json`` to every scoring
   endpoint and to the monitoring endpoints (SQLite database in the temporary folder; the
   same requests and checks as ``tests/security/test_corpus.py``), then the issue's probe
   (readings dated 1970 and 2199) together with 12 valid requests, each round
   ``--rounds`` times; and once, the corpus's monitoring sequences (readings dated 1971,
   then 2024, appended to one patient).
3. Reports: share of clean 4xx answers, 5xx count, tracebacks, identifiers and query
   strings in the server's logs, valid answers beside bad requests, sequence steps
   answered otherwise than the corpus says, and the server's peak resident memory
   (``VmHWM``) against its resident memory once ready (the baseline).

Usage: ``python benchmarks/bench_hardening.py [--quick] [--out FILE]``
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, free_port, parse_args, record

ROOT = Path(__file__).resolve().parents[1]
LIMIT_GIB = 1.5


def _module(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


@contextlib.contextmanager
def _server(bundle: Path, entry: str, log: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = os.environ | {
        "VITALSENTRY_API_KEYS": entry,
        "VITALSENTRY_RATE_LIMIT_PER_MINUTE": "0",
        "VITALSENTRY_FAILED_KEY_LIMIT_PER_MINUTE": "0",
        "VITALSENTRY_DATABASE_URL": f"sqlite:///{log.with_name('monitor.sqlite3')}",
        "VITALSENTRY_PURGE_EVERY_S": "0",
    }
    code = f"from vitalsentry.serve.app import run; run({str(bundle)!r}, port={port})"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=sink, stderr=sink)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("server not ready after 180 s")
                time.sleep(0.2)
            yield base, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _corpus_round(http: httpx.Client, cases: list[Any], key: str, corpus: Any) -> list[str]:
    failures = []
    for case in cases:
        chosen = key if case.key == "valid" else case.key
        headers = case.headers | ({"X-API-Key": chosen} if chosen else {})
        r = http.request(case.method, case.path, content=case.body, headers=headers)
        failures += [
            f"{case.name} {case.path}: {p}" for p in corpus.problems(case, r.status_code, r.text)
        ]
    return failures


def _sequence_failures(http: httpx.Client, key: str, corpus: Any) -> list[str]:
    """Send the monitoring sequences; list the steps answered otherwise than the corpus says."""
    failures = []
    headers = {"X-API-Key": key, "content-type": "application/json"}
    for name, steps in corpus.monitor_sequences().items():
        for i, step in enumerate(steps):
            r = http.post(step.path, content=step.body, headers=headers)
            scored = len(r.json().get("windows_scored", [])) if r.status_code == 200 else 0
            if r.status_code != step.status or scored < step.windows:
                failures.append(f"{name} step {i}: {r.status_code}, {scored} windows")
    return failures


def _probe_round(
    base: str, key: str, valid: list[dict[str, Any]], probe: list[Any]
) -> tuple[int, int]:
    """Send the probe with 12 valid requests at once; (probe status, valid answers with 200)."""
    bodies = [
        {"patient_id": "probe", "readings": probe},
        *({"patient_id": f"p{i}", "readings": valid} for i in range(12)),
    ]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(
            pool.map(
                lambda b: httpx.post(
                    f"{base}/v1/score", json=b, headers={"X-API-Key": key}, timeout=60
                ),
                bodies,
            )
        )
    return answers[0].status_code, sum(a.status_code == 200 for a in answers[1:])


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0], lambda p: p.add_argument("--rounds", type=int, default=3)
    )
    rounds = 1 if args.quick else args.rounds
    fixtures = _module("serve_fixtures", ROOT / "tests" / "service_data.py")
    corpus = _module("security_corpus", ROOT / "tests" / "security" / "corpus.py")
    from vitalsentry.serve.security import new_key

    key, entry = new_key(["score", "admin"])
    with tempfile.TemporaryDirectory() as tmp:
        bundle = fixtures.build_bundle(Path(tmp) / "bundle", length=256, n_estimators=200)
        valid = fixtures.make_readings(300)
        cases = corpus.corpus_cases(valid) + corpus.corpus_cases(valid, monitor=True)
        probe = [
            {"timestamp": "1970-01-01T00:00:00Z", "heart_rate": 70.0, "spo2": 97.0},
            {"timestamp": "2199-12-31T00:00:00Z", "heart_rate": 70.0, "spo2": 97.0},
        ]
        log = Path(tmp) / "server.log"
        failures: list[str] = []
        probes: list[tuple[int, int]] = []
        with (
            _server(bundle, entry, log) as (base, pid),
            httpx.Client(base_url=base, timeout=60) as http,
        ):
            ready_kib = _kib(pid, "VmRSS")
            sequences = _sequence_failures(http, key, corpus)
            # the monitoring requests' patient "x" (see the corpus's "about")
            http.post(
                "/v1/patients/x/readings", json={"readings": valid}, headers={"X-API-Key": key}
            )
            for _ in range(rounds):
                failures += _corpus_round(http, cases, key, corpus)
                probes.append(_probe_round(base, key, valid, probe))
            peak_kib = _kib(pid, "VmHWM")
        text = log.read_text(errors="replace")
    sent = len(cases) * rounds
    settings = {"rounds": rounds, "requests": sent, "bundle": "256-step, 4 channels, 200 trees"}
    leaks = [s for s in (corpus.PATIENT, "secret-key-in-query", "MRN-4242424", "?") if s in text]
    access_lines = text.count('HTTP/1.1" ')
    records = [
        record("corpus_clean_4xx_share", 1 - len(failures) / sent, "fraction", settings=settings),
        record(
            "corpus_5xx", sum("not a 4xx: 5" in f for f in failures), "count", settings=settings
        ),
        record("server_log_tracebacks", text.count("Traceback"), "count", settings=settings),
        record(
            "server_log_identifiers_or_queries",
            len(leaks),
            "count",
            settings=settings | {"found": leaks, "access_log_lines": access_lines},
        ),
        record("probe_status", min(p[0] for p in probes), "HTTP status", settings=settings),
        record(
            "monitor_sequence_failures",
            len(sequences),
            "count",
            settings=settings | {"failures": sequences},
        ),
        record(
            "valid_answers_beside_probe",
            sum(p[1] for p in probes) / (12 * rounds),
            "fraction",
            settings=settings,
        ),
        record(
            "server_peak_rss",
            peak_kib / 2**20,
            "GiB",
            baseline="resident once ready",
            baseline_value=ready_kib / 2**20,
            higher_is_better=False,
            settings=settings | {"target_gib": LIMIT_GIB},
        ),
    ]
    if failures:
        print("\n".join(failures[:20]), file=sys.stderr)
    emit(records, args.out)


if __name__ == "__main__":
    main()
