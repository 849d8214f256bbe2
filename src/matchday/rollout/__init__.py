"""Rollout: deployments and which version answers each request (traffic plans come next)."""

from matchday.rollout.deployments import DeploymentSettings, Deployments, Route, RolloutError
from matchday.store import DeploymentNotFound

__all__ = ["DeploymentNotFound", "DeploymentSettings", "Deployments", "RolloutError", "Route"]
