"""scikit-learn estimators and pipelines (and LightGBM/XGBoost through their scikit-learn API).

Stored with skops, which rebuilds an object from a schema of named types instead of running
pickle's byte code; which named types an artifact may use without ``trust_pickle`` is
`skops_trust`'s policy, applied at registration and again at every load. Pickle/joblib needs the
flag, at load too.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np
import pyarrow as pa

from matchday.registry.errors import InvalidModel, UntrustedArtifact
from matchday.registry.flavors.base import Flavor, Packed, Predictor, as_matrix, as_pandas
from matchday.registry.flavors.skops_trust import TRUST_FLAG, Source, refuse_bad_structures, refuse_untrusted

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


class SklearnOptions(TypedDict, total=False):
    """What the registry stores beside an sklearn-flavor artifact and this flavor reads at load."""

    format: Literal["skops", "joblib"]
    trusted_types: list[str]  # the types skops reported as untrusted in the artifact
    source: Source  # who wrote the bytes: matchday from a fitted estimator, or a user's file
    trusted_by: Literal["user"]  # present only when registration needed the trust flag


class SklearnPredictor(Predictor):
    flavor = "sklearn"
    accepts_float_rows = True  # it reads its input through as_pandas / as_matrix

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

    def _predict_both(self, table: pa.Table) -> tuple[Any, Any]:
        features = self._features(table)
        proba = self.model.predict_proba(features)
        classes = getattr(self.model, "classes_", None)
        if classes is not None and _predicts_argmax(self.model):  # one model call instead of two
            return np.asarray(classes).take(np.argmax(proba, axis=1)), proba
        return self.model.predict(features), proba


# Classifiers whose predict is the class of the largest predict_proba, exactly (ties included): trees
# and forests take the argmax of the probabilities, the others of a score the probabilities rise with.
# Not SVC (Platt scaling can disagree with its decision), not a calibrated or voting wrapper.
_ARGMAX_CLASSIFIERS = frozenset(
    {
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.naive_bayes.MultinomialNB",
        "sklearn.naive_bayes.BernoulliNB",
        "sklearn.naive_bayes.ComplementNB",
        "sklearn.naive_bayes.CategoricalNB",
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    }
)


def _predicts_argmax(model: Any) -> bool:
    final = model.steps[-1][1] if type(model).__name__ == "Pipeline" and hasattr(model, "steps") else model
    return f"{type(final).__module__}.{type(final).__qualname__}" in _ARGMAX_CLASSIFIERS


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
                return _pack_skops_file(path, trust_pickle)
            if path.suffix in _PICKLE_SUFFIXES and path.is_file():
                if not trust_pickle:
                    raise UntrustedArtifact(
                        f"{path} is a pickle file: loading it can run any code it contains. "
                        f"Register it with {TRUST_FLAG} only if you trust its source, or save the model with skops instead"
                    )
                data = path.read_bytes()
                obj = _pickle_load(data, origin=str(path))
                if not hasattr(obj, "predict"):
                    raise InvalidModel(f"{path} holds a {type(obj).__name__}, which has no predict method")
                return _packed(obj, data, {"format": "joblib", "trusted_by": "user"})
            return None
        if not _is_estimator(model):
            return None
        _check_fitted(model)
        return _pack_estimator(model, trust_pickle)

    def load(self, data: bytes, options: dict[str, Any], cache_dir: Path) -> Predictor:
        by_user = options.get("trusted_by") == "user"
        if options.get("format") == "joblib":
            if not by_user:
                raise UntrustedArtifact(
                    "this version's artifact is a pickle/joblib file and its options record no trust flag: "
                    f"loading it can run any code it contains. Re-register it with {TRUST_FLAG} if you trust its source"
                )
            obj = _pickle_load(data, origin="the stored artifact")
        else:
            origin = "this version's artifact"
            source: Source = "estimator" if options.get("source") == "estimator" else "file"
            vouched = list(options.get("trusted_types", [])) if by_user else None
            obj = _load_skops(data, _untrusted_types(data, origin), origin, source, vouched, at_load=True)
        return SklearnPredictor(obj, _flavor_of(obj))


def _packed(model: Any, data: bytes, options: SklearnOptions) -> Packed:
    return Packed(_flavor_of(model), data, SklearnPredictor(model, _flavor_of(model)), dict(options))


def _pack_estimator(model: Any, trust_pickle: bool) -> Packed:
    """Dump a live estimator with skops (joblib only if skops cannot and the user trusts it)."""
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
        return _packed(model, buf.getvalue(), {"format": "joblib", "trusted_by": "user"})
    untrusted = _untrusted_types(data, "the dumped estimator")
    options: SklearnOptions = {"format": "skops", "trusted_types": untrusted, "source": "estimator"}
    try:
        refuse_untrusted(untrusted, "this estimator", "estimator", at_load=False)
        refuse_bad_structures(model, untrusted, "this estimator", own_dump=True, at_load=False, svm=_names_svm(data))
    except UntrustedArtifact:
        if not trust_pickle:
            raise
        options["trusted_by"] = "user"
    return _packed(model, data, options)


def _pack_skops_file(path: Path, trust_pickle: bool) -> Packed:
    data, origin = path.read_bytes(), str(path)
    untrusted = _untrusted_types(data, origin)
    options: SklearnOptions = {"format": "skops", "trusted_types": untrusted, "source": "file"}
    try:
        obj = _load_skops(data, untrusted, origin, "file", None, at_load=False)
    except UntrustedArtifact:
        if not trust_pickle:
            raise
        options["trusted_by"] = "user"
        obj = _load_skops(data, untrusted, origin, "file", untrusted, at_load=False)
    if not hasattr(obj, "predict"):
        raise InvalidModel(f"{path} holds a {type(obj).__name__}, which has no predict method")
    return _packed(obj, data, options)


def _load_skops(
    data: bytes, untrusted: list[str], origin: str, source: Source, vouched: list[str] | None, *, at_load: bool
) -> Any:
    """The object in a skops artifact (whose untrusted types skops reported), loaded under the
    policy or, when the user vouched for a list of types at registration, under exactly that list."""
    if vouched is not None:
        unvouched = [t for t in untrusted if t not in vouched]
        if unvouched:
            raise UntrustedArtifact(f"{origin} holds types that were not trusted at registration", unvouched)
        return _skops_loads(data, untrusted, origin)
    refuse_untrusted(untrusted, origin, source, at_load)
    obj = _skops_loads(data, untrusted, origin)
    refuse_bad_structures(obj, untrusted, origin, own_dump=source == "estimator", at_load=at_load, svm=_names_svm(data))
    return obj


def _names_svm(data: bytes) -> bool:
    """Whether the artifact's schema names a ``sklearn.svm`` class (whose arrays libsvm reads unchecked)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return b'"sklearn.svm.' in archive.read("schema.json")
    except (zipfile.BadZipFile, KeyError):
        return True  # unreadable here: skops will say so; check rather than skip


def _untrusted_types(data: bytes, origin: str) -> list[str]:
    import skops.io as sio

    try:
        return list(sio.get_untrusted_types(data=data))
    except Exception as exc:
        raise InvalidModel(f"{origin} is not a readable skops file: {exc}") from exc


def _skops_loads(data: bytes, trusted: list[str], origin: str) -> Any:
    import skops.io as sio

    try:
        return sio.loads(data, trusted=trusted)
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
