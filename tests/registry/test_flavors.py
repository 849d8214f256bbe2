"""One contract over every flavor: register, load, and get the original model's predictions back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from matchday.registry import Predictor


@dataclass
class Case:
    model: Any  # what is handed to register: an object, a path, or module:function
    reference: pd.DataFrame
    target: str | None
    predict: Callable[[pd.DataFrame], np.ndarray]
    proba: Callable[[pd.DataFrame], np.ndarray] | None
    flavor: str
    task: str
    kwargs: dict[str, Any]


def _sklearn_pipeline(cancer, cancer_pipeline, tmp: Path) -> Case:
    X, y = cancer
    return Case(
        cancer_pipeline,
        X.assign(target=y),
        "target",
        cancer_pipeline.predict,
        cancer_pipeline.predict_proba,
        "sklearn",
        "classification",
        {},
    )


def _sklearn_column_transformer(mixed: pd.DataFrame, tmp: Path) -> Case:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = mixed.drop(columns="label")
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["merchant"]), remainder="passthrough"),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
    ).fit(X, mixed["label"])
    return Case(model, mixed, "label", model.predict, model.predict_proba, "sklearn", "classification", {})


def _sklearn_numpy_regressor(tmp: Path) -> Case:
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(scale=0.1, size=300)
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)  # fitted without column names
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    return Case(model, frame, None, lambda f: model.predict(f.to_numpy()), None, "sklearn", "regression", {})


def _skops_file(cancer, cancer_pipeline, tmp: Path) -> Case:
    import skops.io as sio

    path = tmp / "model.skops"
    sio.dump(cancer_pipeline, path)
    X, _ = cancer
    return Case(path, X, None, cancer_pipeline.predict, cancer_pipeline.predict_proba, "sklearn", "classification", {})


def _joblib_file(cancer, cancer_pipeline, tmp: Path) -> Case:
    import joblib

    path = tmp / "model.joblib"
    joblib.dump(cancer_pipeline, path)
    X, _ = cancer
    return Case(
        path,
        X,
        None,
        cancer_pipeline.predict,
        cancer_pipeline.predict_proba,
        "sklearn",
        "classification",
        {"trust_pickle": True},
    )


def _lightgbm(cancer, tmp: Path) -> Case:
    import lightgbm

    X, y = cancer
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1, random_state=0).fit(X, y)
    return Case(model, X, None, model.predict, model.predict_proba, "lightgbm", "classification", {})


def _xgboost(cancer, tmp: Path) -> Case:
    import xgboost

    X, y = cancer
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    return Case(model, X, None, model.predict, model.predict_proba, "xgboost", "classification", {})


def _onnx_file(tmp: Path) -> Case:
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    X = X.astype(np.float32)
    X.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    model = LogisticRegression(max_iter=500).fit(X.to_numpy(), y)
    path = tmp / "iris.onnx"
    path.write_bytes(to_onnx(model, X.to_numpy()[:1], options={"zipmap": False}).SerializeToString())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(frame: pd.DataFrame, index: int) -> np.ndarray:
        return session.run(None, {name: frame.to_numpy(dtype=np.float32)})[index]

    return Case(path, X, None, lambda f: run(f, 0), lambda f: run(f, 1), "onnx", "classification", {})


def _onnx_zipmap_regressor(tmp: Path) -> Case:
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(200, 3)).astype(np.float32), columns=["x", "y", "z"])
    model = Ridge().fit(X.to_numpy(), X["x"] * 2 - X["z"])
    onx = to_onnx(model, X.to_numpy()[:1])
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return Case(
        onx,
        X,
        None,
        lambda f: session.run(None, {name: f.to_numpy(dtype=np.float32)})[0].ravel(),
        None,
        "onnx",
        "regression",
        {},
    )


def _mlflow_dir(cancer, cancer_pipeline, tmp: Path) -> Case:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    X, _ = cancer
    path = tmp / "mlflow-model"
    mlflow.sklearn.save_model(cancer_pipeline, path, signature=infer_signature(X, cancer_pipeline.predict(X)))
    return Case(
        path,
        X,
        None,
        cancer_pipeline.predict,
        cancer_pipeline.predict_proba,
        "mlflow",
        "classification",
        {"trust_pickle": True},
    )  # pyfunc unpickles the model: MLflow directories need the flag


def _callable(mixed: pd.DataFrame, tmp: Path) -> Case:
    from support import flavor_callables as fc

    return Case(
        "support.flavor_callables:score",
        mixed,
        "label",
        fc.score,
        fc.score_proba,
        "callable",
        "classification",
        {"proba": "support.flavor_callables:score_proba"},
    )


def _callable_object(mixed: pd.DataFrame, tmp: Path) -> Case:
    from support import flavor_callables as fc

    return Case(fc.regress, mixed.drop(columns="label"), None, fc.regress, None, "callable", "regression", {})


CASES = {
    "sklearn-pipeline": lambda f, t: _sklearn_pipeline(f["cancer"], f["cancer_pipeline"], t),
    "sklearn-column-transformer": lambda f, t: _sklearn_column_transformer(f["mixed_frame"], t),
    "sklearn-numpy-regressor": lambda f, t: _sklearn_numpy_regressor(t),
    "skops-file": lambda f, t: _skops_file(f["cancer"], f["cancer_pipeline"], t),
    "joblib-file-trusted": lambda f, t: _joblib_file(f["cancer"], f["cancer_pipeline"], t),
    "lightgbm": lambda f, t: _lightgbm(f["cancer"], t),
    "xgboost": lambda f, t: _xgboost(f["cancer"], t),
    "onnx-file": lambda f, t: _onnx_file(t),
    "onnx-proto-regressor": lambda f, t: _onnx_zipmap_regressor(t),
    "mlflow-directory": lambda f, t: _mlflow_dir(f["cancer"], f["cancer_pipeline"], t),
    "callable-import-path": lambda f, t: _callable(f["mixed_frame"], t),
    "callable-function": lambda f, t: _callable_object(f["mixed_frame"], t),
}


class Cases(dict[str, Case]):
    """Each case built when a test first asks for it: an xdist worker builds (and imports mlflow,
    xgboost, skl2onnx... for) only the cases of the tests it runs, not all twelve."""

    def __init__(self, fixtures: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.fixtures, self.tmp_path_factory = fixtures, tmp_path_factory

    def __missing__(self, name: str) -> Case:
        case = self[name] = CASES[name](self.fixtures, self.tmp_path_factory.mktemp(name))
        return case


@pytest.fixture(scope="session")
def cases(cancer, cancer_pipeline, mixed_frame, tmp_path_factory) -> dict[str, Case]:  # type: ignore[no-untyped-def]
    return Cases({"cancer": cancer, "cancer_pipeline": cancer_pipeline, "mixed_frame": mixed_frame}, tmp_path_factory)


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_round_trip_gives_the_original_predictions(case_name: str, cases: dict[str, Case], registry) -> None:  # type: ignore[no-untyped-def]
    case = cases[case_name]
    record = registry.register("m", case.model, reference=case.reference, target=case.target, **case.kwargs)
    assert record.flavor == case.flavor
    assert record.signature["output"]["task"] == case.task

    loaded = registry.load("m:1")
    assert isinstance(loaded, Predictor)
    inputs = case.reference.drop(columns=[case.target]) if case.target else case.reference
    expected = np.asarray(case.predict(inputs))
    got = loaded.predict(inputs)
    if case.task == "regression":
        np.testing.assert_allclose(got, expected.ravel(), rtol=1e-6)
    else:
        assert np.array_equal(got, expected)
    assert loaded.has_proba == (case.proba is not None)
    if case.proba is not None:
        np.testing.assert_allclose(loaded.predict_proba(inputs), case.proba(inputs), rtol=1e-6)
        assert len(loaded.classes or []) == loaded.predict_proba(inputs.iloc[:3]).shape[1]


@pytest.mark.parametrize("case_name", ["sklearn-pipeline", "onnx-file", "callable-import-path"])
def test_loaded_predictor_accepts_rows_dicts_and_tables(case_name: str, cases: dict[str, Case], registry) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    case = cases[case_name]
    registry.register("m", case.model, reference=case.reference, target=case.target, **case.kwargs)
    loaded = registry.load("m")
    inputs = case.reference.drop(columns=[case.target]) if case.target else case.reference
    head = inputs.iloc[:5]
    expected = loaded.predict(head)
    shuffled = head[list(reversed(head.columns))]  # column order follows the signature, not the caller
    assert np.array_equal(loaded.predict(shuffled), expected)
    assert np.array_equal(loaded.predict(head.to_dict(orient="records")), expected)
    assert np.array_equal(loaded.predict(head.to_dict(orient="list")), expected)
    assert np.array_equal(loaded.predict(pa.Table.from_pandas(head, preserve_index=False)), expected)
