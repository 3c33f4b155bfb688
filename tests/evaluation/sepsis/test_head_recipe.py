import dataclasses

import numpy as np
import pytest

from vitalsentry.config import ModelConfig
from vitalsentry.errors import BundleError, DataError, TrainingError
from vitalsentry.evaluation.sepsis.baselines import GbmConfig
from vitalsentry.evaluation.sepsis.recipe import HeadRecipe
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.stages import (
    CONTEXT_HEAD_META,
    ContextHeadStage,
    ContextInputs,
    EncoderStage,
    FitInputs,
    Stages,
)

# one septic patient (SepsisLabel from row 14: onset at row 20, d = t - 20), one who never is
SEPTIC = np.r_[np.zeros(14, np.int8), np.ones(16, np.int8)]
PATIENT = np.r_[np.zeros(30, int), np.ones(6, int)]
LABELS = np.r_[SEPTIC, np.zeros(6, np.int8)]


def _raw_weights(recipe: HeadRecipe) -> tuple[np.ndarray, np.ndarray]:
    """Labels and weights in units of the raw gain (a non-septic hour weighs 0.05)."""
    fit_labels, weights = recipe.targets(PATIENT, LABELS, np.ones(LABELS.size, bool))
    assert weights is not None
    assert weights.mean() == pytest.approx(1.0)
    return fit_labels, weights / weights[-1] * 0.05


@pytest.mark.parametrize(
    ("t", "label", "weight"),
    [
        (0, 0, 0.05),  # 20 h before onset: an alarm costs the false-alarm 0.05
        (8, 0, 0.05),  # 12 h before: gain 0, the floor
        (11, 1, 0.5),  # 9 h before: SepsisLabel 0 but an alarm earns 0.5
        (14, 1, 1.0),  # 6 h before (first SepsisLabel hour): alarm 1, miss 0
        (20, 1, 5.0 / 3.0),  # onset: alarm 1/3, miss -4/3
        (23, 1, 2.0),  # 3 h after: alarm 0, miss -2
        (24, 1, 0.05),  # 4 h after: gain 0, SepsisLabel 1 keeps the floor
        (30, 0, 0.05),  # a patient never septic
    ],
)
def test_utility_weights_in_each_region_of_the_curve(t: int, label: int, weight: float) -> None:
    fit_labels, weights = _raw_weights(HeadRecipe(target="utility"))
    assert fit_labels[t] == label
    assert weights[t] == pytest.approx(weight)


def test_the_floor_sets_the_weight_of_hours_the_utility_ignores() -> None:
    _, weights = HeadRecipe(target="utility", floor=0.5).targets(
        PATIENT, LABELS, np.ones(LABELS.size, bool)
    )
    assert weights is not None
    assert weights[24] == weights[8] == weights[0] == weights[30]
    assert weights[23] == pytest.approx(4 * weights[0])


def test_the_label_recipe_is_the_labels_unweighted() -> None:
    fit_labels, weights = HeadRecipe().targets(None, LABELS, np.ones(LABELS.size, bool))
    np.testing.assert_array_equal(fit_labels, LABELS)
    assert weights is None


def test_a_bad_recipe_is_refused() -> None:
    with pytest.raises(DataError, match="unknown head target"):
        HeadRecipe(target="onset")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="floor"):
        HeadRecipe(target="utility", floor=0.0)
    with pytest.raises(TrainingError, match="patient"):
        HeadRecipe(target="utility").targets(None, LABELS, np.ones(LABELS.size, bool))


def _early_signal_table(recipe: HeadRecipe) -> ContextInputs:
    """Patients of 40 h, a third septic (SepsisLabel from hour 24): one feature flags the
    hours 6 to 12 h before onset (SepsisLabel still 0, but an alarm pays), another the
    SepsisLabel hours."""
    rng = np.random.default_rng(0)
    n_patients, hours = 300, 40
    patient = np.repeat(np.arange(n_patients), hours)
    t = np.tile(np.arange(hours), n_patients)
    septic = np.repeat(rng.random(n_patients) < 1 / 3, hours)
    labels = (septic & (t >= 24)).astype(np.int8)
    early = septic & (t >= 19) & (t < 24)
    noise = 0.3 * rng.normal(size=(t.size, 2))
    x = (np.c_[early, labels] + noise).astype(np.float32)
    split = np.repeat(rng.choice(np.array([0, 1], np.int8), n_patients, p=[0.7, 0.3]), hours)
    gbm = GbmConfig(max_iter=30, min_samples_leaf=5, n_iter_no_change=0)
    return ContextInputs([x], labels, split, gbm, recipe, patient)


@pytest.mark.parametrize(("recipe", "alarmed"), [("utility", True), ("label", False)])
def test_only_the_utility_recipe_ranks_the_early_hours_above_the_rest(
    recipe: str, alarmed: bool
) -> None:
    table = _early_signal_table(HeadRecipe(target=recipe))  # type: ignore[arg-type]
    encoder = EncoderStage(Autoencoder(ModelConfig(input_channels=2, seq_len=8)), ("a", "b"), [])
    chain = Stages({EncoderStage.name: encoder}).fit(
        (ContextHeadStage.name,), FitInputs(context=table)
    )
    risk = chain.get(ContextHeadStage).predict(table.blocks)
    septic = np.isin(table.patient, table.patient[table.labels == 1])
    hours = np.arange(table.labels.size) % 40
    early = septic & (hours >= 19) & (hours < 24)
    assert (np.median(risk[early]) > np.quantile(risk[~septic], 0.9)) == alarmed


def test_the_head_json_takes_a_recipe_or_none_and_refuses_a_bad_one() -> None:
    check = ContextHeadStage.json_checks[CONTEXT_HEAD_META]
    old = {
        "gbm": dataclasses.asdict(GbmConfig()),
        "platt": {"a": 1.0, "b": 0.0},
        "features": 2,
        "summary": {},
        "encoder": "0" * 64,
    }
    check(old)  # written before the recipe was recorded: trained on labels
    check(old | {"recipe": dataclasses.asdict(HeadRecipe(target="utility"))})
    for bad in ({"target": "onset"}, {"floor": -1.0}, {"members": 3}):
        with pytest.raises(BundleError, match="context head recipe"):
            check(old | {"recipe": {"target": "label", "floor": 0.05} | bad})
