"""Model flavors: how each kind of model is recognised, stored and loaded into a `Predictor`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matchday.registry.errors import InvalidModel, UnknownFlavor
from matchday.registry.flavors.base import Flavor, FloatRows, Packed, Predictor
from matchday.registry.flavors.callable import CallableFlavor
from matchday.registry.flavors.mlflow import MlflowFlavor
from matchday.registry.flavors.onnx import OnnxFlavor
from matchday.registry.flavors.sklearn import SklearnFlavor

# Detection order: the most specific recognisers first; callable last (any function qualifies).
FLAVORS: dict[str, Flavor] = {f.name: f for f in (MlflowFlavor(), OnnxFlavor(), SklearnFlavor(), CallableFlavor())}
ALIASES = {
    "lightgbm": "sklearn",
    "xgboost": "sklearn",
    "skops": "sklearn",
    "pickle": "sklearn",
    "joblib": "sklearn",
    "pyfunc": "mlflow",
    "python": "callable",
}


def flavor_named(name: str) -> Flavor:
    key = ALIASES.get(name, name)
    if key not in FLAVORS:
        raise UnknownFlavor(name, sorted({*FLAVORS, *ALIASES}))
    return FLAVORS[key]


def pack_model(
    model: Any, *, flavor: str | None = None, trust_pickle: bool = False, proba: str | None = None
) -> Packed:
    """Recognise ``model`` (an object, a file, a directory or ``module:function``) and pack it."""
    candidates = [flavor_named(flavor)] if flavor else list(FLAVORS.values())
    for candidate in candidates:
        kwargs: dict[str, Any] = {"trust_pickle": trust_pickle}
        if isinstance(candidate, CallableFlavor):
            kwargs["proba"] = proba
        packed = candidate.pack(model, **kwargs)
        if packed is not None:
            return packed
    raise InvalidModel(_not_a_model(model, flavor))


def load_packed(flavor: str, data: bytes, options: dict[str, Any], cache_dir: Path) -> Predictor:
    return flavor_named(flavor).load(data, options, cache_dir)


def _not_a_model(model: Any, flavor: str | None) -> str:
    expected = "a fitted scikit-learn/LightGBM/XGBoost estimator, a .skops/.pkl/.joblib/.onnx file, an MLflow model directory, or module:function"
    if flavor:
        expected = f"a model of flavor {flavor!r}"
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.exists():
            return f"{path}: no such file or directory (expected {expected})"
        what = "a directory without an MLmodel file" if path.is_dir() else f"a {path.suffix or 'extensionless'} file"
        return f"{path} is not a model: it is {what} (expected {expected})"
    return f"a {type(model).__name__} is not a model matchday can register (expected {expected})"


__all__ = ["FLAVORS", "Flavor", "FloatRows", "Packed", "Predictor", "flavor_named", "load_packed", "pack_model"]
