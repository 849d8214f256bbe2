"""A device's telemetry body read into typed parts, every problem found at once (docs/edge.md, the protocol).

Only the shape is read here: which fields, of which types, times that parse and are not in the future.
Whether the rows fit their version's signature is `telemetry`'s check, against the registry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from matchday.edge.telemetry_errors import InvalidTelemetry, Problem, TooMuchTelemetry
from matchday_edge import MAX_ROWS_PER_REQUEST

# the protocol's constants are the device runtime's own (one copy: `matchday_edge.protocol`)
MAX_ROWS = MAX_ROWS_PER_REQUEST  # predictions, and labels, per request: the device sends in batches
MAX_CLOCK_SKEW = timedelta(minutes=5)  # a device clock this far ahead of the server's is still believed
_EPOCH = re.compile(r"[0-9a-fA-F]{32}")
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class EdgePrediction:
    """One buffered prediction as the device sent it (``inputs`` unchecked against a signature yet)."""

    index: int  # its position in the body's ``predictions``, for messages
    seq: int
    at: datetime
    inputs: dict[str, Any]
    prediction: Any
    probabilities: list[float] | None
    latency_seconds: float
    model: str
    version: int


@dataclass(frozen=True)
class EdgeLabel:
    index: int
    id: int  # the label's own buffer id (what the acknowledgement names)
    seq: int  # the prediction it labels
    label: Any


@dataclass(frozen=True)
class TelemetryBody:
    deployment: str
    epoch: str
    model: str  # the bundle the device runs now
    version: int
    bundle_sha256: str | None
    predictions: list[EdgePrediction]
    labels: list[EdgeLabel]


def parse_body(body: Any, now: datetime) -> TelemetryBody:
    """The body read, or `InvalidTelemetry` (422) naming every problem, `TooMuchTelemetry` (413) past the limits."""
    if not isinstance(body, Mapping):
        raise InvalidTelemetry(
            "the body must be a JSON object with deployment, epoch, bundle, predictions and labels",
            [Problem("body", f"got {_kind(body)}")],
        )
    predictions, labels = body.get("predictions", []), body.get("labels", [])
    for name, items in (("predictions", predictions), ("labels", labels)):
        if isinstance(items, list) and len(items) > MAX_ROWS:
            raise TooMuchTelemetry(
                f"{len(items):,} {name} in one request; at most {MAX_ROWS:,} per request: send them in batches"
            )
    problems: list[Problem] = []
    deployment = body.get("deployment")
    if not isinstance(deployment, str) or not deployment.strip():
        problems.append(Problem("deployment", "needs the deployment's name (the bundle manifest's)"))
    epoch = body.get("epoch")
    if not isinstance(epoch, str) or not _EPOCH.fullmatch(epoch):
        problems.append(Problem("epoch", "needs the buffer's epoch: 32 hexadecimal characters"))
    bundle = body.get("bundle")
    model: str = ""
    version: int = 0
    sha: str | None = None
    if not isinstance(bundle, Mapping):
        problems.append(Problem("bundle", 'needs {"model": ..., "version": ..., "sha256": ...} of the running bundle'))
    else:
        named, number, digest = bundle.get("model"), _positive(bundle.get("version")), bundle.get("sha256")
        if isinstance(named, str) and named:
            model = named
        else:
            problems.append(Problem("bundle.model", "needs the model's name"))
        if number is None:
            problems.append(Problem("bundle.version", "needs the version number (an integer from 1)"))
        version = number or 0
        if isinstance(digest, str):
            sha = digest
        elif digest is not None:
            problems.append(Problem("bundle.sha256", "must be the manifest's sha256 as text"))
    if not isinstance(predictions, list):
        problems.append(Problem("predictions", f"must be a list, got {_kind(predictions)}"))
        predictions = []
    if not isinstance(labels, list):
        problems.append(Problem("labels", f"must be a list, got {_kind(labels)}"))
        labels = []
    parsed = [p for i, item in enumerate(predictions) if (p := _prediction(i, item, now, problems)) is not None]
    read = [lab for i, item in enumerate(labels) if (lab := _label(i, item, problems)) is not None]
    _no_repeats([(p.index, p.seq) for p in parsed], "predictions", "seq", problems)
    _no_repeats([(lab.index, lab.id) for lab in read], "labels", "id", problems)
    if problems:
        raise InvalidTelemetry(f"{len(problems)} problem(s) in the telemetry; nothing of it was written", problems)
    return TelemetryBody(str(deployment), str(epoch), model, version, sha, parsed, read)


def _prediction(i: int, item: Any, now: datetime, problems: list[Problem]) -> EdgePrediction | None:
    where = f"predictions[{i}]"
    if not isinstance(item, Mapping):
        problems.append(Problem(where, f"must be an object, got {_kind(item)}"))
        return None
    found: list[Problem] = []
    seq = _positive(item.get("seq"))
    if seq is None:
        found.append(Problem(f"{where}.seq", "needs the buffer's sequence number (an integer from 1)"))
    at = _time(item.get("at"), f"{where}.at", now, found)
    inputs = item.get("inputs")
    if not isinstance(inputs, Mapping):
        found.append(Problem(f"{where}.inputs", f"must be an object of input name to value, got {_kind(inputs)}"))
    prediction = item.get("prediction")
    if prediction is not None and not isinstance(prediction, _SCALARS):
        found.append(Problem(f"{where}.prediction", f"must be a single value, got {_kind(prediction)}"))
    probabilities = item.get("probabilities")
    if probabilities is not None and (
        not isinstance(probabilities, list) or not all(_finite(p) and 0 <= p <= 1 for p in probabilities)
    ):
        found.append(Problem(f"{where}.probabilities", "must be null or a list of numbers from 0 to 1"))
    latency = item.get("latency_seconds", 0.0)
    if not _finite(latency) or latency < 0:
        found.append(Problem(f"{where}.latency_seconds", "must be a number of seconds, 0 or more"))
    model, version = item.get("model"), _positive(item.get("version"))
    if not isinstance(model, str) or not model:
        found.append(Problem(f"{where}.model", "needs the name of the model that predicted it"))
    if version is None:
        found.append(Problem(f"{where}.version", "needs the version number that predicted it"))
    if found or seq is None or at is None or version is None or not isinstance(inputs, Mapping):
        problems.extend(p.with_seq(seq) for p in found)
        return None
    return EdgePrediction(
        i,
        seq,
        at,
        dict(inputs),
        prediction,
        [float(p) for p in probabilities] if probabilities is not None else None,
        float(latency),
        str(model),
        version,
    )


def _label(i: int, item: Any, problems: list[Problem]) -> EdgeLabel | None:
    where = f"labels[{i}]"
    if not isinstance(item, Mapping):
        problems.append(Problem(where, f"must be an object, got {_kind(item)}"))
        return None
    found = []
    label_id, seq = item.get("id"), _positive(item.get("seq"))
    if not isinstance(label_id, int) or isinstance(label_id, bool):
        found.append(Problem(f"{where}.id", "needs the label's buffer id (an integer)"))
    if seq is None:
        found.append(Problem(f"{where}.seq", "needs the sequence number of the prediction it labels"))
    if "label" not in item:
        found.append(Problem(f"{where}.label", "missing"))
    if found or seq is None or not isinstance(label_id, int):
        problems.extend(found)
        return None
    return EdgeLabel(i, label_id, seq, item["label"])


def _time(value: Any, where: str, now: datetime, problems: list[Problem]) -> datetime | None:
    """A UTC ISO time with its offset, not later than ``now`` plus the clock skew allowed."""
    if not isinstance(value, str):
        problems.append(Problem(where, f"needs the prediction's time as ISO 8601 text, got {_kind(value)}"))
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        problems.append(Problem(where, f"{value!r} is not an ISO 8601 time"))
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        problems.append(Problem(where, f"{value!r} has no UTC offset (send it as ...+00:00)"))
        return None
    if at > now + MAX_CLOCK_SKEW:
        ahead = (at - now).total_seconds()
        problems.append(
            Problem(
                where,
                f"{value} is {ahead:,.0f} s after the server's clock ({now.isoformat()}; "
                f"{MAX_CLOCK_SKEW.total_seconds():.0f} s allowed): the device's clock is wrong",
            )
        )
        return None
    return at


def _no_repeats(keys: list[tuple[int, int]], name: str, field: str, problems: list[Problem]) -> None:
    seen: dict[int, int] = {}
    for index, key in keys:
        if key in seen:
            problems.append(Problem(f"{name}[{index}].{field}", f"{key} is also {name}[{seen[key]}]'s"))
        else:
            seen[key] = index


def _positive(value: Any) -> int | None:
    """An integer from 1 (not a boolean), or None."""
    return value if _is_int(value) and value >= 1 else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean"}.get(type(value), "a number")
