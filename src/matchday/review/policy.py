"""A deployment's automation policy: its level and how rows reach people (stored in its settings).

>>> AutomationPolicy.model_validate({"level": "machine_led_human_governed", "review_rule": "confidence < 0.7",
...     "review_deadline": "4h"}).review_deadline_seconds
14400.0
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from matchday.durations import PositiveSeconds, parse_duration
from matchday.monitoring import validate_webhook_url
from matchday.review.errors import InvalidPolicy
from matchday.review.levels import AutomationLevel

Fallback = Literal["approve", "reject", "escalate"]
DEFAULT_LEASE_SECONDS = 300.0  # how long a claimed item is held when neither the caller nor the policy says


def window_start(window: str | None, now: datetime | None = None) -> datetime | None:
    """When a window of the last ``window`` (``1h``, ``7d``) began; None for no window (every item)."""
    if not window:
        return None
    seconds = parse_duration(window, positive=True)
    try:
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{window!r} reaches back before the year 1") from None


class AutomationPolicy(BaseModel):
    """Who decides a deployment's answers; stored as the ``automation`` of its settings."""

    level: AutomationLevel = AutomationLevel.MACHINE_CONTROLLED
    review_rule: str | None = Field(default=None, description="machine_led_human_governed: rows held for a person")
    review_deadline_seconds: PositiveSeconds = Field(default=4 * 3600.0, gt=0, le=90 * 86400.0, alias="review_deadline")
    deadline_fallback: Fallback = "escalate"
    audit_rate: float | None = Field(default=None, ge=0.0, le=1.0, description="the level's default if not set")
    reviews_required: int = Field(default=1, ge=1, le=3, description="independent reviews an item needs")
    blind: bool | None = Field(default=None, description="hide the model's answer from reviewers (human_led: yes)")
    lease_seconds: float = Field(
        default=DEFAULT_LEASE_SECONDS, ge=5.0, le=86400.0, description="how long a claimed item is held"
    )
    decision_webhook: str | None = Field(default=None, description="POSTed each settled decision")
    agreement_floor: float = Field(
        default=0.9, ge=0.0, le=1.0, description="alert when people agree with the model less often than this"
    )
    step_down_on_critical: bool = Field(
        default=False, description="a critical alert of a monitor with the review action moves it one level down"
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("decision_webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None:
            validate_webhook_url(value)  # (an InvalidWebhook is a ValueError: reported with the field)
        return value

    @model_validator(mode="after")
    def _rule_fits_level(self) -> AutomationPolicy:
        if self.level is AutomationLevel.MACHINE_LED_HUMAN_GOVERNED and not self.review_rule:
            raise ValueError("machine_led_human_governed holds the rows a review rule matches: give --review-rule")
        if self.review_rule and self.level is not AutomationLevel.MACHINE_LED_HUMAN_GOVERNED:
            raise ValueError(
                f"a review rule applies at machine_led_human_governed only, not {self.level.value} "
                "(the other levels queue every row or an audit sample)"
            )
        return self

    @property
    def effective_audit_rate(self) -> float:
        return self.level.default_audit_rate if self.audit_rate is None else self.audit_rate

    @property
    def effective_blind(self) -> bool:
        return self.level.blind_by_default if self.blind is None else self.blind

    def stored(self) -> dict[str, Any]:
        """The form kept in the deployment's settings: the level always (an empty policy is no policy),
        the rest where it differs from the defaults, by their field names."""
        return {"level": self.level.value, **self.model_dump(mode="json", exclude_defaults=True)}


def policy_of(settings: dict[str, Any] | None) -> AutomationPolicy:
    """A stored policy (the ``automation`` of a deployment's settings), or the default: the model alone."""
    try:
        return AutomationPolicy.model_validate(settings or {})
    except ValidationError as exc:
        raise InvalidPolicy(
            "invalid automation policy",
            [f"{'.'.join(map(str, e['loc'])) or 'policy'}: {e['msg']}" for e in exc.errors()],
        ) from exc
