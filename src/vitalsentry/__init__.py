"""vitalsentry: calibrated, explained deterioration risk from vital-sign time series.

The public API: :class:`VitalRiskPipeline` (load a bundle, score readings), :func:`load_bundle`
(open and verify a bundle folder) and ``__version__``. The two are imported on first use so
that ``import vitalsentry`` stays light (no torch import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["VitalRiskPipeline", "__version__", "load_bundle"]

if TYPE_CHECKING:
    from vitalsentry.bundle import load_bundle
    from vitalsentry.pipeline import VitalRiskPipeline

_LAZY = {"VitalRiskPipeline": "vitalsentry.pipeline", "load_bundle": "vitalsentry.bundle"}


def __getattr__(name: str) -> Any:
    """Import a public name on first access (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'vitalsentry' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(_LAZY[name]), name)
