"""A local Ray cluster for the tests that need one, one at a time across the xdist workers, and never beside
the tests whose bound is a time (the kill -9 tests)."""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def one_ray_cluster_at_a_time() -> Iterator[None]:
    """Held while a test runs a local Ray cluster, and while a timing-bound test runs: a cluster's dozen
    processes on the two CPUs starved the tests beside them (a kill -9 test lost rows answered a second
    before the kill, which its log process had no CPU to journal)."""
    with open(Path(tempfile.gettempdir()) / "matchday-tests-ray.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
