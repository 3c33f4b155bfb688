from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression

from vitalsentry.config import FusionConfig
from vitalsentry.errors import BundleError
from vitalsentry.models.fusion import TRUSTED_TYPES, make_fusion_classifier
from vitalsentry.persist import load_skops, save_skops


def test_fusion_classifier_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    y = (x[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(int)
    model = make_fusion_classifier(FusionConfig()).fit(x, y)
    save_skops(model, tmp_path / "f.skops")
    loaded = load_skops(tmp_path / "f.skops", TRUSTED_TYPES, CalibratedClassifierCV)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_refuses_unlisted_types_wrong_class_and_unfitted(tmp_path: Path) -> None:
    model = make_fusion_classifier(FusionConfig()).fit(np.eye(12), np.arange(12) % 2)
    save_skops(model, tmp_path / "f.skops")
    with pytest.raises(BundleError, match="untrusted"):
        load_skops(tmp_path / "f.skops", frozenset(), CalibratedClassifierCV)
    with pytest.raises(BundleError, match="expected"):
        load_skops(tmp_path / "f.skops", TRUSTED_TYPES, LogisticRegression)
    with pytest.raises(BundleError, match="unfitted"):
        save_skops(LogisticRegression(), tmp_path / "u.skops")
    (tmp_path / "bad.skops").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a readable skops file"):
        load_skops(tmp_path / "bad.skops", TRUSTED_TYPES, CalibratedClassifierCV)
