"""Settings, from the environment and an optional ``matchday.yaml``, validated by Pydantic.

Precedence: environment variables (``MATCHDAY_*``), then ``matchday.yaml`` in the working directory
(or the file ``MATCHDAY_CONFIG`` names; without either, the home's ``matchday.yaml``, as `make demo`
writes it), then defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from matchday.errors import MatchdayError


class ConfigError(MatchdayError):
    """The settings file or an environment variable holds something we cannot use."""


class MonitoringSettings(BaseModel):
    """How the monitoring loop slices the prediction log (``monitoring:`` in matchday.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count_window: int = Field(default=1000, ge=10, le=1_000_000, description="rows per window by count")
    segments: dict[str, list[str]] = Field(
        default_factory=dict, description="deployment (or '*') -> input features to slice metrics by"
    )
    max_segment_values: int = Field(
        default=20, ge=1, le=1000, description="values per segment feature with their own series"
    )
    images: dict[str, list[str]] = Field(
        default_factory=dict, description="deployment (or '*') -> the pixel inputs of an image (names or prefix*)"
    )
    texts: dict[str, list[str]] = Field(default_factory=dict, description="deployment (or '*') -> free-text inputs")
    concept_drift: dict[str, Any] = Field(
        default_factory=lambda: {"detector": "adwin"},
        description="detector on the labelled errors: adwin, page_hinkley or ddm, and its parameters",
    )


class Settings(BaseModel):
    """Where matchday keeps its metadata and artifacts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Path(".matchday")
    database_url: str | None = None
    artifact_url: str | None = None
    controller_interval: float = Field(default=1.0, gt=0, le=60, description="seconds between rollout controller ticks")
    warm_before_listen: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="seconds a server may spend warming its deployed versions before it listens "
        "(a longer warm-up goes on while it answers /v2/health/live, not ready)",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="seconds a server waits for each part of a request body before it answers 408 and "
        "closes the connection (a client that stalls holds nothing longer)",
    )
    model_timeout: float = Field(
        default=30.0,
        gt=0,
        le=86400,
        description="seconds a model call may take: past it the requests of its micro-batch answer 504",
    )
    max_in_flight: int = Field(
        default=1024,
        ge=1,
        le=1_000_000,
        description="prediction requests each deployment may have in progress per server process; "
        "past it 429 with Retry-After instead of a longer queue",
    )
    max_upload_bytes: int = Field(
        default=1024**3,
        ge=1024,
        le=64 * 1024**3,
        description="bytes a model upload (POST /v1/models/{name}/versions: the artifact, its reference and "
        "fields) may have; it is written to a file under the home folder as it arrives, never held in memory",
    )
    log_process: bool = Field(
        default=True,
        description="write the prediction log from a process beside the server's (off: from threads in it)",
    )
    shadow_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU niceness of the process that scores shadows: "
        "higher yields more to the answers clients wait for, and drops more copies when busy",
    )
    auth: Literal["auto", "required"] = Field(
        default="auto",
        description="ask callers for a credential: 'auto' as soon as one user or token exists, "
        "'required' always (a server with no credential yet then answers only its open routes)",
    )
    open_metrics: bool = Field(
        default=True, description="let /metrics and /healthz answer without a credential (Prometheus scrapes)"
    )
    allowed_hosts: str = Field(
        default="",
        description="comma-separated Host names the server answers browsers for (besides loopback names); "
        "'*' for any. A browser's request for another Host is refused (DNS rebinding)",
    )
    monitor_interval: float = Field(default=5.0, gt=0, le=3600, description="seconds between monitoring loop ticks")
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    monitors: list[dict[str, Any]] = Field(default_factory=list, description="monitors (see docs/monitoring.md)")
    rollouts: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per deployment: the rollout plan `rollout start` uses"
    )
    retrain: list[dict[str, Any]] = Field(
        default_factory=list, description="retraining policies, one per deployment (see docs/retraining.md)"
    )
    retrain_engine: Literal["local", "ray"] = Field(
        default="local",
        description="where the worker runs a trainer: 'local' in a child process, 'ray' as a Ray task",
    )
    ray_address: str | None = Field(
        default=None, description="the Ray cluster to run trainers on (`ray.init(address=...)`); none: a local one"
    )

    @property
    def resolved_database_url(self) -> str:
        """The metadata database: the configured URL, or a SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'matchday.db').absolute()}"

    @property
    def resolved_artifact_url(self) -> str:
        """The artifact store: the configured fsspec URL, or a folder under ``home``."""
        if self.artifact_url:
            return self.artifact_url
        return str((self.home / "artifacts").absolute())


_ENV = {
    "home": "MATCHDAY_HOME",
    "database_url": "MATCHDAY_DATABASE_URL",
    "artifact_url": "MATCHDAY_ARTIFACT_URL",
    "controller_interval": "MATCHDAY_CONTROLLER_INTERVAL",
    "body_timeout": "MATCHDAY_BODY_TIMEOUT",
    "model_timeout": "MATCHDAY_MODEL_TIMEOUT",
    "max_in_flight": "MATCHDAY_MAX_IN_FLIGHT",
    "max_upload_bytes": "MATCHDAY_MAX_UPLOAD_BYTES",
    "shadow_nice": "MATCHDAY_SHADOW_NICE",
    "log_process": "MATCHDAY_LOG_PROCESS",
    "warm_before_listen": "MATCHDAY_WARM_BEFORE_LISTEN",
    "monitor_interval": "MATCHDAY_MONITOR_INTERVAL",
    "auth": "MATCHDAY_AUTH",
    "open_metrics": "MATCHDAY_OPEN_METRICS",
    "allowed_hosts": "MATCHDAY_ALLOWED_HOSTS",
    "retrain_engine": "MATCHDAY_RETRAIN_ENGINE",
    "ray_address": "MATCHDAY_RAY_ADDRESS",
}
_FILE_ONLY = ("rollouts", "monitoring", "monitors", "retrain")


def load_settings(environ: dict[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Read settings from ``matchday.yaml`` (if present) overlaid by ``MATCHDAY_*`` variables."""
    env = dict(os.environ if environ is None else environ)
    path = config_file or Path(env.get("MATCHDAY_CONFIG", "matchday.yaml"))
    if config_file is None and not env.get("MATCHDAY_CONFIG") and not path.exists():
        path = Path(env.get("MATCHDAY_HOME") or Settings.model_fields["home"].default) / "matchday.yaml"
    values: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of settings, not {type(loaded).__name__}")
        values.update({k: v for k, v in loaded.items() if k in _ENV or k in _FILE_ONLY})
    for field, var in _ENV.items():
        if env.get(var):
            values[field] = env[var]
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(
            "invalid settings", [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        ) from exc
