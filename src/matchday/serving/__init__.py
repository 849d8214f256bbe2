"""Online serving: the FastAPI app (own JSON and Open Inference Protocol V2), validation,
micro-batching, feedback intake and /metrics."""

from matchday.serving.app import create_app, create_app_from_env
from matchday.serving.auth_gate import CSRF_FIELD, SESSION_COOKIE, actor_of, principal_of
from matchday.serving.batching import MicroBatcher, merge, split
from matchday.serving.errors import (
    BadRequest,
    InvalidRequest,
    PayloadTooLarge,
    ServingError,
    Unavailable,
    headers_for,
    status_for,
)
from matchday.serving.listen import check_listen, is_loopback
from matchday.serving.service import PredictionService

__all__ = [
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "actor_of",
    "check_listen",
    "is_loopback",
    "principal_of",
    "BadRequest",
    "InvalidRequest",
    "MicroBatcher",
    "PayloadTooLarge",
    "PredictionService",
    "ServingError",
    "create_app",
    "create_app_from_env",
    "merge",
    "split",
    "Unavailable",
    "headers_for",
    "status_for",
]
