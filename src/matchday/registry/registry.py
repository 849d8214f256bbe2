"""The registry service: register versions, load them as predictors, move aliases, delete.

Registration does all the checking and computing first, then writes the artifact, then one
database transaction; a failure at any step leaves nothing behind.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from matchday.registry.artifacts import ArtifactStore
from matchday.registry.errors import InvalidInput, InvalidReference, RegistryError
from matchday.registry.flavors import Predictor, load_packed, pack_model
from matchday.registry.profile import profile_column, profile_table
from matchday.registry.refs import ModelRef, PinnedRef, check_alias, check_name
from matchday.registry.signature import OutputSpec, Signature, infer_inputs, infer_output
from matchday.registry.tabular import to_table
from matchday.store import (
    AliasMove,
    LabelledSample,
    ModelRecord,
    ModelStore,
    ModelVersionRecord,
    ReferenceProfile,
    StoreError,
)

log = logging.getLogger(__name__)
Ref = str | ModelRef | PinnedRef  # what the reading methods take: text, or a parsed reference

PROFILE_PREDICTION_ROWS = 50_000  # predictions on at most this many reference rows are profiled
LABELLED_SAMPLE_ROWS = 2_000  # reference rows kept with label, prediction and probabilities (monitoring's baseline)


class Registry:
    """Model versions over a `ModelStore` (metadata) and an `ArtifactStore` (bytes)."""

    def __init__(self, store: ModelStore, artifacts: ArtifactStore, cache_dir: Path) -> None:
        self.store = store
        self.artifacts = artifacts
        self.cache_dir = cache_dir

    # -- registration -----------------------------------------------------------------------
    def register(
        self,
        name: str,
        model: Any,
        *,
        reference: Any = None,
        target: str | None = None,
        signature: Signature | dict[str, Any] | None = None,
        flavor: str | None = None,
        trust_pickle: bool = False,
        proba: str | None = None,
        description: str | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        alias: str | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> ModelVersionRecord:
        """Store a new version of ``name``; see `matchday.register_model` for the arguments.

        ``lineage``: where a retrained version came from (parent, trigger, data snapshot, trainer, run).
        """
        check_name(name)
        if alias is not None:
            check_alias(alias)
        packed = pack_model(model, flavor=flavor, trust_pickle=trust_pickle, proba=proba)
        predictor = packed.predictor
        given = Signature.model_validate(signature) if isinstance(signature, dict) else signature
        if reference is None and given is None:
            raise InvalidReference(
                "give reference data (or an explicit signature) so matchday knows the model's inputs"
            )

        profile: ReferenceProfile | None = None
        if reference is not None:
            table = to_table(reference, columns=given.input_names if given else None)
            if table.num_rows == 0:
                raise InvalidReference("the reference data has no rows")
            labels = _pop_target(table, target)
            inputs = table.drop_columns([target]) if target else table
            _check_columns(inputs, predictor, given)
            if given is not None:
                inputs = inputs.select(given.input_names)
            input_specs = given.inputs if given else infer_inputs(inputs)
            predictor.signature = Signature(inputs=input_specs, output=OutputSpec(task="regression"))
            sample = inputs.slice(0, PROFILE_PREDICTION_ROWS)
            predictions = _score(predictor, sample)
            output = given.output if given else infer_output(predictions, predictor._native_classes())
            final = Signature(inputs=input_specs, output=output)
            predictor.signature = final
            profile = profile_table(inputs)
            profile["prediction"] = profile_column(_profilable(predictions))
            if labels is not None:
                profile["target"] = profile_column(_profilable(labels))
                profile["labelled_sample"] = _labelled_sample(predictor, sample, predictions, labels)
            # the rows themselves, so a retraining run can learn from them again (a profile cannot)
            kept = inputs if labels is None else inputs.append_column(str(target), _profilable(labels))
            reference_sha, _ = self.artifacts.put(_parquet_bytes(kept))
            profile["reference_data"] = {"sha256": reference_sha, "rows": kept.num_rows, "target": target}
        else:
            assert given is not None
            final = given
        sha, written = self.artifacts.put(packed.data)
        try:
            return self._insert(
                name,
                packed.flavor,
                sha,
                len(packed.data),
                final,
                profile,
                packed.options,
                metrics,
                tags,
                description,
                alias,
                lineage,
            )
        except Exception:
            if written and self._unused(sha):
                self.artifacts.delete(sha)
            raise

    def _unused(self, sha: str) -> bool:
        """Whether no version uses the blob; when the database cannot say, the blob we just wrote is ours."""
        try:
            return self.store.count_artifact_uses(sha) == 0
        except StoreError:
            return True

    def _insert(
        self,
        name: str,
        flavor: str,
        sha: str,
        size: int,
        signature: Signature,
        profile: ReferenceProfile | None,
        options: dict[str, Any],
        metrics: dict[str, float] | None,
        tags: dict[str, str] | None,
        description: str | None,
        alias: str | None,
        lineage: dict[str, Any] | None = None,
    ) -> ModelVersionRecord:
        record = self.store.create_version(
            name,
            flavor=flavor,
            artifact_sha256=sha,
            artifact_size=size,
            signature=signature.model_dump(mode="json"),
            profile=profile,
            flavor_options=options,
            metrics=dict(metrics or {}),
            tags=dict(tags or {}),
            description=description,
            lineage=lineage,
        )
        if alias is not None:
            self.store.set_alias(name, alias, record.version, reason="set at registration")
            record = self.store.get_version(name, record.version)
        return record

    # -- reading ----------------------------------------------------------------------------
    def resolve(self, ref: Ref) -> ModelRef:
        """A reference with its version number filled in (aliases and ``latest`` resolved)."""
        if isinstance(ref, PinnedRef):
            return ModelRef(ref.name, version=ref.version)
        r = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if r.alias:
            return ModelRef(r.name, version=self.store.resolve_alias(r.name, r.alias), alias=r.alias)
        if r.version is None:
            return ModelRef(r.name, version=self.store.latest_version(r.name))
        return r

    def pin(self, ref: Ref) -> PinnedRef:
        """The version ``ref`` names now (an alias or ``latest`` resolved), by number."""
        if isinstance(ref, PinnedRef):
            return ref
        r = self.resolve(ref)
        assert r.version is not None  # resolve fills it in or raises
        return PinnedRef(r.name, r.version)

    def get_version(self, ref: Ref) -> ModelVersionRecord:
        r = self.pin(ref)
        return self.store.get_version(r.name, r.version)

    def get_signature(self, ref: Ref) -> Signature:
        return Signature.model_validate(self.get_version(ref).signature)

    def get_profile(self, ref: Ref) -> ReferenceProfile | None:
        r = self.pin(ref)
        return self.store.get_profile(r.name, r.version)

    def reference_table(self, ref: Ref) -> pa.Table | None:
        """The reference rows the version was registered with (inputs, and the target when one was named);
        None for a version registered before they were kept, or with a signature and no reference."""
        profile = self.get_profile(ref)
        stored = profile.get("reference_data") if profile else None
        if not stored:
            return None
        return pq.read_table(pa.BufferReader(self.artifacts.get(stored["sha256"])))

    def target_of(self, ref: Ref) -> str | None:
        """The name of the label column the version's reference held, if one was named."""
        profile = self.get_profile(ref)
        stored = profile.get("reference_data") if profile else None
        target = stored.get("target") if stored else None
        return str(target) if target else None

    def add_lineage(self, ref: Ref, changes: dict[str, Any]) -> ModelVersionRecord:
        """Add to a version's lineage: a retrained version's evaluation and rollout come after it is registered."""
        r = self.pin(ref)
        return self.store.add_lineage(r.name, r.version, changes)

    def versions_of_run(self, name: str, run_id: int) -> list[ModelVersionRecord]:
        """The versions of ``name`` that retraining run ``run_id`` registered."""
        return self.store.versions_of_run(name, run_id)

    def lineage_chain(self, ref: Ref, limit: int = 20) -> list[ModelVersionRecord]:
        """The version, its parent, the parent's parent... while each was retrained from the one before."""
        chain = [self.get_version(ref)]
        while len(chain) < limit:
            parent = (chain[-1].lineage or {}).get("parent")
            if not parent:
                break
            try:
                chain.append(self.get_version(parent))
            except StoreError:
                break
        return chain

    def load(self, ref: Ref) -> Predictor:
        """The version's artifact, checked against its sha256, loaded into a `Predictor`."""
        record = self.get_version(ref)
        data = self.artifacts.get(record.artifact_sha256)
        predictor = load_packed(record.flavor, data, record.flavor_options, self.cache_dir)
        predictor.signature = Signature.model_validate(record.signature)
        predictor.ref = record.ref
        return predictor

    def list_models(self) -> list[ModelRecord]:
        return self.store.list_models()

    def list_versions(self, name: str) -> list[ModelVersionRecord]:
        return self.store.list_versions(name)

    # -- aliases ----------------------------------------------------------------------------
    def set_alias(self, name: str, version: int, alias: str, reason: str | None = None) -> AliasMove:
        check_alias(alias)
        return self.store.set_alias(name, alias, version, reason)

    def remove_alias(self, name: str, alias: str, reason: str | None = None) -> AliasMove:
        return self.store.remove_alias(name, alias, reason)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        self.store.get_model(name)  # unknown model: an error, not an empty history
        return self.store.alias_history(name, alias)

    # -- deletion ---------------------------------------------------------------------------
    def delete(self, ref: str, reason: str | None = None) -> list[ModelVersionRecord]:
        """Delete one version (``NAME:VERSION``) or a whole model (``NAME``); unused artifacts go too."""
        r = ModelRef.parse(ref)
        if r.alias:
            raise RegistryError("delete takes NAME or NAME:VERSION, not an alias (remove or move the alias instead)")
        if r.version is None:
            removed = self.store.delete_model(r.name, reason)
        else:
            removed = [self.store.delete_version(r.name, r.version, reason)]
        for sha in {v.artifact_sha256 for v in removed}:
            if self.store.count_artifact_uses(sha) == 0:
                self.artifacts.delete(sha)
        return removed


def _labelled_sample(
    predictor: Predictor, sample: pa.Table, predictions: np.ndarray, labels: np.ndarray
) -> LabelledSample:
    """The first reference rows' labels, predictions and probabilities: what monitoring compares live
    performance with, and calibrates the estimate before labels on."""
    n = min(LABELLED_SAMPLE_ROWS, len(predictions))
    out: LabelledSample = {
        "labels": np.asarray(labels[:n]).tolist(),
        "predictions": np.asarray(predictions[:n]).tolist(),
        "probabilities": None,
    }
    if predictor.has_proba:
        try:
            out["probabilities"] = (
                np.asarray(predictor.predict_proba(sample.slice(0, n)), dtype=np.float64).round(6).tolist()
            )
        except Exception:  # the sample is still useful without them
            pass
    return out


def _pop_target(table: pa.Table, target: str | None) -> np.ndarray | None:
    if target is None:
        return None
    if target not in table.column_names:
        raise InvalidReference(
            f"the target column {target!r} is not in the reference data", [f"columns: {', '.join(table.column_names)}"]
        )
    labels: np.ndarray = table.column(target).to_numpy(zero_copy_only=False)
    return labels


def _check_columns(table: pa.Table, predictor: Predictor, given: Signature | None) -> None:
    """The reference must hold exactly the inputs the model (or the given signature) declares."""
    have = table.column_names
    declared = given.input_names if given else predictor.declared_inputs()
    if isinstance(declared, list):
        missing = [c for c in declared if c not in have]
        extra = [c for c in have if c not in declared]
        if missing or extra:
            details = [f"missing from the reference: {c}" for c in missing]
            details += [f"not an input of the model: {c} (name the label column with target=)" for c in extra]
            raise InvalidReference("the reference data's columns do not match the model's inputs", details)
    elif isinstance(declared, int) and declared != len(have):
        raise InvalidReference(
            f"the model takes {declared} input columns but the reference data has {len(have)}",
            [f"columns: {', '.join(have)}"] + ([] if declared > len(have) else ["name the label column with target="]),
        )


def _score(predictor: Predictor, sample: pa.Table) -> np.ndarray:
    try:
        predictions = predictor.predict(sample)
    except InvalidInput as exc:
        raise InvalidReference(f"the model cannot score the reference data: {exc.message}", exc.details) from exc
    except Exception as exc:
        raise InvalidReference(f"the model failed on the reference data: {type(exc).__name__}: {exc}") from exc
    predictions = np.asarray(predictions)
    if predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions.ravel()
    if predictions.ndim != 1 or len(predictions) != sample.num_rows:
        raise InvalidReference(
            f"the model returned predictions of shape {predictions.shape} for {sample.num_rows} rows; "
            "expected one prediction per row"
        )
    return predictions


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _profilable(values: np.ndarray) -> pa.Array:
    values = np.asarray(values)
    if values.dtype.kind in "OUS":
        return pa.array([None if v is None else str(v) for v in values])
    return pa.array(values)
