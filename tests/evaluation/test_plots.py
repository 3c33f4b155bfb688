import sys
from pathlib import Path

import numpy as np
import pytest

from vitalsentry.errors import DataError
from vitalsentry.evaluation import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = ("heart_rate", "spo2", "hour_sin", "hour_cos")


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG_SIGNATURE) and len(data) > 1024


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(60, int), np.ones(20, int)]
    return {
        "y": y,
        "detector": rng.normal(size=80) + 2 * y,
        "raw": rng.normal(size=80) + y,
        "emb": rng.normal(size=(80, 6)) + y[:, None],
        "windows": rng.normal(size=(3, 4, 32)) + np.array([80.0, 97.0, 0.0, 0.0])[None, :, None],
    }


def test_roc_pr_with_an_uncomputable_scorer(data, tmp_path):
    news2 = np.full(80, np.nan)
    out = plots.plot_roc_pr(
        data["y"],
        {"detector": data["detector"], "raw": data["raw"], "NEWS2": news2},
        tmp_path / "roc.png",
    )
    assert out == tmp_path / "roc.png" and _is_png(out)
    assert [p.name for p in tmp_path.iterdir()] == ["roc.png"]  # no temporary file left


def test_roc_pr_rejects_misshaped_scores(data, tmp_path):
    with pytest.raises(DataError, match="shape"):
        plots.plot_roc_pr(data["y"], {"x": data["raw"][:5]}, tmp_path / "roc.png")
    assert not (tmp_path / "roc.png").exists()


def test_score_distributions(data, tmp_path):
    assert _is_png(
        plots.plot_score_distributions(data["detector"], data["y"], 1.0, tmp_path / "s.png")
    )
    assert _is_png(
        plots.plot_score_distributions(np.full(80, np.nan), data["y"], None, tmp_path / "e.png")
    )


def test_embedding_pca(data, tmp_path):
    assert _is_png(plots.plot_embedding_pca(data["emb"], data["y"], tmp_path / "pca.png"))
    with pytest.raises(DataError):
        plots.plot_embedding_pca(data["emb"][:, :1], data["y"], tmp_path / "bad.png")


def test_training_curves(tmp_path):
    curves = {
        "pretrain": [
            {"epoch": e, "train_loss": 1 / (e + 1), "val_loss": 1.2 / (e + 1)} for e in range(5)
        ],
        "finetune": [
            {"epoch": e, "train_loss": 0.5 - 0.05 * e, "val_loss": None} for e in range(3)
        ],
    }
    assert _is_png(plots.plot_training_curves(curves, tmp_path / "curves.png"))
    assert _is_png(plots.plot_training_curves({}, tmp_path / "none.png"))


def test_before_after_with_missing_achieved(tmp_path):
    rows = [
        {"metric": "Separation ratio", "before": 1.56, "target": 2.0, "achieved": 2.4},
        {"metric": "ROC-AUC", "before": 0.797, "target": 0.9, "achieved": None},
    ]
    assert _is_png(plots.plot_before_after(rows, tmp_path / "ba.png"))


def test_attention_with_and_without_weights(data, tmp_path):
    weights = np.random.default_rng(1).dirichlet(np.ones(8), size=3)
    assert _is_png(plots.plot_attention(data["windows"], weights, NAMES, tmp_path / "att.png"))
    assert _is_png(plots.plot_attention(data["windows"], None, NAMES, tmp_path / "none.png"))
    with pytest.raises(DataError, match="weights"):
        plots.plot_attention(data["windows"], weights[:2], NAMES, tmp_path / "bad.png")


def test_patient_timeline(tmp_path):
    rng = np.random.default_rng(2)
    t = 1.7e9 + np.arange(0, 7200, 10.0)
    hr = 70 + rng.normal(size=t.size)
    hr[100:120] = np.nan  # a gap
    ends = 1.7e9 + np.arange(256, 7200, 128.0)
    risk = np.clip(np.linspace(0, 1, ends.size) + 0.05 * rng.normal(size=ends.size), 0, 1)
    alarm = risk > 0.7
    out = plots.plot_patient_timeline(
        t,
        {"heart_rate": hr, "spo2": 97 + rng.normal(size=t.size)},
        ends,
        risk,
        np.full(ends.size, 0.05),
        alarm,
        [(1.7e9 + 5000, 1.7e9 + 7000)],
        tmp_path / "timeline.png",
    )
    assert _is_png(out)
    assert _is_png(
        plots.plot_patient_timeline(
            t,
            {"heart_rate": hr},
            ends,
            risk,
            None,
            np.zeros(ends.size, bool),
            [],
            tmp_path / "t2.png",
        )
    )
    with pytest.raises(DataError, match="risk"):
        plots.plot_patient_timeline(t, {}, ends, risk[:-1], None, alarm, [], tmp_path / "bad.png")


def test_timeline_draws_sparse_channels_as_readings(tmp_path):
    from matplotlib.figure import Figure

    x = np.arange(3600.0) / 3600
    bp = np.full(x.size, np.nan)
    bp[::1800] = [120.0, 131.0]  # every 30 min among 1 Hz rows: no two neighbours measured
    hr = 70 + np.sin(np.arange(x.size) / 60)
    ax_bp, ax_hr = Figure().subplots(2)
    plots._draw_vital(ax_bp, x, bp)
    plots._draw_vital(ax_hr, x, hr)
    drawn = [line.get_ydata() for line in ax_bp.get_lines()]
    assert len(drawn) == 2 and all(list(d) == [120.0, 131.0] for d in drawn)  # steps, points
    assert len(ax_hr.get_lines()) == 1 and np.array_equal(ax_hr.get_lines()[0].get_ydata(), hr)
    never = np.full(x.size, np.nan)  # an unmeasured channel gets no panel, and no error
    out = plots.plot_patient_timeline(
        1.7e9 + x * 3600,
        {"heart_rate": hr, "systolic_bp": bp, "temperature": never},
        1.7e9 + np.array([600.0, 1200.0]),
        np.array([0.1, 0.2]),
        None,
        np.zeros(2, bool),
        [],
        tmp_path / "sparse.png",
    )
    assert _is_png(out)


def test_no_pyplot_state_is_touched():
    assert (
        "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()
    )
