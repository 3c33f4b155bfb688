"""``--test`` on real set A files: train on even patient ids, report on odd ones (another file).

The held-out hospital's file is not in the project; set A's own files, split by patient id
parity into a directory (training) and a ``.tar.gz`` archive (test), stand in for a second
file in the official format that the training never saw.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vitalsentry.evaluation.sepsis.baselines import GbmConfig
from vitalsentry.evaluation.sepsis.benchmark import SepsisBenchmarkConfig, run_benchmark
from vitalsentry.evaluation.sepsis.model import AutoencoderSettings

ARCHIVE = (
    Path(__file__).resolve().parents[3]
    / ".."
    / "shared"
    / "datasets"
    / "physionet2019"
    / "training_setA.tar.gz"
)
WANT = {0: (40, 8), 1: (20, 5)}
"""Per id parity: (non-septic, septic) stays taken, in archive order."""

SMALL = SepsisBenchmarkConfig(
    n_boot=20,
    autoencoder=AutoencoderSettings(epochs=1, max_windows=2000),
    gbm=GbmConfig(max_iter=30, min_samples_leaf=20),
)

pytestmark = pytest.mark.skipif(
    not ARCHIVE.is_file(), reason=f"{ARCHIVE} is absent (../shared is not in a fresh clone)"
)


def _split_by_parity(root: Path) -> tuple[Path, Path, dict[int, list[str]]]:
    """Write the first stays of each parity: even ones to a folder, odd ones to an archive."""
    taken: dict[int, list[str]] = {0: [], 1: []}
    counts = {(p, s): 0 for p in (0, 1) for s in (0, 1)}
    train, odd = root / "even", root / "odd"
    train.mkdir()
    odd.mkdir()
    with tarfile.open(ARCHIVE) as tar:
        for member in tar:
            name = Path(member.name).name
            if not (member.isfile() and name.endswith(".psv")):
                continue
            parity = int(name[1:-4]) % 2
            raw = tar.extractfile(member)
            assert raw is not None
            text = raw.read()
            septic = int(text.rstrip().endswith(b"|1") or b"|1\n" in text)
            if counts[parity, septic] >= WANT[parity][septic]:
                continue
            counts[parity, septic] += 1
            taken[parity].append(name[:-4])
            (train if parity == 0 else odd).joinpath(name).write_bytes(text)
            if all(counts[k] >= WANT[k[0]][k[1]] for k in counts):
                break
    test = root / "odd.tar.gz"
    with tarfile.open(test, "w:gz") as out:
        for f in sorted(odd.iterdir()):
            info = tarfile.TarInfo(f"training_odd/{f.name}")
            data = f.read_bytes()
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return train, test, taken


@pytest.fixture(scope="module")
def external(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], dict[int, list[str]]]:
    root = tmp_path_factory.mktemp("parity")
    train, test, taken = _split_by_parity(root)
    return run_benchmark(train, root / "out", test=test, config=SMALL), taken


def test_reports_on_the_other_file_only(
    external: tuple[dict[str, Any], dict[int, list[str]]],
) -> None:
    report, taken = external
    counts = report["counts"]
    assert counts["test"]["patients"] == len(taken[1]) == sum(WANT[1])
    assert counts["test"]["septic_patients"] == WANT[1][1]
    assert counts["train"]["patients"] + counts["validation"]["patients"] == sum(WANT[0])
    assert report["inputs"]["test"].endswith("odd.tar.gz") and "test_sha256" in report["inputs"]


def test_every_method_is_scored_on_the_other_file(
    external: tuple[dict[str, Any], dict[int, list[str]]],
) -> None:
    report, _ = external
    for name, r in report["results"].items():
        assert np.isfinite(r["utility"]) and 0.0 <= r["roc_auc"] <= 1.0, name
        assert np.isfinite(r["validation_utility"]), name
    assert report["comparisons"]["risk_vs_gbm_all"]["difference"] is not None
