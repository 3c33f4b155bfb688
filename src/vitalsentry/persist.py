"""Safe persistence of scikit-learn objects with skops: no code runs on load.

A file's types (per :func:`skops.io.get_untrusted_types`) must all be on the caller's
allow-list, otherwise loading is refused with a :class:`~vitalsentry.errors.BundleError`.
"""

from __future__ import annotations

import os
from collections.abc import Set
from pathlib import Path
from typing import TypeVar

import skops.io as sio
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from vitalsentry.errors import BundleError
from vitalsentry.io import atomic_path

T = TypeVar("T")


def save_skops(obj: object, path: str | os.PathLike[str]) -> None:
    """Save a fitted estimator with skops, atomically.

    Raises
    ------
    BundleError
        The estimator is not fitted.
    """
    try:
        check_is_fitted(obj)
    except NotFittedError as exc:
        raise BundleError(f"cannot save an unfitted {type(obj).__name__} to {path}") from exc
    with atomic_path(path) as tmp:
        sio.dump(obj, tmp)


def load_skops(path: str | os.PathLike[str], trusted: Set[str], expected: type[T]) -> T:
    """Load a fitted estimator saved by :func:`save_skops`, executing no code.

    Parameters
    ----------
    path : path-like
        The skops file.
    trusted : set of str
        Fully qualified type names allowed beyond skops' own defaults.
    expected : type
        The class the file must hold.

    Raises
    ------
    BundleError
        Missing or unreadable file, a type outside the allow-list, an object of another
        class, or an unfitted estimator.
    """
    file = Path(path)
    if not file.is_file():
        raise BundleError(f"{file}: file not found")
    try:
        untrusted = sio.get_untrusted_types(file=file)
    except Exception as exc:  # skops raises many types on a corrupt archive
        raise BundleError(f"{file}: not a readable skops file ({exc})") from exc
    refused = sorted(set(untrusted) - set(trusted))
    if refused:
        raise BundleError(f"{file}: refusing to load untrusted type(s) {', '.join(refused)}")
    try:
        obj = sio.load(file, trusted=untrusted)
    except Exception as exc:
        raise BundleError(f"{file}: cannot load ({exc})") from exc
    if not isinstance(obj, expected):
        raise BundleError(f"{file}: expected an {expected.__name__}, got {type(obj).__name__}")
    try:
        check_is_fitted(obj)
    except NotFittedError as exc:
        raise BundleError(f"{file}: the saved {expected.__name__} is not fitted") from exc
    return obj
