"""scikit-learn estimators and pipelines (and LightGBM/XGBoost through their scikit-learn API).

Stored with skops, which rebuilds objects without running arbitrary code; pickle or joblib only
when the user says ``trust_pickle`` (and the bytes are still sha256-checked on every load).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa

from matchday.registry.errors import InvalidModel, UntrustedArtifact
from matchday.registry.flavors.base import Flavor, Packed, Predictor, as_matrix, as_pandas

# skops' own trusted set covers sklearn, numpy and scipy; these prefixes are the other libraries
# whose scikit-learn-API estimators we store.
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "lightgbm.", "xgboost.", "builtins.", "collections.")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


class SklearnPredictor(Predictor):
    flavor = "sklearn"

    def __init__(self, model: Any, flavor: str = "sklearn") -> None:
        super().__init__()
        self.model = model
        self.flavor = flavor  # type: ignore[misc]  # lightgbm/xgboost share this class

    @property
    def has_proba(self) -> bool:
        return hasattr(self.model, "predict_proba")

    def _native_classes(self) -> list[Any] | None:
        classes = getattr(self.model, "classes_", None)
        return None if classes is None else list(classes)

    def declared_inputs(self) -> list[str] | int | None:
        names = getattr(self.model, "feature_names_in_", None)
        if names is not None and self.flavor != "lightgbm":  # LightGBM rewrites names (spaces to _)
            return [str(n) for n in names]
        return getattr(self.model, "n_features_in_", None)

    def _features(self, table: pa.Table) -> Any:
        # Fitted on a DataFrame: give it one (column transformers select by name); else a matrix.
        if getattr(self.model, "feature_names_in_", None) is not None:
            return as_pandas(table)
        return as_matrix(table)

    def _predict(self, table: pa.Table) -> Any:
        return self.model.predict(self._features(table))

    def _predict_proba(self, table: pa.Table) -> Any:
        return self.model.predict_proba(self._features(table))


def _flavor_of(model: Any) -> str:
    root = type(model).__module__.split(".")[0]
    return root if root in ("lightgbm", "xgboost") else "sklearn"


def _is_estimator(obj: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    return isinstance(obj, BaseEstimator) and hasattr(obj, "predict")


class SklearnFlavor(Flavor):
    name = "sklearn"

    def pack(self, model: Any, *, trust_pickle: bool = False) -> Packed | None:
        if isinstance(model, (str, Path)):
            path = Path(model)
            if path.suffix == ".skops" and path.is_file():
                data = path.read_bytes()
                obj, trusted = _skops_load(data, None, origin=str(path))
                return Packed(_flavor_of(obj), data, SklearnPredictor(obj, _flavor_of(obj)), {"format": "skops", "trusted_types": trusted})
            if path.suffix in _PICKLE_SUFFIXES and path.is_file():
                if not trust_pickle:
                    raise UntrustedArtifact(
                        f"{path} is a pickle file: loading it can run any code it contains. "
                        "Register it with trust_pickle=True (--trust-pickle) only if you trust its source, "
                        "or save the model with skops instead"
                    )
                data = path.read_bytes()
                obj = _pickle_load(data, origin=str(path))
                if not hasattr(obj, "predict"):
                    raise InvalidModel(f"{path} holds a {type(obj).__name__}, which has no predict method")
                return Packed(_flavor_of(obj), data, SklearnPredictor(obj, _flavor_of(obj)), {"format": "joblib"})
            return None
        if not _is_estimator(model):
            return None
        _check_fitted(model)
        import skops.io as sio

        try:
            data = sio.dumps(model)
        except Exception as exc:  # skops raises a variety of errors for types it cannot persist
            if not trust_pickle:
                raise InvalidModel(
                    f"skops cannot store this {type(model).__name__} ({exc}); pass trust_pickle=True to store it with joblib"
                ) from exc
            import joblib

            buf = io.BytesIO()
            joblib.dump(model, buf)
            return Packed(_flavor_of(model), buf.getvalue(), SklearnPredictor(model, _flavor_of(model)), {"format": "joblib"})
        trusted = [t for t in sio.get_untrusted_types(data=data)]
        refused = [t for t in trusted if not t.startswith(_TRUSTED_PREFIXES)]
        if refused and not trust_pickle:
            raise UntrustedArtifact(
                "the model holds types matchday does not trust by default; pass trust_pickle=True if you trust them",
                refused,
            )
        return Packed(_flavor_of(model), data, SklearnPredictor(model, _flavor_of(model)), {"format": "skops", "trusted_types": trusted})

    def load(self, data: bytes, options: dict[str, Any], cache_dir: Path) -> Predictor:
        if options.get("format") == "joblib":
            obj = _pickle_load(data, origin="artifact")
        else:
            obj, _ = _skops_load(data, options.get("trusted_types", []), origin="artifact")
        return SklearnPredictor(obj, _flavor_of(obj))


def _skops_load(data: bytes, trusted: list[str] | None, origin: str) -> tuple[Any, list[str]]:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise InvalidModel(f"{origin} is not a readable skops file: {exc}") from exc
    if trusted is None:  # a .skops file given by the user: trust only the usual libraries
        refused = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
        if refused:
            raise UntrustedArtifact(f"{origin} holds types matchday does not trust by default", refused)
        trusted = untrusted
    else:
        refused = [t for t in untrusted if t not in trusted]
        if refused:
            raise UntrustedArtifact(f"{origin} holds types that were not trusted at registration", refused)
    try:
        return sio.loads(data, trusted=trusted), list(untrusted)
    except Exception as exc:
        raise InvalidModel(f"{origin} could not be loaded by skops: {exc}") from exc


def _pickle_load(data: bytes, origin: str) -> Any:
    import joblib

    try:
        return joblib.load(io.BytesIO(data))
    except Exception as exc:
        raise InvalidModel(f"{origin} is not a readable pickle/joblib file: {exc}") from exc


def _check_fitted(model: Any) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise InvalidModel(f"this {type(model).__name__} is not fitted: train it before registering") from exc
    except TypeError:
        pass
