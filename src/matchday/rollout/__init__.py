"""Rollout: deployments, their traffic plans (single, shadow, canary, blue-green, A/B), the
controller that promotes and rolls back, and the trail of events behind every decision."""

from matchday.rollout.analysis import Analysis, GateResult, analyse, analyse_shadow
from matchday.rollout.controller import RolloutController
from matchday.rollout.deployments import Deployments, DeploymentSettings, traffic_plan
from matchday.rollout.errors import IncompatibleCandidate, InvalidPlan, NothingToDo, RolloutError
from matchday.rollout.plan import Gates, RolloutPlan, build_plan
from matchday.rollout.rollouts import Rollouts, RolloutStatus, event_dict
from matchday.rollout.traffic import Route, TrafficPlan, bucket
from matchday.store import DeploymentNotFound, RolloutAlreadyActive, RolloutNotFound, StaleRollout

__all__ = [
    "Analysis",
    "DeploymentNotFound",
    "DeploymentSettings",
    "Deployments",
    "Gates",
    "GateResult",
    "IncompatibleCandidate",
    "InvalidPlan",
    "NothingToDo",
    "Route",
    "RolloutAlreadyActive",
    "RolloutController",
    "RolloutError",
    "RolloutNotFound",
    "RolloutPlan",
    "RolloutStatus",
    "Rollouts",
    "StaleRollout",
    "TrafficPlan",
    "analyse",
    "analyse_shadow",
    "bucket",
    "build_plan",
    "event_dict",
    "traffic_plan",
]
