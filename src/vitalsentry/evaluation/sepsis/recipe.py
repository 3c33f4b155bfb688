"""How the risk head is trained: on ``SepsisLabel``, or on the hours where an alarm pays.

The normalised utility is a sum over patient-hours, so the best alarm at an hour is the
one whose expected gain is positive, with ``gain = u_pos - u_neg`` (:func:`row_utilities`):
-0.05 at every hour of a patient who never becomes septic and at a septic patient's hours
12 h or more before onset, rising from 0 to 1 between 12 and 6 h before onset, then from
1 to 2 at 3 h after onset, and 0 later. The ``"utility"`` recipe fits the classifier on
label ``SepsisLabel or gain > 0`` with sample weight ``max(|gain|, floor)``: hours where a
right or wrong alarm matters most weigh most, hours 6 to 12 h before onset (which
``SepsisLabel`` calls negative although an alarm there earns up to 1) count as positive,
and ``SepsisLabel`` hours long after onset (gain 0: the utility ignores them, the hourly
ROC-AUC does not) keep the weight ``floor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from vitalsentry.errors import DataError, TrainingError
from vitalsentry.evaluation.sepsis.utility import relative_hours, row_utilities


@dataclass(frozen=True)
class HeadRecipe:
    """What the risk head's classifier is fitted on (its features aside).

    Attributes
    ----------
    target : {"label", "utility"}
        ``"label"``: ``SepsisLabel``, every hour weighing 1 (the baselines' recipe).
        ``"utility"``: label ``SepsisLabel or gain > 0``, weight ``max(|gain|, floor)``
        (see the module notes), on training and early-stopping rows alike.
    floor : float
        Least weight of an hour (``"utility"`` only); the default equals the false-alarm
        cost, so an hour the utility ignores weighs as much as a non-septic hour.
    """

    target: Literal["label", "utility"] = "label"
    floor: float = 0.05

    def __post_init__(self) -> None:
        """Refuse an unknown target or a floor that is not positive."""
        if self.target not in ("label", "utility"):
            raise DataError(f"unknown head target {self.target!r}: choose label or utility")
        if not self.floor > 0:
            raise DataError(f"the head's weight floor must be > 0, got {self.floor}")

    def targets(
        self, patient: NDArray[Any] | None, labels: NDArray[np.int8], train: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int8], NDArray[np.float64] | None]:
        """Classifier labels and sample weights of every row (weights None: all equal).

        Parameters
        ----------
        patient : ndarray, shape (n,), or None
            Patient of each row (each patient's rows contiguous, in time order); the
            ``"utility"`` target needs it.
        labels : ndarray of int8, shape (n,)
            ``SepsisLabel``.
        train : ndarray of bool, shape (n,)
            Training rows: the weights are scaled to mean 1 there (so the classifier's
            regularisation acts as in an unweighted fit).

        Returns
        -------
        (labels, weights) : ndarray of int8 and ndarray of float64 or None, shape (n,)
        """
        y = np.asarray(labels, np.int8)
        if self.target == "label":
            return y, None
        if patient is None:
            raise TrainingError("the utility target needs each row's patient")
        u_pos, u_neg = row_utilities(relative_hours(patient, y))
        gain = u_pos - u_neg
        weights = np.maximum(np.abs(gain), self.floor)
        fit_labels = ((y == 1) | (gain > 0)).astype(np.int8)
        return fit_labels, weights / weights[train].mean()
