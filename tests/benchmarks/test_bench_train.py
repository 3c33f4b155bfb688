"""The recipe race of ``benchmarks/bench_train.py``: time budget, time to target, records."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest

from vitalsentry.config import TrainConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.training.loop import LargeBatchRecipe
from vitalsentry.training.pretrain import pretrain

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_train

TINY = LargeBatchRecipe(batch_size=128, lr_schedule="onecycle", grad_clip=1.0, max_epochs=2)


@pytest.fixture(scope="module")
def data() -> PreparedData:
    return bench_train.synthetic_data(512, 64)


def _run(data: PreparedData, log: bench_train.EpochLog, epochs: int) -> None:
    train = TrainConfig(batch_size=128, max_epochs=epochs, patience=epochs)
    with tempfile.TemporaryDirectory() as tmp:
        pretrain(
            data, bench_train.SEED_MODEL, train, Path(tmp) / "b", progress=False, callbacks=[log]
        )


def test_spent_budget_stops_after_the_first_batch_and_still_validates(
    data: PreparedData,
) -> None:
    log = bench_train.EpochLog(budget_s=0.0)
    _run(data, log, epochs=3)
    assert log.stopped_by_budget
    assert len(log.val) == 1  # Lightning validates the cut epoch; a best checkpoint exists
    assert len(log.train_s) == 1


def test_no_budget_runs_every_epoch(data: PreparedData) -> None:
    log = bench_train.EpochLog()
    _run(data, log, epochs=2)
    assert not log.stopped_by_budget
    assert len(log.val) == 2
    assert [t for t, _ in log.val] == sorted(t for t, _ in log.val)


@pytest.mark.parametrize(("target", "expected"), [(0.5, 2.0), (0.45, 3.0), (0.9, 1.0), (0.1, None)])
def test_time_to_is_the_first_validation_at_or_below_target(
    target: float, expected: float | None
) -> None:
    curve = [(1.0, 0.8), (2.0, 0.5), (3.0, 0.4), (4.0, 0.6)]
    assert bench_train.time_to(curve, target) == expected


def _race(
    data: PreparedData,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    seed_wall: float,
) -> list[dict[str, object]]:
    monkeypatch.setattr(bench_train, "vitals2024_data", lambda rows: data)
    monkeypatch.setitem(bench_train.CANDIDATES, "tiny", TINY)
    out = tmp_path / "race.json"
    seed = [(seed_wall / 2, 20.0), (seed_wall, 10.0)]  # target 10.2: any first epoch reaches it
    records = bench_train.recipe_race(100, ["tiny"], out, seed_curve=seed)
    assert json.loads(out.read_text()) == json.loads(json.dumps(records))
    return records


def test_race_target_reached_within_the_budget_meets_it(
    data: PreparedData, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, cand = _race(data, monkeypatch, tmp_path, seed_wall=1e6)
    settings = cand["settings"]
    assert isinstance(settings, dict)
    assert settings["budget_s"] == pytest.approx(5e5)
    assert settings["within_budget"] and not settings["stopped_by_budget"]
    assert settings["epochs"] == 2
    assert cand["value"] == settings["curve"][0][0]
    assert cand["ratio"] == pytest.approx(1e6 / settings["curve"][0][0])


def test_race_candidate_past_the_budget_is_stopped_and_fails(
    data: PreparedData, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, cand = _race(data, monkeypatch, tmp_path, seed_wall=1e-6)
    settings = cand["settings"]
    assert isinstance(settings, dict)
    assert settings["stopped_by_budget"] and settings["epochs"] == 1
    assert settings["reached_target"] and not settings["within_budget"]
    assert isinstance(cand["ratio"], float) and cand["ratio"] < 1 / bench_train.RACE_BUDGET
