"""`matchday edge export`: a registered version converted to ONNX, gated on its reference rows, written as
a bundle whose manifest names every file's sha256 and is signed with the server's Ed25519 key."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support.cli_in_process import run_in_process
from support.edge_support import FEATURES, UnconvertibleClassifier, frame, register_models, workspace

from matchday.edge import ExportError, ParityFailed, default_deployment, export_bundle
from matchday.workspace import Workspace
from matchday_edge import EdgeModel


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    folder = tmp_path_factory.mktemp("edge-export")
    space = workspace(folder)
    register_models(space)
    yield space
    space.close()


def _export(ws: Workspace, ref: str, folder: Path, **options: object) -> Path:
    options.setdefault("deployment", "checkout")
    return export_bundle(ws.registry, ref, folder, signer=ws.edge_signer, **options).path  # type: ignore[arg-type]


def test_the_bundle_holds_a_signed_manifest_of_every_file(ws: Workspace, tmp_path: Path) -> None:
    path = _export(ws, "lr:1", tmp_path / "b")
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "manifest.sig", "model.onnx"]
    manifest_bytes = (path / "manifest.json").read_bytes()
    Ed25519PublicKey.from_public_bytes(ws.edge_signer.public_key).verify(
        (path / "manifest.sig").read_bytes(), manifest_bytes
    )
    manifest = json.loads(manifest_bytes)
    model = (path / "model.onnx").read_bytes()
    assert manifest["files"] == {"model.onnx": {"sha256": hashlib.sha256(model).hexdigest(), "bytes": len(model)}}
    assert (manifest["format"], manifest["name"], manifest["version"], manifest["deployment"]) == (
        1,
        "lr",
        1,
        "checkout",
    )
    assert [(i["name"], i["type"], i["tensor"]) for i in manifest["inputs"]] == [
        ("a", "float", "double"),
        ("b", "float", "double"),
        ("c", "float", "double"),
        ("n", "integer", "double"),
    ]
    assert manifest["layout"] == "matrix" and manifest["matrix_input"] == "input"
    assert manifest["classes"] == [0, 1] and manifest["task"] == "classification"
    assert manifest["outputs"] == {"label": "label", "probabilities": "probabilities"}
    parity = manifest["parity"]
    assert parity["rows"] == 400 and parity["labels_equal"] and parity["max_abs_difference"] < 1e-9
    sketch = manifest["reference"]["features"]["a"]
    assert sketch["kind"] == "numeric" and len(sketch["frequencies"]) == len(sketch["edges"]) + 1
    assert abs(sum(sketch["frequencies"]) + sketch["missing"] - 1) < 1e-4
    assert manifest["matchday_version"] and manifest["exported_at"].endswith("+00:00")
    assert manifest["converter"].startswith("skl2onnx")


def test_a_string_column_makes_one_tensor_per_column_with_a_categorical_sketch(ws: Workspace, tmp_path: Path) -> None:
    manifest = json.loads((_export(ws, "mixed:1", tmp_path / "b", deployment="mixed") / "manifest.json").read_text())
    assert manifest["layout"] == "columns" and manifest["matrix_input"] is None
    assert {i["name"]: i["tensor"] for i in manifest["inputs"]}["shop"] == "string"
    shop = manifest["reference"]["features"]["shop"]
    assert shop["kind"] == "categorical" and sorted(shop["categories"]) == ["east", "north", "south"]


def test_the_parity_gate_fails_saying_by_how_much(ws: Workspace, tmp_path: Path) -> None:
    """A forest's ONNX probabilities are float32: within 1e-4 of scikit-learn's, not within 1e-12."""
    with pytest.raises(
        ParityFailed, match=r"does not answer like the registered model on \d+ of 400 reference rows"
    ) as caught:
        _export(ws, "rf:1", tmp_path / "b", deployment="rf", tolerance=1e-12)
    assert "probabilities differ by more than 1e-12" in str(caught.value) and "up to" in str(caught.value)
    assert not (tmp_path / "b").exists()  # nothing written
    _export(ws, "rf:1", tmp_path / "b", deployment="rf")


def test_an_estimator_skl2onnx_cannot_convert_is_named(ws: Workspace, tmp_path: Path) -> None:
    data = frame()
    model = make_pipeline(StandardScaler(), UnconvertibleClassifier()).fit(data[FEATURES], data["y"])
    ws.registry.register("odd", model, reference=data[[*FEATURES, "y"]], target="y", trust_pickle=True)
    with pytest.raises(
        ExportError, match="odd:1 cannot be converted to ONNX: skl2onnx cannot convert UnconvertibleClassifier"
    ):
        _export(ws, "odd:1", tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_without_skl2onnx_the_error_says_what_to_install(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(ExportError, match=r"pip install 'matchday\[onnx-export\]'"):
        _export(ws, "lr:1", tmp_path / "b")


def test_an_onnx_model_is_bundled_as_it_is(ws: Workspace, tmp_path: Path) -> None:
    """Registered as an .onnx file (skl2onnx's default ZipMap output included): the device reads its dicts."""
    from skl2onnx import to_onnx

    data = frame()
    sklearn_model = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        data[FEATURES].astype("float64"), data["y"]
    )
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(to_onnx(sklearn_model, data[FEATURES].to_numpy("float32")[:1]).SerializeToString())
    ws.registry.register("plain", onnx_file, reference=data[[*FEATURES, "y"]].astype({"n": "float64"}), target="y")
    path = _export(ws, "plain:1", tmp_path / "b")
    manifest = json.loads((path / "manifest.json").read_text())
    assert (
        manifest["converter"] == "onnx (as registered)" and (path / "model.onnx").read_bytes() == onnx_file.read_bytes()
    )
    model = EdgeModel.load(path, public_key=ws.edge_signer.public_key_hex, device="d", buffer=None)
    rows = frame(rows=50, seed=9)[FEATURES].astype("float64")
    assert json.loads((path / "manifest.json").read_text())["inputs"][0]["tensor"] == "float"
    assert model.predict(rows.to_numpy()).tolist() == sklearn_model.predict(rows).tolist()
    assert abs(model.predict_proba(rows.to_numpy()) - sklearn_model.predict_proba(rows)).max() < 1e-5


def test_the_default_deployment_is_the_only_one_serving_the_version(ws: Workspace) -> None:
    assert default_deployment(ws.deployments, ws.registry, "lr:1") == "checkout"
    assert default_deployment(ws.deployments, ws.registry, "lr") == "checkout"
    ws.deployments.deploy("checkout-eu", "lr:1")
    try:
        with pytest.raises(ExportError, match="2 deployments serve lr:1(.|\n)*checkout-eu"):
            default_deployment(ws.deployments, ws.registry, "lr:1")
    finally:
        ws.deployments.delete("checkout-eu")
    ws.registry.register("idle", ws.registry.load("lr:1").model, reference=frame()[[*FEATURES, "y"]], target="y")  # type: ignore[attr-defined]
    with pytest.raises(ExportError, match="no deployment serves idle:1(.|\n)*checkout serves lr:1"):
        default_deployment(ws.deployments, ws.registry, "idle:1")


def test_the_target_folder_is_a_bundle_or_new(ws: Workspace, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not a bundle folder"):
        _export(ws, "lr:1", taken)
    assert (taken / "notes.txt").read_text() == "mine"
    first = _export(ws, "lr:1", tmp_path / "b")
    again = _export(ws, "spend:1", first, deployment="spend")  # an earlier bundle is replaced whole
    assert json.loads((again / "manifest.json").read_text())["name"] == "spend"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "taken"]  # no staging folder left behind


def test_the_cli_exports_and_prints_the_key_to_pin(ws: Workspace, tmp_path: Path) -> None:
    env = {
        "MATCHDAY_HOME": str(ws.settings.home),
        "MATCHDAY_DATABASE_URL": str(ws.settings.database_url),
        "COLUMNS": "200",
    }
    done = run_in_process(["edge", "export", "lr:1", str(tmp_path / "b")], env=env)
    assert done.returncode == 0, done.stderr
    assert "exported lr:1 for deployment checkout" in done.stdout and "labels identical" in done.stdout
    key = run_in_process(["edge", "public-key"], env=env).stdout.strip()
    assert key == ws.edge_signer.public_key_hex and key in done.stdout
    EdgeModel.load(tmp_path / "b", public_key=key, device="d", buffer=None)
    refused = run_in_process(["edge", "export", "rf:1", str(tmp_path / "c"), "--deployment", "nowhere"], env=env)
    assert refused.returncode == 1 and "nowhere" in refused.stderr


def test_the_edge_part_speaks_no_http() -> None:
    """DESIGN.md: `edge/` exports and receives telemetry as plain Python; the route lives in `serving/`."""
    import matchday.edge

    root = Path(matchday.edge.__file__).parent
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if line.startswith(("from ", "import ")) and len(words) > 1:
                module = words[1]
                assert not module.startswith(("matchday.serving", "fastapi", "starlette", "httpx")), f"{path}: {line}"


def test_a_hist_gradient_boosting_model_exports_missing_values_and_all(ws: Workspace, tmp_path: Path) -> None:
    """skl2onnx 1.20 under onnx 1.23 fails on these ("Unable to create node 'TreeEnsembleClassifier'": a
    leaf's missing-value flag written as a boolean); the export mends it, and the learned NaN routing holds."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    data = frame(rows=300, seed=4)
    data.loc[data.index % 7 == 0, "a"] = float("nan")  # so the trees learn where missing values go
    for name, model, target in (
        ("hgb", HistGradientBoostingClassifier(max_iter=15, random_state=0), "y"),
        ("hgbr", HistGradientBoostingRegressor(max_iter=15, random_state=0), "spend"),
    ):
        model.fit(data[FEATURES], data[target].fillna(0))
        ws.registry.register(
            name, model, reference=data[FEATURES].assign(**{target: data[target].fillna(0)}), target=target
        )
        path = _export(ws, f"{name}:1", tmp_path / name)
        manifest = json.loads((path / "manifest.json").read_text())
        assert manifest["parity"]["labels_equal"] and {i["tensor"] for i in manifest["inputs"]} == {"float"}
        device = EdgeModel.load(path, public_key=ws.edge_signer.public_key_hex, device="d", buffer=None)
        rows = data[FEATURES].head(40)
        assert rows["a"].isna().any()
        assert device.predict(rows.to_dict("records")).tolist() == pytest.approx(model.predict(rows).tolist(), abs=1e-4)
        if name == "hgb":
            assert device.predict_proba(rows.to_dict("records")) == pytest.approx(model.predict_proba(rows), abs=1e-4)


def test_columns_named_with_spaces_keep_their_names_on_the_device(ws: Workspace, tmp_path: Path) -> None:
    """skl2onnx renames an input ``mean radius`` to ``mean_radius``; the device feeds columns by their own name, so
    the graph's inputs are named back (a per-column layout crashed the export with onnxruntime's traceback)."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    data = frame(300)
    spaced = pd.DataFrame({"mean radius": data["a"], "the shop": data["shop"]})
    labels = (spaced["mean radius"] > spaced["mean radius"].median()).astype(int)
    model = make_pipeline(
        ColumnTransformer([("n", "passthrough", ["mean radius"]), ("c", OneHotEncoder(), ["the shop"])]),
        LogisticRegression(),
    ).fit(spaced, labels)
    ws.registry.register("spaced", model, reference=spaced.assign(label=labels), target="label")
    ws.deployments.deploy("spaced", "spaced:1")
    bundle = _export(ws, "spaced:1", tmp_path / "b", deployment="spaced")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["layout"] == "columns" and [i["name"] for i in manifest["inputs"]] == ["mean radius", "the shop"]
    till = EdgeModel.load(bundle, public_key=ws.edge_signer.public_key_hex, device="t", buffer=None)
    rows = spaced.head(20).to_dict("records")
    assert till.predict(rows).tolist() == model.predict(spaced.head(20)).tolist()
