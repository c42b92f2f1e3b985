"""Prediction intake for monitoring-only deployments: the monitor endpoint and `predictions.raw`."""
