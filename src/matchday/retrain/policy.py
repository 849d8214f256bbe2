"""A deployment's retraining policy, as written under ``retrain:`` in matchday.yaml, checked at start.

Every bad field of every policy is reported at once, with its reason (an unknown monitor, a trainer
that does not import, a window that does not parse), before a worker or a server starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from matchday.durations import OptionalSeconds, Seconds
from matchday.retrain.errors import InvalidPolicy
from matchday.rollout import InvalidPlan, RolloutPlan, build_plan

Approval = Literal["none", "before_rollout"]


class Triggers(BaseModel):
    """What starts a run: an alert of one of ``monitors`` opening, or ``schedule`` since the last run;
    either waits for ``min_new_labels`` labels newer than the last run's data."""

    model_config = ConfigDict(extra="forbid")
    monitors: list[str] = Field(default_factory=list)
    schedule: OptionalSeconds = Field(default=None, description="seconds between runs (or '7d')")
    min_new_labels: int = Field(default=0, ge=0)


class ProductionData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: Seconds = Field(default=14 * 86400.0, description="labelled rows predicted in the last window (or '14d')")
    labelled: bool = True
    max_rows: int = Field(default=200_000, ge=10, le=50_000_000)

    @field_validator("labelled")
    @classmethod
    def _labelled(cls, v: bool) -> bool:
        if not v:
            raise ValueError("retraining learns from labelled rows only (labelled: true)")
        return v


class DataSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference: bool = True
    production: ProductionData = Field(default_factory=ProductionData)


class Holdout(BaseModel):
    """The newest labelled rows, never trained on: champion and candidate are judged on them."""

    model_config = ConfigDict(extra="forbid")
    newest: float = Field(default=0.2, gt=0, lt=1)
    min_rows: int = Field(default=50, ge=10, description="fewer labelled rows held out: the run fails")


class Accept(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: Literal["accuracy", "mae"] | None = Field(default=None, description="default: by the model's task")
    min_gain: float = Field(default=0.0, description="candidate minus champion (accuracy), or champion minus (MAE)")
    no_worse_segments: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    resamples: int = Field(default=2000, ge=100, le=100_000)
    min_segment_rows: int = Field(default=30, ge=5)


class Guards(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cooldown: Seconds = Field(default=6 * 3600.0, description="after a run ends, before another may start (or '6h')")
    max_per_day: int = Field(default=3, ge=1)
    stop_after_rejections: int = Field(default=2, ge=1, description="rejections in a row before triggers stop")
    approval: Approval = "none"


class RetrainPolicy(BaseModel):
    """One deployment's policy: who trains, on what, when, how a candidate is judged and rolled out."""

    model_config = ConfigDict(extra="forbid")
    deployment: str = Field(min_length=1, max_length=200)
    trainer: str = Field(description="module:function, called with a TrainingData, returning a model")
    triggers: Triggers = Field(default_factory=Triggers)
    data: DataSpec = Field(default_factory=DataSpec)
    holdout: Holdout = Field(default_factory=Holdout)
    accept: Accept = Field(default_factory=Accept)
    rollout: dict[str, Any] = Field(
        default_factory=lambda: {"strategy": "canary"}, description="any rollout plan field"
    )
    guards: Guards = Field(default_factory=Guards)
    timeout: Seconds = Field(default=3600.0, description="seconds a trainer may take (or '1h')")

    @field_validator("trainer")
    @classmethod
    def _trainer(cls, v: str) -> str:
        module, _, name = v.partition(":")
        if not module or not name.isidentifier():
            raise ValueError(f"trainer {v!r} is not module:function (e.g. mypackage.training:train)")
        return v

    @model_validator(mode="after")
    def _plan(self) -> RetrainPolicy:
        self.plan()  # raises with the plan's own reasons
        return self

    def plan(self) -> RolloutPlan:
        """The rollout plan a candidate goes through: the policy's fields, with every gate judged."""
        gates = dict(self.rollout.get("gates") or {})
        # a retrained model answers differently by design (it learned what the champion got wrong): the
        # divergence is shown, and limited only where the policy says; accuracy on labels judges it
        gates.setdefault("max_prediction_divergence", 1.0)
        options = {**self.rollout, "gates": gates, "judged_only": True}
        if self.rollout.get("strategy", "canary") != "canary":
            raise ValueError("a retrained candidate goes through a canary (its gates judge it); strategy: canary")
        try:
            return build_plan(options)
        except InvalidPlan as exc:
            raise ValueError(f"rollout: {'; '.join(exc.details) or exc.message}") from exc

    def trainer_function(self) -> Callable[..., Any]:
        """The trainer, imported (a policy that names a missing one was refused at start)."""
        module, _, name = self.trainer.partition(":")
        function = getattr(importlib.import_module(module), name)
        if not callable(function):
            raise TypeError(f"{self.trainer} is not a function")
        return function


def parse_policies(
    items: list[dict[str, Any]] | None,
    monitors_of: Callable[[str], Iterable[str]],
    *,
    import_trainers: bool = True,
) -> dict[str, RetrainPolicy]:
    """The ``retrain:`` list of matchday.yaml by deployment; every problem of every policy at once.

    ``monitors_of(deployment)`` names the monitors that watch it (the defaults and matchday.yaml's).
    """
    out: dict[str, RetrainPolicy] = {}
    problems: list[str] = []
    for i, item in enumerate(items or []):
        label = item.get("deployment", f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
        try:
            policy = RetrainPolicy.model_validate(item)
        except ValidationError as exc:
            problems += [
                f"retrain {label}: {'.'.join(str(p) for p in e['loc']) or 'policy'}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            ]
            continue
        if policy.deployment in out:
            problems.append(f"retrain {label}: a second policy for this deployment")
        known = set(monitors_of(policy.deployment))
        for name in policy.triggers.monitors:
            if name not in known:
                problems.append(
                    f"retrain {label}: triggers.monitors: unknown monitor {name!r} (known: {', '.join(sorted(known))})"
                )
        if not policy.triggers.monitors and policy.triggers.schedule is None:
            problems.append(f"retrain {label}: triggers: name monitors, a schedule, or both (else it never runs)")
        if import_trainers:
            try:
                policy.trainer_function()
            except Exception as exc:
                problems.append(
                    f"retrain {label}: trainer {policy.trainer!r} cannot be imported: {type(exc).__name__}: {exc}"
                )
        out[policy.deployment] = policy
    if problems:
        raise InvalidPolicy("invalid retraining policies in matchday.yaml", problems)
    return out
