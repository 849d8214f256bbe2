"""Model files that could run code or crash the process are refused without ``--trust-pickle``,
when registered and again when loaded, on both databases; the models people really register
still register and load without the flag.

Malicious skops files are built with skops itself: a fitted estimator is dumped and the schema
node of one of its attributes is replaced by a payload that, when built, touches a marker file.
Each payload really runs once skops is told to trust its types (the first test), so a marker that
stays absent proves the refusal, not a broken payload. Crafted trees are made by handing skops a
fitted estimator whose node arrays were changed; one of them is shown to crash a process that
loads and predicts with it, which is what matchday's tree check exists to prevent.
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from matchday.config import Settings
from matchday.registry import InvalidModel, UntrustedArtifact
from matchday.workspace import Workspace

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # small MLPs, few epochs

# -- skops schema nodes, as skops itself writes them -------------------------------------------


def _json(value: Any) -> dict[str, Any]:
    return {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def _seq(kind: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"__class__": kind, "__module__": "builtins", "__loader__": f"{kind.title()}Node", "content": list(items)}


def _call(module: str, name: str, *args: dict[str, Any]) -> dict[str, Any]:
    """skops' ConstructorFromReduceNode: ``gettype(module, name)(*args)`` at load."""
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": _seq("tuple", *args),
    }


def _partial(module: str, name: str) -> dict[str, Any]:
    empty = {
        "__class__": "dict",
        "__module__": "builtins",
        "__loader__": "DictNode",
        "content": {},
        "key_types": _seq("list"),
    }
    return {
        "__class__": "partial",
        "__module__": "functools",
        "__loader__": "PartialNode",
        "content": {
            "func": {"__class__": name, "__module__": module, "__loader__": "FunctionNode"},
            "args": _seq("tuple"),
            "kwds": empty,
            "namespace": _json(None),
        },
    }


def _touch(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


def _run_each(function: dict[str, Any], marker: Path) -> dict[str, Any]:
    """``list(map(function, ["touch MARKER"]))``: calls what a getattr chain or a partial produced."""
    return _call("builtins", "list", _call("builtins", "map", function, _seq("list", _json(f"touch {marker}"))))


# payload name -> (node that touches the marker, types the refusal must name)
PAYLOADS: dict[str, tuple[Callable[[Path], dict[str, Any]], list[str]]] = {
    "builtins-eval": (lambda m: _call("builtins", "eval", _json(_touch(m))), ["builtins.eval"]),
    "builtins-exec": (lambda m: _call("builtins", "exec", _json(_touch(m))), ["builtins.exec"]),
    "os-system": (lambda m: _call("os", "system", _json(f"touch {m}")), ["os.system"]),
    "subprocess-popen": (
        lambda m: _call("subprocess", "Popen", _seq("list", _json("touch"), _json(str(m)))),
        ["subprocess.Popen"],
    ),
    "getattr-chain": (
        lambda m: _run_each(
            _call("builtins", "getattr", _call("builtins", "__import__", _json("os")), _json("system")), m
        ),
        ["builtins.getattr", "builtins.__import__", "builtins.map"],
    ),
    "partial-os-system": (lambda m: _run_each(_partial("os", "system"), m), ["os.system", "builtins.map"]),
}


def _rewrite(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """The skops zip with its schema.json passed through ``change``; every other member as it was."""
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))
    change(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, json.dumps(schema) if name == "schema.json" else src.read(name))
    return out.getvalue()


@pytest.fixture(scope="module")
def logistic(cancer):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    X, y = cancer
    return LogisticRegression(max_iter=5000).fit(X, y)


def _malicious(logistic: Any, payload: str, marker: Path) -> bytes:
    import skops.io as sio

    def plant(schema: dict[str, Any]) -> None:
        schema["content"]["content"]["tol"] = PAYLOADS[payload][0](marker)  # an attribute predict never reads

    return _rewrite(sio.dumps(logistic), plant)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "payload-ran"


def _ran(marker: Path, wait: float = 0.0) -> bool:
    deadline = time.monotonic() + wait
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return marker.exists()


def _insert_version(registry: Any, name: str, data: bytes, flavor: str, options: dict[str, Any]) -> str:
    """A version whose bytes and options did not come through `register` (an older matchday's rules,
    or a store someone else wrote): only load can refuse it."""
    like = registry.list_versions(name)[0]
    sha, _ = registry.artifacts.put(data)
    record = registry.store.create_version(
        name,
        flavor=flavor,
        artifact_sha256=sha,
        artifact_size=len(data),
        signature=like.signature,
        profile=None,
        flavor_options=options,
    )
    return str(record.ref)


# -- code in skops files -----------------------------------------------------------------------


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_each_payload_runs_when_skops_is_told_to_trust_it(payload: str, logistic, marker: Path) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio

    data = _malicious(logistic, payload, marker)
    untrusted = sio.get_untrusted_types(data=data)
    assert set(PAYLOADS[payload][1]) <= set(untrusted)
    loaded = sio.loads(data, trusted=untrusted)
    if payload == "subprocess-popen":
        loaded.tol.wait()
    assert _ran(marker, wait=5)


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_code_in_a_skops_file_is_refused_at_registration(
    payload: str,
    workspace: Workspace,
    logistic,
    cancer,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    marker: Path,
) -> None:
    X, _ = cancer
    path = tmp_path / "model.skops"
    path.write_bytes(_malicious(logistic, payload, marker))
    with pytest.raises(UntrustedArtifact, match="--trust-pickle") as err:
        workspace.registry.register("m", path, reference=X)
    named = [d.split(":")[0] for d in err.value.details]
    assert set(PAYLOADS[payload][1]) <= set(named)
    assert "functools.partial" not in named  # reviewed: its function is judged on its own
    assert workspace.registry.list_models() == []
    assert not _ran(marker, wait=0.3)


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_code_in_a_stored_artifact_is_refused_at_load(
    payload: str,
    workspace: Workspace,
    logistic,
    cancer,  # type: ignore[no-untyped-def]
    marker: Path,
) -> None:
    import skops.io as sio

    X, _ = cancer
    registry = workspace.registry
    registry.register("m", logistic, reference=X)
    bad = _malicious(logistic, payload, marker)
    # what the prefix rule of older versions recorded: every untrusted type, builtins.eval included
    ref = _insert_version(
        registry, "m", bad, "sklearn", {"format": "skops", "trusted_types": sio.get_untrusted_types(data=bad)}
    )
    with pytest.raises(UntrustedArtifact, match="Re-register") as err:
        registry.load(ref)
    assert set(PAYLOADS[payload][1]) <= {d.split(":")[0] for d in err.value.details}
    assert not _ran(marker, wait=0.3)
    assert registry.load("m:1").predict(X.iloc[:3]).shape == (3,)  # the honest version is unaffected


def test_a_recorded_trust_flag_covers_only_the_types_it_was_given_for(
    workspace: Workspace,
    logistic,
    cancer,  # type: ignore[no-untyped-def]
    marker: Path,
) -> None:
    X, _ = cancer
    registry = workspace.registry
    registry.register("m", logistic, reference=X)
    bad = _malicious(logistic, "builtins-eval", marker)
    ref = _insert_version(registry, "m", bad, "sklearn", {"format": "skops", "trusted_types": [], "trusted_by": "user"})
    with pytest.raises(UntrustedArtifact, match="not trusted at registration"):
        registry.load(ref)
    assert not _ran(marker)


# -- crafted trees -----------------------------------------------------------------------------


def _crafted(est: Any, change: Callable[[dict[str, Any]], None]) -> Any:
    """A copy of a fitted DecisionTree whose ``tree_`` state (node array, node count) went through ``change``."""
    est = copy.deepcopy(est)
    ctor, args, state = est.tree_.__reduce__()
    state = {**state, "nodes": state["nodes"].copy()}
    change(state)
    tree = ctor(*args)
    tree.__setstate__(state)
    est.tree_ = tree
    return est


def _set(field: str, value: int, node: int = 0) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        state["nodes"][field][node] = value

    return change


def _tree_case(name: str, X: pd.DataFrame, y: pd.Series) -> tuple[Any, str]:
    """A model whose trees would make scikit-learn's Cython read or write out of bounds, and what
    the refusal must say."""
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)
    if name == "child-out-of-range":
        return _crafted(tree, _set("left_child", 2**40)), "not within"
    if name == "child-cycle":
        return _crafted(tree, _set("right_child", 0)), "not within"
    if name == "feature-out-of-range":
        return _crafted(tree, _set("feature", 10**6)), "splits on feature 1000000"
    if name == "max-depth-understated":  # decision_path sizes its buffer by max_depth
        return _crafted(tree, lambda s: s.update(max_depth=1)), "exceeds the recorded max_depth 1"
    if name == "forest-member-wider-than-forest":
        forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X.iloc[:, :5], y)
        forest.estimators_[0] = tree  # reads column up to 29 of the 5 the forest validates
        return forest, "member 0 takes 30 columns, but is given 5"
    if name == "boosting-stages-wider-than-output":
        boost = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, y)
        boost.estimators_ = np.hstack([boost.estimators_, boost.estimators_])  # writes column 1 of 1
        return boost, "n_trees_per_iteration_=1"
    if name.startswith("hist-"):
        hist = HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(X, y)
        predictor = hist._predictors[0][0]
        predictor.nodes = predictor.nodes.copy()
        if name == "hist-child-out-of-range":
            predictor.nodes["left"][0] = 10**6
            return hist, "not within"
        predictor.nodes["is_categorical"][0] = 1  # a bitset lookup on a numeric feature
        return hist, "non-categorical feature"
    if name == "tree-outside-an-estimator":
        return Pipeline([("tree", tree.tree_)]), "a Tree outside any estimator"
    raise AssertionError(name)


TREE_CASES = [
    "child-out-of-range",
    "child-cycle",
    "feature-out-of-range",
    "max-depth-understated",
    "forest-member-wider-than-forest",
    "boosting-stages-wider-than-output",
    "hist-child-out-of-range",
    "hist-categorical-split-on-numeric",
    "tree-outside-an-estimator",
]


@pytest.mark.parametrize("case", TREE_CASES)
def test_crafted_trees_are_refused_at_registration(case: str, registry, cancer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio

    X, y = cancer
    model, says = _tree_case(case, X, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    with pytest.raises(UntrustedArtifact, match="fail matchday's check") as err:
        registry.register("m", path, reference=X)
    assert any(says in d for d in err.value.details), err.value.details
    assert any("bounds checking" in d for d in err.value.details)  # skops' own reason is passed on
    assert registry.list_models() == []


@pytest.mark.parametrize("case", TREE_CASES)
def test_crafted_trees_are_refused_at_load_even_as_matchdays_own_dump(case: str, registry, cancer, logistic) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio

    X, y = cancer
    model, says = _tree_case(case, X, y)
    registry.register("m", logistic, reference=X)
    data = sio.dumps(model)
    ref = _insert_version(
        registry,
        "m",
        data,
        "sklearn",
        {"format": "skops", "trusted_types": sio.get_untrusted_types(data=data), "source": "estimator"},
    )
    with pytest.raises(UntrustedArtifact, match="fail matchday's check") as err:
        registry.load(ref)
    assert any(says in d for d in err.value.details), err.value.details


def test_a_crafted_tree_crashes_the_process_that_predicts_with_it(cancer, tmp_path: Path) -> None:
    """What the check prevents: skops loads the tree if told to trust it, and predict segfaults."""
    import skops.io as sio

    X, y = cancer
    model, _ = _tree_case("child-out-of-range", X, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    X.iloc[:5].to_parquet(tmp_path / "x.parquet")
    script = (
        "import sys, pandas as pd, skops.io as sio\n"
        f"m = sio.load({str(path)!r}, trusted=['sklearn.tree._tree.Tree'])\n"
        f"m.predict(pd.read_parquet({str(tmp_path / 'x.parquet')!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode < 0, (done.returncode, done.stderr[-500:])  # killed by a signal, not an exception


def _svm_case(name: str, X: pd.DataFrame, y: pd.Series) -> tuple[Any, str]:
    """An SVM whose arrays libsvm would index past their ends (skops trusts every SVM class itself)."""
    from sklearn.svm import SVC, SVR

    model = (SVR() if name.startswith("svr") else SVC(kernel="linear")).fit(X, y)
    n = model.support_.shape[0]
    if name == "svc-n-support-overstated":  # segfaulted at predict before the check
        model._n_support = np.array([n] + [0] * 2999, dtype=np.int32)
        return model, "does not split"
    if name == "svc-support-vectors-narrower-than-input":
        model.support_vectors_ = np.ascontiguousarray(model.support_vectors_[:, :3])
        return model, "support_vectors_ is"
    if name == "svr-dual-coef-short":
        model._dual_coef_ = np.ascontiguousarray(model._dual_coef_[:, : n // 2])
        return model, "_dual_coef_ is"
    raise AssertionError(name)


SVM_CASES = ["svc-n-support-overstated", "svc-support-vectors-narrower-than-input", "svr-dual-coef-short"]


@pytest.mark.parametrize("case", SVM_CASES)
def test_crafted_svms_are_refused_at_registration_and_load(
    case: str,
    registry,
    cancer,
    logistic,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    import skops.io as sio

    X, y = cancer
    model, says = _svm_case(case, X, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    assert sio.get_untrusted_types(file=path) == []  # skops itself would load it without a word
    with pytest.raises(UntrustedArtifact, match="fail matchday's check") as err:
        registry.register("m", path, reference=X)
    assert any(says in d for d in err.value.details), err.value.details
    registry.register("m", logistic, reference=X)
    ref = _insert_version(
        registry, "m", path.read_bytes(), "sklearn", {"format": "skops", "trusted_types": [], "source": "file"}
    )
    with pytest.raises(UntrustedArtifact, match="fail matchday's check"):
        registry.load(ref)


def test_what_cannot_be_checked_from_a_file_registers_as_an_estimator(registry, cancer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = cancer
    model = GradientBoostingClassifier(n_estimators=3, init=LogisticRegression(max_iter=5000), random_state=0).fit(X, y)
    record = registry.register("m", model, reference=X)
    assert "trusted_by" not in record.flavor_options
    np.testing.assert_allclose(registry.load("m:1").predict_proba(X), model.predict_proba(X))
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    with pytest.raises(UntrustedArtifact, match="init estimator is a LogisticRegression"):
        registry.register("m", path, reference=X)


# -- every legit estimator, without the flag ---------------------------------------------------


def _frames() -> dict[str, tuple[pd.DataFrame, pd.Series]]:
    from sklearn.datasets import load_breast_cancer, load_iris

    cancer = load_breast_cancer(return_X_y=True, as_frame=True)
    iris = load_iris(return_X_y=True, as_frame=True)
    rng = np.random.default_rng(0)
    mixed = pd.DataFrame({"amount": rng.normal(size=300), "merchant": rng.choice(["food", "fuel", "travel"], 300)})
    words = np.array(["good", "bad", "very", "fine", "poor", "great"])
    text = pd.DataFrame({"text": [" ".join(rng.choice(words, 4)) for _ in range(300)]})
    return {
        "cancer": cancer,  # type: ignore[dict-item]
        "iris": iris,  # type: ignore[dict-item]
        "mixed": (mixed, (mixed["amount"] > 0).astype(int)),
        "categories": (mixed.assign(merchant=mixed["merchant"].astype("category")), (mixed["amount"] > 0).astype(int)),
        "text": (text, text["text"].str.contains("good|great").astype(int)),
    }


def _estimator(name: str) -> Any:
    import lightgbm
    import xgboost
    from sklearn import (
        calibration,
        cluster,
        compose,
        ensemble,
        impute,
        linear_model,
        naive_bayes,
        neighbors,
        neural_network,
        pipeline,
        preprocessing,
        svm,
        tree,
    )
    from sklearn.feature_extraction.text import TfidfVectorizer

    lr = linear_model.LogisticRegression(max_iter=5000)
    small = {"n_estimators": 5, "random_state": 0}
    return {
        "logistic-pipeline": lambda: pipeline.make_pipeline(preprocessing.StandardScaler(), lr),
        "column-transformer-onehot": lambda: pipeline.make_pipeline(
            compose.ColumnTransformer(
                [
                    ("num", preprocessing.StandardScaler(), ["amount"]),
                    ("cat", preprocessing.OneHotEncoder(handle_unknown="ignore"), ["merchant"]),
                ]
            ),
            lr,
        ),
        "imputer-ordinal": lambda: pipeline.make_pipeline(
            compose.ColumnTransformer(
                [("num", impute.SimpleImputer(), ["amount"]), ("cat", preprocessing.OrdinalEncoder(), ["merchant"])]
            ),
            lr,
        ),
        "decision-tree": lambda: tree.DecisionTreeClassifier(random_state=0),
        "random-forest": lambda: ensemble.RandomForestClassifier(**small),
        "random-forest-regressor": lambda: ensemble.RandomForestRegressor(**small),
        "extra-trees": lambda: ensemble.ExtraTreesClassifier(**small),
        "gradient-boosting": lambda: ensemble.GradientBoostingClassifier(**small),
        "gradient-boosting-multiclass": lambda: ensemble.GradientBoostingClassifier(**small),
        "gradient-boosting-regressor": lambda: ensemble.GradientBoostingRegressor(**small),
        "hist-gradient-boosting": lambda: ensemble.HistGradientBoostingClassifier(max_iter=5, random_state=0),
        "hist-gradient-boosting-multiclass": lambda: ensemble.HistGradientBoostingClassifier(
            max_iter=5, random_state=0
        ),
        "hist-gradient-boosting-categorical": lambda: ensemble.HistGradientBoostingClassifier(
            max_iter=5, random_state=0
        ),
        "isolation-forest": lambda: ensemble.IsolationForest(**small),
        "bagging": lambda: ensemble.BaggingClassifier(tree.DecisionTreeClassifier(), max_features=0.5, **small),
        "adaboost": lambda: ensemble.AdaBoostClassifier(**small),
        "voting": lambda: ensemble.VotingClassifier(
            [("lr", lr), ("tree", tree.DecisionTreeClassifier())], voting="soft"
        ),
        "stacking": lambda: ensemble.StackingClassifier([("tree", tree.DecisionTreeClassifier())], cv=3),
        "knn": lambda: neighbors.KNeighborsClassifier(),
        "knn-kd-tree": lambda: neighbors.KNeighborsClassifier(),
        "svc": lambda: svm.SVC(random_state=0),
        "mlp": lambda: neural_network.MLPClassifier(max_iter=30, random_state=0),
        "mlp-sgd": lambda: neural_network.MLPClassifier(solver="sgd", max_iter=30, random_state=0),
        "kmeans": lambda: cluster.KMeans(3, n_init=2, random_state=0),
        "sgd": lambda: linear_model.SGDClassifier(random_state=0),
        "naive-bayes": lambda: naive_bayes.GaussianNB(),
        "calibrated-sigmoid": lambda: calibration.CalibratedClassifierCV(lr, cv=3),
        "calibrated-isotonic": lambda: calibration.CalibratedClassifierCV(lr, method="isotonic", cv=3),
        "tfidf-pipeline": lambda: pipeline.make_pipeline(
            compose.ColumnTransformer([("words", TfidfVectorizer(), "text")]), naive_bayes.MultinomialNB()
        ),
        "lightgbm-classifier": lambda: lightgbm.LGBMClassifier(n_estimators=5, verbose=-1),
        "lightgbm-regressor": lambda: lightgbm.LGBMRegressor(n_estimators=5, verbose=-1),
        "xgboost-classifier": lambda: xgboost.XGBClassifier(n_estimators=5),
        "xgboost-regressor": lambda: xgboost.XGBRegressor(n_estimators=5),
    }[name]()


# name -> data it is fitted on; the ones a .skops *file* cannot hold without the flag, and why
ESTIMATORS = {
    "logistic-pipeline": "cancer",
    "column-transformer-onehot": "mixed",
    "imputer-ordinal": "mixed",
    "decision-tree": "cancer",
    "random-forest": "cancer",
    "random-forest-regressor": "cancer",
    "extra-trees": "cancer",
    "gradient-boosting": "cancer",
    "gradient-boosting-multiclass": "iris",
    "gradient-boosting-regressor": "cancer",
    "hist-gradient-boosting": "cancer",
    "hist-gradient-boosting-multiclass": "iris",
    "hist-gradient-boosting-categorical": "categories",
    "isolation-forest": "cancer",
    "bagging": "cancer",
    "adaboost": "cancer",
    "voting": "cancer",
    "stacking": "cancer",
    "knn": "cancer",
    "knn-kd-tree": "iris",
    "svc": "cancer",
    "mlp": "cancer",
    "mlp-sgd": "cancer",
    "kmeans": "cancer",
    "sgd": "cancer",
    "naive-bayes": "cancer",
    "calibrated-sigmoid": "cancer",
    "calibrated-isotonic": "cancer",
    "tfidf-pipeline": "text",
    "lightgbm-classifier": "cancer",
    "lightgbm-regressor": "cancer",
    "xgboost-classifier": "cancer",
    "xgboost-regressor": "cancer",
}
NOT_FROM_FILES = {
    "hist-gradient-boosting-categorical": "categorical preprocessor",
    "knn-kd-tree": "sklearn.neighbors._kd_tree.KDTree",
    "lightgbm-classifier": "lightgbm.basic.Booster",
    "lightgbm-regressor": "lightgbm.basic.Booster",
    "xgboost-classifier": "xgboost.core.Booster",
    "xgboost-regressor": "xgboost.core.Booster",
}


@pytest.fixture(scope="module")
def fitted() -> Callable[[str], tuple[Any, pd.DataFrame]]:
    """Each estimator fitted once, when a test first asks for it."""
    frames = _frames()
    cache: dict[str, tuple[Any, pd.DataFrame]] = {}

    def get(name: str) -> tuple[Any, pd.DataFrame]:
        if name not in cache:
            X, y = frames[ESTIMATORS[name]]
            model = _estimator(name)
            cache[name] = (model.fit(X) if name in ("isolation-forest", "kmeans") else model.fit(X, y), X)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def sqlite_registry(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One SQLite workspace for the estimator matrix (the database is not what it tests)."""
    home = tmp_path_factory.mktemp("estimators")
    ws = Workspace(Settings(home=home, database_url=f"sqlite:///{home / 'matchday.db'}"))
    yield ws.registry
    ws.close()


def _same_predictions(loaded: Any, model: Any, X: pd.DataFrame) -> None:
    got, expected = loaded.predict(X), np.asarray(model.predict(X))
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    else:
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_common_estimators_register_and_load_without_the_flag(name: str, fitted, sqlite_registry) -> None:  # type: ignore[no-untyped-def]
    model, X = fitted(name)
    record = sqlite_registry.register(name, model, reference=X)
    assert record.flavor_options["source"] == "estimator"
    assert "trusted_by" not in record.flavor_options
    _same_predictions(sqlite_registry.load(record.ref), model, X)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_common_estimators_as_skops_files(name: str, fitted, sqlite_registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio

    model, X = fitted(name)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    if name in NOT_FROM_FILES:
        with pytest.raises(UntrustedArtifact, match="--trust-pickle") as err:
            sqlite_registry.register(f"{name}-file", path, reference=X)
        assert NOT_FROM_FILES[name] in str(err.value)
        record = sqlite_registry.register(f"{name}-file", path, reference=X, trust_pickle=True)
        assert record.flavor_options["trusted_by"] == "user"
    else:
        record = sqlite_registry.register(f"{name}-file", path, reference=X)
        assert "trusted_by" not in record.flavor_options
    assert record.flavor_options["source"] == "file"
    _same_predictions(sqlite_registry.load(record.ref), model, X)


def test_the_flag_is_recorded_only_when_it_was_needed(registry, logistic, cancer) -> None:  # type: ignore[no-untyped-def]
    X, _ = cancer
    record = registry.register("m", logistic, reference=X, trust_pickle=True)
    assert "trusted_by" not in record.flavor_options  # the policy still applies to this version at load


def test_boosters_from_before_the_origin_was_recorded_must_be_registered_again(registry, cancer) -> None:  # type: ignore[no-untyped-def]
    import lightgbm
    import skops.io as sio

    X, y = cancer
    model = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)
    registry.register("m", model, reference=X)
    data = sio.dumps(model)  # same bytes, but options as an older matchday wrote them: no "source"
    ref = _insert_version(
        registry, "m", data, "sklearn", {"format": "skops", "trusted_types": sio.get_untrusted_types(data=data)}
    )
    with pytest.raises(UntrustedArtifact, match="register the estimator object"):
        registry.load(ref)
    assert registry.load("m:1").predict(X.iloc[:3]).shape == (3,)


# -- unreadable files and the other flavors ----------------------------------------------------


def _skops_without_schema(data: bytes) -> bytes:
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if name != "schema.json":
                dst.writestr(name, src.read(name))
    return out.getvalue()


def _skops_with_bad_json(data: bytes) -> bytes:
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, b"{not json" if name == "schema.json" else src.read(name))
    return out.getvalue()


CORRUPT_SKOPS: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda d: d[: len(d) // 2],
    "not-a-zip": lambda d: b"PK\x03\x04" + bytes(range(256)),
    "no-schema": _skops_without_schema,
    "schema-not-json": _skops_with_bad_json,
}


@pytest.mark.parametrize("corruption", sorted(CORRUPT_SKOPS))
def test_a_corrupt_skops_file_is_invalid(corruption: str, registry, logistic, cancer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio

    X, _ = cancer
    path = tmp_path / "model.skops"
    path.write_bytes(CORRUPT_SKOPS[corruption](sio.dumps(logistic)))
    with pytest.raises(InvalidModel, match="not a readable skops file") as err:
        registry.register("m", path, reference=X)
    assert not isinstance(err.value, UntrustedArtifact)


def _onnx_with_external_data(location: str) -> bytes:
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    weight = numpy_helper.from_array(np.ones((2, 1), dtype=np.float32), "W")
    set_external_data(weight, location=location, offset=0, length=8)
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


@pytest.mark.parametrize("location", ["/etc/passwd", "../x"])
def test_an_onnx_model_with_external_data_is_refused(location: str, registry, logistic, cancer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "model.onnx"
    path.write_bytes(_onnx_with_external_data(location))
    reference = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    with pytest.raises(InvalidModel, match="external files") as err:
        registry.register("m", path, reference=reference)
    assert err.value.details == [f"tensor data in {location!r}"]

    registry.register("m", logistic, reference=cancer[0])
    ref = _insert_version(registry, "m", path.read_bytes(), "onnx", {})
    with pytest.raises(InvalidModel, match="external files"):
        registry.load(ref)


def test_a_corrupt_onnx_file_is_invalid(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07this is not a model" + bytes(range(200)))
    with pytest.raises(InvalidModel, match="not a valid ONNX model"):
        registry.register("m", path, reference=pd.DataFrame({"a": [1.0]}))
    assert registry.list_models() == []


def test_an_mlflow_directory_needs_the_flag_at_registration_and_load(
    registry,
    cancer_pipeline,
    cancer,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    import mlflow.sklearn

    from matchday.registry.artifacts import pack_directory

    X, _ = cancer
    path = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(cancer_pipeline, path)
    with pytest.raises(UntrustedArtifact, match="MLflow model directory.*unpickles.*--trust-pickle"):
        registry.register("m", path, reference=X)
    assert registry.list_models() == []

    record = registry.register("m", path, reference=X, trust_pickle=True)
    assert record.flavor_options == {"trusted_by": "user"}
    ref = _insert_version(registry, "m", pack_directory(path), "mlflow", {})  # as an older matchday stored it
    with pytest.raises(UntrustedArtifact, match="Re-register it with --trust-pickle"):
        registry.load(ref)
    assert registry.load("m:1").predict(X.iloc[:3]).shape == (3,)


class _Payload:
    """A pickle that runs a shell command when it is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_needs_the_flag_at_registration_and_load(
    registry,
    logistic,
    cancer,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    marker: Path,
) -> None:
    X, _ = cancer
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UntrustedArtifact, match="pickle file.*--trust-pickle"):
        registry.register("m", path, reference=X)
    assert registry.list_models() == [] and not _ran(marker)

    registry.register("m", logistic, reference=X)
    ref = _insert_version(registry, "m", path.read_bytes(), "sklearn", {"format": "joblib"})  # no recorded trust
    with pytest.raises(UntrustedArtifact, match="record no trust flag"):
        registry.load(ref)
    assert not _ran(marker, wait=0.3)
