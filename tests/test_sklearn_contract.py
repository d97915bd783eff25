"""The scikit-learn contract, run over every sktext estimator.

scikit-learn's ``check_estimator`` runs almost nothing for text-input estimators, so
these tests are what proves that the estimators behave in Pipelines, grid searches,
clones and pickles the way users rely on.
"""

from __future__ import annotations

import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sktext.registry import registered_estimators

from conftest import DATA_FREE_SKLEARN_CHECKS, ESTIMATOR_FACTORIES, factories_of, make_toy_data

FACTORIES = factories_of("classifier")


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def make(request, resources):
    factory, grid = FACTORIES[request.param]
    make = lambda **params: factory(resources, **params)  # noqa: E731
    make.grid = grid
    return make


@pytest.fixture(scope="module")
def fitted(make):
    X, Y = make_toy_data(240, seed=0)
    return make().fit(X, Y)


@pytest.fixture(scope="module")
def holdout():
    return make_toy_data(120, seed=7)


# -- every estimator ------------------------------------------------------------------------
def test_every_estimator_has_a_factory(resources):
    built = {type(factory.build(resources)).__name__ for factory in ESTIMATOR_FACTORIES.values()}
    assert built == set(registered_estimators())


@pytest.mark.parametrize("name", sorted(ESTIMATOR_FACTORIES))
@pytest.mark.parametrize("check", DATA_FREE_SKLEARN_CHECKS, ids=lambda check: check.__name__)
def test_data_free_sklearn_checks(name, check, resources):
    estimator = ESTIMATOR_FACTORIES[name].build(resources)
    check(type(estimator).__name__, estimator)


@pytest.mark.parametrize("name", sorted(ESTIMATOR_FACTORIES))
def test_clone_keeps_params_and_bad_params_fail_in_fit(name, resources):
    estimator = ESTIMATOR_FACTORIES[name].build(resources, batch_size=0)  # no error here
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params() and copy is not estimator
    X, Y = make_toy_data(40, seed=0)
    with pytest.raises(ValueError, match=f"'batch_size' parameter of {type(estimator).__name__} must be"):
        copy.fit(X, Y)
    with pytest.raises(NotFittedError):
        estimator.transform(X) if ESTIMATOR_FACTORIES[name].kind == "embedder" else estimator.predict(X)


# -- every classifier ------------------------------------------------------------------------


def test_output_shapes_and_dtypes(fitted, holdout):
    X, Y = holdout
    proba = fitted.predict_proba(X)
    assert proba.shape == Y.shape and proba.dtype == np.float32
    assert ((proba >= 0) & (proba <= 1)).all()
    logits = fitted.decision_function(X)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), proba, rtol=1e-5, atol=1e-6)
    predicted = fitted.predict(X)
    assert predicted.shape == Y.shape and set(np.unique(predicted)) <= {0, 1}
    assert predicted.dtype.kind == "i"
    assert list(fitted.classes_) == [0, 1, 2] and fitted.n_outputs_ == 3
    assert fitted.thresholds_.shape == (3,)


def test_learns_the_toy_task(fitted, holdout):
    X, Y = holdout
    assert f1_score(Y, fitted.predict(X), average="micro") > 0.85


def test_thresholds_can_be_edited_after_fit(make, holdout):
    estimator = make()
    estimator.fit(*make_toy_data(240, seed=0))
    X, _ = holdout
    estimator.thresholds_ = np.full(3, 0.999999)
    assert estimator.predict(X).sum() < estimator.predict_proba(X).size * 0.05
    estimator.thresholds_ = np.full(3, 1e-6)
    assert estimator.predict(X).all()


def test_clone_get_params_set_params(make):
    estimator = make(max_epochs=3)
    params = estimator.get_params()
    assert params["max_epochs"] == 3
    copy = clone(estimator).set_params(max_epochs=4, threshold=0.4)
    assert copy.get_params()["max_epochs"] == 4 and estimator.max_epochs == 3
    assert copy.threshold == 0.4


def test_pickle_and_joblib_round_trips(fitted, holdout, tmp_path):
    X, _ = holdout
    expected = fitted.predict_proba(X)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
    joblib.dump(fitted, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict_proba(X), expected)
    np.testing.assert_array_equal(restored.thresholds_, fitted.thresholds_)


def test_pipeline(make, holdout):
    X, Y = make_toy_data(240, seed=0)
    lower = FunctionTransformer(lambda texts: [t.lower() for t in texts])
    pipeline = Pipeline([("lower", lower), ("clf", make())]).fit([t.upper() for t in X], Y)
    Xh, Yh = holdout
    assert f1_score(Yh, pipeline.predict(Xh), average="micro") > 0.8


def test_grid_search_with_multilabel_stratified_folds(make):
    X, Y = make_toy_data(160, seed=3)
    search = GridSearchCV(
        make(max_epochs=3, lexical=None),  # the network alone, so that the rate decides the score
        make.grid,
        cv=MultilabelStratifiedKFold(n_splits=2, shuffle=True, random_state=0),
        scoring="f1_micro",
        error_score="raise",
    )
    search.fit(X, Y)
    assert search.best_params_ == {"lr": max(make.grid["lr"])}
    assert search.predict(X[:5]).shape == (5, 3)


def test_sparse_y_dataframe_y_and_series_x(make, holdout):
    X, Y = make_toy_data(240, seed=0)
    dense = make().fit(X, Y)
    sparse = make().fit(X, sp.csr_matrix(Y))
    Xh, _ = holdout
    np.testing.assert_allclose(sparse.predict_proba(Xh), dense.predict_proba(Xh), atol=1e-6)
    frame = pd.DataFrame(Y, columns=["game", "editor", "audio"])
    named = make().fit(pd.Series(X), frame)
    assert list(named.classes_) == ["game", "editor", "audio"]
    np.testing.assert_allclose(named.predict_proba(pd.Series(Xh)), dense.predict_proba(Xh), atol=1e-6)
    np.testing.assert_allclose(named.predict_proba(np.array(Xh, dtype=object)), dense.predict_proba(Xh), atol=1e-6)


def test_same_random_state_same_model(make, holdout):
    X, Y = make_toy_data(120, seed=0)
    first = make(max_epochs=2, random_state=5).fit(X, Y)
    second = make(max_epochs=2, random_state=5).fit(X, Y)
    third = make(max_epochs=2, random_state=6).fit(X, Y)
    Xh, _ = holdout
    np.testing.assert_array_equal(first.predict_proba(Xh), second.predict_proba(Xh))
    assert not np.array_equal(first.predict_proba(Xh), third.predict_proba(Xh))
    refit = first.fit(X, Y)
    np.testing.assert_array_equal(refit.predict_proba(Xh), second.predict_proba(Xh))


def test_label_without_positives(make):
    X, Y = make_toy_data(120, seed=0)
    Y = np.hstack([Y, np.zeros((len(Y), 1), dtype=int)])
    with pytest.warns(UserWarning, match="no positive example"):
        estimator = make(max_epochs=2).fit(X, Y)
    assert estimator.predict(X)[:, 3].sum() == 0
    assert estimator.predict_proba(X)[:, 3].max() < 0.1


def test_awkward_texts(fitted):
    texts = ["", "   \n\t ", "naïve café 東京 🎮 résumé", "game " * 5000, "x"]
    proba = fitted.predict_proba(texts)
    assert proba.shape == (5, 3) and np.isfinite(proba).all()
    X, Y = make_toy_data(60, seed=2)
    X[:4] = texts[:4]
    refitted = fitted.__class__(**fitted.get_params()).set_params(max_epochs=1).fit(X, Y)
    assert refitted.predict_proba(texts).shape == (5, 3)


@pytest.mark.parametrize(
    "X, y, match",
    [
        (["a b", "c d", "e f"], np.array([[0, 1], [1, 0]]), "3 texts but 2 rows"),
        # A dense [[0, 2], [1, 0]] is now two categorical targets (tests/test_multioutput.py).
        (["a b", "c d"], sp.csr_matrix(np.array([[0, 2], [1, 0]])), "only 0 and 1"),
        # [[0, 0.5], [1, 0]] is now soft targets (tests/test_soft_targets.py); beyond [0, 1] they are refused.
        (["a b", "c d"], np.array([[0, 0.5], [1, 1.5]]), r"holds 1\.5: .*soft targets.*must lie in \[0, 1\]"),
        (["a b", "c d"], np.array([0, 1]), "2-D binary indicator.*MultiLabelBinarizer"),
        (["a b", "c d"], [["x"], ["y", "z"]], "MultiLabelBinarizer"),
        (["a b", None], np.array([[0, 1], [1, 0]]), "only str.*index 1.*fillna"),
        (["a b", 3], np.array([[0, 1], [1, 0]]), "only str.*index 1"),
        ("a single text", np.array([[0, 1]]), "single str.*Wrap it in a list"),
        (["a b", "c d"], None, "y is required"),
    ],
    ids=["length", "non-binary", "fraction", "1-d", "label-lists", "none", "int", "bare", "no-y"],
)
def test_clear_errors_for_bad_fit_input(make, X, y, match):
    with pytest.raises(ValueError, match=match):
        make().fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"threshold": "best"}, "'threshold' parameter of .* must be 'auto', a float in \\(0, 1\\)"),
        ({"threshold": 1.5}, "'threshold' parameter .* Got 1.5 instead"),
        ({"threshold": "auto", "validation_fraction": None}, "validation_fraction"),
        ({"batch_size": 0}, "'batch_size' parameter of .* must be an int >= 1. Got 0 instead"),
        ({"pos_weight": "heavy"}, "'pos_weight' parameter .* must be None, 'balanced' or an array-like"),
        ({"device": "tpu:x"}, "'device' parameter .* must be 'auto', 'cpu'"),
    ],
)
def test_clear_errors_for_bad_params(make, params, match):
    X, Y = make_toy_data(40, seed=0)
    with pytest.raises(ValueError, match=match):
        make(**params).fit(X, Y)


def test_predict_before_fit_and_wrong_label_count(make, fitted, holdout):
    X, Y = holdout
    with pytest.raises(NotFittedError):
        make().predict(X)
    with pytest.raises(ValueError, match="y has 2 columns but the estimator was fitted on 3 labels"):
        fitted.score(X, Y[:, :2])
    with pytest.raises(ValueError, match="single str"):
        fitted.predict("one text")
    assert 0 <= fitted.score(X, Y) <= 1


def test_fixed_threshold_and_no_validation(make, holdout):
    X, Y = make_toy_data(120, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # ULMFiT's from-scratch language model is rightly warned about (test_lexical.py).
        warnings.filterwarnings("ignore", message=".*no pretrained language model")
        estimator = make(max_epochs=2, threshold=0.3, validation_fraction=None).fit(X, Y)
    np.testing.assert_array_equal(estimator.thresholds_, [0.3, 0.3, 0.3])
    assert "valid_loss" not in estimator.history_[-1]
