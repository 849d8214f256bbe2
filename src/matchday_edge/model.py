"""`EdgeModel`: a verified bundle, scoring rows on the device, every prediction kept for the server.

>>> # EdgeModel.load("bundle/", public_key="3b6a...", device="till-7")  (docs/edge.md runs it whole)
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from matchday_edge.buffer import NewPrediction, OnFull, RefusedPrediction, TelemetryBuffer
from matchday_edge.bundle import Bundle, load_bundle
from matchday_edge.drift import PSI_ALERT, DriftReport, FeatureDrift, bin_shares, psi, reference_shares
from matchday_edge.errors import InvalidRows
from matchday_edge.protocol import request_id
from matchday_edge.rows import encode_inputs, encode_probabilities
from matchday_edge.scoring import OnnxScorer, Rows, Scores, plain
from matchday_edge.sync import BundleIdentity, SyncResult, Transport, sync_buffer, urllib_transport

if TYPE_CHECKING:
    from matchday_edge.loopback import LoopbackServer


@dataclass(frozen=True)
class Prediction:
    """One scored row: its answer, and the handle (``seq``) to label it with later."""

    seq: int | None  # None when the model buffers nothing
    request_id: str | None  # the id it will have in the server's prediction log
    label: Any
    probabilities: list[float] | None


class EdgeModel:
    """Load with `EdgeModel.load`; then `predict`, `predict_proba`, `score`, `label`, `sync`, `drift`."""

    def __init__(self, bundle: Bundle, buffer: TelemetryBuffer | None, recent: int = 1000) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.scorer = OnnxScorer(bundle.model_bytes, bundle.manifest)
        self.buffer = buffer
        self._recent: deque[list[Any]] = deque(maxlen=recent)
        self._columns: list[tuple[str, str]] = [(spec["name"], spec["type"]) for spec in bundle.manifest["inputs"]]
        if buffer is not None:
            buffer.remember_columns(bundle.manifest["name"], bundle.manifest["version"], self._columns)
        self._identity = BundleIdentity(
            bundle.manifest["deployment"], bundle.manifest["name"], bundle.manifest["version"], bundle.manifest_sha256
        )

    @classmethod
    def load(
        cls,
        bundle_dir: str | Path,
        *,
        public_key: str | bytes,
        device: str,
        buffer: str | Path | None = "telemetry.db",
        max_rows: int = 1_000_000,
        max_bytes: int = 256 * 2**20,
        max_age_seconds: float = 30 * 86400,
        on_full: OnFull = "drop_oldest",
        durable: bool = False,
        recent: int = 1000,
    ) -> EdgeModel:
        """The bundle in ``bundle_dir``, verified against the pinned ``public_key`` (`BundleRefused` if it is not
        the server's), with its telemetry buffered in SQLite file ``buffer`` (None: buffer nothing) for ``device``.

        ``recent``: how many of the last rows' inputs `drift` compares with the reference.
        """
        bundle = load_bundle(bundle_dir, public_key)
        store = None
        if buffer is not None:
            store = TelemetryBuffer(
                buffer,
                device=device,
                max_rows=max_rows,
                max_bytes=max_bytes,
                max_age_seconds=max_age_seconds,
                on_full=on_full,
                durable=durable,
            )
        return cls(bundle, store, recent)

    # -- what the model is ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> int:
        return self.manifest["version"]

    @property
    def input_names(self) -> list[str]:
        return list(self.scorer.names)

    @property
    def classes(self) -> list[Any] | None:
        classes = self.manifest["classes"]
        return None if classes is None else list(classes)

    # -- scoring ----------------------------------------------------------------------------
    def predict(self, rows: Rows) -> np.ndarray:
        """One label (a regressor: one value) per row; ``rows`` a list of dicts or a 2-D array in `input_names` order."""
        return self._score(rows)[0].labels

    def predict_proba(self, rows: Rows) -> np.ndarray:
        """Class probabilities per row, columns in `classes` order."""
        scores, _ = self._score(rows)
        if scores.probabilities is None:
            raise InvalidRows(
                f"{self.name}:{self.version} gives no probabilities (it is not a probabilistic classifier)"
            )
        return scores.probabilities

    def score(self, rows: Rows) -> list[Prediction]:
        """Each row's answer with its handle, to `label` it when the ground truth is known."""
        scores, logged = self._score(rows)
        seqs: list[int | None] = list(logged) if logged is not None else [None] * len(scores.labels)
        labels = scores.labels.tolist()
        probabilities = scores.probabilities.tolist() if scores.probabilities is not None else [None] * len(labels)
        epoch = self.buffer.epoch if self.buffer else None
        device = self.buffer.device if self.buffer else None
        return [
            Prediction(
                seq,
                request_id(device, epoch, seq) if device and epoch and seq is not None else None,
                label,
                proba,
            )
            for seq, label, proba in zip(seqs, labels, probabilities)
        ]

    def _score(self, rows: Rows) -> tuple[Scores, list[int] | None]:
        started = time.perf_counter()
        matrix, feed = self.scorer.prepare(rows)
        if not len(matrix):
            empty = np.empty(0)
            return Scores(empty, None if self.manifest["outputs"]["probabilities"] is None else empty.reshape(0, 0)), []
        scores = self.scorer.run(feed)
        latency = (time.perf_counter() - started) / len(matrix)
        self._recent.extend(matrix)
        if self.buffer is None:
            return scores, None
        at = time.time()
        given = self.scorer.matrix_input
        values = feed[given] if given is not None and feed[given].dtype == np.float64 else matrix
        inputs = encode_inputs(values, self._columns)
        probabilities = encode_probabilities(scores.probabilities, len(matrix))
        kind = "float" if self.manifest["task"] == "regression" else ""
        rows_out = [
            NewPrediction(at, self.name, self.version, data, encoding, json.dumps(plain(label, kind)), proba, latency)
            for (data, encoding), label, proba in zip(inputs, scores.labels.tolist(), probabilities)
        ]
        return scores, self.buffer.append_predictions(rows_out)

    # -- ground truth -----------------------------------------------------------------------
    def label(self, prediction: int | Prediction, label: Any) -> int:
        """Record the true outcome of a prediction (its `Prediction` or ``seq``); it goes home with the next sync."""
        if self.buffer is None:
            raise InvalidRows("this model was loaded with buffer=None: it keeps no predictions to label")
        seq = prediction.seq if isinstance(prediction, Prediction) else prediction
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise InvalidRows(f"label takes a Prediction or its seq (an int), not {type(prediction).__name__}")
        return self.buffer.append_label(seq, json.dumps(plain(label, "")), time.time())

    # -- going home -------------------------------------------------------------------------
    def sync(
        self,
        url: str,
        token: str | None = None,
        *,
        batch_size: int = 500,
        timeout: float = 10.0,
        transport: Transport = urllib_transport,
    ) -> SyncResult:
        """Post the buffer to the server at ``url`` (see `matchday_edge.sync`); rows stay until acknowledged."""
        if self.buffer is None:
            raise InvalidRows("this model was loaded with buffer=None: it has nothing to sync")
        return sync_buffer(
            self.buffer, self._identity, url, token, batch_size=batch_size, timeout=timeout, transport=transport
        )

    def refused(self, limit: int | None = None) -> list[RefusedPrediction]:
        """The predictions the server refused at a sync, set aside with its reason (`TelemetryBuffer.refused`;
        `requeue_refused` / `delete_refused` on ``self.buffer`` once an operator has looked)."""
        if self.buffer is None:
            return []
        return self.buffer.refused(limit)

    # -- watching itself --------------------------------------------------------------------
    def drift(self, threshold: float = PSI_ALERT, min_rows: int = 100) -> DriftReport:
        """PSI of each feature's last rows (up to ``recent`` of them) against the bundle's reference sketch;
        a feature is flagged past ``threshold`` once ``min_rows`` rows were seen (a handful of rows always differs)."""
        reference = self.manifest.get("reference")
        recent = list(self._recent)
        if not reference or not recent:
            return DriftReport(len(recent), [])
        features = []
        for i, name in enumerate(self.scorer.names):
            sketch = reference["features"].get(name)
            if sketch is None:
                continue
            value = psi(reference_shares(sketch), bin_shares(sketch, [row[i] for row in recent]))
            features.append(FeatureDrift(name, round(value, 6), value > threshold and len(recent) >= min_rows))
        return DriftReport(len(recent), features)

    def serve_v2(self, host: str = "127.0.0.1", port: int = 8080) -> LoopbackServer:
        """Serve this model on the V2 protocol (``/v2/models/{deployment}/infer``) from a thread, for apps on
        the device; `LoopbackServer.close` stops it."""
        from matchday_edge.loopback import LoopbackServer

        return LoopbackServer(self, host, port).start()

    def close(self) -> None:
        if self.buffer is not None:
            self.buffer.close()

    def __enter__(self) -> EdgeModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
