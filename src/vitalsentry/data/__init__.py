"""Data layer: sources → readings frame → grid → features → windows → splits → scaler."""
