"""Batch scoring: files and tables scored offline in bounded memory, with rejects, a resumable
manifest, the deployment's log fed (marked ``source: batch``), locally or on Ray Data."""

from matchday.batch.errors import (
    BatchError,
    BatchInputError,
    OutputExists,
    RejectRateExceeded,
    ResumeRefused,
    ScoringFailed,
)
from matchday.batch.job import BatchJob, BatchOptions, BatchResult, BatchScoring
from matchday.batch.manifest import MANIFEST, Manifest, read_manifest
from matchday.batch.monitor_feed import request_id
from matchday.batch.ray_engine import pool_shape

__all__ = [
    "MANIFEST",
    "BatchError",
    "BatchInputError",
    "BatchJob",
    "BatchOptions",
    "BatchResult",
    "BatchScoring",
    "Manifest",
    "OutputExists",
    "RejectRateExceeded",
    "ResumeRefused",
    "ScoringFailed",
    "pool_shape",
    "read_manifest",
    "request_id",
]
