"""A real server SIGKILLed at random moments during a replay: nothing acknowledged is lost or doubled."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from vitalsentry.data.simulate import SimulationConfig, simulate_cohort
from vitalsentry.monitor.replay import (
    arrival_batches,
    compare,
    offline_reference,
    replay,
    served_reference,
)
from vitalsentry.monitor.store import MonitorStore
from vitalsentry.pipeline import VitalRiskPipeline

KILLS = 20
ZYGOTE = Path(__file__).with_name("server_zygote.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """Real service processes on a loopback port, forked by the zygote, killed at will."""

    def __init__(self, bundle: Path, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.zygote = subprocess.Popen(
            [sys.executable, str(ZYGOTE), str(bundle), str(self.port), str(log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.pid = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        assert self.zygote.stdin is not None and self.zygote.stdout is not None
        self.zygote.stdin.write("start\n")
        self.zygote.stdin.flush()
        self.pid = int(self.zygote.stdout.readline())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        tail = self.log.read_text()[-2000:] if self.log.exists() else "(no log)"
        raise AssertionError(f"the server did not start; its log ends with:\n{tail}")

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        while True:  # gone once the port refuses connections
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    time.sleep(0.01)
            except OSError:
                return

    def close(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.zygote.communicate(timeout=30)


def stored_readings(url: str) -> int:
    store = MonitorStore.open(url)
    try:
        with store.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM readings").scalar() or 0)
    finally:
        store.close()


@pytest.mark.slow
def test_sigkill_during_replay_loses_and_doubles_nothing(
    bundle_dir: Path,
    pipeline: VitalRiskPipeline,
    key_pairs: dict[str, tuple[str, str]],
    database_url: str,
    tmp_path: Path,
) -> None:
    frame, _ = simulate_cohort(
        SimulationConfig(patients=2, hours=0.5, seed=5, event_fraction=1.0, start_spread_h=0.1)
    )
    frame = frame.drop(columns=["label", "age", "sex", "bmi"])
    batches = arrival_batches(frame, 120.0)
    expected = offline_reference(pipeline, frame)
    key, entry = key_pairs["score"]
    env = dict(
        os.environ,
        VITALSENTRY_API_KEYS=entry,
        VITALSENTRY_DATABASE_URL=database_url,
        VITALSENTRY_PURGE_EVERY_S="0",
        VITALSENTRY_RATE_LIMIT_PER_MINUTE="0",
        OMP_NUM_THREADS="1",
    )
    server = Server(bundle_dir, env, tmp_path / "server.log")
    sizes = [sum(len(r) - 1 for r in b.readings) for b in batches]
    acknowledged: list[int] = []
    kills: list[float] = []
    done = threading.Event()
    problems: list[str] = []

    def killer() -> None:
        rng = random.Random(0)
        while not done.is_set():
            seen = len(acknowledged)
            while len(acknowledged) == seen and not done.is_set():  # progress since the restart
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.3))  # then a random moment, often mid-request
            if done.is_set():
                return
            server.kill()
            kills.append(time.monotonic())
            acked = sum(sizes[i] for i in set(acknowledged))
            in_db = stored_readings(database_url)
            position = len(acknowledged) % len(sizes)
            in_flight = sizes[position] if len(acknowledged) < len(sizes) else 0
            if not acked <= in_db <= acked + in_flight:
                problems.append(f"after kill {len(kills)}: {in_db} stored, {acked} acknowledged")
            server.start()

    try:
        server.start()
        thread = threading.Thread(target=killer)
        thread.start()
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as client:
            passes = []  # later passes resend everything: all duplicates, nothing scored twice
            while not passes or len(kills) < KILLS:
                passes.append(
                    replay(
                        client, batches, max_tries=1000, pause_s=0.05, on_batch=acknowledged.append
                    )
                )
            done.set()
            thread.join()
            served = served_reference(client, sorted(frame["patient_id"].unique()))
    finally:
        done.set()
        server.close()
    assert len(kills) >= KILLS, f"only {len(kills)} kills: the replay was too short"
    assert problems == []
    assert all(p.errors == [] for p in passes)
    assert sum(p.accepted for p in passes[1:]) == 0
    assert stored_readings(database_url) == int(
        frame.drop(columns=["patient_id", "timestamp"]).notna().sum().sum()
    )
    assert compare(expected, served) == []
