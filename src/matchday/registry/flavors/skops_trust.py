"""Which types a skops artifact may hold without the trust flag, and why.

Stored with skops, which rebuilds an object from a schema of *named* types instead of running
pickle's byte code; what a file can make the loader do is exactly which named types it may use.
So trust is given by exact name, never by module prefix: ``builtins.eval``, ``numpy.ravel`` and
``sklearn.utils._testing``'s helpers that run Python source share their prefixes with harmless
types. The policy, applied when a version is registered and again every time it is loaded:

- a type skops trusts by default (what `skops.io.get_untrusted_types` does not report) is trusted;
- so is a type in `REVIEWED`, each with the reason constructing it from a file runs no code;
- ``sklearn.tree._tree.Tree`` and HistGradientBoosting's ``TreePredictor`` (`CHECKED`) are
  trusted only after `structure_problems` has validated every tree of the loaded model, before anything
  predicts with it. skops leaves them untrusted because scikit-learn's Cython walks their node
  arrays without bounds checks, so a crafted file segfaults or reads out of bounds at predict.
  matchday validates rather than refuses them because forests and boosted trees are the models
  people most often register as files: the check binds every child, feature and bitset index to
  the arrays and to the input width the predicting code actually uses, and refuses what it cannot
  bind (a tree outside the estimators it knows, a custom ``init`` of gradient boosting, a
  HistGradientBoosting categorical preprocessor in a file);
- LightGBM's and XGBoost's ``Booster`` and KNN's KD/Ball tree index (`OWN_DUMPS_ONLY`) are
  trusted only in bytes matchday itself dumped from a fitted estimator (``"source": "estimator"``),
  never from a file: native code walks their contents without bounds checks either (measured: a
  crafted XGBoost tree segfaults at predict, a malformed LightGBM model string aborts the process
  while it is parsed, before any check could run; KD/Ball tree index arrays are read by Cython
  compiled without bounds checks, and skops leaves them untrusted too), and matchday does not
  re-implement their formats.

Anything else needs ``trust_pickle=True`` (``--trust-pickle``), recorded in the options as
``"trusted_by": "user"``; without that key the policy applies at load, so versions registered
under an older, looser rule are re-checked. Pickle/joblib always needs it, at load too.
"""

from __future__ import annotations

from typing import Any, Literal

from matchday.registry.errors import UntrustedArtifact
from matchday.registry.flavors.structure_check import structure_problems

TRUST_FLAG = "trust_pickle=True (--trust-pickle)"
Source = Literal["estimator", "file"]  # who wrote the bytes: matchday from a fitted estimator, or a user's file

# Types skops reports as untrusted that matchday trusts from any source, reviewed one by one.
# skops can also call a trusted type with arguments from the file, so each must be harmless to
# construct with any trusted values, not just hold harmless data.
REVIEWED: dict[str, str] = {
    "collections.OrderedDict": "a dict subclass; LightGBM keeps its best scores in one",
    "numpy.dtype": "a dtype description read from an .npy header (no pickle); SimpleImputer keeps one",
    "sklearn.utils._bunch.Bunch": "a dict with attribute access; Voting/Stacking keep named_estimators_ in one",
    "functools.partial": "only binds arguments; the function it wraps is a node of its own that must be trusted itself",
    "sklearn.utils.validation.check_array": "validates an array and returns it; HistGradientBoosting's "
    "categorical preprocessor calls it through a partial",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer": "MLP's optimizer state (arrays and rates), "
    "used only by partial_fit",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer": "MLP's optimizer state (arrays and rates), "
    "used only by partial_fit",
    "sklearn.calibration._CalibratedClassifier": "CalibratedClassifierCV's holder of a fitted estimator and its calibrators",
    "sklearn.calibration._SigmoidCalibration": "two sigmoid coefficients applied with NumPy",
    "lightgbm.sklearn.LGBMClassifier": "the scikit-learn wrapper: parameters only; its model is the Booster",
    "lightgbm.sklearn.LGBMRegressor": "the scikit-learn wrapper: parameters only; its model is the Booster",
    "xgboost.sklearn.XGBClassifier": "the scikit-learn wrapper: parameters only; its model is the Booster",
    "xgboost.sklearn.XGBRegressor": "the scikit-learn wrapper: parameters only; its model is the Booster",
    "sklearn.metrics._dist_metrics.EuclideanDistance64": "KNN's default distance; it has no parameters to craft",
    "sklearn.metrics._dist_metrics.ManhattanDistance64": "KNN's distance for p=1; it has no parameters to craft",
}
# Trusted once `structure_problems` finds nothing wrong with every tree of the loaded model.
CHECKED: dict[str, str] = {
    "sklearn.tree._tree.Tree": "node arrays of every DecisionTree/RandomForest/ExtraTrees/GradientBoosting model",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor": "node arrays of HistGradientBoosting models",
}
# Trusted only in bytes matchday dumped itself from a live, fitted estimator.
OWN_DUMPS_ONLY: dict[str, str] = {
    "lightgbm.basic.Booster": "LightGBM parses its model string in C++ without bounds checks; a malformed one "
    "aborts the process",
    "xgboost.core.Booster": "XGBoost loads its trees in C++ without checking node indices; a crafted one "
    "segfaults at predict",
    "sklearn.neighbors._kd_tree.KDTree": "KNN's index (algorithm='auto' on few features); Cython reads its index "
    "arrays without bounds checks",
    "sklearn.neighbors._ball_tree.BallTree": "KNN's index; Cython reads its index arrays without bounds checks",
}


def _allowed(source: Source) -> dict[str, str]:
    return {**REVIEWED, **CHECKED, **(OWN_DUMPS_ONLY if source == "estimator" else {})}


def refuse_untrusted(untrusted: list[str], origin: str, source: Source, at_load: bool) -> None:
    """Raise `UntrustedArtifact` naming every type the policy does not allow, with the reason."""
    allowed = _allowed(source)
    refused = [t for t in untrusted if t not in allowed]
    if not refused:
        return

    def reason(name: str) -> str:
        if name in OWN_DUMPS_ONLY:
            return (
                f"trusted only when matchday dumps the fitted estimator itself, not from a file: "
                f"{OWN_DUMPS_ONLY[name]}; register the estimator object instead"
            )
        return skops_reasons().get(name, "neither skops' default trusted set nor matchday's reviewed list holds it")

    raise UntrustedArtifact(
        f"{origin} holds types matchday does not trust: building them from a file could run code or crash "
        f"the process. {how_to_trust(at_load)}",
        [f"{t}: {reason(t)}" for t in refused],
    )


def skops_reasons() -> dict[str, str]:
    """skops' own explanation of why it leaves a type untrusted (skops 0.14+; older ones have none)."""
    try:
        from skops.io.exceptions import UNTRUSTED_TYPE_REASONS
    except ImportError:  # pragma: no cover - depends on the installed skops
        return {}
    return dict(UNTRUSTED_TYPE_REASONS)


def how_to_trust(at_load: bool) -> str:
    if at_load:
        return f"Re-register the model with {TRUST_FLAG} if you trust its source"
    return f"Register it with {TRUST_FLAG} only if you trust its source"


def refuse_bad_structures(
    model: Any, untrusted: list[str], origin: str, *, own_dump: bool, at_load: bool, svm: bool
) -> None:
    """Refuse a model whose trees or SVMs (``svm``: the artifact names a ``sklearn.svm`` class) fail
    `structure_problems`."""
    # skops names every Tree/TreePredictor node among the untrusted types (it trusts neither, under
    # any name), so a model whose list has neither, and no SVM, holds none: skip the walk (1M-word
    # vocabularies).
    if not svm and not any(t in CHECKED for t in untrusted):
        return
    problems = structure_problems(model, own_dump=own_dump)
    if not problems:
        return
    reasons = [
        f"why skops does not trust {t} itself: {why}"
        for t, why in skops_reasons().items()
        if t in CHECKED and t in untrusted
    ]
    raise UntrustedArtifact(
        f"{origin} holds tree or SVM structures that fail matchday's check, so predicting with them could "
        f"crash the process or read out of bounds. {how_to_trust(at_load)}",
        problems[:20] + reasons,
    )
