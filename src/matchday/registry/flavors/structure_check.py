"""The structure check that lets tree and SVM models load from a file: every child, feature and
bitset index of the loaded model's trees, and every support-vector array of its libsvm models,
bound to its arrays and to the input width the predicting code uses, before anything predicts with
it (scikit-learn's Cython and libsvm read them without bounds checks)."""

from __future__ import annotations

import functools
import types
import warnings
from typing import Any, TypeGuard

import numpy as np

# Which code walks tree nodes without bounds checks, and with which input width:
# - DecisionTree*/ExtraTree* (public predict): X is validated against the estimator's own
#   ``n_features_in_``, so its ``tree_.n_features`` must equal it;
# - forests and IsolationForest call their trees with ``check_input=False`` on X validated against
#   the *ensemble's* width (or a column subset of it), so each member must have that width;
# - gradient boosting walks ``estimators_[i, k].tree_`` in Cython and writes ``out[:, k]``, where
#   ``out`` is what its ``init_`` predicted, so ``estimators_`` must be (stages, columns of out);
# - HistGradientBoosting walks ``_predictors`` with the raw X and bitsets built from ``_bin_mapper``.
# A Tree may be reached only as some DecisionTree's ``tree_`` (anything else could call its predict
# with an input nobody validated), a TreePredictor only from a checked ``_predictors`` list.

_Edge = tuple[int, str | None]  # (id of the holder, attribute name or None for a container item)
_NO_WALK = (
    str,
    bytes,
    bytearray,
    int,
    float,
    complex,
    bool,
    type(None),
    np.generic,
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    np.ufunc,
)


def structure_problems(model: Any, *, own_dump: bool) -> list[str]:
    """What is wrong with the trees and SVMs ``model`` holds (empty: safe to predict with).

    ``own_dump`` relaxes only what cannot be checked at all (a custom init, a categorical
    preprocessor), for bytes matchday wrote itself from a fitted estimator.
    """
    from sklearn.ensemble import IsolationForest
    from sklearn.ensemble._forest import BaseForest
    from sklearn.ensemble._gb import BaseGradientBoosting
    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import BaseHistGradientBoosting
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.svm._base import BaseLibSVM
    from sklearn.tree._classes import BaseDecisionTree
    from sklearn.tree._tree import Tree

    objects, edges = _walk(model, (Tree, TreePredictor))
    problems: list[str] = []
    allowed: set[_Edge] = set()
    for obj in objects:
        try:
            if isinstance(obj, BaseLibSVM):
                problems += _libsvm_problems(obj, own_dump)
            if isinstance(obj, BaseDecisionTree) and type(vars(obj).get("tree_")) is Tree:
                problems += _tree_owner_problems(obj)
                allowed.add((id(obj), "tree_"))
            if isinstance(obj, (BaseForest, IsolationForest)):
                problems += _member_problems(obj, BaseDecisionTree)
            if isinstance(obj, BaseGradientBoosting):
                problems += _gradient_boosting_problems(obj, BaseDecisionTree, own_dump)
            if isinstance(obj, BaseHistGradientBoosting):
                found, lists = _hist_gradient_boosting_problems(obj, TreePredictor, own_dump)
                problems += found
                allowed |= {(i, None) for i in lists}
        except Exception as exc:  # a malformed attribute is a finding, never a crash of the check
            problems.append(f"{type(obj).__name__}: cannot be checked ({type(exc).__name__}: {exc})")
    strays = {type(child).__name__ for child, holder in edges if holder not in allowed}
    problems += [f"a {name} outside any estimator whose use of it matchday can check" for name in sorted(strays)]
    return problems


def _walk(root: Any, watched: tuple[type, ...]) -> tuple[list[Any], list[tuple[Any, _Edge]]]:
    """Every object reachable from ``root`` (attributes, containers, object arrays, partials), each
    once, and every reference to an object of a ``watched`` type with who holds it."""
    seen: dict[int, Any] = {}
    edges: list[tuple[Any, _Edge]] = []
    stack: list[tuple[Any, _Edge]] = [(root, (0, "<the model itself>"))]  # a holder nothing allows
    while stack:
        obj, edge = stack.pop()
        if isinstance(obj, watched):
            edges.append((obj, edge))
        if id(obj) in seen or isinstance(obj, _NO_WALK):
            continue
        seen[id(obj)] = obj  # holding it keeps its id from being reused during the walk
        items: list[Any] = []
        if isinstance(obj, dict):
            items = [*obj.keys(), *obj.values()]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            items = list(obj)
        elif isinstance(obj, np.ndarray):
            items = obj.ravel().tolist() if obj.dtype.hasobject else []
        elif isinstance(obj, functools.partial):
            items = [obj.func, obj.args, obj.keywords]
        stack.extend((item, (id(obj), None)) for item in items if not isinstance(item, _NO_WALK))
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            stack.extend((v, (id(obj), str(k))) for k, v in attrs.items() if not isinstance(v, _NO_WALK))
    return list(seen.values()), edges


def _int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _width(obj: Any) -> int:
    """The estimator's own ``n_features_in_``: without it scikit-learn skips the width check."""
    n = vars(obj).get("n_features_in_")
    if not _int(n) or n < 1:
        raise ValueError(f"n_features_in_ is {n!r}, not a positive integer")
    return int(n)


_LIBSVM_ARRAYS = {
    "support_": ("i", 1),
    "_n_support": ("i", 1),
    "support_vectors_": ("f", 2),
    "_dual_coef_": ("f", 2),
    "_intercept_": ("f", 1),
    "_probA": ("f", 1),
    "_probB": ("f", 1),
}


def _libsvm_problems(est: Any, own_dump: bool) -> list[str]:
    """An SVM's arrays against each other and the input width: libsvm indexes them by the counts in
    ``_n_support`` and ``support_`` without checking (a crafted count segfaults at predict)."""
    what, v = type(est).__name__, vars(est)
    for name, (kind, ndim) in _LIBSVM_ARRAYS.items():
        a = v.get(name)
        if not isinstance(a, np.ndarray) or a.dtype.kind != kind or a.ndim != ndim:
            return [f"{what}: {name} is not a {ndim}-D {'integer' if kind == 'i' else 'float'} array"]
    if v.get("_sparse") is not False:
        return [] if own_dump else [f"{what}: a model fitted on sparse input cannot be checked"]
    support, n_support, vectors, dual = v["support_"], v["_n_support"], v["support_vectors_"], v["_dual_coef_"]
    intercept, prob_a, prob_b = v["_intercept_"], v["_probA"], v["_probB"]
    n_sv, width, fit = support.shape[0], _width(est), v.get("shape_fit_")
    if not (isinstance(fit, tuple) and len(fit) == 2 and all(_int(d) and d >= 0 for d in fit)):
        return [f"{what}: shape_fit_ is {fit!r}, not the training data's shape"]
    if n_sv and not (0 <= support.min() and support.max() < fit[0]):
        return [f"{what}: support_ points past the {fit[0]} training rows"]
    if v.get("kernel") == "precomputed":
        if width != fit[0] or vectors.size:
            return [f"{what}: a precomputed kernel's width is not its number of training rows"]
    elif vectors.shape != (n_sv, width):
        return [f"{what}: support_vectors_ is {vectors.shape}, not ({n_sv}, {width})"]
    classes = v.get("classes_")
    if what in ("SVC", "NuSVC") or (classes is not None and hasattr(est, "predict_proba")):
        k = len(classes) if classes is not None else -1
        pairs = k * (k - 1) // 2
        if k < 2 or n_support.shape != (k,) or (n_support < 0).any() or int(n_support.sum()) != n_sv:
            return [
                f"{what}: _n_support {n_support.tolist()[:10]} does not split {n_sv} support vectors over {k} classes"
            ]
        shapes = {"_dual_coef_": (dual.shape, (k - 1, n_sv)), "_intercept_": (intercept.shape, (pairs,))}
    else:
        if n_support.shape != (2,) or (n_support < 0).any() or (n_support > n_sv).any():
            return [f"{what}: _n_support {n_support.tolist()[:10]} does not fit {n_sv} support vectors"]
        pairs = 1
        shapes = {"_dual_coef_": (dual.shape, (1, n_sv)), "_intercept_": (intercept.shape, (1,))}
    problems = [f"{what}: {name} is {got}, not {want}" for name, (got, want) in shapes.items() if got != want]
    if prob_a.shape != prob_b.shape or prob_a.shape not in ((0,), (pairs,)):
        problems.append(f"{what}: _probA/_probB are {prob_a.shape}/{prob_b.shape}, not (0,) or ({pairs},)")
    return problems


def _node_problems(
    what: str, left: np.ndarray, right: np.ndarray, internal: np.ndarray, feature: np.ndarray, n_features: int
) -> list[str]:
    """Children of every split node lie after it and inside the array (so no cycle and no read
    past the end), no node has two parents, and split features index the input's columns."""
    n = len(left)
    idx = np.flatnonzero(internal)
    lo, hi = left[idx], right[idx]
    bad = (lo <= idx) | (lo >= n) | (hi <= idx) | (hi >= n)
    if bad.any():
        i = int(idx[bad][0])
        return [f"{what}: node {i} has children {int(left[i])}, {int(right[i])}, not within {i + 1}..{n - 1}"]
    children = np.concatenate([lo, hi])
    if np.unique(children).size != children.size:
        return [f"{what}: a node is the child of two splits"]
    f = feature[idx]
    bad = (f < 0) | (f >= n_features)
    if bad.any():
        return [f"{what}: node {int(idx[bad][0])} splits on feature {int(f[bad][0])}, but the input has {n_features}"]
    return []


def _tree_owner_problems(est: Any) -> list[str]:
    """A DecisionTree's ``tree_`` against the tree's own arrays and the estimator's input width."""
    what = f"{type(est).__name__}.tree_"
    tree = vars(est)["tree_"]
    n, capacity = int(tree.node_count), int(tree.capacity)
    if not 1 <= n <= capacity:  # node arrays are views of `node_count` rows over `capacity` allocated
        return [f"{what}: node_count {n} is not within 1..{capacity} (the allocated nodes)"]
    width = _width(est)
    if tree.n_features != width:
        return [f"{what}: n_features {tree.n_features} differs from the estimator's n_features_in_ {width}"]
    if vars(est).get("n_outputs_") != tree.n_outputs or tree.value.shape != (n, tree.n_outputs, tree.max_n_classes):
        return [f"{what}: value array of shape {tree.value.shape} does not fit {n} nodes and the estimator's outputs"]
    left, right = tree.children_left.astype(np.int64), tree.children_right.astype(np.int64)
    leaf = left == -1
    if (right[leaf] != -1).any():
        return [f"{what}: a leaf has a right child"]
    found = _node_problems(what, left, right, ~leaf, tree.feature.astype(np.int64), width)
    if found:
        return found
    depth, frontier = 0, np.array([0])
    while frontier.size:  # decision_path sizes its buffer by max_depth: the real depth must fit
        frontier = np.concatenate([left[frontier], right[frontier]])
        frontier = frontier[frontier >= 0]
        depth += frontier.size > 0
    if depth > tree.max_depth:
        return [f"{what}: depth {depth} exceeds the recorded max_depth {tree.max_depth}"]
    return []


def _member_problems(est: Any, tree_type: type) -> list[str]:
    """Forests and IsolationForest call member trees on X they validated themselves."""
    width = _width(est)
    members = vars(est).get("estimators_")
    if not isinstance(members, list) or not members:
        return [f"{type(est).__name__}: estimators_ is not a non-empty list"]
    subsets = vars(est).get("estimators_features_")  # IsolationForest: each tree sees a column subset
    if subsets is not None and (not isinstance(subsets, list) or len(subsets) != len(members)):
        return [f"{type(est).__name__}: estimators_features_ does not match estimators_"]
    for i, member in enumerate(members):
        if not isinstance(member, tree_type):
            continue
        expected = width
        if subsets is not None:
            cols = np.asarray(subsets[i])
            if (
                cols.ndim != 1
                or cols.dtype.kind not in "iu"
                or cols.size > width
                or ((cols < 0) | (cols >= width)).any()
            ):
                return [f"{type(est).__name__}: estimators_features_[{i}] is not a set of its {width} columns"]
            expected = cols.size
        if vars(member).get("n_features_in_") != expected:
            return [
                f"{type(est).__name__}: member {i} takes {vars(member).get('n_features_in_')!r} columns, "
                f"but is given {expected}"
            ]
    return []


def _gradient_boosting_problems(est: Any, tree_type: type, own_dump: bool) -> list[str]:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    what = type(est).__name__
    width = _width(est)
    stages = vars(est).get("estimators_")
    columns = vars(est).get("n_trees_per_iteration_")
    if not isinstance(stages, np.ndarray) or stages.ndim != 2 or stages.shape[0] < 1 or stages.shape[1] != columns:
        return [f"{what}: estimators_ is not an array of (stages, n_trees_per_iteration_={columns!r}) trees"]
    for member in stages.ravel():
        if not isinstance(member, tree_type) or vars(member).get("n_features_in_") != width:
            return [f"{what}: a stage is not a tree over the model's {width} columns"]
    init = vars(est).get("init_")
    if (
        not own_dump
        and not (isinstance(init, str) and init == "zero")
        and type(init) not in (DummyClassifier, DummyRegressor)
    ):
        return [f"{what}: its init estimator is a {type(init).__name__}; matchday checks only 'zero' or a Dummy* init"]
    # The trees write column k of what init_ predicts, in Cython: it must have exactly `columns`.
    with warnings.catch_warnings():  # a model fitted on a DataFrame warns about the nameless probe
        warnings.simplefilter("ignore")
        start = est._raw_predict_init(np.zeros((1, width), dtype=np.float32))
    if not isinstance(start, np.ndarray) or start.shape != (1, columns) or start.dtype != np.float64:
        return [f"{what}: its init predicts shape {getattr(start, 'shape', None)}, not (1, {columns})"]
    return []


def _is_bitsets(bits: Any, dtype: np.dtype) -> TypeGuard[np.ndarray]:
    """A predictor's category bitsets: an (n, 8) array of ``dtype`` (a guard, so mypy knows it past the check)."""
    return isinstance(bits, np.ndarray) and bits.dtype == dtype and bits.ndim == 2 and bits.shape[1] == 8


def _hist_gradient_boosting_problems(est: Any, predictor_type: type, own_dump: bool) -> tuple[list[str], list[int]]:
    """HistGradientBoosting's predictors, against its width and its bin mapper's categorical features;
    also the ids of the lists that may hold them."""
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE, X_BITSET_INNER_DTYPE

    what = type(est).__name__
    attrs = vars(est)
    iterations = attrs.get("_predictors")
    columns = attrs.get("n_trees_per_iteration_")
    if not isinstance(iterations, list) or not all(isinstance(it, list) and len(it) == columns for it in iterations):
        return [f"{what}: _predictors is not a list of lists of n_trees_per_iteration_={columns!r} predictors"], []
    lists = [id(it) for it in iterations]  # its own, whatever is found wrong with them below
    if not own_dump and attrs.get("_preprocessor") is not None:
        return [
            f"{what}: its categorical preprocessor decides the predictors' input width, which matchday "
            "cannot bound from a file"
        ], lists
    if attrs.get("_in_fit"):
        return [f"{what}: is marked as in the middle of fitting"], lists
    width = _width(est)
    categorical = vars(attrs.get("_bin_mapper")).get("is_categorical_")
    if not isinstance(categorical, np.ndarray) or categorical.shape != (width,):
        return [f"{what}: its bin mapper does not describe {width} features"], lists
    for it in iterations:
        for predictor in it:
            if type(predictor) is not predictor_type:
                return [f"{what}: a predictor is a {type(predictor).__name__}"], lists
            p = vars(predictor)
            nodes, raw, binned = p.get("nodes"), p.get("raw_left_cat_bitsets"), p.get("binned_left_cat_bitsets")
            if (
                not isinstance(nodes, np.ndarray)
                or nodes.dtype != PREDICTOR_RECORD_DTYPE
                or nodes.ndim != 1
                or not nodes.size
            ):
                return [f"{what}: a predictor's nodes are not a non-empty array of its node records"], lists
            if not _is_bitsets(raw, X_BITSET_INNER_DTYPE) or not _is_bitsets(binned, X_BITSET_INNER_DTYPE):
                return [f"{what}: a predictor's category bitsets are not (n, 8) uint32 arrays"], lists
            internal = nodes["is_leaf"] == 0
            feature = nodes["feature_idx"].astype(np.int64)
            found = _node_problems(
                f"{what} predictor",
                nodes["left"].astype(np.int64),
                nodes["right"].astype(np.int64),
                internal,
                feature,
                width,
            )
            if found:
                return found, lists
            split = internal & (nodes["is_categorical"] != 0)
            if (nodes["bitset_idx"][split] >= min(raw.shape[0], binned.shape[0])).any() or not categorical[
                feature[split]
            ].all():
                return [f"{what}: a categorical split points past its bitsets or at a non-categorical feature"], lists
    return [], lists
