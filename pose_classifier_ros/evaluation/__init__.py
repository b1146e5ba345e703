"""Evaluation beyond one accuracy: groups, confidence intervals, targets, calibration, selective prediction."""
