"""TransformerRegressor and ULMFiTRegressor: the scikit-learn contract and learning on toy data.

The toy targets are functions of the words in the text: each of three scores on a
1–7 scale is 6 when the text holds its topic's words and 1 otherwise, plus (for the
1-D case) half a point per filler word "fast".
"""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sktext import TransformerRegressor, load_model
from sktext.losses import RegressionLoss, bounded_output
from sktext.splits import ShuffleValidSplit

from conftest import factories_of, make_toy_data

FACTORIES = factories_of("regressor")


def make_scores(n_samples: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Texts and three scores in [1, 7] given by the topic words they contain."""
    texts, labels = make_toy_data(n_samples, seed=seed)
    return texts, 1.0 + 5.0 * labels.astype(float)


def make_single_score(n_samples: int, seed: int) -> tuple[list[str], np.ndarray]:
    texts, scores = make_scores(n_samples, seed)
    fast = np.array([text.split().count("fast") for text in texts], dtype=float)
    return texts, scores[:, 0] + 0.5 * fast


@pytest.fixture(scope="module")
def resources(tiny_bert):
    return {"tiny_bert": tiny_bert}


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def make(request, resources):
    factory, grid = FACTORIES[request.param]
    make = lambda **params: factory(resources, **params)  # noqa: E731
    make.grid = grid
    return make


@pytest.fixture(scope="module")
def fitted(make):
    return make().fit(*make_scores(240, seed=0))


@pytest.fixture(scope="module")
def holdout():
    return make_scores(120, seed=7)


def test_learns_several_scores(fitted, holdout):
    X, Y = holdout
    predicted = fitted.predict(X)
    assert predicted.shape == Y.shape and predicted.dtype == np.float64
    assert r2_score(Y, predicted) > 0.8
    assert mean_absolute_error(Y, predicted) < 0.8
    assert fitted.n_outputs_ == 3 and not fitted.one_dimensional_
    np.testing.assert_allclose(fitted.score(X, Y), r2_score(Y, predicted), rtol=1e-6)
    # Each target is standardised with its own training statistics.
    _, train = make_scores(240, seed=0)
    np.testing.assert_allclose(fitted.target_mean_, train.mean(axis=0))
    np.testing.assert_allclose(fitted.target_scale_, train.std(axis=0))
    assert "valid_loss" in fitted.history_[-1]


def test_one_dimensional_y_huber_loss_and_series(make):
    X, y = make_single_score(240, seed=0)
    Xh, yh = make_single_score(120, seed=7)
    estimator = make(loss="huber").fit(pd.Series(X), pd.Series(y))
    predicted = estimator.predict(Xh)
    assert predicted.shape == (120,) and estimator.one_dimensional_
    assert r2_score(yh, predicted) > 0.7
    assert estimator.score(Xh, yh) == pytest.approx(r2_score(yh, predicted))


def test_output_range_bounds_predictions(make, holdout):
    X, Y = make_scores(240, seed=0)
    estimator = make(output_range=(1.0, 7.0)).fit(X, Y)
    Xh, Yh = holdout
    predicted = estimator.predict(Xh + ["game " * 50, ""])
    assert ((predicted >= 1.0) & (predicted <= 7.0)).all()
    assert r2_score(Yh, predicted[:-2]) > 0.8
    with pytest.raises(ValueError, match=r"output_range=\(1.0, 7.0\).*outside it"):
        make(output_range=(1.0, 7.0)).fit(X, Y + 1.5)


def test_output_bias_starts_at_the_mean(make):
    X, Y = make_scores(60, seed=0)
    for output_range in (None, (0.0, 10.0)):
        estimator = make(max_epochs=1, lr=1e-9, output_range=output_range, validation_fraction=None)
        estimator.fit(X, Y)
        # With a negligible learning rate the predictions stay near the training mean.
        assert np.abs(estimator.predict(X).mean(axis=0) - Y.mean(axis=0)).max() < 1.0


def test_dataframe_y_and_constant_target(make):
    X, Y = make_scores(120, seed=0)
    frame = pd.DataFrame({"a": Y[:, 0], "b": np.full(len(Y), 3.0)})
    estimator = make(max_epochs=2).fit(X, frame)
    assert estimator.target_scale_[1] == 1.0
    predicted = estimator.predict(X[:5])
    assert predicted.shape == (5, 2) and np.isfinite(predicted).all()


def test_clone_get_params_set_params(make):
    estimator = make(max_epochs=3, output_range=(1.0, 7.0))
    copy = clone(estimator).set_params(max_epochs=4, loss="huber")
    assert copy.get_params()["max_epochs"] == 4 and estimator.max_epochs == 3
    assert copy.output_range == (1.0, 7.0) and copy.loss == "huber"


def test_pickle_and_joblib_round_trips(fitted, holdout, tmp_path):
    X, _ = holdout
    expected = fitted.predict(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).predict(X), expected)
    joblib.dump(fitted, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict(X), expected)


def test_save_and_load(fitted, holdout, tmp_path):
    X, _ = holdout
    folder = fitted.save(tmp_path / "model")
    loaded = load_model(folder)
    assert type(loaded) is type(fitted)
    np.testing.assert_allclose(loaded.predict(X), fitted.predict(X), rtol=1e-5, atol=1e-5)
    assert type(fitted).load(folder).n_outputs_ == 3
    ranged = clone(fitted).set_params(max_epochs=1, output_range=(0.0, 8.0))
    ranged.fit(*make_single_score(60, seed=0))
    again = load_model(ranged.save(tmp_path / "ranged"))
    assert again.output_range == [0.0, 8.0] and again.one_dimensional_
    np.testing.assert_allclose(again.predict(X), ranged.predict(X), rtol=1e-5, atol=1e-5)


def test_pipeline(make, holdout):
    X, Y = make_scores(240, seed=0)
    lower = FunctionTransformer(lambda texts: [t.lower() for t in texts])
    pipeline = Pipeline([("lower", lower), ("reg", make())]).fit([t.upper() for t in X], Y)
    Xh, Yh = holdout
    assert r2_score(Yh, pipeline.predict(Xh)) > 0.7


def test_grid_search_with_kfold(make):
    X, Y = make_scores(160, seed=3)
    search = GridSearchCV(
        make(max_epochs=3),
        make.grid,
        cv=KFold(n_splits=2, shuffle=True, random_state=0),
        scoring="neg_mean_absolute_error",
        error_score="raise",
    )
    search.fit(X, Y)
    assert search.best_params_ == {"lr": max(make.grid["lr"])}
    assert search.predict(X[:5]).shape == (5, 3)
    scores = cross_val_score(make(max_epochs=2), X, Y[:, 0], cv=KFold(2), scoring="r2")
    assert np.isfinite(scores).all()


def test_same_random_state_same_model(make, holdout):
    X, Y = make_scores(120, seed=0)
    first = make(max_epochs=2, random_state=5).fit(X, Y)
    second = make(max_epochs=2, random_state=5).fit(X, Y)
    third = make(max_epochs=2, random_state=6).fit(X, Y)
    Xh, _ = holdout
    np.testing.assert_array_equal(first.predict(Xh), second.predict(Xh))
    assert not np.array_equal(first.predict(Xh), third.predict(Xh))
    np.testing.assert_array_equal(first.fit(X, Y).predict(Xh), second.predict(Xh))


def test_no_validation_split(make):
    X, Y = make_scores(60, seed=0)
    estimator = make(max_epochs=2, validation_fraction=None).fit(X, Y)
    assert "valid_loss" not in estimator.history_[-1]


@pytest.mark.parametrize(
    "X, y, match",
    [
        (["a b", "c d"], [1.0, "high"], r"numbers for regression; it holds 'high'.*pd.to_numeric"),
        (["a b", "c d"], np.array([["1.5", "x"], ["2", "3"]]), "numbers for regression"),
        (["a b", "c d"], pd.Series(["low", "high"]), "for categorical targets use a classifier"),
        (["a b", "c d"], np.array([1.0, np.nan]), r"NaN or infinite values in 1 row.*index 1"),
        (["a b", "c d"], np.array([[1.0, 2.0], [np.inf, 0.0]]), "NaN or infinite"),
        (["a b", "c d", "e f"], np.array([1.0, 2.0]), "3 texts but 2 target rows"),
        (["a b", "c d"], np.zeros((2, 2, 2)), r"1-D .* or 2-D .*shape \(2, 2, 2\)"),
        (["a b", "c d"], None, "y is required"),
        (["a b", None], np.array([1.0, 2.0]), "only str.*index 1"),
    ],
    ids=["mixed", "strings-2d", "categories", "nan", "inf", "length", "3-d", "no-y", "none-text"],
)
def test_clear_errors_for_bad_fit_input(make, X, y, match):
    with pytest.raises(ValueError, match=match):
        make().fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"loss": "bce"}, "'loss' parameter of .* must be one of {'mse', 'huber'}"),
        ({"output_range": (7.0, 1.0)}, r"output_range must be None or a pair \(low, high\)"),
        ({"output_range": 7.0}, "'output_range' parameter .* must be None or a pair|output_range must be"),
        (
            {"output_range": (1.0, float("inf"))},
            "'output_range' parameter .* must be None or a pair|output_range must be",
        ),
        ({"batch_size": 0}, "'batch_size' parameter .* must be an int >= 1"),
        ({"validation_fraction": 1.5}, "'validation_fraction' parameter .* must be a float in \\(0, 1\\) or None"),
    ],
)
def test_clear_errors_for_bad_params(make, params, match):
    X, Y = make_scores(40, seed=0)
    with pytest.raises(ValueError, match=match):
        make(**params).fit(X, Y)


def test_predict_before_fit_and_wrong_column_count(make, fitted, holdout):
    X, Y = holdout
    with pytest.raises(NotFittedError):
        make().predict(X)
    with pytest.raises(ValueError, match="y has 2 columns but the estimator was fitted on 3 targets"):
        fitted.score(X, Y[:, :2])
    with pytest.raises(ValueError, match="single str"):
        fitted.predict("one text")


def test_tags(make):
    tags = make().__sklearn_tags__()
    assert tags.estimator_type == "regressor"
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    assert tags.target_tags.multi_output and tags.target_tags.single_output


def test_shuffle_split_is_plain_random():
    y = np.arange(20, dtype=float).reshape(-1, 1)
    train, valid = ShuffleValidSplit(0.25, seed=0).indices(y)
    assert len(valid) == 5 and len(train) == 15
    assert sorted(np.concatenate([train, valid]).tolist()) == list(range(20))


def test_regression_loss():
    outputs = torch.tensor([[0.0, 2.0], [1.0, -3.0]])
    targets = torch.tensor([[0.5, 0.0], [1.0, 0.0]])
    assert RegressionLoss("mse")(outputs, targets) == pytest.approx(F.mse_loss(outputs, targets).item())
    assert RegressionLoss("huber")(outputs, targets) == pytest.approx(F.huber_loss(outputs, targets, delta=1.0).item())
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 5.0])
    bounded = bounded_output(torch.tensor([[0.0, 100.0]]), low, high)
    torch.testing.assert_close(bounded, torch.tensor([[0.0, 5.0]]))
    ranged = RegressionLoss("mse", low=low, high=high)
    assert ranged(torch.zeros(1, 2), torch.tensor([[0.0, 2.5]])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="kind must be"):
        RegressionLoss("l1")


def test_transformer_regressor_epochs_of_fixed_steps(tiny_bert):
    X, y = make_single_score(120, seed=0)
    reg = TransformerRegressor(tiny_bert, steps_per_epoch=3, max_epochs=4, batch_size=16, random_state=0).fit(X, y)
    assert reg.n_epochs_ == 4
    assert [sum("train_loss" in batch for batch in row["batches"]) for row in reg.history_] == [3, 3, 3, 3]
    assert np.isfinite(reg.predict(X[:5])).all()
