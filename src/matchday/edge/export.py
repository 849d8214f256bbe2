"""`export_bundle`: a registered version made a signed bundle a device can load, after the parity gate.

The steps, each failing with its own message: load the version; convert it to ONNX (`convert`); run
the converted graph with the device's scorer on the version's reference rows and compare with the
registered model (`parity`); sketch the reference for on-device drift; write and sign (`bundle`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from matchday.edge.bundle import reference_sketches, write_bundle
from matchday.edge.convert import Converted, onnx_as_is, sklearn_candidates
from matchday.edge.errors import ExportError, ParityFailed
from matchday.edge.parity import check_parity
from matchday.edge.signing import BundleSigner
from matchday.registry import Predictor, Registry, Signature
from matchday.rollout import Deployments
from matchday_edge import FORMAT_VERSION, BundleRefused, Manifest, OnnxScorer, Parity

DEFAULT_TOLERANCE = 1e-4  # absolute, on probabilities (and a regressor's values, relative past 1)
PARITY_ROWS = 10_000  # reference rows the gate scores (the first ones)
SKETCH_ROWS = 100_000  # reference rows the drift sketches are computed from
_SKLEARN_FLAVORS = ("sklearn", "lightgbm", "xgboost")


@dataclass(frozen=True)
class ExportedBundle:
    """What was written, and what to pin on the devices that load it."""

    path: Path
    manifest: Manifest
    public_key: str  # hex, as `EdgeModel.load(public_key=...)` takes it
    tried: list[str]  # the layouts that did not convert or pass the gate before the one written


def export_bundle(
    registry: Registry,
    model_ref: str,
    bundle_dir: str | Path,
    *,
    signer: BundleSigner,
    deployment: str,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportedBundle:
    """Convert ``model_ref``, gate it on its reference rows within ``tolerance``, and write the signed bundle
    to ``bundle_dir``; its telemetry will feed ``deployment``'s monitors."""
    if not tolerance >= 0:
        raise ExportError(f"the parity tolerance must be a number >= 0, not {tolerance!r}")
    record = registry.get_version(model_ref)
    ref = record.ref
    signature = Signature.model_validate(record.signature)
    predictor = registry.load(ref)
    reference = _reference_inputs(registry, ref, signature)
    sample = reference.slice(0, PARITY_ROWS)
    has_proba = predictor.has_proba and signature.output.task == "classification"

    if record.flavor == "onnx":
        attempts: Any = iter([onnx_as_is(registry.artifacts.get(record.artifact_sha256), signature, has_proba)])
    elif record.flavor in _SKLEARN_FLAVORS:
        attempts = sklearn_candidates(predictor.model, signature, has_proba)  # type: ignore[attr-defined]
    else:
        raise ExportError(
            f"{ref} is a {record.flavor}-flavor model: edge export converts scikit-learn models (skl2onnx) "
            "and takes ONNX models as they are"
        )
    chosen, parity, tried = _first_passing(attempts, predictor, sample, signature, tolerance, ref)
    manifest: Manifest = {
        "format": FORMAT_VERSION,
        "name": record.name,
        "version": record.version,
        "deployment": deployment,
        "task": signature.output.task,
        "classes": list(signature.output.classes) if signature.output.classes is not None else None,
        "layout": chosen.layout,
        "matrix_input": chosen.matrix_input,
        "inputs": chosen.inputs,
        "outputs": chosen.outputs,
        "files": {},
        "parity": parity,
        "reference": reference_sketches(reference.slice(0, SKETCH_ROWS), {c.name: c.type for c in signature.inputs}),
        "exported_at": datetime.now(UTC).isoformat(),
        "matchday_version": _matchday_version(),
        "converter": chosen.converter,
    }
    path = Path(bundle_dir)
    write_bundle(path, chosen.model_bytes, manifest, signer)
    return ExportedBundle(path, manifest, signer.public_key_hex, tried)


def _first_passing(
    attempts: Any, predictor: Predictor, sample: pa.Table, signature: Signature, tolerance: float, ref: str
) -> tuple[Converted, Parity, list[str]]:
    """The first converted layout that loads in the device's scorer and passes the gate; else the best reason why not."""
    conversion_errors: list[ExportError] = []
    parity_errors: list[ParityFailed] = []
    for attempt in attempts:
        if isinstance(attempt, ExportError):
            conversion_errors.append(attempt)
            continue
        what = f"the ONNX model ({attempt.layout} of {attempt.inputs[0]['tensor'] if attempt.inputs else '-'})"
        try:
            scorer = OnnxScorer(attempt.model_bytes, _draft_manifest(attempt, signature))
        except BundleRefused as exc:
            conversion_errors.append(ExportError(f"{what} does not load in onnxruntime: {exc.message}"))
            continue
        try:
            parity = check_parity(predictor, scorer, sample, tolerance, what)
        except ParityFailed as exc:
            parity_errors.append(exc)
            continue
        except Exception as exc:  # onnxruntime raises its own kinds for a graph that loads but cannot run
            conversion_errors.append(ExportError(f"{what} does not score the reference rows: {_first_line(exc)}"))
            continue
        tried = [e.message for e in conversion_errors] + [e.message for e in parity_errors]
        return attempt, parity, tried
    if parity_errors:
        first = parity_errors[0]
        raise ParityFailed(f"parity gate: {first.message} (tolerance {tolerance:g})", first.details)
    messages = [e.message for e in conversion_errors]
    raise ExportError(
        f"{ref} cannot be converted to ONNX: {messages[0] if messages else 'no layout to try'}", messages[1:]
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _draft_manifest(converted: Converted, signature: Signature) -> Manifest:
    """Just what the scorer reads, to run the gate before the real manifest exists."""
    return {  # type: ignore[typeddict-item]
        "layout": converted.layout,
        "matrix_input": converted.matrix_input,
        "inputs": converted.inputs,
        "outputs": converted.outputs,
        "classes": list(signature.output.classes) if signature.output.classes is not None else None,
    }


def _reference_inputs(registry: Registry, ref: str, signature: Signature) -> pa.Table:
    table = registry.reference_table(ref)
    if table is None or table.num_rows == 0:
        raise ExportError(
            f"{ref} keeps no reference rows, and the parity gate scores them: register the version with "
            "reference data (a version registered before matchday kept them, or with a signature only, has none)"
        )
    missing = [n for n in signature.input_names if n not in table.column_names]
    if missing:
        raise ExportError(f"{ref}'s reference rows lack inputs of its signature", [f"{n}: missing" for n in missing])
    return table.select(signature.input_names)


def default_deployment(deployments: Deployments, registry: Registry, model_ref: str) -> str:
    """The deployment serving ``model_ref``'s version, when exactly one does; else an error listing the choices."""
    resolved = registry.pin(model_ref)
    target = (resolved.name, resolved.version)
    everything = deployments.list()
    serving = sorted(
        d.name for d in everything if any((r.model, r.version) == target for r in deployments.route(d.name).routes)
    )
    if len(serving) == 1:
        return serving[0]
    ref = str(resolved)
    if serving:
        raise ExportError(f"{len(serving)} deployments serve {ref}: name the one to feed with --deployment", serving)
    others = [f"{d.name} serves {d.model_ref}" for d in everything]
    raise ExportError(
        f"no deployment serves {ref}: deploy it first, or name the deployment whose monitors should watch the "
        "devices with --deployment",
        others,
    )


def _matchday_version() -> str:
    from matchday import __version__

    return __version__
