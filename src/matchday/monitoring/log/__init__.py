"""The prediction log: a non-blocking batched writer that loses nothing (spool, replay), its rows
read back as columns, and the export to Parquet."""

from matchday.monitoring.log.columns import (
    LogColumns,
    label_text,
    to_datetime,
    to_micros,
)
from matchday.monitoring.log.export import ExportSummary, export_log
from matchday.monitoring.log.process import LogProcess
from matchday.monitoring.log.writer import LogWriter, PredictionLogWriter, WriterStats, json_safe

__all__ = [
    "ExportSummary",
    "LogColumns",
    "LogProcess",
    "LogWriter",
    "PredictionLogWriter",
    "WriterStats",
    "export_log",
    "json_safe",
    "label_text",
    "to_datetime",
    "to_micros",
]
