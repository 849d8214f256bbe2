"""A run's steps: gather the data, train, evaluate, (wait for approval), roll out, and end.

`RunSteps.advance` takes a run one state forward and writes it, so a worker that dies between two
steps leaves a run a new worker resumes where it stood. Each step finds its own earlier work first
(the data's manifest, a version registered by this run, a rollout of its candidate) and does not
do it twice. The trainer's own failures end the run; the machinery's are retried with backoff.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from matchday.registry import InvalidModel, InvalidReference, PinnedRef, Registry, RegistryError, Signature
from matchday.retrain.data import (
    ChampionArtifact,
    production_part,
    read_parts,
    reference_part,
    split_holdout,
    stored_parts,
    write_parts,
)
from matchday.retrain.engines import Cancelled, Engine
from matchday.retrain.errors import NotEnoughData, RetrainError, TrainerFailed
from matchday.retrain.evaluation import _text, evaluate
from matchday.retrain.policy import RetrainPolicy
from matchday.rollout import Deployments, RolloutError, Rollouts
from matchday.store import (
    NotFound,
    PredictionLogStore,
    RetrainRunNotFound,
    RetrainRunRecord,
    RetrainStore,
    StaleRetrainRun,
)

log = logging.getLogger("matchday.retrain")
RETRY_BACKOFF = (5.0, 30.0, 120.0, 600.0)  # seconds before each retry of a step the machinery failed
MAX_ATTEMPTS = len(RETRY_BACKOFF) + 1
HEARTBEAT_STALE_SECONDS = 10.0  # a training run whose owner beat more recently than this is another worker's
FINISHED = ("promoted", "rejected", "failed", "cancelled")


@dataclass
class RunParts:
    """The other parts a run's steps use, given by the workspace."""

    store: RetrainStore
    registry: Registry
    deployments: Deployments
    rollouts: Rollouts
    log: PredictionLogStore
    engine: Engine
    home: Path
    human_governed: Callable[[str], bool]


class RunSteps:
    def __init__(self, parts: RunParts) -> None:
        self.parts = parts
        self.owner = f"worker-{uuid.uuid4().hex[:8]}"

    # -- one step -----------------------------------------------------------------------------
    def advance(self, run: RetrainRunRecord, policy: RetrainPolicy | None, now: datetime | None = None) -> str:
        """Move ``run`` one step on; returns what happened (for the log and tests)."""
        now = now or datetime.now(UTC)
        if run.finished_at is not None:
            return "finished"
        if run.next_attempt_at is not None and run.next_attempt_at > now:
            return "backing_off"
        try:
            if policy is None:
                why = "the deployment's retraining policy was removed from matchday.yaml"
                self._stop_rollout(run, why)
                self._end(run, "failed", why, {})
                return "failed"
            if run.state == "training" and self._held_elsewhere(run, now):
                return "held_elsewhere"
            if run.state in ("queued", "training"):
                return self._train(run, policy)
            if run.state == "evaluating":
                return self._evaluate(run, policy)
            if run.state == "rolling_out":
                return self._roll_out(run, policy)
            return "waiting"  # awaiting_approval
        except StaleRetrainRun:
            return "stale"  # someone (an operator) acted meanwhile: read it again next tick
        except Cancelled:
            return "cancelled"
        except (TrainerFailed, NotEnoughData, InvalidModel, InvalidReference) as exc:
            self._end(run, "failed", str(exc), {"error": type(exc).__name__})
            return "failed"
        except RetrainRunNotFound:
            return "gone"
        except NotFound as exc:  # the deployment or the champion was deleted meanwhile: no retry brings it back
            self._end(run, "failed", f"{exc} (deleted while the run was in progress)", {"error": type(exc).__name__})
            return "failed"
        except Exception as exc:  # the database, the file system, a killed child: try again later
            return self._retry(run, exc, now)

    def _held_elsewhere(self, run: RetrainRunRecord, now: datetime) -> bool:
        """Whether another worker still trains ``run`` (its heartbeat is fresh): a worker that lost the leader
        lock mid-training goes on, and the new leader must not train the same run a second time."""
        if run.owner is None or run.owner == self.owner or run.heartbeat_at is None:
            return False
        return now - run.heartbeat_at < timedelta(seconds=HEARTBEAT_STALE_SECONDS)

    def _retry(self, run: RetrainRunRecord, exc: Exception, now: datetime) -> str:
        attempts = run.attempts + 1
        what = f"{type(exc).__name__}: {exc}"
        try:
            if self._fresh(run).finished_at is not None:
                return "finished"  # ended meanwhile (cancelled): nothing to retry
        except Exception:
            pass
        if attempts >= MAX_ATTEMPTS:
            log.exception("retraining run %d failed %d times; giving up", run.id, attempts)
            try:
                self._end(run, "failed", f"gave up after {attempts} attempts: {what}", {"attempts": attempts})
            except Exception:
                log.exception("could not record the failure of retraining run %d", run.id)
            return "failed"
        delay = RETRY_BACKOFF[attempts - 1]
        log.warning("retraining run %d: %s; retrying in %.0fs", run.id, what, delay)
        try:
            self.parts.store.update(
                self._fresh(run),
                {"attempts": attempts, "error": what, "next_attempt_at": now + timedelta(seconds=delay)},
                (f"attempt {attempts} failed ({what}); retrying in {delay:.0f}s", {"attempt": attempts}),
                ("retrain_retry", "retrain", f"attempt {attempts} failed: {what}", {"attempt": attempts}),
            )
        except Exception:
            log.exception("could not record the retry of retraining run %d", run.id)
        return "retrying"

    def _fresh(self, run: RetrainRunRecord) -> RetrainRunRecord:
        return self.parts.store.get(run.id)

    # -- training ------------------------------------------------------------------------------
    def _train(self, run: RetrainRunRecord, policy: RetrainPolicy) -> str:
        p = self.parts
        if run.state == "training" and run.owner != self.owner:
            p.store.heartbeat(run.id, self.owner)  # resumed here: ours now, so no other worker takes it too
        if run.state == "queued":
            run = p.store.update(
                run,
                {"state": "training", "owner": self.owner, "heartbeat_at": datetime.now(UTC)},
                ("gathering the data and training", {"engine": p.engine.name}),
            )
        parent = run.parent
        assert parent is not None
        mine = p.registry.versions_of_run(PinnedRef.parse(parent).name, run.id)
        if mine:  # registered before a restart: the training is done
            candidate = mine[-1].ref
        else:
            snapshot, new = self._snapshot(run, policy)
            if new:
                run = p.store.update(
                    run,
                    {"snapshot": snapshot},
                    (
                        f"data gathered: {snapshot['rows'].get('production', 0)} labelled production rows to train "
                        f"on, {snapshot['rows'].get('holdout', 0)} held out, "
                        f"{snapshot['rows'].get('reference', 0)} reference rows",
                        {"rows": snapshot["rows"], "labels_by_source": snapshot["labels_by_source"]},
                    ),
                    (
                        "retrain_data",
                        "retrain",
                        f"run {run.id}: {snapshot['rows']}",
                        {"rows": snapshot["rows"], "sha256": snapshot["sha256"]},
                    ),
                )
            started = datetime.now(UTC)

            def beat() -> bool:
                p.store.heartbeat(run.id, self.owner)
                return p.store.get(run.id).state != "cancelled"

            model = p.engine.train(
                policy.trainer, snapshot, self._champion_artifact(parent), policy.timeout, beat, run.attempts
            )
            seconds = (datetime.now(UTC) - started).total_seconds()
            candidate = self._register(run, policy, snapshot, model, seconds)
        current = self._fresh(run)
        if current.state != "training":  # cancelled after the last heartbeat: it stays cancelled
            return "cancelled" if current.state == "cancelled" else "stale"
        p.store.update(
            current,
            {"state": "evaluating", "candidate": candidate, "attempts": 0, "error": None, "next_attempt_at": None},
            (f"trained and registered {candidate}", {"candidate": candidate}),
            ("retrain_trained", "retrain", f"run {run.id} registered {candidate}", {"candidate": candidate}),
        )
        return "trained"

    def _snapshot(self, run: RetrainRunRecord, policy: RetrainPolicy) -> tuple[dict[str, Any], bool]:
        """The run's data: found again in its folder, or gathered from the log and written there."""
        if run.snapshot and read_parts(run.snapshot) is not None:
            return run.snapshot, False
        p = self.parts
        assert run.parent is not None
        signature = p.registry.get_signature(run.parent)
        inputs = list(signature.input_names)
        target = p.registry.target_of(run.parent) or "label"
        reference = p.registry.reference_table(run.parent) if policy.data.reference else None
        if reference is not None and target not in reference.column_names:
            reference = None  # registered without its labels: nothing to learn from
        label_type = reference.schema.field(target).type if reference is not None else None
        until = datetime.now(UTC)
        since = until - timedelta(seconds=policy.data.production.window)
        batch = p.log.labelled_between(run.deployment, since, until, policy.data.production.max_rows)
        production = production_part(batch, inputs, target, label_type)
        train, holdout = split_holdout(production, policy.holdout.newest, policy.holdout.min_rows)
        parts = {
            "reference": reference_part(reference, inputs, target) if reference is not None else None,
            "production": train,
            "holdout": holdout,
        }
        about = {
            "run": run.id,
            "deployment": run.deployment,
            "champion": run.parent,
            "target": target,
            "inputs": inputs,
            "task": signature.output.task,
            "classes": list(signature.output.classes) if signature.output.classes else None,
            "window": {"since": since.isoformat(), "until": until.isoformat()},
        }
        return write_parts(p.home / "retrain" / f"run-{run.id}", parts, about), True

    def _champion_artifact(self, ref: str) -> ChampionArtifact:
        version = self.parts.registry.get_version(ref)
        data = self.parts.registry.artifacts.get(version.artifact_sha256)
        return ChampionArtifact(ref, version.flavor, data, dict(version.flavor_options), dict(version.signature))

    def _register(
        self, run: RetrainRunRecord, policy: RetrainPolicy, snapshot: dict[str, Any], model: Any, seconds: float
    ) -> str:
        """The trained model as the next version of the champion's model, its lineage with it; its reference
        is the holdout (recent rows it never saw, so its reference accuracy is not an in-sample one)."""
        p = self.parts
        assert run.parent is not None
        parts = stored_parts(snapshot)
        holdout = parts["holdout"]
        reference = holdout.select([*snapshot["inputs"], snapshot["target"]])
        signature = p.registry.get_signature(run.parent)
        _check_classes(model, signature.output.classes, policy.trainer)
        lineage = {
            "run": run.id,
            "parent": run.parent,
            "deployment": run.deployment,
            "trigger": run.trigger,
            "trainer": policy.trainer,
            "engine": p.engine.name,
            "training_seconds": round(seconds, 3),
            "data": {k: snapshot[k] for k in ("rows", "log_ids", "labels_by_source", "sha256", "window")},
        }
        try:
            version = p.registry.register(
                PinnedRef.parse(run.parent).name,
                model,
                reference=reference,
                target=snapshot["target"],
                signature=Signature(inputs=signature.inputs, output=signature.output),
                description=f"retrained by run {run.id} of {run.deployment} from {run.parent}",
                tags={"retrain_run": str(run.id)},
                lineage=lineage,
            )
        except RegistryError as exc:
            raise TrainerFailed(f"the trainer's model cannot be registered: {exc}") from exc
        return version.ref

    # -- evaluation ----------------------------------------------------------------------------
    def _evaluate(self, run: RetrainRunRecord, policy: RetrainPolicy) -> str:
        p = self.parts
        assert run.parent is not None and run.candidate is not None and run.snapshot is not None
        parts = read_parts(run.snapshot)
        if parts is None:
            raise NotEnoughData(f"the run's data in {run.snapshot['folder']} is gone or changed; start a new run")
        holdout = parts["holdout"]
        rows = holdout.select(run.snapshot["inputs"])
        champion = np.asarray(p.registry.load(run.parent).predict(rows))
        candidate = np.asarray(p.registry.load(run.candidate).predict(rows))
        task = run.snapshot["task"]
        metric = policy.accept.metric or ("mae" if task == "regression" else "accuracy")
        unknown = _other_classes(candidate, run.snapshot.get("classes"))
        if unknown:
            why = (
                f"{run.candidate} rejected before any traffic: it answers with {len(unknown)} classes "
                f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''} that the champion "
                f"does not have ({run.snapshot['classes']}); a retrained model must answer with the same classes"
            )
            self._end(run, "rejected", why, {"classes": unknown[:20]})
            return "rejected"
        result = evaluate(
            metric,
            champion,
            candidate,
            holdout,
            run.snapshot["target"],
            min_gain=policy.accept.min_gain,
            segments=policy.accept.no_worse_segments,
            confidence=policy.accept.confidence,
            resamples=policy.accept.resamples,
            min_segment_rows=policy.accept.min_segment_rows,
            seed=run.id,
        )
        report = result.to_json()
        p.registry.add_lineage(run.candidate, {"evaluation": report})
        summary = (
            f"{metric} {result.candidate:.4f} vs champion {result.champion:.4f} on {result.rows} held-out rows "
            f"(gain {result.gain:+.4f}, {result.confidence:.0%} interval {result.interval.low:+.4f} "
            f"to {result.interval.high:+.4f})"
        )
        if not result.accepted:
            self._end(
                run,
                "rejected",
                f"{run.candidate} rejected before any traffic: {'; '.join(result.reasons)}",
                {"evaluation": report},
                changes={"evaluation": report},
            )
            return "rejected"
        approval = policy.guards.approval == "before_rollout" or p.human_governed(run.deployment)
        state = "awaiting_approval" if approval else "rolling_out"
        why = "; waiting for an operator's approval (`matchday retrain approve`)" if approval else ""
        p.store.update(
            run,
            {"state": state, "evaluation": report},
            (f"accepted: {summary}{why}", {"evaluation": report}),
            ("retrain_evaluated", "retrain", f"run {run.id}: {run.candidate} accepted: {summary}", report),
        )
        return state

    # -- rollout -------------------------------------------------------------------------------
    def _roll_out(self, run: RetrainRunRecord, policy: RetrainPolicy) -> str:
        p = self.parts
        assert run.candidate is not None
        if run.rollout_id is None:
            active = p.rollouts.store.active(run.deployment)
            if active is not None and active.candidate == run.candidate:
                record = active  # started before a restart
            elif active is not None:
                return "waiting"  # someone else's rollout: ours starts when it ends
            else:
                primary = p.deployments.route(run.deployment).primary
                serving = primary.ref
                if serving != run.parent:  # the champion moved on while the candidate waited (an approval)
                    why = (
                        f"{run.deployment!r} now serves {serving}, not {run.parent} that {run.candidate} was judged "
                        "against; its evaluation no longer holds (start a new run)"
                    )
                    self._end(run, "failed", why, {"serving": serving})
                    return "failed"
                try:
                    record = p.rollouts.start(
                        run.deployment, run.candidate, policy.plan().model_dump(), actor=f"retrain run {run.id}"
                    )
                except RolloutError as exc:
                    self._end(run, "failed", f"the rollout of {run.candidate} could not start: {exc}", {})
                    return "failed"
            plan = record.plan
            try:
                p.store.update(
                    run,
                    {"rollout_id": record.id},
                    (
                        f"rollout {record.id} started: {record.strategy}"
                        + (f", shadow first for {plan.get('shadow_first'):g}s" if plan.get("shadow_first") else "")
                        + f", steps {plan.get('steps')}",
                        {"rollout": record.id, "plan": plan},
                    ),
                    ("retrain_rolling_out", "retrain", f"run {run.id}: rollout {record.id} of {run.candidate}", {}),
                )
            except StaleRetrainRun:
                if self._fresh(run).finished_at is not None:  # cancelled while its rollout started: undo it
                    self._stop_rollout(run, "the run ended while its rollout was starting")
                    return "cancelled"
                raise
            return "rollout_started"
        record = p.rollouts.store.get(run.rollout_id)
        if record.state == "promoted":
            where = self._champion(run, record.reason or "")
            p.registry.add_lineage(run.candidate, {"rollout": {"id": record.id, "state": "promoted"}})
            self._end(run, "promoted", f"{run.candidate} promoted after rollout {record.id}; {where}", {})
            return "promoted"
        if record.state == "rolled_back":
            p.registry.add_lineage(
                run.candidate, {"rollout": {"id": record.id, "state": "rolled_back", "reason": record.reason}}
            )
            self._end(run, "rejected", f"rollout {record.id} rolled back: {record.reason}", {"rollout": record.id})
            return "rejected"
        if record.state == "paused" and not run.steps[-1]["message"].startswith(f"rollout {record.id} paused"):
            p.store.update(
                run,
                {},
                (
                    f"rollout {record.id} paused: {record.reason}; the run follows it when a person resumes, "
                    "promotes or rolls it back (or cancels this run)",
                    {"rollout": record.id},
                ),
                ("retrain_rollout_paused", "retrain", f"run {run.id}: rollout {record.id} paused", {}),
            )
            return "paused"
        return "rolling_out"

    def _stop_rollout(self, run: RetrainRunRecord, why: str) -> None:
        """Roll back the rollout of the run's candidate, if one is in progress (the champion keeps serving)."""
        if run.candidate is None:
            return
        active = self.parts.rollouts.store.active(run.deployment)
        if active is not None and active.candidate == run.candidate:
            self.parts.rollouts.rollback(run.deployment, f"retrain run {run.id}", why)

    def _champion(self, run: RetrainRunRecord, reason: str) -> str:
        """After promotion, the ``champion`` alias names the candidate (the rollout moved it if it was followed)."""
        p = self.parts
        assert run.candidate is not None
        candidate = PinnedRef.parse(run.candidate)
        current = p.registry.get_version(candidate)
        if "champion" in current.aliases:
            return f"{candidate.name}@champion is {candidate}"
        p.registry.set_alias(candidate.name, candidate.version, "champion", f"retrain run {run.id} promoted: {reason}")
        return f"{candidate.name}@champion moved to {candidate}"

    # -- ending --------------------------------------------------------------------------------
    def _end(
        self,
        run: RetrainRunRecord,
        state: str,
        reason: str,
        data: dict[str, Any],
        changes: dict[str, Any] | None = None,
    ) -> RetrainRunRecord:
        fresh = self._fresh(run)
        if fresh.finished_at is not None:
            return fresh
        ended = self.parts.store.update(
            fresh,
            {**(changes or {}), "state": state, "reason": reason, "finished_at": datetime.now(UTC)},
            (reason, data),
            (f"retrain_{state}", "retrain", f"run {run.id}: {reason}", data),
        )
        (log.info if state == "promoted" else log.warning)("retraining run %d %s: %s", run.id, state, reason)
        return ended


def _classes_text(values: Any) -> list[str]:
    return sorted(set(_text(np.asarray(values)).tolist()))


def _other_classes(predictions: np.ndarray, classes: list[Any] | None) -> list[str]:
    """The classes a candidate predicted that the champion's signature does not name."""
    if not classes or not len(predictions):
        return []
    return sorted(set(_classes_text(predictions)) - set(_classes_text(classes)))


def _check_classes(model: Any, classes: list[Any] | None, trainer: str) -> None:
    """A model that names its classes (scikit-learn's ``classes_``) must name the champion's: it is registered
    with the champion's signature, and its probabilities are read in that order."""
    native = getattr(model, "classes_", None)
    if not classes or native is None:
        return
    theirs, ours = _classes_text(native), _classes_text(classes)
    if theirs != ours:
        raise TrainerFailed(
            f"the trainer {trainer} returned a model whose classes are {theirs}, not the champion's {ours} "
            "(labels of another type, or classes missing from the training rows?)"
        )


__all__ = ["FINISHED", "MAX_ATTEMPTS", "RETRY_BACKOFF", "RetrainError", "RunParts", "RunSteps"]
