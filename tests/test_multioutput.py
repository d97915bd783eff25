"""Several categorical targets at once (multiclass-multioutput), and mixed 0/1 + categorical.

The toy targets are functions of the words in the text: ``topic`` is "game" when the
text holds game words, else "editor" when it holds editor words, else "other"; ``audio``
is 0/1 for audio words; ``count`` is an int code 0..3 of the game and editor words.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.metrics import accuracy_score, classification_report
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sktext import TransformerMultiLabelClassifier, load_model, save_model
from sktext.losses import MultiHeadLoss
from sktext.splits import MultilabelValidSplit
from sktext.targets import BINARY, CATEGORICAL, OutputLayout, check_targets

from conftest import make_toy_data, ulmfit_factory


def _transformer(resources, **params):
    defaults = dict(max_epochs=10, lr=3e-3, batch_size=16, random_state=0)
    return TransformerMultiLabelClassifier(resources["tiny_bert"], **{**defaults, **params})


FACTORIES = {"transformer": _transformer, "ulmfit": ulmfit_factory}


def make_frame(n_samples: int, seed: int) -> tuple[list[str], pd.DataFrame]:
    texts, labels = make_toy_data(n_samples, seed=seed)
    topic = np.where(labels[:, 0] == 1, "game", np.where(labels[:, 1] == 1, "editor", "other"))
    frame = pd.DataFrame({"topic": topic, "audio": labels[:, 2], "count": labels[:, 0] + 2 * labels[:, 1]})
    return texts, frame


def column(predicted: np.ndarray, classes: np.ndarray, j: int) -> np.ndarray:
    """Column ``j`` of a multi-output prediction, with its classes' dtype (for sklearn metrics)."""
    return predicted[:, j].astype(classes.dtype)


@pytest.fixture(scope="module")
def resources(tiny_bert):
    return {"tiny_bert": tiny_bert}


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def make(request, resources):
    return lambda **params: FACTORIES[request.param](resources, **params)


@pytest.fixture(scope="module")
def fitted(make):
    return make().fit(*make_frame(240, seed=0))


@pytest.fixture(scope="module")
def holdout():
    return make_frame(120, seed=7)


def test_mixed_dataframe_layout_and_outputs(fitted, holdout):
    X, _ = holdout
    layout = fitted.output_layout_
    assert [t.kind for t in layout.targets] == [CATEGORICAL, BINARY, CATEGORICAL]
    assert [t.name for t in layout.targets] == ["topic", "audio", "count"]
    assert layout.n_logits == 3 + 1 + 4 and fitted.n_outputs_ == 3
    assert [list(c) for c in fitted.classes_] == [["editor", "game", "other"], [0, 1], [0, 1, 2, 3]]
    assert fitted.thresholds_.shape == (1,)  # the one 0/1 column
    assert fitted.decision_function(X).shape == (120, 8)
    proba = fitted.predict_proba(X)
    assert [p.shape for p in proba] == [(120, 3), (120, 2), (120, 4)]
    for p in proba:
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    predicted = fitted.predict(X)
    assert predicted.shape == (120, 3) and predicted.dtype == object
    assert set(predicted[:, 0]) <= {"editor", "game", "other"}
    assert set(predicted[:, 1]) <= {0, 1}


def test_learns_every_column_and_reports_per_column(fitted, holdout):
    X, frame = holdout
    predicted = fitted.predict(X)
    for j, name in enumerate(frame.columns):
        truth = frame[name].to_numpy()
        assert accuracy_score(truth, column(predicted, fitted.classes_[j], j)) > 0.85, name
        report = classification_report(truth, column(predicted, fitted.classes_[j], j), output_dict=True)
        assert report["accuracy"] > 0.85
    subset = np.mean(np.all(predicted == frame.to_numpy(dtype=object), axis=1))
    assert fitted.score(X, frame) == pytest.approx(subset)
    assert fitted.score(X, frame) > 0.7


def test_multiclass_multioutput_arrays(make, holdout):
    X, frame = make_frame(240, seed=0)
    strings = np.column_stack([frame["topic"], np.where(frame["audio"] == 1, "loud", "quiet")])
    estimator = make().fit(X, strings)
    # A plain array: every column is a softmax head, 0/1-like or not.
    assert all(t.kind == CATEGORICAL for t in estimator.output_layout_.targets)
    assert [list(c) for c in estimator.classes_] == [["editor", "game", "other"], ["loud", "quiet"]]
    Xh, frame_h = holdout
    predicted = estimator.predict(Xh)
    assert predicted.dtype == object and set(predicted[:, 1]) <= {"loud", "quiet"}
    assert accuracy_score(frame_h["topic"], predicted[:, 0].astype(str)) > 0.85
    integers = frame[["count", "audio"]].to_numpy().copy()
    integers[:, 1] *= 5  # classes 0 and 5
    fitted_int = make(max_epochs=3).fit(X, integers)
    assert fitted_int.predict(Xh).dtype == np.int64
    assert set(np.unique(fitted_int.predict(Xh)[:, 1])) <= {0, 5}
    assert [p.shape[1] for p in fitted_int.predict_proba(Xh)] == [4, 2]


def test_single_categorical_column(make):
    X, frame = make_frame(120, seed=0)
    estimator = make(max_epochs=2).fit(X, frame["topic"].to_numpy().reshape(-1, 1))
    assert estimator.predict(X[:4]).shape == (4, 1)
    assert len(estimator.predict_proba(X[:4])) == 1
    with pytest.raises(ValueError, match=r"one column: np.reshape\(y, \(-1, 1\)\)"):
        make().fit(X, frame["topic"].to_numpy())


def test_pickle_clone_pipeline(fitted, make, holdout):
    X, frame = holdout
    restored = pickle.loads(pickle.dumps(fitted))
    for a, b in zip(restored.predict_proba(X), fitted.predict_proba(X)):
        np.testing.assert_array_equal(a, b)
    assert clone(fitted).get_params() == fitted.get_params()
    Xt, frame_t = make_frame(240, seed=0)
    lower = FunctionTransformer(lambda texts: [t.lower() for t in texts])
    pipeline = Pipeline([("lower", lower), ("clf", make())]).fit(Xt, frame_t)
    assert pipeline.score(X, frame) > 0.7


def test_grid_search_with_kfold(make):
    X, frame = make_frame(120, seed=3)
    search = GridSearchCV(
        make(max_epochs=2),
        {"max_epochs": [1, 2]},
        cv=KFold(2, shuffle=True, random_state=0),
        error_score="raise",
    )
    search.fit(X, frame)
    assert search.predict(X[:3]).shape == (3, 3)


def test_focal_and_pos_weight_apply_to_the_binary_columns(make):
    X, frame = make_frame(120, seed=0)
    estimator = make(max_epochs=1, loss="focal", pos_weight="balanced").fit(X, frame)
    assert estimator.predict(X[:2]).shape == (2, 3)
    with pytest.raises(ValueError, match=r"one positive weight per label, i.e. shape \(1,\)"):
        make(pos_weight=[1.0, 2.0]).fit(X, frame)


@pytest.mark.parametrize(
    "y, match",
    [
        (pd.DataFrame({"a": ["x", None, "y", "x"], "b": [0, 1, 0, 1]}), "column 'a' has 1 missing"),
        (pd.DataFrame({"a": ["x", "y", 3, "x"], "b": [0, 1, 0, 1]}), "column 'a' mixes label types"),
        (pd.DataFrame({"a": ["x", "y", "z", "x"], "b": [0.5, 1, 0, 1]}), "continuous targets use TransformerRegressor"),
        (np.array([[0, 0.5], [1, 2], [0, 1], [1, 1]]), r"holds 2\.0: .*soft targets.*must lie in \[0, 1\]"),
    ],
    ids=["missing", "mixed-types", "continuous", "fraction"],
)
def test_clear_errors_for_bad_targets(make, y, match):
    with pytest.raises(ValueError, match=match):
        make().fit(["a b", "c d", "e f", "g h"], y)


def test_wrong_column_count(fitted, holdout):
    X, frame = holdout
    with pytest.raises(ValueError, match="y has 2 columns but the estimator was fitted on 3 labels"):
        fitted.score(X, frame.iloc[:, :2])


def test_model_folder_round_trip_keeps_heads_and_classes(fitted, holdout, tmp_path):
    X, _ = holdout
    loaded = load_model(save_model(fitted, tmp_path / "model"))
    assert [t.name for t in loaded.output_layout_.targets] == [t.name for t in fitted.output_layout_.targets]
    for restored, original in zip(loaded.classes_, fitted.classes_):
        np.testing.assert_array_equal(restored, original)
        assert restored.dtype.kind == original.dtype.kind or {restored.dtype.kind, original.dtype.kind} <= {"O", "U"}
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    for restored, original in zip(loaded.predict_proba(X), fitted.predict_proba(X)):
        np.testing.assert_array_equal(restored, original)


def test_check_targets_keeps_multilabel_matrices():
    Y, classes, layout = check_targets(np.array([[0, 1], [1, 0]]), 2)
    assert layout.is_multilabel and list(classes) == [0, 1] and Y.dtype == np.float32
    frame = pd.DataFrame({"a": [0, 1], "b": [True, False]})
    Y, classes, layout = check_targets(frame, 2)
    assert layout.is_multilabel and list(classes) == ["a", "b"]
    np.testing.assert_array_equal(Y, [[0, 1], [1, 0]])


def test_layout_bias_prior_and_stratified_split():
    layout = OutputLayout.from_columns(
        [("weather", CATEGORICAL, np.array(["clear", "cloudy", "rain"])), ("windy", BINARY, np.array([0, 1]))]
    )
    rng = np.random.default_rng(0)
    Y = np.column_stack([rng.choice(3, 200, p=[0.8, 0.15, 0.05]), rng.random(200) < 0.3]).astype(np.float32)
    bias = layout.bias_prior(Y)
    frequencies = np.bincount(Y[:, 0].astype(int), minlength=3) / 200
    np.testing.assert_allclose(torch.softmax(torch.tensor(bias[:3]), 0).numpy(), frequencies, atol=0.01)
    assert 1 / (1 + np.exp(-bias[3])) == pytest.approx(Y[:, 1].mean(), abs=0.01)
    train, valid = MultilabelValidSplit(0.2, seed=0, layout=layout).indices(Y)
    rare = Y[:, 0] == 2
    assert rare[valid].sum() >= 1 and rare[train].sum() >= rare[valid].sum()
    for k in range(3):  # every class keeps its share in the validation part
        assert abs((Y[valid, 0] == k).mean() - frequencies[k]) < 0.05


def test_multi_head_loss():
    logits = torch.tensor([[0.3, 1.0, -1.0, 0.5], [-0.2, 0.0, 2.0, 0.1]])
    targets = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    loss = MultiHeadLoss(binary_logits=[0], binary_targets=[0], groups=[(1, 1, 4)])
    bce = F.binary_cross_entropy_with_logits(logits[:, 0], targets[:, 0], reduction="none")
    ce = F.cross_entropy(logits[:, 1:], targets[:, 1].long(), reduction="none")
    assert loss(logits, targets).item() == pytest.approx((bce + ce).mean().item())
    focal = MultiHeadLoss(binary_logits=[0], binary_targets=[0], groups=[(1, 1, 4)], gamma=0.0)
    assert focal(logits, targets).item() == pytest.approx(loss(logits, targets).item(), rel=1e-6)


def test_multilabel_bias_prior_is_each_labels_weighted_smoothed_log_odds(monkeypatch):
    from sktext import validation

    monkeypatch.setattr(validation, "CHECK_BLOCK_ENTRIES", 40)  # summed over blocks of rows
    rng = np.random.default_rng(2)
    Y = (rng.random((300, 7)) < np.linspace(0.02, 0.6, 7)).astype(np.float32)
    weights = rng.random(300) * 3
    layout = OutputLayout.multilabel(np.arange(7))
    assert layout.indicator_matrix(Y) is Y  # nothing to one-hot: no copy
    prior = (weights @ Y.astype(np.float64) + 0.5) / (weights.sum() + 1.0)
    np.testing.assert_allclose(layout.bias_prior(Y, weights), np.log(prior / (1 - prior)), rtol=1e-12)
