"""The server side of edge telemetry: devices registered to a deployment, and their syncs landing in
the prediction log beside online traffic.

A sync is checked whole before anything is written (the device, its token, its deployment, every row
against its version's signature), then its predictions go into the log in one transaction (each row at
its own prediction time, ``routing`` marking it ``source: edge`` with the device), then its labels join
as feedback (source ``edge``), then the device's counts move. The acknowledgement names every row the
server now holds: a replay of rows whose acknowledgement was lost is skipped by request id and
acknowledged again, so each row lands once however often the device retries.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from matchday.auth import Access, Principal
from matchday.edge.telemetry_body import (
    EdgeLabel,
    EdgePrediction,
    TelemetryBody,
    parse_body,
)
from matchday.edge.telemetry_errors import DeviceNotBound, InvalidDevice, InvalidTelemetry, Problem, WrongDeployment
from matchday.errors import MatchdayError
from matchday.registry import InvalidInput, OutputSpec, PinnedRef, Predictor, Registry, RegistryError, Signature
from matchday.store import (
    DeploymentStore,
    EdgeDeviceExists,
    EdgeDeviceRecord,
    EdgeDeviceStore,
    EventStore,
    NotFound,
    PredictionLogStore,
    PrincipalNotFound,
)
from matchday_edge import request_id  # the protocol's one copy, the device's own (standard library only)

DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
PRIVILEGED = frozenset({"operator", "admin"})  # may post for any device (a test rig, a gateway)


@dataclass(frozen=True)
class UnmatchedLabel:
    id: int
    seq: int
    reason: str


@dataclass(frozen=True)
class TelemetryAck:
    """What the server holds after a sync: the device deletes exactly ``predictions`` and ``labels``."""

    device: str
    written: int
    already_logged: int  # replays of rows an earlier, unacknowledged sync wrote
    labels_applied: int
    labels_unmatched: list[UnmatchedLabel] = field(default_factory=list)
    predictions: list[int] = field(default_factory=list)  # every seq acknowledged
    labels: list[int] = field(default_factory=list)  # every label id acknowledged (the unmatched too)

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "written": self.written,
            "already_logged": self.already_logged,
            "labels_applied": self.labels_applied,
            "labels_unmatched": [{"id": u.id, "seq": u.seq, "reason": u.reason} for u in self.labels_unmatched],
            "acknowledged": {"predictions": self.predictions, "labels": self.labels},
        }


def device_json(record: EdgeDeviceRecord) -> dict[str, Any]:
    """A device as the API lists it (never its token: only the key that names it)."""
    return {
        "device": record.device,
        "deployment": record.deployment,
        "token_key": record.token_key,
        "created_at": record.created_at.isoformat(),
        "created_by": record.created_by,
        "last_sync_at": record.last_sync_at.isoformat() if record.last_sync_at else None,
        "last_model_ref": record.last_model_ref,
        "rows_received": record.rows_received,
        "labels_received": record.labels_received,
    }


class _SignatureCheck(Predictor):
    """`Predictor.prepare`'s checks of a version's signature (columns present, values of its types)
    without loading the model: a device's rows were scored already, they are only checked and typed."""

    flavor = "signature"

    def __init__(self, signature: Signature) -> None:
        super().__init__()
        self.signature = signature

    def _predict(self, table: pa.Table) -> Any:
        raise NotImplementedError("a signature check scores nothing")


class EdgeTelemetry:
    """Devices (registered with a token each) and their syncs into the prediction log."""

    def __init__(
        self,
        devices: EdgeDeviceStore,
        deployments: DeploymentStore,
        registry: Registry,
        log: PredictionLogStore,
        access: Access,
        events: EventStore,
    ) -> None:
        self.devices = devices
        self.deployments = deployments
        self.registry = registry
        self.log = log
        self.access = access
        self.events = events

    # -- devices ---------------------------------------------------------------------------------
    def register(
        self, device: str, deployment: str, actor: str, *, expires: str | None = None
    ) -> tuple[str, EdgeDeviceRecord]:
        """The device registered to ``deployment`` with a new predictor token scoped to it and bound to the
        device: (the token, shown once; the record)."""
        if not DEVICE_NAME.fullmatch(device):
            raise InvalidDevice(
                f"{device!r} is not a device name: 1 to 100 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        self.deployments.get(deployment)  # DeploymentNotFound before any token is made
        try:
            existing = self.devices.get(device)
        except NotFound:
            pass
        else:
            raise EdgeDeviceExists(device, existing.deployment)
        token, made = self.access.create_token(
            ["predictor"],
            name=f"edge device {device}",
            created_by=actor,
            deployments=[deployment],
            expires=expires,
        )
        try:
            record = self.devices.add(device, deployment, made.key, actor)
        except BaseException:  # registered meanwhile, or the database went away: no token without its device
            with contextlib.suppress(MatchdayError):  # (the database away too: `tokens list` shows it to revoke)
                self.access.revoke_token(made.key, actor)
            raise
        self.events.add(
            "edge_device_added",
            actor,
            f"edge device {device} registered to {deployment} (token {made.key})",
            {"device": device, "token": made.key},
            deployment=deployment,
        )
        return token, record

    def remove(self, device: str, actor: str) -> EdgeDeviceRecord:
        """The device's token revoked, then the device removed (its logged rows stay)."""
        record = self.devices.get(device)
        try:
            self.access.revoke_token(record.token_key, actor)
        except PrincipalNotFound:
            pass  # its token row is gone already: nothing to revoke
        removed = self.devices.remove(device)
        self.events.add(
            "edge_device_removed",
            actor,
            f"edge device {device} removed (token {record.token_key} revoked)",
            {"device": device, "token": record.token_key},
            deployment=record.deployment,
        )
        return removed

    def device(self, device: str) -> EdgeDeviceRecord:
        return self.devices.get(device)

    def registered(self, deployment: str | None = None, reader: Principal | None = None) -> list[EdgeDeviceRecord]:
        """Every registered device (of one deployment), by name; of a token limited to some deployments
        (``reader``), only theirs."""
        found = self.devices.list(deployment)
        if reader is None or reader.deployments is None or "admin" in reader.roles:
            return found
        return [d for d in found if d.deployment in reader.deployments]

    # -- syncs -----------------------------------------------------------------------------------
    def receive(self, device: str, body: Any, sender: Principal | None, now: datetime | None = None) -> TelemetryAck:
        """A sync's body checked whole, written, acknowledged. ``sender`` is the request's principal (None on
        a server mounted without the gate: trusted as the machine's own)."""
        now = now or datetime.now(UTC)
        record = self.devices.get(device)
        _check_sender(record, sender)
        parsed = parse_body(body, now)
        if parsed.deployment != record.deployment:
            raise WrongDeployment(
                f"device {device} is registered to deployment {record.deployment!r}, not {parsed.deployment!r} "
                f"(the bundle was exported for another deployment: register the device again with "
                f"--deployment {parsed.deployment})"
            )
        self.deployments.get(record.deployment)  # removed since the device was registered: a 404
        signatures = self._signatures(parsed)
        rows = self._rows(device, parsed, signatures)
        written = self.log.insert(rows)
        outcomes = self._labels(device, parsed, signatures)
        applied = [label for label, reason in outcomes if reason is None]
        unmatched = [UnmatchedLabel(label.id, label.seq, reason) for label, reason in outcomes if reason is not None]
        self.devices.record_sync(
            device, at=now, rows=written, labels=len(applied), model_ref=str(PinnedRef(parsed.model, parsed.version))
        )
        return TelemetryAck(
            device=device,
            written=written,
            already_logged=len(rows) - written,
            labels_applied=len(applied),
            labels_unmatched=unmatched,
            predictions=[p.seq for p in parsed.predictions],
            labels=[label.id for label in parsed.labels],
        )

    def _signatures(self, parsed: TelemetryBody) -> dict[tuple[str, int], Signature]:
        """The signature of the bundle's version and of every version the rows name; any unknown is a 422.
        An unknown bundle version is the whole body's problem; rows of another unknown version are each
        named by seq (the device sets them aside and sends the rest)."""
        bundle = (parsed.model, parsed.version)
        wanted: dict[tuple[str, int], list[EdgePrediction]] = {bundle: []}
        for p in parsed.predictions:
            wanted.setdefault((p.model, p.version), []).append(p)
        found: dict[tuple[str, int], Signature] = {}
        problems = []
        for (model, version), rows in wanted.items():
            try:
                found[(model, version)] = self.registry.get_signature(PinnedRef(model, version))
            except (NotFound, RegistryError) as exc:
                problem = f"{model}:{version} is not a registered version: {exc}"
                if (model, version) == bundle:
                    problems.append(Problem("bundle", problem))
                else:
                    problems += [Problem(f"predictions[{p.index}].version", problem, p.seq) for p in rows]
        if problems:
            raise InvalidTelemetry("the telemetry names versions the registry does not have", problems)
        return found

    def _rows(
        self, device: str, parsed: TelemetryBody, signatures: dict[tuple[str, int], Signature]
    ) -> list[dict[str, Any]]:
        """The log's rows of the body's predictions, inputs typed by their version's signature."""
        by_version: dict[tuple[str, int], list[EdgePrediction]] = {}
        for p in parsed.predictions:
            by_version.setdefault((p.model, p.version), []).append(p)
        typed: dict[int, dict[str, Any]] = {}
        problems: list[Problem] = []
        for key, items in by_version.items():
            signature = signatures[key]
            inputs, found = _typed_inputs(items, signature)
            problems += found
            problems += _probability_problems(items, signature.output)
            typed.update(inputs)
        if problems:
            problems.sort(key=lambda p: p.field)
            raise InvalidTelemetry(
                f"{len(problems)} row(s) that do not fit their version's signature; nothing of the telemetry was written",
                problems,
            )
        return [
            {
                "request_id": request_id(device, parsed.epoch, p.seq),
                "entity_id": None,
                "deployment": parsed.deployment,
                "model": p.model,
                "version": p.version,
                "at": p.at.astimezone(UTC),
                "prediction": p.prediction,
                "probabilities": p.probabilities,
                "inputs": typed[p.index],
                "latency_seconds": p.latency_seconds,
                "role": "served",
                "routing": {
                    "source": "edge",
                    "device": device,
                    "plan": "single",
                    "arm": "primary",
                    "model_ref": str(PinnedRef(p.model, p.version)),
                },
            }
            for p in parsed.predictions
        ]

    def _labels(
        self, device: str, parsed: TelemetryBody, signatures: dict[tuple[str, int], Signature]
    ) -> list[tuple[EdgeLabel, str | None]]:
        """Each label with why it did not join (None: joined). A label the version could not have predicted,
        or of a prediction the log does not hold, is acknowledged as unmatched: the device cannot mend it."""
        if not parsed.labels:
            return []
        version_of = {p.seq: (p.model, p.version) for p in parsed.predictions}
        reasons: dict[int, str | None] = {}
        joinable: list[EdgeLabel] = []
        for label in parsed.labels:
            output = signatures[version_of.get(label.seq, (parsed.model, parsed.version))].output
            reasons[label.index] = _label_problem(label.label, output)
            if reasons[label.index] is None:
                joinable.append(label)
        outcomes = self.log.apply_labels(
            parsed.deployment,
            [("request_id", request_id(device, parsed.epoch, label.seq), label.label) for label in joinable],
            source="edge",
        )
        for label, outcome in zip(joinable, outcomes, strict=True):
            if outcome.request_id is None:
                reasons[label.index] = (
                    f"no logged prediction of {device} with seq {label.seq} in epoch {parsed.epoch} "
                    f"for deployment {parsed.deployment}"
                )
        return [(label, reasons[label.index]) for label in parsed.labels]


def _check_sender(record: EdgeDeviceRecord, sender: Principal | None) -> None:
    """The device's own token, or an operator or admin of the device's deployment (a local principal is the
    machine's admin); an operator's token limited to other deployments may not post for this one."""
    if sender is None or "admin" in sender.roles:
        return
    if sender.roles & PRIVILEGED and (sender.deployments is None or record.deployment in sender.deployments):
        return
    if sender.kind == "token" and sender.key == record.token_key:
        return
    raise DeviceNotBound(
        f"{sender.actor} may not send telemetry for device {record.device}: only the device's own token "
        f"({record.token_key}), an operator or an admin may"
    )


def _typed_inputs(items: list[EdgePrediction], signature: Signature) -> tuple[dict[int, dict[str, Any]], list[Problem]]:
    """Each row's inputs in the signature's order and types (`Predictor.prepare`'s checks), by row index;
    or the problems of the rows that do not fit, each named."""
    names = signature.input_names
    problems = []
    complete = []
    for p in items:
        missing = [n for n in names if n not in p.inputs]
        if missing:
            problems.append(Problem(f"predictions[{p.index}].inputs", f"missing input(s) {', '.join(missing)}", p.seq))
        else:
            complete.append(p)
    check = _SignatureCheck(signature)
    try:
        table = _prepared(check, [p.inputs for p in complete]) if complete else None
    except InvalidInput:  # some rows do not fit: each checked alone, to name them
        table = None
        for p in complete:
            try:
                _prepared(check, [p.inputs])
            except InvalidInput as exc:
                problems.append(
                    Problem(f"predictions[{p.index}].inputs", "; ".join([exc.message, *exc.details]), p.seq)
                )
    if problems or table is None:
        return {}, problems
    return {p.index: row for p, row in zip(complete, table.to_pylist(), strict=True)}, []


def _prepared(check: _SignatureCheck, rows: list[dict[str, Any]]) -> pa.Table:
    """``rows`` as `Predictor.prepare` types them; values Arrow cannot put in one column are `InvalidInput`."""
    try:
        return check.prepare(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as exc:
        raise InvalidInput(f"values of mixed or unreadable types: {exc}") from exc


def _probability_problems(items: list[EdgePrediction], output: OutputSpec) -> list[Problem]:
    if output.task != "classification" or not output.classes:
        return []
    width = len(output.classes)
    return [
        Problem(
            f"predictions[{p.index}].probabilities",
            f"{len(p.probabilities)} probabilities for the {width} classes of {p.model}:{p.version}",
            p.seq,
        )
        for p in items
        if p.probabilities is not None and len(p.probabilities) != width
    ]


def _label_problem(value: Any, output: OutputSpec) -> str | None:
    """Why the version could never have predicted ``value`` (None: it could), as feedback labels are held:
    a class of a classifier (1, 1.0 and "1" alike), a finite number for a regressor."""
    if value is None or isinstance(value, dict | list):
        return "a label is one value (not null, an object or a list)"
    if output.task == "regression":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else f"{value!r} is not a finite number (the model is a regressor)"
    if not output.classes:
        return None
    if _label_key(value) not in {_label_key(c) for c in output.classes}:
        return f"{value!r} is not one of the classes {list(output.classes)}"
    return None


def _label_key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
