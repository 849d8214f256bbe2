"""Monitors: a metric over a window, a condition, and what to do when it holds long enough.

Declared in ``matchday.yaml`` under ``monitors:``; every deployment also gets the default ones. A
monitor is checked on each window as it is updated; ``breaches`` consecutive windows that meet the
condition open one alert (deduplicated), the first window that does not resolves it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from matchday.durations import Seconds
from matchday.errors import MatchdayError
from matchday.monitoring.alerts.webhooks import InvalidWebhook, validate_webhook_url
from matchday.monitoring.windows import count_width, known_metric, parse_window

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_CONDITION = re.compile(r"^\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$")
ACTIONS = ("alert", "log", "webhook", "rollback", "review", "retrain")
SEVERITIES = ("info", "warning", "critical")


class InvalidMonitor(MatchdayError, ValueError):
    """A monitor in matchday.yaml (or given to the API) that cannot be checked; the message says why."""


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    url: str | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in ACTIONS:
            raise ValueError(f"unknown action {v!r}; one of {', '.join(ACTIONS)}")
        return v


class MonitorSpec(BaseModel):
    """One monitor as declared; ``when`` compares the metric (or its change from ``relative_to``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    metric: str
    window: str = "5m"
    when: str
    deployment: str | None = None  # None: every deployment
    relative_to: str | None = None  # None | reference | baseline
    severity: str = "warning"
    breaches: int = Field(default=1, ge=1, le=1000)
    cooldown: Seconds = 0.0  # seconds after a resolve before the same monitor may open again
    min_rows: int = Field(default=50, ge=1)
    segment: str | None = None  # a feature: the monitor runs on each of its values' series
    actions: list[Action] = Field(default_factory=lambda: [Action(kind="alert")])

    @field_validator("when")
    @classmethod
    def _when(cls, v: str) -> str:
        if not _CONDITION.match(v):
            raise ValueError(f"condition {v!r} is not `OP NUMBER` with OP one of >, >=, <, <= (e.g. '> 0.05')")
        return v.strip()

    @field_validator("severity")
    @classmethod
    def _severity(cls, v: str) -> str:
        if v not in SEVERITIES:
            raise ValueError(f"severity {v!r} is not one of {', '.join(SEVERITIES)}")
        return v

    @field_validator("relative_to")
    @classmethod
    def _relative(cls, v: str | None) -> str | None:
        if v not in (None, "reference", "baseline"):
            raise ValueError(f"relative_to {v!r} is not `reference` or `baseline`")
        return v

    @field_validator("actions", mode="before")
    @classmethod
    def _actions(cls, v: Any) -> Any:
        """Actions as ``[alert, rollback, {webhook: URL}]`` (the short form people write)."""
        if not isinstance(v, list):
            raise ValueError("actions is a list, e.g. [alert, {webhook: 'http://...'}, rollback]")
        out = []
        for item in v:
            if isinstance(item, str):
                out.append({"kind": item})
            elif isinstance(item, dict) and len(item) == 1 and "kind" not in item:
                kind, value = next(iter(item.items()))
                out.append({"kind": kind, "url": value} if kind == "webhook" else {"kind": kind})
            else:
                out.append(item)
        return out

    @model_validator(mode="after")
    def _check(self) -> MonitorSpec:
        parse_window(self.window)  # an UnknownWindow is a ValueError: reported with the monitor
        if not known_metric(self.metric):
            raise ValueError(f"unknown metric {self.metric!r}; see `matchday metrics --list`")
        for action in self.actions:
            if action.kind == "webhook" and not action.url:
                raise ValueError("a webhook action needs a URL: {webhook: 'https://...'}")
            if action.kind == "webhook" and action.url:
                try:
                    validate_webhook_url(action.url)
                except InvalidWebhook as exc:
                    raise ValueError(exc.message) from exc
        return self

    @property
    def operator(self) -> str:
        m = _CONDITION.match(self.when)
        assert m
        return m.group(1)

    @property
    def threshold(self) -> float:
        m = _CONDITION.match(self.when)
        assert m
        return float(m.group(2))

    def breached(self, value: float) -> bool:
        return _OPS[self.operator](value, self.threshold)

    def applies_to(self, deployment: str) -> bool:
        return self.deployment is None or self.deployment == deployment


def parse_monitors(items: list[dict[str, Any]] | None, *, count_window: int) -> list[MonitorSpec]:
    """Monitors from ``matchday.yaml``: every problem in every monitor reported at once."""
    out: list[MonitorSpec] = []
    problems: list[str] = []
    names: set[str] = set()
    for i, item in enumerate(items or []):
        label = item.get("name", f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
        try:
            spec = MonitorSpec.model_validate(item)
        except ValidationError as exc:
            problems += [
                f"monitor {label}: {'.'.join(str(p) for p in e['loc']) or 'monitor'}: {e['msg']}" for e in exc.errors()
            ]
            continue
        if parse_window(spec.window).rows not in (None, count_window):
            problems.append(
                f"monitor {label}: window {spec.window} is not the configured count window "
                f"({count_width(count_window)}; set monitoring.count_window)"
            )
        if spec.name in names:
            problems.append(f"monitor {label}: a second monitor with this name")
        names.add(spec.name)
        out.append(spec)
    if problems:
        raise InvalidMonitor("invalid monitors in matchday.yaml", problems)
    return out


def default_monitors(count_window: int) -> list[MonitorSpec]:
    """What every deployment is watched for unless matchday.yaml says otherwise (same name replaces it)."""
    rows = count_width(count_window)
    return [
        MonitorSpec(
            name="error-rate",
            metric="error_rate",
            window="5m",
            when="> 0.05",
            severity="critical",
            breaches=1,
            min_rows=20,
        ),
        MonitorSpec(
            name="latency-p99",
            metric="latency_p99",
            window="5m",
            when="> 1.0",
            severity="warning",
            breaches=2,
            min_rows=20,
        ),
        MonitorSpec(
            name="data-drift",
            metric="drift_share",
            window=rows,
            when="> 0.3",
            severity="warning",
            breaches=2,
            min_rows=count_window // 2,
        ),
        MonitorSpec(
            name="prediction-drift",
            metric="prediction_drift_detected",
            window=rows,
            when="> 0.5",
            severity="warning",
            breaches=2,
            min_rows=count_window // 2,
        ),
        MonitorSpec(
            name="accuracy-drop",
            metric="accuracy",
            window=rows,
            relative_to="reference",
            when="< -0.05",
            severity="critical",
            breaches=2,
            min_rows=count_window // 2,
        ),
        MonitorSpec(
            name="concept-drift",
            metric="concept_drift",
            window=rows,
            when="> 0.5",
            severity="warning",
            breaches=1,
            min_rows=1,
        ),
    ]


def monitors_for(deployment: str, declared: list[MonitorSpec], defaults: list[MonitorSpec]) -> list[MonitorSpec]:
    mine = [m for m in declared if m.applies_to(deployment)]
    names = {m.name for m in mine}
    return [m for m in defaults if m.name not in names] + mine


@dataclass
class Verdict:
    """One monitor on one window: the value compared, and whether the condition held."""

    monitor: MonitorSpec
    value: float | None
    compared: float | None  # the value, or its change from the reference/baseline
    breached: bool | None  # None: not enough rows, or no value (inconclusive: neither breach nor recovery)
    reason: str
    data: dict[str, Any] = field(default_factory=dict)


def judge(monitor: MonitorSpec, metrics: dict[str, Any], *, reference: float | None = None) -> Verdict:
    value = metrics.get(monitor.metric)
    rows = metrics.get("rows") or 0
    if rows < monitor.min_rows:
        return Verdict(monitor, value, None, None, f"{rows:.0f} rows, fewer than the {monitor.min_rows} needed")
    if value is None:
        return Verdict(monitor, None, None, None, f"{monitor.metric} has no value in this window")
    compared = float(value)
    if monitor.relative_to is not None:
        if reference is None:
            return Verdict(monitor, value, None, None, f"no {monitor.relative_to} value of {monitor.metric}")
        compared = float(value) - reference
    breached = monitor.breached(compared)
    what = (
        f"{monitor.metric} {float(value):.4g}, {compared:+.4g} vs {monitor.relative_to}"
        if monitor.relative_to
        else f"{monitor.metric} = {compared:.4g}"
    )
    return Verdict(
        monitor,
        float(value),
        compared,
        breached,
        f"{what} ({'meets' if breached else 'does not meet'} {monitor.when})",
        {"reference": reference},
    )
