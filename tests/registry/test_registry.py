"""The registry's behaviour on both databases: signatures, profiles, aliases, tampering, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matchday.config import Settings
from matchday.registry import (
    AliasNotFound,
    ArtifactCorrupt,
    ArtifactMissing,
    InvalidModel,
    InvalidModelRef,
    InvalidReference,
    ModelNotFound,
    RegistryError,
    UnknownFlavor,
    UntrustedArtifact,
    VersionNotFound,
)
from matchday.workspace import Workspace


def test_versions_increase_per_name(registry, cancer, cancer_pipeline) -> None:
    X, _ = cancer
    assert [registry.register("a", cancer_pipeline, reference=X).version for _ in range(3)] == [1, 2, 3]
    assert registry.register("b", cancer_pipeline, reference=X).version == 1
    assert registry.load("a").ref == "a:3"  # a bare name means the latest version
    assert registry.load("a:latest").ref == "a:3"
    assert [m.name for m in registry.list_models()] == ["a", "b"]


def test_signature_inferred_from_reference(registry, mixed_frame) -> None:
    record = registry.register("rule", "support.flavor_callables:score", reference=mixed_frame, target="label")
    sig = {c["name"]: c for c in record.signature["inputs"]}
    assert list(sig) == ["amount", "hour", "merchant", "online"]  # the target is not an input
    assert sig["amount"]["type"] == "float" and sig["amount"]["nullable"] is True
    assert sig["amount"]["min"] == pytest.approx(mixed_frame["amount"].min())
    assert sig["amount"]["max"] == pytest.approx(mixed_frame["amount"].max())
    assert sig["hour"]["type"] == "integer" and sig["hour"]["nullable"] is False
    assert (sig["hour"]["min"], sig["hour"]["max"]) == (
        float(mixed_frame["hour"].min()),
        float(mixed_frame["hour"].max()),
    )
    assert sig["merchant"] == {
        "name": "merchant",
        "type": "string",
        "nullable": False,
        "min": None,
        "max": None,
        "categories": ["food", "fuel", "travel"],
    }
    assert sig["online"]["type"] == "boolean" and sig["online"]["categories"] == [False, True]
    assert record.signature["output"] == {"task": "classification", "classes": [0, 1]}


def test_regression_signature(registry, mixed_frame) -> None:
    record = registry.register("reg", "support.flavor_callables:regress", reference=mixed_frame.drop(columns="label"))
    assert record.signature["output"] == {"task": "regression", "classes": None}


def test_explicit_signature_overrides_inference(registry, mixed_frame) -> None:
    signature = {
        "inputs": [
            {"name": "amount", "type": "float", "nullable": True},
            {"name": "hour", "type": "integer"},
            {"name": "merchant", "type": "string"},
            {"name": "online", "type": "boolean"},
        ],
        "output": {"task": "classification", "classes": [0, 1]},
    }
    record = registry.register(
        "rule", "support.flavor_callables:score", reference=mixed_frame, target="label", signature=signature
    )
    assert record.signature["inputs"][0] == {
        "name": "amount",
        "type": "float",
        "nullable": True,
        "min": None,
        "max": None,
        "categories": None,
    }
    # a signature alone (no reference data) is enough to register
    bare = registry.register("rule", "support.flavor_callables:score", signature=signature)
    assert bare.version == 2 and registry.get_profile("rule:2") is None


def test_reference_profile_holds_what_drift_tests_need(registry, mixed_frame) -> None:
    registry.register("rule", "support.flavor_callables:score", reference=mixed_frame, target="label")
    profile = registry.get_profile("rule:1")
    assert profile["rows"] == len(mixed_frame)
    amount = profile["columns"]["amount"]
    finite = mixed_frame["amount"].dropna().to_numpy()
    assert amount["count"] == finite.size and amount["missing"] == mixed_frame["amount"].isna().sum()
    np.testing.assert_allclose(amount["quantiles"], np.quantile(finite, np.linspace(0, 1, 1001)), rtol=1e-12)
    assert sum(amount["histogram"]["counts"]) == finite.size
    assert amount["mean"] == pytest.approx(finite.mean()) and amount["std"] == pytest.approx(finite.std(ddof=1))
    hour = profile["columns"]["hour"]  # few distinct values: exact counts are kept
    values, counts = np.unique(mixed_frame["hour"], return_counts=True)
    assert hour["values"] == values.astype(float).tolist() and hour["value_counts"] == counts.tolist()
    merchant = profile["columns"]["merchant"]
    assert merchant["categories"] == mixed_frame["merchant"].value_counts().to_dict()
    assert profile["target"]["kind"] == "numeric" and profile["prediction"]["count"] == len(mixed_frame)


def test_alias_moves_are_recorded(registry, cancer, cancer_pipeline) -> None:
    X, _ = cancer
    for _ in range(3):
        registry.register("m", cancer_pipeline, reference=X)
    registry.set_alias("m", 1, "champion", reason="first")
    registry.set_alias("m", 2, "champion", reason="better recall")
    registry.set_alias("m", 3, "challenger")
    assert registry.load("m@champion").ref == "m:2"
    history = registry.alias_history("m", "champion")
    assert [(h.from_version, h.to_version, h.reason) for h in history] == [(None, 1, "first"), (1, 2, "better recall")]
    assert all(h.at.tzinfo is not None for h in history)
    assert history[0].at <= history[1].at
    assert registry.get_version("m:2").aliases == ("champion",)
    registry.remove_alias("m", "challenger", reason="experiment over")
    assert registry.alias_history("m", "challenger")[-1].to_version is None
    with pytest.raises(AliasNotFound):
        registry.load("m@challenger")


def test_alias_on_missing_version_is_refused(registry, cancer, cancer_pipeline) -> None:
    X, _ = cancer
    registry.register("m", cancer_pipeline, reference=X)
    with pytest.raises(VersionNotFound, match="no version 7 .latest is 1."):
        registry.set_alias("m", 7, "champion")
    with pytest.raises(ModelNotFound):
        registry.set_alias("nope", 1, "champion")
    with pytest.raises(RegistryError, match="invalid alias"):
        registry.set_alias("m", 1, "latest")
    assert registry.alias_history("m") == []


def test_tampered_artifact_is_refused(registry, workspace, cancer, cancer_pipeline) -> None:
    X, _ = cancer
    record = registry.register("m", cancer_pipeline, reference=X)
    blob = Path(workspace.registry.artifacts.path_of(record.artifact_sha256))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorrupt, match="changed after registration") as err:
        registry.load("m:1")
    assert err.value.expected == record.artifact_sha256
    blob.unlink()
    with pytest.raises(ArtifactMissing):
        registry.load("m:1")


def test_identical_files_share_one_artifact_and_delete_keeps_it_while_used(
    registry, tmp_path, cancer, cancer_pipeline
) -> None:
    import skops.io as sio

    X, _ = cancer
    path = tmp_path / "model.skops"
    sio.dump(cancer_pipeline, path)
    v1 = registry.register("m", path, reference=X)
    v2 = registry.register("m", path, reference=X)
    assert v1.artifact_sha256 == v2.artifact_sha256
    registry.set_alias("m", 1, "champion")
    registry.delete("m:1")
    assert registry.artifacts.exists(v1.artifact_sha256)  # version 2 still uses it
    assert registry.alias_history("m", "champion")[-1].to_version is None
    assert registry.load("m").ref == "m:2"
    registry.delete("m")
    assert not registry.artifacts.exists(v1.artifact_sha256)
    with pytest.raises(ModelNotFound):
        registry.load("m")


def test_artifacts_on_an_fsspec_url(database_url, tmp_path, cancer, cancer_pipeline) -> None:
    ws = Workspace(
        Settings(home=tmp_path, database_url=database_url, artifact_url=f"memory://matchday-{tmp_path.name}")
    )
    X, _ = cancer
    record = ws.registry.register("m", cancer_pipeline, reference=X)
    assert ws.registry.artifacts.location(record.artifact_sha256).startswith("memory://")
    assert np.array_equal(ws.registry.load("m:1").predict(X), cancer_pipeline.predict(X))
    ws.close()


# -- errors: clear, and nothing half-written ---------------------------------------------------
def _nothing_written(registry) -> None:
    assert registry.list_models() == []
    root = Path(registry.artifacts.root)
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def test_a_path_that_is_not_a_model(registry, tmp_path, cancer) -> None:
    X, _ = cancer
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InvalidModel, match="is not a model: it is a .txt file"):
        registry.register("m", text, reference=X)
    with pytest.raises(InvalidModel, match="no such file"):
        registry.register("m", tmp_path / "missing.skops", reference=X)
    with pytest.raises(InvalidModel, match="directory without an MLmodel"):
        registry.register("m", tmp_path, reference=X)
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"not a protobuf at all")
    with pytest.raises(InvalidModel, match="not a valid ONNX model"):
        registry.register("m", fake, reference=X)
    bad_skops = tmp_path / "bad.skops"
    bad_skops.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InvalidModel, match="not a readable skops file"):
        registry.register("m", bad_skops, reference=X)
    with pytest.raises(InvalidModel, match="not a model matchday can register"):
        registry.register("m", 42, reference=X)
    _nothing_written(registry)


def test_unknown_flavor(registry, cancer, cancer_pipeline) -> None:
    X, _ = cancer
    with pytest.raises(UnknownFlavor, match="unknown flavor 'tensorflow'; known flavors: .*sklearn"):
        registry.register("m", cancer_pipeline, reference=X, flavor="tensorflow")
    with pytest.raises(InvalidModel, match="flavor 'onnx'"):
        registry.register("m", cancer_pipeline, reference=X, flavor="onnx")
    _nothing_written(registry)


def test_callable_errors(registry, mixed_frame) -> None:
    with pytest.raises(InvalidModel, match="cannot import module 'no_such_module'"):
        registry.register("m", "no_such_module:fn", reference=mixed_frame)
    with pytest.raises(InvalidModel, match="has no attribute 'missing'"):
        registry.register("m", "support.flavor_callables:missing", reference=mixed_frame)
    with pytest.raises(InvalidModel, match="not a function"):
        registry.register("m", "support.flavor_callables:NOT_CALLABLE", reference=mixed_frame)
    with pytest.raises(InvalidModel, match="lambda"):
        registry.register("m", lambda df: df, reference=mixed_frame)
    with pytest.raises(InvalidReference, match="failed on the reference data: ValueError: this model is broken"):
        registry.register("m", "support.flavor_callables:broken", reference=mixed_frame, target="label")
    _nothing_written(registry)


def test_reference_columns_must_match_the_model(registry, cancer, cancer_pipeline) -> None:
    X, y = cancer
    with pytest.raises(InvalidReference, match="do not match") as err:
        registry.register("m", cancer_pipeline, reference=X.drop(columns=["mean radius"]).assign(extra=1.0))
    assert "missing from the reference: mean radius" in err.value.details
    assert any("not an input of the model: extra" in d for d in err.value.details)
    with pytest.raises(InvalidReference, match="not an input of the model: target"):
        registry.register("m", cancer_pipeline, reference=X.assign(target=y))  # forgot target=
    with pytest.raises(InvalidReference, match="target column 'label' is not in the reference"):
        registry.register("m", cancer_pipeline, reference=X, target="label")
    with pytest.raises(InvalidReference, match="has no rows"):
        registry.register("m", cancer_pipeline, reference=X.iloc[:0])
    with pytest.raises(InvalidReference, match="reference data"):
        registry.register("m", cancer_pipeline)
    _nothing_written(registry)


def test_unnamed_model_checks_the_column_count(registry) -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    model = LinearRegression().fit(rng.normal(size=(50, 3)), rng.normal(size=50))
    with pytest.raises(InvalidReference, match="takes 3 input columns but the reference data has 4"):
        registry.register("m", model, reference=pd.DataFrame(rng.normal(size=(50, 4)), columns=list("abcd")))
    _nothing_written(registry)


def test_all_missing_column_is_refused(registry, mixed_frame) -> None:
    frame = mixed_frame.drop(columns="label").assign(amount=np.nan)
    with pytest.raises(InvalidReference, match="cannot describe") as err:
        registry.register("m", "support.flavor_callables:score", reference=frame)
    assert err.value.details == ["column 'amount' has no non-missing value"]


def test_pickle_needs_explicit_trust(registry, tmp_path, cancer, cancer_pipeline) -> None:
    import joblib

    X, _ = cancer
    path = tmp_path / "model.pkl"
    joblib.dump(cancer_pipeline, path)
    with pytest.raises(UntrustedArtifact, match="trust_pickle=True"):
        registry.register("m", path, reference=X)
    _nothing_written(registry)
    record = registry.register("m", path, reference=X, trust_pickle=True)
    assert record.flavor_options == {"format": "joblib", "trusted_by": "user"}
    assert len(record.artifact_sha256) == 64


def test_unfitted_model_is_refused(registry, cancer) -> None:
    from sklearn.linear_model import LogisticRegression

    X, _ = cancer
    with pytest.raises(InvalidModel, match="not fitted"):
        registry.register("m", LogisticRegression(), reference=X)


@pytest.mark.parametrize("ref", ["", "a:b", "a:0", "a@", "a@1x!", "x y", "a:-1", "a:99999999999999999999", "a:²"])
def test_bad_model_references(registry, ref: str) -> None:
    with pytest.raises(InvalidModelRef):
        registry.load(ref)


def test_missing_model_version_and_alias(registry, cancer, cancer_pipeline) -> None:
    X, _ = cancer
    with pytest.raises(ModelNotFound, match="no model named 'ghost'"):
        registry.load("ghost")
    registry.register("m", cancer_pipeline, reference=X)
    with pytest.raises(VersionNotFound):
        registry.load("m:2")
    with pytest.raises(AliasNotFound, match="no alias 'prod'"):
        registry.load("m@prod")


def test_invalid_model_name(registry, cancer, cancer_pipeline) -> None:
    X, _ = cancer
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.register("bad name!", cancer_pipeline, reference=X)
