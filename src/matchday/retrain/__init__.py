"""Retraining: policies, triggers, the training contract (`TrainingData`), runs with resumable steps,
evaluation against the champion, and the hand-over of an accepted candidate to `rollout`."""

from matchday.retrain.as_json import RunJson, policy_json, run_json, trigger_text
from matchday.retrain.data import ChampionArtifact, TrainingData
from matchday.retrain.engines import Engine, LocalEngine, RayEngine, engine_named
from matchday.retrain.errors import (
    InvalidPolicy,
    NoPolicy,
    NotEnoughData,
    RetrainConflict,
    RetrainError,
    TrainerFailed,
)
from matchday.retrain.evaluation import Evaluation, evaluate, paired_interval, row_scores
from matchday.retrain.guards import PastRun, blocked, past_run, rejections_in_a_row
from matchday.retrain.jobs import FINISHED, RunParts, RunSteps
from matchday.retrain.policy import RetrainPolicy, parse_policies
from matchday.retrain.retraining import Retraining
from matchday.retrain.simulate import Simulation, period_start, simulate
from matchday.store import RetrainAlreadyActive, RetrainRunNotFound, RetrainRunRecord

__all__ = [
    "FINISHED",
    "ChampionArtifact",
    "Engine",
    "Evaluation",
    "InvalidPolicy",
    "LocalEngine",
    "NoPolicy",
    "NotEnoughData",
    "PastRun",
    "RayEngine",
    "RetrainAlreadyActive",
    "RetrainConflict",
    "RetrainError",
    "RetrainPolicy",
    "RetrainRunNotFound",
    "RetrainRunRecord",
    "Retraining",
    "RunJson",
    "RunParts",
    "RunSteps",
    "Simulation",
    "TrainerFailed",
    "TrainingData",
    "blocked",
    "engine_named",
    "evaluate",
    "paired_interval",
    "past_run",
    "parse_policies",
    "period_start",
    "policy_json",
    "rejections_in_a_row",
    "row_scores",
    "run_json",
    "simulate",
    "trigger_text",
]
