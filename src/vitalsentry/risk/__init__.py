"""Risk: detectors, calibration, alarm policy and the NEWS2 baseline."""
