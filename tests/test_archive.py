"""Archive scoring: partitions scored locally and on a 2-worker Dask cluster, resumable."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from vitalsentry.archive import ArchiveJob, list_partitions, score_archive, write_partitions
from vitalsentry.cli import app
from vitalsentry.config import DataConfig, DetectorConfig, ModelConfig, TrainConfig, WindowConfig
from vitalsentry.data.prepared import prepare
from vitalsentry.data.readings import Readings, validate_frame
from vitalsentry.data.simulate import SimulationConfig, simulate_cohort
from vitalsentry.data.sources import SAMPLE_DIR, read_readings
from vitalsentry.data.writers import write_table
from vitalsentry.errors import DataError, VitalSentryError
from vitalsentry.pipeline import VitalRiskPipeline, fit_detector
from vitalsentry.scoring import readings_table
from vitalsentry.training.pretrain import pretrain

KEYS = ["patient_id", "window_start"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small bundle, the cohort as one file, and the same cohort as per-patient partitions."""
    root = tmp_path_factory.mktemp("archive")
    frame, _ = simulate_cohort(SimulationConfig(patients=6, hours=0.75, seed=5))
    readings = Readings(validate_frame(frame, "cohort"), pd.DataFrame(), "tidy", False, "c")
    data = prepare(readings, DataConfig(channels=("heart_rate", "spo2")), WindowConfig(64, 32))
    model = ModelConfig(input_channels=4, seq_len=64, lstm_hidden=8, latent_dim=4)
    train = TrainConfig(max_epochs=1, batch_size=64)
    pretrain(data, model, train, root / "enc", accelerator="cpu", progress=False)
    fit_detector(root / "enc", data, root / "bundle", DetectorConfig(n_estimators=20))
    write_table(frame, root / "whole.parquet")
    write_partitions(frame, root / "parts")
    csv = write_partitions(frame, root / "csv", ".csv")
    return {"root": root, "bundle": root / "bundle", "csv": csv[0].parent}


def _single_process(bundle: Path, path: Path) -> pd.DataFrame:
    readings = read_readings(path)
    return readings_table(VitalRiskPipeline.from_bundle(bundle), readings)[0]


def _read_outputs(out: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(out / p) for p in list_partitions(out)]
    return pd.concat(frames).sort_values(KEYS).reset_index(drop=True)


def test_dask_two_workers_match_single_process(archive: dict[str, Path], tmp_path: Path) -> None:
    job = ArchiveJob.create(archive["bundle"])
    results = score_archive(job, archive["root"] / "parts", tmp_path, engine="dask", workers=2)
    assert len(results) == 6 and not any(r.skipped for r in results)
    pids = {r.worker for r in results}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes did the work
    assert {r.bundle_loads for r in results} == {1}  # each loaded the bundle once
    expected = _single_process(archive["bundle"], archive["root"] / "whole.parquet")
    pd.testing.assert_frame_equal(
        _read_outputs(tmp_path), expected.sort_values(KEYS), check_exact=True
    )
    assert sum(r.windows for r in results) == len(expected)


def test_local_engine_resumes_and_ignores_half_written(
    archive: dict[str, Path], tmp_path: Path
) -> None:
    job = ArchiveJob.create(archive["bundle"])
    parts = archive["root"] / "parts"
    first = score_archive(job, parts, tmp_path)
    kept = tmp_path / "P0002.parquet"
    stamp = kept.stat().st_mtime_ns
    (tmp_path / "P0004.parquet").unlink()
    (tmp_path / ".P0004.parquet.abc123.parquet").write_bytes(b"half a file")  # a crash's leftover
    second = score_archive(job, parts, tmp_path)
    assert [r.name for r in second if not r.skipped] == ["P0004.parquet"]
    assert kept.stat().st_mtime_ns == stamp
    assert sum(r.windows for r in first) == len(_read_outputs(tmp_path))
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "P0004.parquet"),
        _single_process(archive["bundle"], parts / "P0004.parquet"),
    )


def test_resume_with_other_options_is_refused(archive: dict[str, Path], tmp_path: Path) -> None:
    score_archive(ArchiveJob.create(archive["bundle"]), archive["csv"], tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == sorted(
        p.name for p in archive["csv"].glob("*.csv")
    )
    with pytest.raises(VitalSentryError, match="differs in: mc_passes"):
        score_archive(ArchiveJob.create(archive["bundle"], mc_passes=3), archive["csv"], tmp_path)


def test_bad_archives_are_refused(archive: dict[str, Path], tmp_path: Path) -> None:
    job = ArchiveJob.create(archive["bundle"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.csv"):
        score_archive(job, tmp_path / "empty", tmp_path / "o1")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"notes\.txt"):
        score_archive(job, tmp_path / "odd", tmp_path / "o2")
    stream = tmp_path / "stream"
    stream.mkdir()
    (stream / "a.csv").write_bytes((SAMPLE_DIR / "vitals2024_sample.csv").read_bytes())
    with pytest.raises(DataError, match="per-patient series"):
        score_archive(job, stream, tmp_path / "o3")
    with pytest.raises(VitalSentryError, match="--engine dask"):
        score_archive(job, archive["csv"], tmp_path / "o4", address="tcp://127.0.0.1:1")


def test_cli_scores_a_directory(archive: dict[str, Path], tmp_path: Path) -> None:
    args = ["score", str(archive["bundle"]), str(archive["csv"]), "--out"]
    done = CliRunner().invoke(app, [*args, str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "scored 6 of 6 partitions" in done.output
    bad = CliRunner().invoke(app, [*args, str(tmp_path / "x"), "--engine", "spark"])
    assert isinstance(bad.exception, VitalSentryError)  # main() prints it as one line
    assert "unknown engine 'spark'" in str(bad.exception)
    one = CliRunner().invoke(
        app,
        [
            "score",
            str(archive["bundle"]),
            str(archive["csv"] / "P0001.csv"),
            "--out",
            str(tmp_path / "x.csv"),
            "--engine",
            "dask",
        ],
    )
    assert "apply to a directory" in str(one.exception)
