"""The metadata database: tables, migrations, and repository classes that return records.

Nothing outside this folder touches a table; other parts call these classes.
"""

from matchday.store.database import Database, head_revision, redact
from matchday.store.deployment_store import DeploymentNotFound, DeploymentStore
from matchday.store.edge_store import EdgeDeviceExists, EdgeDeviceNotFound, EdgeDeviceRecord, EdgeDeviceStore
from matchday.store.errors import (
    AliasNotFound,
    Conflict,
    ModelNotFound,
    NotFound,
    StoreError,
    StoreUnavailable,
    VersionNotFound,
)
from matchday.store.leader import MONITOR_LOCK_KEY, RETRAIN_LOCK_KEY, REVIEW_LOCK_KEY, LeaderLock
from matchday.store.log_batches import MIXED as MIXED_PREDICTIONS
from matchday.store.log_batches import CorruptLogBatch, parse_json
from matchday.store.model_store import ModelStore
from matchday.store.monitoring_store import (
    AlertAlreadyFiring,
    AlertRecord,
    AlertStore,
    MetricWindow,
    MonitorStateStore,
    WebhookDelivery,
    WebhookOutbox,
    WindowKey,
    WindowStore,
)
from matchday.store.prediction_store import LOG_BATCH_SCHEMA, ArmRow, LoggedRow, PredictionLogStore, ShadowPair
from matchday.store.principal_store import PrincipalNotFound, PrincipalStore
from matchday.store.profiles import (
    CategoricalProfile,
    ColumnProfile,
    Histogram,
    LabelledSample,
    NumericProfile,
    ReferenceData,
    ReferenceProfile,
    TailQuantiles,
)
from matchday.store.records import (
    AliasMove,
    DeploymentRecord,
    EventRecord,
    LabelOutcome,
    ModelRecord,
    ModelVersionRecord,
    PredictionRecord,
    RetrainRunRecord,
    RolloutRecord,
    SessionRecord,
    TokenRecord,
    UserRecord,
)
from matchday.store.retrain_store import RetrainAlreadyActive, RetrainRunNotFound, RetrainStore, StaleRetrainRun
from matchday.store.review_store import (
    ReviewDecisionRecord,
    ReviewItemNotFound,
    ReviewItemRecord,
    ReviewStore,
    Settlement,
)
from matchday.store.rollout_store import (
    EventStore,
    RolloutAlreadyActive,
    RolloutNotFound,
    RolloutStore,
    StaleRollout,
)

__all__ = [
    "AlertAlreadyFiring",
    "AlertRecord",
    "AlertStore",
    "LOG_BATCH_SCHEMA",
    "LoggedRow",
    "MIXED_PREDICTIONS",
    "MetricWindow",
    "MonitorStateStore",
    "WebhookDelivery",
    "WebhookOutbox",
    "WindowKey",
    "WindowStore",
    "AliasMove",
    "CorruptLogBatch",
    "ArmRow",
    "EventRecord",
    "EventStore",
    "LeaderLock",
    "MONITOR_LOCK_KEY",
    "REVIEW_LOCK_KEY",
    "RETRAIN_LOCK_KEY",
    "RetrainAlreadyActive",
    "RetrainRunNotFound",
    "RetrainRunRecord",
    "RetrainStore",
    "StaleRetrainRun",
    "ReviewDecisionRecord",
    "ReviewItemNotFound",
    "ReviewItemRecord",
    "ReviewStore",
    "Settlement",
    "RolloutAlreadyActive",
    "RolloutNotFound",
    "RolloutRecord",
    "RolloutStore",
    "ShadowPair",
    "StaleRollout",
    "AliasNotFound",
    "Conflict",
    "Database",
    "DeploymentNotFound",
    "DeploymentRecord",
    "DeploymentStore",
    "EdgeDeviceExists",
    "EdgeDeviceNotFound",
    "EdgeDeviceRecord",
    "EdgeDeviceStore",
    "LabelOutcome",
    "PredictionLogStore",
    "PredictionRecord",
    "PrincipalNotFound",
    "PrincipalStore",
    "CategoricalProfile",
    "ColumnProfile",
    "Histogram",
    "LabelledSample",
    "NumericProfile",
    "ReferenceData",
    "ReferenceProfile",
    "TailQuantiles",
    "SessionRecord",
    "TokenRecord",
    "UserRecord",
    "ModelNotFound",
    "ModelRecord",
    "ModelStore",
    "ModelVersionRecord",
    "NotFound",
    "StoreError",
    "StoreUnavailable",
    "VersionNotFound",
    "head_revision",
    "parse_json",
    "redact",
]
