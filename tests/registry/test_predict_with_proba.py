"""`Predictor.predict_with_proba` (serving's one call per micro-batch) equals `predict` and
`predict_proba` called apart, exactly, for every kind of classifier: those whose labels it takes
from the probabilities' argmax and those it asks twice."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from matchday.registry.flavors import pack_model


def _data(kind: str) -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer, load_iris

    X, y = (load_iris if kind == "iris" else load_breast_cancer)(return_X_y=True, as_frame=True)
    return X, y


def _model(name: str) -> Any:
    from sklearn import calibration, ensemble, linear_model, naive_bayes, neighbors, neural_network, svm, tree
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic-pipeline": lambda: make_pipeline(StandardScaler(), linear_model.LogisticRegression(max_iter=2000)),
        "tree": lambda: tree.DecisionTreeClassifier(max_depth=3, random_state=0),
        "forest": lambda: ensemble.RandomForestClassifier(n_estimators=10, random_state=0),
        "gradient-boosting": lambda: ensemble.GradientBoostingClassifier(n_estimators=10, random_state=0),
        "hist-gradient-boosting": lambda: ensemble.HistGradientBoostingClassifier(max_iter=10, random_state=0),
        "gaussian-nb": naive_bayes.GaussianNB,
        "knn": lambda: neighbors.KNeighborsClassifier(4),  # ties in its votes: argmax takes the first, as predict
        "mlp": lambda: make_pipeline(
            StandardScaler(), neural_network.MLPClassifier((8,), max_iter=300, random_state=0)
        ),
        "svc-platt": lambda: make_pipeline(StandardScaler(), svm.SVC(probability=True, random_state=0)),
        "calibrated": lambda: calibration.CalibratedClassifierCV(linear_model.LogisticRegression(max_iter=2000), cv=3),
    }[name]()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # SVC's probability=True is deprecated in scikit-learn 1.9
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("data", ["cancer", "iris"])
@pytest.mark.parametrize(
    "name",
    [
        "logistic-pipeline",
        "tree",
        "forest",
        "gradient-boosting",
        "hist-gradient-boosting",
        "gaussian-nb",
        "knn",
        "mlp",
        "svc-platt",
        "calibrated",
    ],
)
def test_one_call_equals_the_two(name: str, data: str) -> None:
    X, y = _data(data)
    model = _model(name).fit(X, y)
    predictor = pack_model(model).predictor
    labels, proba = predictor.predict_with_proba(X)
    np.testing.assert_array_equal(labels, model.predict(X))
    np.testing.assert_array_equal(proba, model.predict_proba(X))
    one_row = X.iloc[[7]]
    labels, proba = predictor.predict_with_proba(one_row)
    np.testing.assert_array_equal(labels, model.predict(one_row))
    np.testing.assert_array_equal(proba, model.predict_proba(one_row))


def test_a_model_without_probabilities_answers_none() -> None:
    from sklearn.linear_model import LinearRegression

    X, y = _data("cancer")
    predictor = pack_model(LinearRegression().fit(X, y)).predictor
    labels, proba = predictor.predict_with_proba(X.head(5))
    assert proba is None
    np.testing.assert_array_equal(labels, predictor.predict(X.head(5)))


@pytest.mark.parametrize("fitted_on", ["frame", "matrix"])
def test_float_rows_give_the_answers_of_the_arrow_table_to_the_bit(fitted_on: str) -> None:
    """A micro-batch of numbers goes to the model as one float matrix (`FloatRows`), not Arrow columns:
    the same labels and probabilities, exactly, missing values included."""
    import pyarrow as pa
    from sklearn.ensemble import HistGradientBoostingClassifier

    from matchday.registry import FloatRows, OutputSpec, Signature
    from matchday.registry.signature import infer_inputs

    X, y = _data("cancer")
    X = X.copy()
    X.iloc[::7, 3] = np.nan  # a column with missing values (the model handles them)
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(
        X if fitted_on == "frame" else X.to_numpy(), y
    )
    predictor = pack_model(model).predictor
    table = pa.Table.from_pandas(X, preserve_index=False)
    predictor.signature = Signature(
        inputs=infer_inputs(table), output=OutputSpec(task="classification", classes=[0, 1])
    )
    assert all(s.type == "float" for s in predictor.signature.inputs)
    rows = X.iloc[:40]
    table = table.slice(0, 40)
    matrix = np.array([rows[c].tolist() for c in rows.columns], dtype=np.float64).T  # as serving builds it
    as_rows = FloatRows(list(rows.columns), matrix)
    assert predictor._takes_as_is(as_rows)
    labels, proba = predictor.predict_with_proba(as_rows)
    expected_labels, expected_proba = predictor.predict_with_proba(table)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(proba, expected_proba)
    renamed = FloatRows(list(reversed(rows.columns)), matrix[:, ::-1])  # not in the signature's order: prepared
    assert not predictor._takes_as_is(renamed)
    np.testing.assert_array_equal(predictor.predict_with_proba(renamed)[1], expected_proba)
