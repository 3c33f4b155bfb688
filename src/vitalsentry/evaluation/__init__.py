"""Evaluation: metrics, baselines and the report."""
