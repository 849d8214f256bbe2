"""A rollout plan: the strategy and the numbers that steer it, validated before anything moves.

Durations read like ``30s``, ``5m``, ``1h`` (or plain seconds): `matchday.durations`. Gate defaults are deliberately
tolerant: a failed analysis rolls back, so a gate must fail for a reason, not for noise.

Two canary options are for rollouts nobody watches (a retrained candidate, say): ``shadow_first``
mirrors all traffic to the candidate for that long, answering nothing, and judges it before its
first step; ``judged_only`` lets the controller promote only on analyses whose every gate was
judged and passed (none skipped, so labels are required).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from matchday.durations import OptionalSeconds, Seconds, parse_duration
from matchday.rollout.errors import InvalidPlan

Strategy = Literal["canary", "shadow", "bluegreen", "ab"]
_DEFAULT_STEPS: list[float] = [10, 25, 50, 100]  # annotated: a bare [10, ...] lambda infers list[int]


class Gates(BaseModel):
    """The conditions a canary must meet against the baseline in the same window."""

    model_config = ConfigDict(extra="forbid")

    max_error_rate_increase: float = Field(
        default=0.01, ge=0, le=1, description="canary error rate minus baseline's, at most"
    )
    max_latency_p99_ratio: float = Field(default=1.5, gt=0, description="canary p99 over baseline p99, at most ...")
    latency_slack_seconds: float = Field(
        default=0.005, ge=0, description="... plus this much, so microseconds never fail"
    )
    max_prediction_divergence: float = Field(
        default=0.2, ge=0, le=1, description="Jensen-Shannon distance of the prediction distributions"
    )
    max_metric_drop: float = Field(
        default=0.02, ge=0, description="accuracy lower (or MAE higher) than baseline by at most"
    )
    labels: Literal["required", "optional", "off"] = Field(
        default="optional",
        description="required: too few labels is inconclusive; optional: judged when there are enough",
    )
    min_labels: int = Field(default=50, ge=1, description="labelled rows per version before accuracy is judged")


class RolloutPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = "canary"
    steps: list[float] = Field(
        default_factory=lambda: _DEFAULT_STEPS.copy(),
        description="canary: traffic share per step, in percent, ending at 100",
    )
    interval: Seconds = Field(default=300.0, description="minimum time each step is held (seconds, or '5m')")
    min_requests: int = Field(
        default=200, ge=1, description="rows each version must answer in a step before it is judged"
    )
    failure_limit: int = Field(default=0, ge=0, description="failed analyses tolerated; one more rolls back")
    deadline: OptionalSeconds = Field(
        default=None,
        description="a step still inconclusive after this long pauses for a human (default: 10 x interval)",
    )
    fallback: bool = Field(default=False, description="a request the canary fails is answered by the baseline")
    share: float | None = Field(
        default=None, gt=0, le=100, description="shadow: percent mirrored (100); ab: percent to the candidate (50)"
    )
    warmup_rows: int = Field(
        default=16, ge=0, description="bluegreen: rows scored on the new version before the switch"
    )
    shadow_first: float | None = Field(
        default=None,
        description="canary: mirror all traffic to the candidate this long (e.g. '30m'), answering nothing, "
        "and judge it against the baseline before the first step (0 or unset: no shadow phase)",
    )
    judged_only: bool = Field(
        default=False,
        description="canary: promote only on gates that were all judged and passed; no gate is skipped, "
        "so too few labels is inconclusive, never a pass (labels may not be 'off')",
    )
    gates: Gates = Field(default_factory=Gates)

    @field_validator("shadow_first", mode="before")
    @classmethod
    def _shadow_first(cls, value: Any) -> Any:
        if value is None:
            return None
        seconds = parse_duration(value)
        return seconds or None  # 0: no shadow phase, one way to say it once stored

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return [float(v) for v in value.split(",") if v.strip()]
            except ValueError as exc:
                raise ValueError(f"steps must be numbers separated by commas, not {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RolloutPlan:
        if self.strategy == "canary":
            if not self.steps:
                raise ValueError("a canary needs at least one step")
            if any(not 0 < s <= 100 for s in self.steps):
                raise ValueError(f"every step is a share in (0, 100] percent; got {self.steps}")
            if any(b <= a for a, b in zip(self.steps, self.steps[1:])):
                raise ValueError(f"steps must increase; got {self.steps}")
            if len(self.steps) < 2:
                raise ValueError(
                    "a canary needs a step below 100 to compare against the baseline "
                    "(to switch at once, use --strategy bluegreen)"
                )
            if self.steps[-1] != 100:
                raise ValueError(f"the last step must be 100 (promotion); got {self.steps}")
        if self.share is not None and self.strategy not in ("shadow", "ab"):
            raise ValueError("share applies to shadow (percent mirrored) and ab (percent to the candidate) only")
        if self.fallback and self.strategy not in ("canary", "ab"):
            raise ValueError("fallback applies to canary and ab only")
        if self.shadow_first is not None and self.strategy != "canary":
            raise ValueError(
                "shadow_first applies to canary only (a shadow rollout mirrors throughout; use --strategy shadow)"
            )
        if self.judged_only:
            if self.strategy != "canary":
                raise ValueError(
                    "judged_only applies to canary only: the other strategies end by a person's decision, "
                    "not the controller's"
                )
            if self.gates.labels == "off":
                raise ValueError(
                    "judged_only needs the accuracy gate judged, so gates.labels cannot be 'off' "
                    "(leave it unset or use 'required')"
                )
        return self

    @property
    def step_deadline(self) -> float:
        return self.deadline if self.deadline is not None else max(10 * self.interval, 60.0)

    def initial_weight(self) -> float:
        """The candidate's traffic share when the rollout starts, in percent."""
        if self.strategy == "canary":
            return 0.0 if self.shadow_first else self.steps[0]
        if self.strategy == "ab":
            return self.share if self.share is not None else 50.0
        return 0.0

    def initial_phase(self) -> str:
        """Where the rollout starts: a canary's first step (or its shadow phase), a shadow's mirror, ..."""
        if self.strategy == "canary":
            return "shadow" if self.shadow_first else "step"
        return {"shadow": "mirroring", "bluegreen": "warming", "ab": "split"}[self.strategy]

    @property
    def shadow_share(self) -> float:
        """Percent mirrored to the candidate by a shadow rollout (a canary's shadow phase mirrors 100)."""
        return (self.share if self.share is not None else 100.0) if self.strategy == "shadow" else 0.0


def build_plan(options: dict[str, Any], defaults: dict[str, Any] | None = None) -> RolloutPlan:
    """A plan from command-line or API options over the deployment's defaults in ``matchday.yaml``."""
    merged: dict[str, Any] = {**(defaults or {})}
    for key, value in options.items():
        if value is None:
            continue
        if key == "gates" and isinstance(value, dict):
            merged["gates"] = {**(merged.get("gates") or {}), **value}
        else:
            merged[key] = value
    chosen = options.get("strategy")
    if chosen is not None and chosen != (defaults or {}).get("strategy", "canary"):
        # a different strategy than the file's (canary unless it names one): its strategy-specific
        # numbers do not carry over. An option left unset (None, as the CLI passes it) changes nothing.
        for key in ("steps", "share", "fallback", "shadow_first", "judged_only"):
            if key not in options or options[key] is None:
                merged.pop(key, None)
    try:
        return RolloutPlan(**merged)
    except ValidationError as exc:
        raise InvalidPlan(
            "invalid rollout plan",
            [
                f"{'.'.join(map(str, e['loc'])) or 'plan'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            ],
        ) from exc
