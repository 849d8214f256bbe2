"""The metadata database: tables, migrations, and repository classes that return records.

Nothing outside this folder touches a table; other parts call these classes.
"""

from matchday.store.database import Database, head_revision, redact
from matchday.store.errors import (
    AliasNotFound,
    Conflict,
    ModelNotFound,
    NotFound,
    StoreError,
    StoreUnavailable,
    VersionNotFound,
)
from matchday.store.model_store import ModelStore
from matchday.store.records import AliasMove, ModelRecord, ModelVersionRecord

__all__ = [
    "AliasMove",
    "AliasNotFound",
    "Conflict",
    "Database",
    "ModelNotFound",
    "ModelRecord",
    "ModelStore",
    "ModelVersionRecord",
    "NotFound",
    "StoreError",
    "StoreUnavailable",
    "VersionNotFound",
    "head_revision",
    "redact",
]
