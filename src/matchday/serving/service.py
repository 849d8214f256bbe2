"""The prediction service: route, validate, score (micro-batched), answer, then log.

Plain Python: it knows nothing of HTTP; the endpoints parse and answer around it. Which version
answers each row is the deployment's `TrafficPlan` (from `rollout/`); a shadow gets a copy of
the rows after the answer is ready, through a bounded queue to a separate low-priority process
(`shadow_worker.py`), and is dropped rather than waited for. Each deployment has at most
``max_in_flight`` requests in progress here (`in_flight.py`), and each model call at most
``model_timeout`` seconds (`model_calls.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from matchday.monitoring import LogWriter, json_safe
from matchday.registry import FloatRows, OutputSpec, Predictor, Registry, RegistryError, Signature
from matchday.review import AutomationPolicy, Triage, policy_of
from matchday.rollout import Deployments, DeploymentSettings, Route, TrafficPlan
from matchday.serving.batching import Columns, MicroBatcher, Scored
from matchday.serving.codecs import DecodedRequest
from matchday.serving.errors import (
    BadRequest,
    InputOutOfRange,
    ModelFailed,
    ModelLoadFailed,
    ModelTimeout,
    PayloadTooLarge,
    TooManyRequests,
    VersionNotServed,
)
from matchday.serving.in_flight import DEFAULT_MAX_IN_FLIGHT, RETRY_AFTER_SECONDS, InFlight
from matchday.serving.labels import check_labels
from matchday.serving.metrics import ServingMetrics
from matchday.serving.model_calls import DEFAULT_TIMEOUT_SECONDS, ModelCalls
from matchday.serving.request_ids import RequestIds
from matchday.serving.shadow_worker import ShadowJob, ShadowOutcome, ShadowWorker
from matchday.serving.validation import ValidatedBatch, validate_columns
from matchday.serving.warmup import Warmed, warm_row
from matchday.store import LabelOutcome, NotFound, PredictionLogStore, StoreUnavailable

log = logging.getLogger("matchday.serving")
REQUEST_IDS = RequestIds()
ROUTE_TTL_SECONDS = 1.0  # how soon an alias move, a redeploy or a rollout step reaches every process
RECENTLY_QUEUED = 10_000  # queued answers remembered until the log has them (far more than one flush's)
LOAD_RETRY_SECONDS = 10.0  # a version that failed to load is not tried again (per request) sooner


@dataclass
class Prediction:
    request_id: str
    entity_id: str | None
    prediction: Any
    probabilities: dict[str, float] | None
    version: int
    decision: str = "final"  # or "pending": a person decides (the review queue)
    review_id: str | None = None


@dataclass
class PredictionResult:
    route: Route  # the version that answered (the primary, when rows went to two versions)
    signature: Signature
    predictions: list[Prediction]
    scored: Scored
    quality: dict[str, Any]


@dataclass
class _Answer:
    route: Route
    predictor: Predictor | None  # None when the version could not even be loaded
    rows: np.ndarray  # indices into the request
    scored: Scored | None
    elapsed: float
    error: str | None = None
    failed_over: bool = False
    cause: Exception | None = None  # what the version raised (a timeout answers 504, not 500)


class PredictionService:
    def __init__(
        self,
        deployments: Deployments,
        registry: Registry,
        log_store: PredictionLogStore,
        writer: LogWriter,
        metrics: ServingMetrics,
        shadows: ShadowWorker,
        *,
        model_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self.model_timeout = model_timeout
        self.in_flight = InFlight(max_in_flight)
        self.deployments = deployments
        self.registry = registry
        self.log_store = log_store
        self.writer = writer
        self.metrics = metrics
        self._routes: dict[str, tuple[float, TrafficPlan, DeploymentSettings]] = {}
        self._predictors: dict[str, Predictor] = {}
        self._batchers: dict[str, MicroBatcher] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._load_failed: dict[str, tuple[float, Exception]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._triage: dict[tuple[str, str, str], Triage] = {}
        # answers queued for review by this process, until the log (and the queue with it) has them:
        # a client asking for a decision right after its answer hears "pending", not "unknown"
        self.recently_queued: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.shadows = shadows

    # -- routing and loading -----------------------------------------------------------------
    async def route(self, deployment: str) -> tuple[TrafficPlan, DeploymentSettings]:
        cached = self._routes.get(deployment)
        if cached and cached[0] > time.monotonic():
            return cached[1], cached[2]
        try:
            plan, settings = await asyncio.to_thread(self._resolve, deployment)
        except StoreUnavailable:
            if cached is None:
                raise
            plan, settings = cached[1], cached[2]  # the database is away: keep serving the last known plan
        self._routes[deployment] = (time.monotonic() + ROUTE_TTL_SECONDS, plan, settings)
        if cached is not None and cached[1] != plan:
            self._forget()
        for route in plan.warm:  # blue-green: load before the switch, keep the old one for the switch back
            if _shadow_only(plan, route):
                self.shadows.prepare(route.ref)  # a shadow only: loaded in the shadow process, not here
            elif route.ref not in self._predictors:
                self._spawn(self._preload(route.ref))
        return plan, settings

    def _resolve(self, deployment: str) -> tuple[TrafficPlan, DeploymentSettings]:
        record = self.deployments.get(deployment)
        return self.deployments.route(deployment), self.deployments.settings(record)

    async def predictor(self, ref: str) -> Predictor:
        if ref not in self._predictors:
            failed = self._load_failed.get(ref)
            if failed is not None and failed[0] > time.monotonic():
                raise failed[1]  # fail fast: a broken candidate must not cost every request a load attempt
            lock = self._loading.setdefault(ref, asyncio.Lock())
            async with lock:
                if ref not in self._predictors:
                    try:
                        self._predictors[ref] = await asyncio.to_thread(self._load, ref)
                    except ModelLoadFailed as exc:
                        self._load_failed[ref] = (time.monotonic() + LOAD_RETRY_SECONDS, exc)
                        raise
                    self._load_failed.pop(ref, None)
        return self._predictors[ref]

    def _load(self, ref: str) -> Predictor:
        try:
            return self.registry.load(ref)
        except (NotFound, StoreUnavailable):
            raise
        except RegistryError as exc:  # the stored model does not load here: our problem
            raise ModelLoadFailed(f"{ref} cannot be loaded on this server: {exc.message}", exc.details) from exc

    async def _preload(self, ref: str) -> None:
        try:
            await self.predictor(ref)
        except Exception as exc:  # the controller's own warm-up reports it; requests would too
            log.warning("could not preload %s: %s", ref, exc)

    def _forget(self) -> None:
        """After a plan changed: retire every batcher, and unload every model, no plan uses any more.

        A sweep over everything (not just the old plan's versions), so a model that a request still in
        flight under an old plan loaded afterwards is caught by the next change.
        """
        plans = [plan for _, plan, _ in self._routes.values()]
        in_use = {r.ref for plan in plans for r in (*plan.routes, *plan.warm)}
        batchers_in_use = {f"{plan.deployment}/{r.ref}" for plan in plans for r in plan.routes}
        for key in [k for k in self._batchers if k not in batchers_in_use]:
            self._spawn(self._batchers.pop(key).retire())  # requests already queued on it still get answers
        # (a model loaded before start-up's `gc.freeze` is still freed by reference counting; only a
        # reference cycle inside it would stay: a full collection here held every request 0.1 s)
        for ref in [r for r in self._predictors if r not in in_use]:
            del self._predictors[ref]

    def _batcher(self, route: Route, predictor: Predictor, settings: DeploymentSettings) -> MicroBatcher:
        key = f"{route.deployment}/{route.ref}"
        batcher = self._batchers.get(key)
        wait = settings.max_wait_ms / 1000
        if batcher is None or (batcher.max_batch_size, batcher.max_wait) != (settings.max_batch_size, wait):
            if batcher is not None:  # redeployed with new settings: the old one answers what it holds
                self._spawn(batcher.retire())
            labels = (route.deployment, route.model, str(route.version))
            calls = ModelCalls(
                _scorer(predictor),
                timeout=self.model_timeout,
                name=f"deployment {route.deployment!r}: {route.ref}",
                on_timeout=self.metrics.model_timeouts.labels(*labels).inc,
                on_stuck=self.metrics.model_stuck.labels(*labels).inc,
            )
            batcher = MicroBatcher(
                calls,
                max_batch_size=settings.max_batch_size,
                max_wait=wait,
                observe=self.metrics.batch_size.labels(*labels).observe,
            )
            self._batchers[key] = batcher
        return batcher

    async def served_route(self, deployment: str, version: str | int | None = None) -> tuple[Route, DeploymentSettings]:
        """The route that answers most rows, or the one serving ``version`` (V2's ``/versions/{v}``)."""
        plan, settings = await self.route(deployment)
        return self._served(plan, version), settings

    @staticmethod
    def _served(plan: TrafficPlan, version: str | int | None) -> Route:
        if version is None:
            return plan.main
        route = plan.served(version)
        if route is None:
            serving = ", ".join(r.ref for r in plan.routes if r is plan.primary or plan.candidate_share > 0)
            raise VersionNotServed(f"deployment {plan.deployment!r} serves {serving}, not version {version}")
        return route

    # -- warm-up -------------------------------------------------------------------------------
    async def warm_up(self) -> list[Warmed]:
        """Load every version the deployments route to now and score one row on each, so that no
        client pays for a cold start. One version's failure is logged; the others still warm."""
        try:
            records = await asyncio.to_thread(self.deployments.list)
        except Exception as exc:  # the database is away: requests load what they need later
            log.warning("warm-up skipped: the deployments could not be read: %s", exc)
            return []
        refs: dict[str, None] = {}  # in order, each version once
        for record in records:
            try:
                plan, _ = await self.route(record.name)  # hands a shadow to the shadow process, which loads it
            except Exception as exc:
                log.warning("warm-up: deployment %r cannot be routed: %s", record.name, exc)
                continue
            refs.update((r.ref, None) for r in (*plan.routes, *plan.warm) if not _shadow_only(plan, r))
        return [await self._warm(ref) for ref in refs]

    async def _warm(self, ref: str) -> Warmed:
        started = time.perf_counter()
        try:
            predictor = await self.predictor(ref)
            assert predictor.signature is not None
            row = warm_row(predictor.signature)
            calls = ModelCalls(_scorer(predictor), timeout=self.model_timeout, name=f"{ref} (warming up)")
            try:  # a hung model must not hold readiness, nor (on asyncio's executor) the server's exit
                await calls(predictor.prepare([row]))
            finally:
                calls.close()
        except Exception as exc:  # this version answers its requests with the same error, or loads later
            log.warning("could not warm %s up: %s: %s", ref, type(exc).__name__, exc)
            return Warmed(ref, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        warmed = Warmed(ref, time.perf_counter() - started)
        log.info("warmed %s up in %.2fs", ref, warmed.seconds)
        return warmed

    # -- predicting ----------------------------------------------------------------------------
    async def predict(
        self, deployment: str, decode: Callable[[Signature], DecodedRequest], version: int | None = None
    ) -> PredictionResult:
        """The answer to one request; 429 at once when ``deployment`` already has ``max_in_flight``."""
        if not self.in_flight.enter(deployment):
            self.metrics.over_limit.labels(deployment).inc()
            raise TooManyRequests(
                f"deployment {deployment!r} already has {self.in_flight.limit} requests in progress on this "
                f"server (MATCHDAY_MAX_IN_FLIGHT); retry after {RETRY_AFTER_SECONDS} s",
                retry_after=RETRY_AFTER_SECONDS,
            )
        try:
            return await self._predict(deployment, decode, version)
        finally:
            self.in_flight.leave(deployment)

    async def _predict(
        self, deployment: str, decode: Callable[[Signature], DecodedRequest], version: int | None
    ) -> PredictionResult:
        started = time.perf_counter()
        plan, settings = await self.route(deployment)  # one read of the plan for the whole request
        fixed = self._served(plan, version) if version is not None else None
        primary = fixed or plan.primary
        predictor = await self.predictor(primary.ref)
        assert predictor.signature is not None
        batch, decoded = self._validate(deployment, decode, predictor.signature, settings)
        request_ids = REQUEST_IDS.take(decoded.rows)
        keys = [
            entity if entity is not None else rid for entity, rid in zip(decoded.entity_ids, request_ids, strict=True)
        ]
        to_candidate = np.zeros(decoded.rows, dtype=bool) if fixed is not None else plan.assign(keys)
        groups = [(primary, np.flatnonzero(~to_candidate))]
        if to_candidate.any():
            assert plan.candidate is not None
            groups.append((plan.candidate, np.flatnonzero(to_candidate)))
        answers = await asyncio.gather(
            *(self._answer(route, rows, batch.columns, settings, started) for route, rows in groups if rows.size)
        )
        answers = await self._fall_back(plan, answers, batch.columns, settings, started)
        answers = self._blame_input(deployment, answers, batch)
        now = datetime.now(UTC)
        log_rows: list[dict[str, Any]] = []
        failure = next((a for a in answers if a.error is not None and not a.failed_over), None)
        for answer in answers:
            if answer.error is not None:
                log_rows += self._error_rows(deployment, answer, batch, decoded, request_ids, now)
        if failure is not None:  # nothing is answered; only the failure is logged
            self.writer.submit(log_rows)
            self.metrics.errors.labels(deployment).inc()
            if isinstance(failure.cause, ModelTimeout):  # 504 (or 503 while the version's calls are stuck)
                raise type(failure.cause)(failure.cause.message)
            raise ModelFailed(f"{failure.route.ref} failed to score {len(failure.rows)} row(s): {failure.error}")
        served = [a for a in answers if a.error is None]
        predictions: list[Prediction | None] = [None] * decoded.rows
        for answer in served:
            assert answer.scored is not None
            triage = self._triage_for(deployment, settings, answer)
            log_rows += self._answer_rows(deployment, answer, batch, decoded, request_ids, predictions, now, triage)
        self.writer.submit(log_rows)  # after the answer is ready; never waits on the database
        mirrored = plan.mirror(keys) if fixed is None else np.zeros(0, dtype=bool)
        if mirrored.any():
            self._mirror(plan, settings, batch.columns, np.flatnonzero(mirrored), request_ids, decoded, batch)
        self._count(answers, batch)
        answered = served[0].route if len(served) == 1 else primary
        quality = {
            "out_of_range": batch.quality.out_of_range,
            "unseen_category": batch.quality.unseen_category,
            "by_feature": batch.quality.by_feature,
        }
        return PredictionResult(
            answered,
            predictor.signature,
            [p for p in predictions if p is not None],
            _stitch(served, decoded.rows, predictor),
            quality,
        )

    def _blame_input(self, deployment: str, answers: list[_Answer], batch: ValidatedBatch) -> list[_Answer]:
        """The answers without the failures the caller's far-out-of-range input caused. Rows no version
        scored because of it make the request a 422: refused, nothing logged, no version's error (so
        it never counts against a canary). A failed attempt the primary answered instead (fallback) is
        dropped, not logged as the candidate's failure."""
        blamed = {id(a) for a in answers if _input_to_blame(a, batch)}
        if not blamed:
            return answers
        answered = {i for a in answers if a.error is None and id(a) not in blamed for i in a.rows.tolist()}
        rows = [i for a in answers if id(a) in blamed for i in a.rows.tolist()]
        if any(i not in answered for i in rows):
            self.metrics.invalid.labels(deployment).inc()
            refused = batch.quality.far_problems(rows)
            raise InputOutOfRange(
                f"{len(refused)} value(s) far outside the reference range could not be scored", refused
            )
        return [a for a in answers if id(a) not in blamed]

    def _validate(
        self,
        deployment: str,
        decode: Callable[[Signature], DecodedRequest],
        signature: Signature,
        settings: DeploymentSettings,
    ) -> tuple[ValidatedBatch, DecodedRequest]:
        try:
            decoded = decode(signature)
            if decoded.rows > settings.max_rows:
                raise PayloadTooLarge(
                    f"{decoded.rows} rows in one request; deployment {deployment!r} accepts at most {settings.max_rows}"
                )
            if decoded.rows == 0:
                raise BadRequest("the request has no rows to score")
            return validate_columns(decoded.columns, decoded.rows, signature, decoded.path), decoded
        except Exception:
            self.metrics.invalid.labels(deployment).inc()
            raise

    async def _answer(
        self, route: Route, rows: np.ndarray, table: Columns, settings: DeploymentSettings, started: float
    ) -> _Answer:
        predictor: Predictor | None = None
        try:
            predictor = await self.predictor(route.ref)
            assert predictor.signature is not None
            part = table if rows.size == table.num_rows else table.take(rows)
            part = part.select(predictor.signature.input_names)
            scored = await self._batcher(route, predictor, settings).score(part)
        except StoreUnavailable:
            raise
        except Exception as exc:  # the version's own failure (to load or to score): logged, a 500 or a fallback
            log.warning("%s failed on %d row(s): %s: %s", route.ref, rows.size, type(exc).__name__, exc)
            error = f"{type(exc).__name__}: {exc}"[:1000]
            return _Answer(route, predictor, rows, None, time.perf_counter() - started, error=error, cause=exc)
        return _Answer(route, predictor, rows, scored, time.perf_counter() - started)

    async def _fall_back(
        self, plan: TrafficPlan, answers: list[_Answer], table: Columns, settings: DeploymentSettings, started: float
    ) -> list[_Answer]:
        """Rows the candidate failed are answered by the primary, if the plan says so."""
        out = list(answers)
        for answer in answers:
            if answer.error is not None and plan.fallback and answer.route == plan.candidate:
                answer.failed_over = True
                out.append(await self._answer(plan.primary, answer.rows, table, settings, started))
                labels = (answer.route.deployment, answer.route.model, str(answer.route.version))
                self.metrics.fallback.labels(*labels).inc(answer.rows.size)
        return out

    def _answer_rows(
        self,
        deployment: str,
        answer: _Answer,
        batch: ValidatedBatch,
        decoded: DecodedRequest,
        request_ids: list[str],
        predictions: list[Prediction | None],
        now: datetime,
        triage: Triage | None = None,
    ) -> list[dict[str, Any]]:
        assert answer.scored is not None and answer.predictor is not None
        classes = [str(c) for c in answer.predictor.classes or []]
        values = json_safe(answer.scored.predictions.tolist())
        probas = json_safe(answer.scored.probabilities.tolist()) if answer.scored.probabilities is not None else None
        rows = []
        for j, i in enumerate(answer.rows.tolist()):
            proba = (
                dict(zip(classes, probas[j], strict=True))
                if probas is not None and len(classes) == len(probas[j])
                else None
            )
            row = self._log_row(
                deployment,
                answer.route,
                request_ids[i],
                decoded.entity_ids[i],
                batch.records[i],
                values[j],
                probas[j] if probas is not None else None,
                answer.elapsed,
                now,
            )
            prediction = Prediction(request_ids[i], decoded.entity_ids[i], values[j], proba, answer.route.version)
            if triage is not None:
                verdict = triage.judge(deployment, request_ids[i], values[j], proba, batch.records[i], now)
                prediction.decision, prediction.review_id = verdict.decision, verdict.review_id
                if verdict.review is not None:
                    row["review"] = verdict.review  # queued with the row, in the log's transaction
                    self._remember(deployment, request_ids[i], values[j], verdict.review)
            predictions[i] = prediction
            rows.append(row)
        return rows

    def _remember(self, deployment: str, request_id: str, prediction: Any, review: dict[str, Any]) -> None:
        self.recently_queued[request_id] = {
            "request_id": request_id,
            "deployment": deployment,
            "review_id": review["id"],
            "decision": "pending" if review["pending"] else "final",
            "status": "open",
            "reason": review["reason"],
            "model_answer": prediction,
            **({"deadline": review["deadline"].isoformat()} if review["deadline"] is not None else {}),
        }
        while len(self.recently_queued) > RECENTLY_QUEUED:
            self.recently_queued.popitem(last=False)

    def _triage_for(self, deployment: str, settings: DeploymentSettings, answer: _Answer) -> Triage | None:
        """The deployment's automation policy for the version that answered (None: the model alone)."""
        if not settings.automation or answer.predictor is None:
            return None
        key = (deployment, answer.route.ref, repr(sorted(settings.automation.items())))
        triage = self._triage.get(key)
        if triage is None:
            predictor = answer.predictor
            classes = [str(c) for c in predictor.classes] if predictor.classes is not None else None
            try:
                triage = Triage(policy_of(settings.automation), predictor.signature, classes)
            except Exception as exc:  # e.g. a rule naming an input the version now serving lacks
                log.error(
                    "deployment %s: its review policy does not fit %s (%s); every answer is held for a person",
                    deployment,
                    answer.route.ref,
                    exc,
                )
                try:  # its deadline, reviews and webhook, if they still read
                    rest = policy_of(
                        {k: v for k, v in settings.automation.items() if k not in ("level", "review_rule")}
                    )
                except Exception:
                    rest = AutomationPolicy()
                triage = Triage.holding_all(rest, str(exc))
            self._triage[key] = triage
        return None if triage.quiet else triage

    def _error_rows(
        self,
        deployment: str,
        answer: _Answer,
        batch: ValidatedBatch,
        decoded: DecodedRequest,
        request_ids: list[str],
        now: datetime,
    ) -> list[dict[str, Any]]:
        rows = []
        for i in answer.rows.tolist():  # the failed attempt gets its own id: the answer, if any, keeps the client's
            rid = REQUEST_IDS.one() if answer.failed_over else request_ids[i]
            rows.append(
                self._log_row(
                    deployment,
                    answer.route,
                    rid,
                    decoded.entity_ids[i],
                    batch.records[i],
                    None,
                    None,
                    answer.elapsed,
                    now,
                    error=answer.error,
                    role="failed_over" if answer.failed_over else "served",
                )
            )
        return rows

    @staticmethod
    def _log_row(
        deployment: str,
        route: Route,
        request_id: str,
        entity: str | None,
        inputs: dict[str, Any],
        prediction: Any,
        probabilities: Any,
        latency: float,
        at: datetime,
        *,
        error: str | None = None,
        role: str = "served",
    ) -> dict[str, Any]:
        return {
            "request_id": request_id,
            "entity_id": entity,
            "deployment": deployment,
            "model": route.model,
            "version": route.version,
            "at": at,
            "inputs": inputs,
            "prediction": prediction,
            "probabilities": probabilities,
            "latency_seconds": latency,
            "routing": route.as_log(),
            "error": error,
            "role": role,
            "shadow_of": None,
        }

    def _count(self, answers: list[_Answer], batch: ValidatedBatch) -> None:
        for answer in answers:
            labels = (answer.route.deployment, answer.route.model, str(answer.route.version))
            if answer.error is not None:
                self.metrics.model_errors.labels(*labels).inc(answer.rows.size)
                continue
            series = self.metrics.answered(*labels)
            series.requests.inc()
            series.rows.inc(answer.rows.size)
            series.latency.observe(answer.elapsed)
        labels = (answers[0].route.deployment, answers[0].route.model, str(answers[0].route.version))
        if batch.quality.out_of_range:
            self.metrics.out_of_range.labels(*labels).inc(batch.quality.out_of_range)
        if batch.quality.unseen_category:
            self.metrics.unseen.labels(*labels).inc(batch.quality.unseen_category)

    # -- shadows -------------------------------------------------------------------------------
    def _mirror(
        self,
        plan: TrafficPlan,
        settings: DeploymentSettings,
        table: Columns,
        rows: np.ndarray,
        request_ids: list[str],
        decoded: DecodedRequest,
        batch: ValidatedBatch,
    ) -> None:
        """Hand a copy of ``rows`` to the shadow process; if it is behind, drop the copy (and count it)."""
        assert plan.candidate is not None
        route = plan.candidate
        job = ShadowJob(
            plan.deployment,
            route.model,
            route.version,
            route.ref,
            route.as_log(),
            settings.max_batch_size,
            (table if rows.size == table.num_rows else table.take(rows)).to_arrow(),
            [(request_ids[i], decoded.entity_ids[i], batch.records[i]) for i in rows.tolist()],
        )
        if not self.shadows.submit(job):
            self.metrics.shadow_dropped.labels(plan.deployment).inc(rows.size)

    def count_shadow(self, outcome: ShadowOutcome) -> None:
        """The shadow process's report on rows it scored (called from its reader thread)."""
        labels = (outcome.deployment, outcome.model, str(outcome.version))
        if outcome.error is None:
            self.metrics.shadow_rows.labels(*labels).inc(outcome.rows)
            self.metrics.batch_size.labels(*labels).observe(outcome.rows)
        else:
            self.metrics.model_errors.labels(*labels).inc(outcome.rows)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- ground truth --------------------------------------------------------------------------
    async def feedback(self, deployment: str, labels: list[tuple[str, str, Any]]) -> list[LabelOutcome]:
        """Join labels to logged predictions; rows still in this process's queue are written first.

        Every label is checked against the outputs of the versions the deployment routes to before any
        is joined: one that none of them could have predicted refuses the whole request."""
        await asyncio.to_thread(self.deployments.get, deployment)
        check_labels(labels, await self._outputs(deployment))
        await asyncio.to_thread(self.writer.flush, 5.0)
        outcomes = await asyncio.to_thread(self.log_store.apply_labels, deployment, labels)
        joined = sum(1 for o in outcomes if o.request_id)
        if joined:
            self.metrics.feedback.labels(deployment).inc(joined)
        return outcomes

    async def _outputs(self, deployment: str) -> dict[str, OutputSpec]:
        """The output spec of each version ``deployment`` routes to now (its answering versions and shadow)."""
        plan, _ = await self.route(deployment)
        outputs: dict[str, OutputSpec] = {}
        for route in plan.routes:
            loaded = self._predictors.get(route.ref)
            signature = loaded.signature if loaded is not None else None
            if signature is None:
                signature = await asyncio.to_thread(self.registry.get_signature, route.ref)
            outputs[route.ref] = signature.output
        return outputs

    async def close(self) -> None:
        for task in list(self._background):
            if not task.done():
                task.cancel()
        for batcher in self._batchers.values():
            await batcher.close()
        await asyncio.to_thread(self.shadows.close)


def _scorer(predictor: Predictor) -> Callable[[pa.Table | FloatRows], Scored]:
    def score(table: pa.Table | FloatRows) -> Scored:
        # NumPy's overflow warnings inside the model are not ours to print: a non-finite answer is
        # judged by `_input_to_blame` (the caller's input, or logged as the version's answer)
        with np.errstate(all="ignore"):
            predictions, proba = predictor.predict_with_proba(table)  # the input prepared once per micro-batch
        return Scored(predictions, proba)

    return score


def _shadow_only(plan: TrafficPlan, route: Route) -> bool:
    """Whether ``route`` only sees mirrored copies: the shadow process loads it, not this one."""
    return route == plan.candidate and plan.candidate_share == 0 and plan.shadow_share > 0


def _input_to_blame(answer: _Answer, batch: ValidatedBatch) -> bool:
    """Whether a version could not score rows of its answer that hold values far outside the reference
    range: it raised on them, or answered NaN or infinity for them (docs/serving.md, "Bad input"). A
    version that did not even load, or did not answer in time, is never the input's fault."""
    if not batch.quality.far or answer.predictor is None or isinstance(answer.cause, ModelTimeout):
        return False
    if not batch.quality.far_problems(answer.rows):
        return False
    if answer.error is not None or answer.scored is None:
        return True
    rows = np.isin(answer.rows, list(batch.quality.far))
    return _non_finite(answer.scored.predictions[rows]) or (
        answer.scored.probabilities is not None and _non_finite(answer.scored.probabilities[rows])
    )


def _non_finite(values: np.ndarray) -> bool:
    values = np.asarray(values)
    return values.dtype.kind in "fc" and not bool(np.isfinite(values).all())


def _stitch(answers: list[_Answer], rows: int, primary: Predictor) -> Scored:
    """One `Scored` in request order from the versions that answered parts of it (for V2 tensors)."""
    if len(answers) == 1 and answers[0].rows.size == rows:
        assert answers[0].scored is not None
        return answers[0].scored
    parts = [a.scored for a in answers if a.scored is not None]
    dtype = np.result_type(*[p.predictions.dtype for p in parts])
    predictions = np.empty(rows, dtype=dtype)
    classes = [str(c) for c in primary.classes or []]
    probabilities: np.ndarray | None = np.empty((rows, len(classes))) if classes else None
    for answer in answers:
        assert answer.scored is not None
        predictions[answer.rows] = answer.scored.predictions
        own = [str(c) for c in (answer.predictor.classes if answer.predictor else None) or []]
        if probabilities is None or answer.scored.probabilities is None or sorted(own) != sorted(classes):
            probabilities = None
            continue
        order = [own.index(c) for c in classes]  # the primary's class order
        probabilities[answer.rows] = np.asarray(answer.scored.probabilities)[:, order]
    return Scored(predictions, probabilities)
