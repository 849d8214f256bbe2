"""The prediction service: route, validate, score (micro-batched), answer, then log.

Plain Python: it knows nothing of HTTP; the endpoints parse and answer around it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from matchday.monitoring import PredictionLogWriter, json_safe
from matchday.registry import Predictor, Registry, RegistryError, Signature
from matchday.rollout import DeploymentSettings, Deployments, Route
from matchday.serving.batching import MicroBatcher, Scored
from matchday.serving.codecs import DecodedRequest
from matchday.serving.errors import BadRequest, ModelLoadFailed, PayloadTooLarge, VersionNotServed
from matchday.serving.metrics import ServingMetrics
from matchday.serving.validation import validate_columns
from matchday.store import LabelOutcome, NotFound, PredictionLogStore, StoreUnavailable

ROUTE_TTL_SECONDS = 1.0  # how soon an alias move or a redeploy reaches every process


@dataclass
class Prediction:
    request_id: str
    entity_id: str | None
    prediction: Any
    probabilities: dict[str, float] | None


@dataclass
class PredictionResult:
    route: Route
    signature: Signature
    predictions: list[Prediction]
    scored: Scored
    quality: dict[str, Any]


class PredictionService:
    def __init__(self, deployments: Deployments, registry: Registry, log_store: PredictionLogStore,
                 writer: PredictionLogWriter, metrics: ServingMetrics) -> None:
        self.deployments = deployments
        self.registry = registry
        self.log_store = log_store
        self.writer = writer
        self.metrics = metrics
        self._routes: dict[str, tuple[float, Route, DeploymentSettings]] = {}
        self._predictors: dict[str, Predictor] = {}
        self._batchers: dict[str, MicroBatcher] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    async def route(self, deployment: str) -> tuple[Route, DeploymentSettings]:
        cached = self._routes.get(deployment)
        if cached and cached[0] > time.monotonic():
            return cached[1], cached[2]
        try:
            route, settings = await asyncio.to_thread(self._resolve, deployment)
        except StoreUnavailable:
            if cached is None:
                raise
            route, settings = cached[1], cached[2]  # the database is away: keep serving the last known route
        self._routes[deployment] = (time.monotonic() + ROUTE_TTL_SECONDS, route, settings)
        if cached is not None and cached[1].ref != route.ref:
            await self._forget(deployment, cached[1])
        return route, settings

    def _resolve(self, deployment: str) -> tuple[Route, DeploymentSettings]:
        record = self.deployments.get(deployment)
        return self.deployments.route(deployment), self.deployments.settings(record)

    async def predictor(self, ref: str) -> Predictor:
        if ref not in self._predictors:
            lock = self._loading.setdefault(ref, asyncio.Lock())
            async with lock:
                if ref not in self._predictors:
                    try:
                        self._predictors[ref] = await asyncio.to_thread(self.registry.load, ref)
                    except (NotFound, StoreUnavailable):
                        raise
                    except RegistryError as exc:  # the stored model does not load here: our problem
                        raise ModelLoadFailed(f"{ref} cannot be loaded on this server: {exc.message}", exc.details) from exc
        return self._predictors[ref]

    async def _forget(self, deployment: str, old: Route) -> None:
        """Drop the batcher (and the model, if no deployment routes to it) after a route change."""
        batcher = self._batchers.pop(f"{deployment}/{old.ref}", None)
        if batcher is not None:  # requests already queued on it still get their answers
            self._retiring.add(asyncio.get_running_loop().create_task(batcher.retire()))
        if all(route.ref != old.ref for _, route, _ in self._routes.values()):
            self._predictors.pop(old.ref, None)

    def _batcher(self, route: Route, predictor: Predictor, settings: DeploymentSettings) -> MicroBatcher:
        key = f"{route.deployment}/{route.ref}"
        batcher = self._batchers.get(key)
        wait = settings.max_wait_ms / 1000
        if batcher is None or (batcher.max_batch_size, batcher.max_wait) != (settings.max_batch_size, wait):
            if batcher is not None:  # redeployed with new settings: the old one answers what it holds
                self._retiring.add(asyncio.get_running_loop().create_task(batcher.retire()))
            labels = (route.deployment, route.model, str(route.version))
            batcher = MicroBatcher(_scorer(predictor), max_batch_size=settings.max_batch_size,
                                   max_wait=wait,
                                   observe=self.metrics.batch_size.labels(*labels).observe)
            self._batchers[key] = batcher
        return batcher

    async def served_route(self, deployment: str, version: str | int | None = None) -> tuple[Route, DeploymentSettings]:
        """The deployment's route, refusing a version it does not serve (V2's ``/versions/{v}``)."""
        route, settings = await self.route(deployment)
        if version is not None and str(version) != str(route.version):
            raise VersionNotServed(f"deployment {deployment!r} serves {route.ref}, not version {version}")
        return route, settings

    async def predict(self, deployment: str, decode: Callable[[Signature], DecodedRequest],
                      version: int | None = None) -> PredictionResult:
        started = time.perf_counter()
        route, settings = await self.served_route(deployment, version)
        predictor = await self.predictor(route.ref)
        assert predictor.signature is not None
        try:
            decoded = decode(predictor.signature)
            if decoded.rows > settings.max_rows:
                raise PayloadTooLarge(f"{decoded.rows} rows in one request; deployment {deployment!r} accepts at most "
                                      f"{settings.max_rows}")
            if decoded.rows == 0:
                raise BadRequest("the request has no rows to score")
            batch = validate_columns(decoded.columns, decoded.rows, predictor.signature, decoded.path)
        except Exception:
            self.metrics.invalid.labels(deployment).inc()
            raise
        labels = (deployment, route.model, str(route.version))
        try:
            scored = await self._batcher(route, predictor, settings).score(batch.table)
        except Exception:
            self.metrics.errors.labels(deployment).inc()
            raise
        elapsed = time.perf_counter() - started
        classes = [str(c) for c in predictor.classes or []]
        predictions = []
        now = datetime.now(UTC)
        log_rows = []
        values = json_safe(scored.predictions.tolist())
        probas = json_safe(scored.probabilities.tolist()) if scored.probabilities is not None else None
        for i, (record, value, entity) in enumerate(zip(batch.records, values, decoded.entity_ids)):
            request_id = str(uuid.uuid4())
            proba = dict(zip(classes, probas[i])) if probas is not None and len(classes) == len(probas[i]) else None
            predictions.append(Prediction(request_id, entity, value, proba))
            log_rows.append({
                "request_id": request_id, "entity_id": entity, "deployment": deployment, "model": route.model,
                "version": route.version, "at": now, "inputs": record, "prediction": value,
                "probabilities": probas[i] if probas is not None else None, "latency_seconds": elapsed,
                "routing": route.as_log(),
            })
        self.writer.submit(log_rows)  # after the answer is ready; never waits on the database
        self.metrics.requests.labels(*labels).inc()
        self.metrics.rows.labels(*labels).inc(len(predictions))
        self.metrics.latency.labels(*labels).observe(elapsed)
        if batch.quality.out_of_range:
            self.metrics.out_of_range.labels(*labels).inc(batch.quality.out_of_range)
        if batch.quality.unseen_category:
            self.metrics.unseen.labels(*labels).inc(batch.quality.unseen_category)
        quality = {"out_of_range": batch.quality.out_of_range, "unseen_category": batch.quality.unseen_category,
                   "by_feature": batch.quality.by_feature}
        return PredictionResult(route, predictor.signature, predictions, scored, quality)

    async def feedback(self, deployment: str, labels: list[tuple[str, str, Any]]) -> list[LabelOutcome]:
        """Join labels to logged predictions; rows still in this process's queue are written first."""
        await asyncio.to_thread(self.deployments.get, deployment)
        await asyncio.to_thread(self.writer.flush, 5.0)
        outcomes = await asyncio.to_thread(self.log_store.apply_labels, deployment, labels)
        joined = sum(1 for o in outcomes if o.request_id)
        if joined:
            self.metrics.feedback.labels(deployment).inc(joined)
        return outcomes

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        for task in self._retiring:
            task.cancel()


def _scorer(predictor: Predictor) -> Callable[[pa.Table], Scored]:
    def score(table: pa.Table) -> Scored:
        predictions = np.asarray(predictor.predict(table))
        proba = predictor.predict_proba(table) if predictor.has_proba else None
        return Scored(predictions, proba)

    return score
