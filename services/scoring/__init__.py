"""Scoring stream: outlier score and KS drift against the training data, champion-vs-shadow quality."""
