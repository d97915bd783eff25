"""Searches beyond grids: Optuna's OptunaSearchCV and scikit-learn's successive halving.

Both run over a Pipeline whose last step is a tiny transformer classifier, on toy data
with 2 folds and 2 to 3 candidates; successive halving uses the epochs as its resource.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.experimental import enable_halving_search_cv  # noqa: F401 - enables the import below
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import HalvingRandomSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import sktext.base

from conftest import ESTIMATOR_FACTORIES, make_toy_data

F1_MICRO = make_scorer(f1_score, average="micro", zero_division=0)
CV = KFold(n_splits=2, shuffle=True, random_state=0)


def _shorten(texts):
    return [text[:200] for text in texts]


def _pipeline(resources, **params) -> Pipeline:
    classifier = ESTIMATOR_FACTORIES["transformer-classifier"].build(resources, **params)
    return Pipeline([("shorten", FunctionTransformer(_shorten)), ("clf", classifier)])


@pytest.fixture(scope="module")
def data():
    return make_toy_data(80, seed=3)


def test_optuna_search_over_a_pipeline(resources, data, monkeypatch):
    optuna = pytest.importorskip("optuna")
    optuna_integration = pytest.importorskip("optuna_integration")
    # max_epochs="auto" is a choice like any other; on these few texts it would be 40 epochs.
    monkeypatch.setattr(sktext.base, "MAX_AUTO_EPOCHS", 2)
    X, Y = data
    space = {
        "clf__lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "clf__max_epochs": optuna.distributions.CategoricalDistribution([1, "auto"]),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # OptunaSearchCV is
        warnings.simplefilter("ignore", FutureWarning)  # optuna's own deprecations
        search = optuna_integration.OptunaSearchCV(
            _pipeline(resources), space, cv=CV, n_trials=3, scoring=F1_MICRO, random_state=0
        )
        search.fit(X, Y)
    assert len(search.trials_) == 3
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in search.trials_)
    assert set(search.best_params_) == set(space)
    assert 1e-4 <= search.best_params_["clf__lr"] <= 1e-2
    assert search.best_params_["clf__max_epochs"] in (1, "auto")
    best = search.best_estimator_.named_steps["clf"]
    assert best.max_epochs == search.best_params_["clf__max_epochs"]
    assert best.n_epochs_ == (2 if best.max_epochs == "auto" else 1)
    assert search.best_estimator_.predict(X[:7]).shape == (7, Y.shape[1])
    assert 0.0 <= search.best_score_ <= 1.0


def test_successive_halving_with_epochs_as_the_resource(resources, data):
    X, Y = data
    trained_epochs = []

    def f1_micro_recording_epochs(estimator, X, y):
        # n_epochs_ is what the fit was given: the resource, if it reached the classifier.
        trained_epochs.append(estimator.named_steps["clf"].n_epochs_)
        return F1_MICRO(estimator, X, y)

    search = HalvingRandomSearchCV(
        _pipeline(resources),
        {"clf__lr": [1e-3, 3e-3, 1e-2]},
        n_candidates=3,
        resource="clf__max_epochs",
        min_resources=1,
        max_resources=3,
        factor=3,
        cv=CV,
        scoring=f1_micro_recording_epochs,
        return_train_score=False,
        random_state=0,
    )
    search.fit(X, Y)
    # 3 candidates trained for 1 epoch, then the best for 3.
    assert search.n_resources_ == [1, 3] and search.n_candidates_ == [3, 1]
    results = search.cv_results_
    np.testing.assert_array_equal(results["n_resources"], [1, 1, 1, 3])
    np.testing.assert_array_equal(results["param_clf__max_epochs"], results["n_resources"])
    # Every fold's classifier trained for its rung's epochs (scored once per fold).
    assert sorted(trained_epochs[: 3 * CV.n_splits]) == [1] * 6 and trained_epochs[6:8] == [3, 3]
    assert search.best_params_["clf__lr"] in (1e-3, 3e-3, 1e-2)
    assert search.best_params_["clf__max_epochs"] == 3
    best = search.best_estimator_.named_steps["clf"]
    assert best.max_epochs == 3 and best.n_epochs_ == 3 and len(best.history_) <= 3
    assert search.best_estimator_.predict(X[:5]).shape == (5, Y.shape[1])
