from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from vitalsentry.bundle import load_bundle
from vitalsentry.data.prepared import PreparedData
from vitalsentry.models.inference import encode

ENTRY = Path(__file__).with_name("ddp_entry.py")


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_a_loadable_bundle(
    tmp_path: Path, make_data: Callable[..., PreparedData]
) -> None:
    out = tmp_path / "ddp-bundle"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ENTRY), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = {
        json.loads(p.read_text())["rank"]: json.loads(p.read_text())
        for p in tmp_path.glob("result-rank*.json")
    }
    assert set(ranks) == {0, 1}
    assert ranks[0]["curve"] == ranks[1]["curve"]  # validation loss is reduced over both processes
    bundle = load_bundle(out)
    manifest = bundle.manifest
    assert manifest["training"]["devices"] == 2 and manifest["training"]["epochs"] == 1
    assert manifest["training"]["best_val_loss"] == ranks[0]["val_loss"]
    windows = make_data(n_patients=3, per_patient=2).scaled_windows()
    assert encode(bundle.autoencoder(), windows).shape == (6, 8)
    assert not (tmp_path / "lightning_logs").exists()
