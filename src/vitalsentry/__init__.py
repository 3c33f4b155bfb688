"""vitalsentry: calibrated, explained deterioration risk from vital-sign time series."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
