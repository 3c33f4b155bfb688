"""Service benchmark: /v1/score latency and throughput under bounded load, and batch scoring.

1. Builds a seed-size bundle (256-step windows of HR, SpO2, sin/cos hour = 4 channels, an
   untrained autoencoder, a 200-tree detector; scores cost the same as a trained one's).
2. Starts the service with ``vitalsentry.serve.app.run`` in a subprocess on 127.0.0.1
   (rate limit off so the load is not throttled) and drives ``POST /v1/score`` with a
   256-reading body at concurrency 1, 8 and 32, a fixed number of requests per level
   (one kept-alive raw HTTP/1.1 connection per concurrent client, ~0.1 ms of client CPU
   per request). Baseline: the same validated request
   scored in-process by the service object (``ScoringService.score``, no HTTP), so the
   ratio is the served path's cost against the scoring itself.
3. In-process batch scoring of 1024 windows (``score_windows``) against the bare encoder
   forward pass (``encode``) on the same scaled windows (target ratio ≥ 0.8), and
   against the encoder + decoder pass the per-channel contributions need
   (``encode_with_error``): the pipeline's own overhead.

The load generator runs on the same machine as the server, so both share its cores.

Usage: ``python benchmarks/bench_api.py [--quick] [--out FILE] [--workers N]``
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, free_port, median_time, parse_args, record

ROOT = Path(__file__).resolve().parents[1]
LENGTH = 256
CONCURRENCY = (1, 8, 32)
TARGETS = {"p50_ms_at_8": 10.0, "p99_ms_at_8": 25.0, "batch_ratio": 0.8}


def _fixtures() -> Any:
    """Load the service tests' bundle builder (tests/service_data.py): one source for both."""
    spec = importlib.util.spec_from_file_location(
        "serve_fixtures", ROOT / "tests" / "service_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _server(bundle: Path, key_entry: str, port: int, workers: int) -> Iterator[str]:
    """Run ``vitalsentry.serve.app.run`` in a subprocess until the block ends."""
    env = os.environ | {"VITALSENTRY_API_KEYS": key_entry, "VITALSENTRY_RATE_LIMIT_PER_MINUTE": "0"}
    code = (
        f"from vitalsentry.serve.app import run; run({str(bundle)!r}, port={port}, "
        f"workers={workers})"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server not ready after 120 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> bool:
    """Send one request on a kept-alive connection and read the whole answer; True on 200."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        None,
    )
    if length is None:
        raise ValueError("answer without Content-Length")
    await reader.readexactly(length)
    return head.startswith(b"HTTP/1.1 200 ")


async def _load(port: int, key: str, body: bytes, concurrency: int, total: int) -> dict[str, Any]:
    """Send ``total`` requests from ``concurrency`` clients; latency per request.

    Each client keeps one HTTP/1.1 connection and sends the same pre-encoded request, so
    the load generator costs about 0.1 ms of CPU per request (httpx took ~1.1 ms, which
    on two shared cores is CPU taken from the server). A failed exchange counts as an
    error and the client reconnects.
    """
    request = (
        f"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = 0
    remaining = total

    async def worker() -> None:
        nonlocal remaining, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                try:
                    ok = await _exchange(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                latencies.append(time.perf_counter() - start)
                errors += not ok
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "rps": total / wall,
        "errors": errors,
    }


def _pipeline_calls(base: str, key: str) -> tuple[float, float]:
    """(patients scored, pipeline calls) so far, from the server's /metrics."""
    text = httpx.get(f"{base}/metrics", headers={"X-API-Key": key}).text
    values = dict(
        line.split(" ", 1)
        for line in text.splitlines()
        if line.startswith("vitalsentry_batch_patients_")
    )
    return float(values["vitalsentry_batch_patients_sum"]), float(
        values["vitalsentry_batch_patients_count"]
    )


def _windows(n: int, seed: int = 0) -> np.ndarray:
    """(n, 4, LENGTH) unscaled windows: HR, SpO2, hour sin/cos."""
    from vitalsentry.data.timefeatures import time_features

    rng = np.random.default_rng(seed)
    epoch = 1.7e9 + rng.uniform(0, 86_400, (n, 1)) + np.arange(LENGTH)
    vitals = np.stack(
        [75 + rng.normal(0, 5, (n, LENGTH)), 97 + rng.normal(0, 1, (n, LENGTH))], axis=1
    )
    hours = time_features(epoch.ravel()).reshape(2, n, LENGTH).transpose(1, 0, 2)
    return np.concatenate([vitals, hours], axis=1).astype(np.float32)


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        lambda parser: parser.add_argument(
            "--workers", type=int, default=1, help="server worker processes (default 1)"
        ),
    )
    per_level = 50 if args.quick else 200
    repeats = 3 if args.quick else 5
    fixtures = _fixtures()
    import torch

    torch.set_num_threads(1)  # as the server runs it (VITALSENTRY_TORCH_THREADS defaults to 1)
    from vitalsentry.models.inference import encode, encode_with_error
    from vitalsentry.pipeline import VitalRiskPipeline
    from vitalsentry.serve.metrics import ServiceMetrics
    from vitalsentry.serve.schemas import ScoreRequest
    from vitalsentry.serve.security import new_key
    from vitalsentry.serve.service import ScoringService
    from vitalsentry.serve.settings import load_settings

    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        bundle = fixtures.build_bundle(Path(tmp) / "bundle", length=LENGTH, n_estimators=200)
        pipe = VitalRiskPipeline.from_bundle(bundle)
        payload = {"patient_id": "bench-1", "readings": fixtures.make_readings(LENGTH)}
        body = ScoreRequest.model_validate(payload).model_dump_json(exclude_none=True).encode()
        request = ScoreRequest.model_validate_json(body)
        service = ScoringService(pipe, load_settings(), ServiceMetrics())
        loop = asyncio.new_event_loop()
        in_process = median_time(
            lambda: loop.run_until_complete(service.score(request, 0)), 20 if args.quick else 50
        )
        loop.close()
        service.close()

        key, entry = new_key(["score", "admin"])
        port = free_port()
        with _server(bundle, entry, port, args.workers) as base:
            asyncio.run(_load(port, key, body, 4, 20))  # warm-up
            for concurrency in CONCURRENCY:
                before = _pipeline_calls(base, key)
                got = asyncio.run(_load(port, key, body, concurrency, per_level))
                after = _pipeline_calls(base, key)
                settings = {
                    "concurrency": concurrency,
                    "workers": args.workers,
                    "requests": per_level,
                    "window": LENGTH,
                    "channels": 4,
                    "mc_passes": 0,
                    "errors": got["errors"],
                    # each worker keeps its own metrics: only one worker's are meaningful
                    "patients_per_pipeline_call": (after[0] - before[0])
                    / max(after[1] - before[1], 1)
                    if args.workers == 1
                    else None,
                    "targets": TARGETS if concurrency == 8 else None,
                }
                base_ms = in_process * 1e3
                records += [
                    record(
                        f"score_p50_latency_c{concurrency}",
                        got["p50_ms"],
                        "ms",
                        baseline="in-process ScoringService.score (same request, no HTTP)",
                        baseline_value=base_ms,
                        higher_is_better=False,
                        settings=settings,
                    ),
                    record(
                        f"score_p99_latency_c{concurrency}",
                        got["p99_ms"],
                        "ms",
                        baseline="in-process ScoringService.score (same request, no HTTP)",
                        baseline_value=base_ms,
                        higher_is_better=False,
                        settings=settings,
                    ),
                    record(
                        f"score_throughput_c{concurrency}",
                        got["rps"],
                        "requests/s",
                        baseline="1 / in-process ScoringService.score",
                        baseline_value=1.0 / in_process,
                        settings=settings,
                    ),
                    record(
                        f"score_errors_c{concurrency}",
                        float(got["errors"]),
                        "count",
                        settings=settings,
                    ),
                ]

        windows = _windows(1024)
        scaled = pipe.bundle.scaler.transform(windows)
        pipeline_s = median_time(lambda: pipe.score_windows(windows), repeats)
        baselines = {  # the baseline, and the model pass the scores need
            "batch_scoring_windows_per_s": (
                "bare encoder forward pass (encode, same scaled windows)",
                median_time(lambda: encode(pipe.model, scaled), repeats),
                0.8,
            ),
            "batch_scoring_vs_model_pass_windows_per_s": (
                "encoder + decoder pass that the per-channel contributions need "
                "(encode_with_error, same scaled windows)",
                median_time(lambda: encode_with_error(pipe.model, scaled), repeats),
                None,
            ),
        }
        for name, (what, base_s, target) in baselines.items():
            records.append(
                record(
                    name,
                    len(windows) / pipeline_s,
                    "windows/s",
                    baseline=what,
                    baseline_value=len(windows) / base_s,
                    settings={
                        "windows": len(windows),
                        "window": LENGTH,
                        "detector_trees": 200,
                        "target_ratio": target,
                    },
                )
            )
    emit(records, args.out)


if __name__ == "__main__":
    main()
