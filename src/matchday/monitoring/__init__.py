"""Monitoring: the prediction log (a batched writer that loses nothing) and, later, windows,
metrics, drift and alerts over it."""

from matchday.monitoring.prediction_log import PredictionLogWriter, WriterStats, json_safe

__all__ = ["PredictionLogWriter", "WriterStats", "json_safe"]
