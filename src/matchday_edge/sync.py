"""Sending the buffer home: batches posted to the server's telemetry route, deleted only once acknowledged.

Each batch is a POST of at most ``batch_size`` predictions and labels (protocol: the device's epoch, the
bundle, the rows with their own times). A label travels with its prediction or after it, never before
(`TelemetryBuffer.pending`): the server settles a label it cannot match as unmatched, and the device
would delete it. The server answers only after it has committed the rows, with
the ids it now holds; exactly those are deleted. A reply that never arrives leaves the rows buffered:
the next sync sends them again, the server finds them already logged (their request ids derive from
device, epoch and seq) and acknowledges them, so every row lands once.

An unreachable server is the normal state of a device: `sync` then returns a result saying so and
why, and every row stays. A 422 whose ``details`` name rows by their ``seq`` (a row that does not fit its
version's signature, a time ahead of the server's clock) sets exactly those rows aside in the buffer
with the server's reason (`TelemetryBuffer.refused`) and sends the rest again, in the same call: one bad
row neither blocks the device nor is lost. Any other 4xx is a mistake to fix (a bad token, an
unregistered device, a body refused as a whole): `SyncRefused` with the server's message.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from matchday_edge.buffer import PendingPrediction, TelemetryBuffer
from matchday_edge.errors import SyncRefused
from matchday_edge.protocol import MAX_ROWS_PER_REQUEST, TELEMETRY_PATH
from matchday_edge.rows import decode_inputs, decode_probabilities, iso

# (url, body, headers, timeout) -> (status, response body). Raises OSError when nothing came back.
Transport = Callable[[str, bytes, dict[str, str], float], tuple[int, bytes]]


@dataclass(frozen=True)
class BundleIdentity:
    """Which bundle the device runs, as the telemetry names it."""

    deployment: str
    model: str
    version: int
    sha256: str


@dataclass
class SyncResult:
    """What one sync did. ``complete``: every row buffered when it started is now the server's."""

    requests: int = 0
    sent_predictions: int = 0
    sent_labels: int = 0
    acknowledged_predictions: int = 0
    acknowledged_labels: int = 0
    written: int = 0
    already_logged: int = 0
    labels_applied: int = 0
    labels_unmatched: list[dict[str, Any]] = field(default_factory=list)
    set_aside: int = 0  # predictions the server refused, now in the buffer's refused table
    set_aside_labels: int = 0  # labels of them, set aside with them
    refusals: list[dict[str, Any]] = field(default_factory=list)  # {"seq", "reason"} of each, the server's words
    complete: bool = False
    reason: str | None = None  # why it stopped early: the server unreachable, a 5xx

    @property
    def reachable(self) -> bool:
        return self.reason is None


def urllib_transport(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """POST with the standard library; an HTTP error status is returned, not raised."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the operator's URL)
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def sync_buffer(
    buffer: TelemetryBuffer,
    bundle: BundleIdentity,
    url: str,
    token: str | None = None,
    *,
    batch_size: int = 500,
    timeout: float = 10.0,
    transport: Transport = urllib_transport,
) -> SyncResult:
    """Post every row buffered now to ``url`` (the server's base URL) in batches; see the module's docstring."""
    if not 1 <= batch_size <= MAX_ROWS_PER_REQUEST:
        raise ValueError(f"batch_size must be between 1 and {MAX_ROWS_PER_REQUEST}, not {batch_size}")
    endpoint = url.rstrip("/") + TELEMETRY_PATH.format(device=urllib.parse.quote(buffer.device, safe=""))
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    result = SyncResult()
    upto = buffer.marks()  # rows appended while syncing wait for the next sync
    after_seq, after_label = 0, (0, 0)  # the last prediction seq and label (seq, id) this sync has sent
    while True:
        predictions, labels = buffer.pending(batch_size, after_seq, after_label, upto)
        if not predictions and not labels:
            result.complete = True
            return result
        body = {
            "deployment": bundle.deployment,
            "epoch": buffer.epoch,
            "bundle": {"model": bundle.model, "version": bundle.version, "sha256": bundle.sha256},
            "predictions": [prediction_json(p, buffer) for p in predictions],
            "labels": [{"id": lb.id, "seq": lb.seq, "label": json.loads(lb.label), "at": iso(lb.at)} for lb in labels],
        }
        try:
            status, raw = transport(endpoint, json.dumps(body).encode(), headers, timeout)
        except (OSError, http.client.HTTPException) as exc:  # URLError, refused, reset, timed out, cut short
            result.reason = f"the server at {url} is unreachable: {_why(exc)}; {_kept(buffer)}"
            return result
        result.requests += 1
        result.sent_predictions += len(predictions)
        result.sent_labels += len(labels)
        answer = _json(raw)
        if status >= 500 or status in (408, 429):
            result.reason = f"the server answered {status}: {_message(answer, raw)}; {_kept(buffer)}"
            return result
        if status == 422 and (named := refused_rows(answer, {p.seq for p in predictions})):
            moved, labels_moved = buffer.set_aside(named)
            if not moved:  # nothing left to set aside: the same answer again would loop
                raise SyncRefused(status, _message(answer, raw), _details(answer))
            result.set_aside += moved
            result.set_aside_labels += labels_moved
            result.refusals += [{"seq": seq, "reason": reason} for seq, reason in named.items()]
            continue  # the same batch again, without them
        if status != 200:
            raise SyncRefused(status, _message(answer, raw), _details(answer))
        acknowledged = answer.get("acknowledged") or {}
        sent_seqs = {p.seq for p in predictions}
        sent_ids = {lb.id for lb in labels}
        seqs = [s for s in acknowledged.get("predictions") or [] if s in sent_seqs]
        ids = [i for i in acknowledged.get("labels") or [] if i in sent_ids]
        buffer.acknowledge(seqs, ids)
        result.acknowledged_predictions += len(seqs)
        result.acknowledged_labels += len(ids)
        result.written += int(answer.get("written") or 0)
        result.already_logged += int(answer.get("already_logged") or 0)
        result.labels_applied += int(answer.get("labels_applied") or 0)
        result.labels_unmatched += list(answer.get("labels_unmatched") or [])
        if not seqs and not ids:
            result.reason = "the server acknowledged none of the rows it was sent; they stay buffered"
            return result
        # rows the server did not acknowledge stay buffered for the next sync; move past them now
        after_seq = max(sent_seqs, default=after_seq)
        after_label = (labels[-1].seq, labels[-1].id) if labels else after_label


def prediction_json(row: PendingPrediction, buffer: TelemetryBuffer) -> dict[str, Any]:
    """One buffered prediction as the protocol's JSON."""
    return {
        "seq": row.seq,
        "at": iso(row.at),
        "inputs": decode_inputs(row.inputs, row.encoding, buffer.columns(row.model, row.version)),
        "prediction": json.loads(row.prediction),
        "probabilities": decode_probabilities(row.probabilities),
        "latency_seconds": row.latency,
        "model": row.model,
        "version": row.version,
    }


def refused_rows(answer: dict[str, Any], sent: set[int]) -> dict[int, str]:
    """The rows a 422 names by ``seq`` among those ``sent`` -> why (each of the row's problems, "; "-joined).

    >>> refused_rows({"details": [{"field": "predictions[0].inputs", "problem": "missing input(s) a", "seq": 4},
    ...                           {"field": "epoch", "problem": "needs the buffer's epoch"}]}, {4, 5})
    {4: 'predictions[0].inputs: missing input(s) a'}
    """
    reasons: dict[int, list[str]] = {}
    details = answer.get("details", answer.get("detail"))
    for item in details if isinstance(details, list) else []:
        seq = item.get("seq") if isinstance(item, dict) else None
        if isinstance(seq, int) and not isinstance(seq, bool) and seq in sent:
            where, problem = item.get("field"), item.get("problem")
            reasons.setdefault(seq, []).append(f"{where}: {problem}" if where else str(problem))
    return {seq: "; ".join(found) for seq, found in reasons.items()}


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _message(answer: dict[str, Any], raw: bytes) -> str:
    message = answer.get("error") or answer.get("detail")
    if isinstance(message, str):
        return message
    return raw[:300].decode("utf-8", "replace") or "(no message)"


def _details(answer: dict[str, Any]) -> list[str]:
    details = answer.get("details", answer.get("detail"))
    if isinstance(details, list):
        return [d if isinstance(d, str) else json.dumps(d) for d in details]
    return []


def _why(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc) or type(exc).__name__


def _kept(buffer: TelemetryBuffer) -> str:
    stats = buffer.stats()
    return f"{stats.predictions} predictions and {stats.labels} labels stay buffered"
