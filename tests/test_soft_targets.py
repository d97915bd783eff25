"""Soft targets: per-label probabilities as y, learned as they are, decided on their hard view."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sktext import TransformerMultiLabelClassifier, ULMFiTClassifier, load_model
from sktext.lexical import TfidfLinearClassifier

from conftest import ULMFIT_DEFAULTS, make_toy_data

# The five-label example of the forum thread our users start from.
FORUM_ROW = [0.99, 0.91, 0.11, 0.10, 0.01]
#: The soft targets of the toy: a label's probability is HIGH when the text holds its
#: topic words, LOW when not, a known function of the text.
HIGH, LOW = 0.8, 0.1


def soft_toy(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    texts, Y = make_toy_data(n, seed=seed)
    return texts, np.where(Y == 1, HIGH, LOW), Y


def transformer(tiny_bert, **params):
    # The tiny BERT is random: it learns the toy from scratch, every layer training.
    defaults = dict(max_epochs=10, lr=3e-3, batch_size=16, precision="fp32", trainable_layers=None, random_state=0)
    return TransformerMultiLabelClassifier(tiny_bert, **{**defaults, **params})


def ulmfit(**params):
    return ULMFiTClassifier(**{**ULMFIT_DEFAULTS, **params})


@pytest.fixture(scope="module")
def fitted_transformer(tiny_bert):
    texts, P, _ = soft_toy(240, seed=0)
    return transformer(tiny_bert).fit(texts, P)


# -- what the fit learns --------------------------------------------------------------------
@pytest.mark.parametrize("family", ["transformer", "ulmfit"])
def test_predict_proba_approaches_targets_that_are_a_known_function_of_the_text(family, tiny_bert, fitted_transformer):
    """The mean absolute error to the soft targets on new texts stays under 0.1.

    Why 0.1: the two levels lie 0.7 apart, so 0.1 is within a seventh of the gap, and
    it is under a third of the error of the best constant (each label's mean, about
    0.34 here); a model that learned the hard view instead (probabilities near 0 and
    1) is off by about 0.15 on average, so the bound also tells learning the
    probabilities from learning the labels.
    """
    model = fitted_transformer if family == "transformer" else ulmfit(max_epochs=15).fit(*soft_toy(240, seed=0)[:2])
    texts, P, Y = soft_toy(120, seed=5)
    proba = model.predict_proba(texts)
    constant = np.abs(P - P.mean(axis=0)).mean()
    assert constant > 0.3
    assert np.abs(proba - P).mean() < 0.1
    # each level is met on its own side, not only on average
    assert abs(proba[Y == 1].mean() - HIGH) < 0.1 and abs(proba[Y == 0].mean() - LOW) < 0.1
    assert model.soft_targets_


@pytest.mark.parametrize("family", ["transformer", "ulmfit"])
def test_the_forum_example_fits_and_predicts_labels_from_its_hard_view(family, tiny_bert):
    texts, _ = make_toy_data(60, seed=2)
    rng = np.random.default_rng(0)
    P = np.clip(np.array(FORUM_ROW) + rng.normal(0, 0.03, (60, 5)), 0, 1)
    model = transformer(tiny_bert, max_epochs=2) if family == "transformer" else ulmfit(max_epochs=2)
    with pytest.warns(UserWarning, match=r"3 label\(s\) never reach probability 0\.5"):  # 0.11, 0.10, 0.01
        model.fit(texts, P)
    assert model.soft_targets_ and model.predict_proba(texts).shape == (60, 5)
    np.testing.assert_array_equal(model.label_support_, (P >= 0.5).sum(axis=0))
    predicted = model.predict(texts)
    assert set(np.unique(predicted)) <= {0, 1}
    # The first two columns are positives in the hard view, the last three never are.
    assert predicted[:, :2].mean() > 0.9 and predicted[:, 2:].sum() == 0


def test_the_output_bias_starts_at_the_column_means(tiny_bert):
    texts, _ = make_toy_data(80, seed=3)
    P = np.tile([0.9, 0.3, 0.05], (80, 1))
    with pytest.warns(UserWarning, match="never reach probability 0.5"):
        model = transformer(tiny_bert, max_epochs=1, lr=1e-9, lexical=None).fit(texts, P)
    # lr ~ 0: the logits stay where they started, at the (smoothed) log-odds of each column's mean
    np.testing.assert_allclose(model.predict_proba(texts).mean(axis=0), [0.9, 0.3, 0.05], atol=0.03)


def test_score_and_a_grid_search_read_the_hard_view(tiny_bert):
    texts, P, Y = soft_toy(160, seed=1)
    # No lexical part: it learns the toy at any network rate, and the search is about the network.
    clf = transformer(tiny_bert, lexical=None)
    pipeline = Pipeline([("strip", FunctionTransformer(lambda X: [t.strip() for t in X])), ("clf", clf)])
    search = GridSearchCV(pipeline, {"clf__lr": [3e-3, 1e-7]}, cv=KFold(2), refit=True).fit(texts, P)
    assert search.best_params_ == {"clf__lr": 3e-3}  # the rate that learns wins on subset accuracy
    held_out, P_new, Y_new = soft_toy(60, seed=6)
    assert search.score(held_out, P_new) == search.score(held_out, Y_new)  # soft y scored on its hard view
    assert search.score(held_out, P_new) > 0.5


def test_focal_loss_takes_soft_targets_and_asymmetric_says_it_does_not(tiny_bert):
    texts, P, _ = soft_toy(80, seed=4)
    model = transformer(tiny_bert, max_epochs=1, loss="focal").fit(texts, P)
    assert np.isfinite(model.predict_proba(texts)).all()
    with pytest.raises(ValueError, match=r"loss='asymmetric' is made for 0/1 targets.*loss='bce'"):
        transformer(tiny_bert, max_epochs=1, loss="asymmetric").fit(texts, P)


def test_sparse_and_dataframe_soft_targets(tiny_bert):
    texts, P, _ = soft_toy(60, seed=7)
    frame = pd.DataFrame(P, columns=["game", "editor", "audio"])
    model = transformer(tiny_bert, max_epochs=1).fit(texts, frame)
    assert model.soft_targets_ and list(model.classes_) == list(frame.columns)
    sparse = transformer(tiny_bert, max_epochs=1).fit(texts, sp.csr_matrix(P))
    assert sparse.soft_targets_ and sp.issparse(sparse.predict(texts))


def test_a_saved_model_records_its_soft_targets(fitted_transformer, tmp_path):
    fitted_transformer.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.soft_targets_ is True
    texts, _, _ = soft_toy(20, seed=9)
    np.testing.assert_allclose(loaded.predict_proba(texts), fitted_transformer.predict_proba(texts), atol=1e-5)


# -- what is refused, what is warned, what stays as it was ------------------------------------
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (1.5, r"holds 1\.5: a target matrix with fractions is taken as soft targets.*must lie in \[0, 1\].*np\.clip"),
        (-0.2, r"holds -0\.2: .*soft targets.*percentages / 100"),
        (np.nan, r"NaN value\(s\) \(the first at row 3, column 1\).*fill the gaps"),
    ],
)
def test_values_outside_0_1_and_nan_are_refused_with_the_fix(bad, message, tiny_bert):
    texts, P, _ = soft_toy(40, seed=0)
    P = P.copy()
    P[3, 1] = bad
    for model in (transformer(tiny_bert, max_epochs=1), TfidfLinearClassifier()):
        with pytest.raises(ValueError, match=message):
            model.fit(texts, P)


def test_a_column_never_reaching_one_half_is_warned_about(tiny_bert):
    texts, P, _ = soft_toy(60, seed=0)
    P = P.copy()
    P[:, 2] = 0.3
    with pytest.warns(UserWarning, match=r"1 label\(s\) never reach probability 0\.5.*\b2\b.*divide them by 100"):
        transformer(tiny_bert, max_epochs=1).fit(texts, P)


def test_a_0_1_float_matrix_is_not_soft_and_fits_exactly_as_the_int_matrix(tiny_bert):
    texts, Y = make_toy_data(100, seed=2)
    as_int = transformer(tiny_bert, max_epochs=2).fit(texts, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        as_float = transformer(tiny_bert, max_epochs=2).fit(texts, Y.astype(np.float64))
    assert not as_int.soft_targets_ and not as_float.soft_targets_
    np.testing.assert_array_equal(as_float.predict_proba(texts), as_int.predict_proba(texts))
    np.testing.assert_array_equal(as_float.thresholds_, as_int.thresholds_)


def test_integer_columns_beyond_0_1_are_still_categorical_targets(tiny_bert):
    texts, Y = make_toy_data(60, seed=2)
    categorical = Y[:, :2] * 2.0  # 0.0 / 2.0: class labels, no fraction
    model = transformer(tiny_bert, max_epochs=1).fit(texts, categorical)
    assert not model.output_layout_.is_multilabel and not model.soft_targets_


# -- the lexical model on its own ---------------------------------------------------------------
def test_lexical_log_loss_learns_probabilities_and_the_svm_their_hard_view():
    texts, P, Y = soft_toy(400, seed=0)
    new_texts, P_new, Y_new = soft_toy(200, seed=8)
    logistic = TfidfLinearClassifier(loss="log_loss", C=10.0, random_state=0).fit(texts, P)
    assert logistic.soft_targets_
    assert np.abs(logistic.predict_proba(new_texts) - P_new).mean() < 0.1
    svm_soft = TfidfLinearClassifier(random_state=0).fit(texts, P)
    svm_hard = TfidfLinearClassifier(random_state=0).fit(texts, Y)
    np.testing.assert_array_equal(np.asarray(svm_soft.coef_), np.asarray(svm_hard.coef_))  # the SVM fits the hard view
    np.testing.assert_array_equal(svm_soft.predict(new_texts), svm_hard.predict(new_texts))


# -- the command line ----------------------------------------------------------------------------
def test_the_cli_fits_probability_columns_and_evaluates_their_hard_view(tiny_bert, tmp_path):
    import json

    from sklearn.metrics import f1_score

    from sktext.cli import main

    names = ["game", "editor", "audio"]

    def write(path, n, seed):
        texts, P, Y = soft_toy(n, seed=seed)
        rows = [{"text": t, **{name: float(p) for name, p in zip(names, row)}} for t, row in zip(texts, P)]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return texts, Y

    write(tmp_path / "train.jsonl", 160, 0)
    test_texts, test_Y = write(tmp_path / "test.jsonl", 60, 3)
    params = [f"model_name_or_path={tiny_bert}", "max_epochs=5", "lr=3e-3", "batch_size=16", "random_state=0"]
    fit = ["fit", str(tmp_path / "train.jsonl"), "--label-columns", *names, "--model", "transformer", "--quiet"]
    assert main([*fit, "--param", *params, "--out", str(tmp_path / "model")]) == 0
    model = load_model(tmp_path / "model")
    assert model.soft_targets_
    report = tmp_path / "report"
    assert main(["evaluate", str(tmp_path / "model"), str(tmp_path / "test.jsonl"), "--out", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["f1_micro"] == pytest.approx(f1_score(test_Y, model.predict(test_texts), average="micro"))
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "a game", **dict.fromkeys(names, 1.5)}) + "\n")
    bad = ["fit", str(tmp_path / "bad.jsonl"), "--label-columns", *names, "--out", str(tmp_path / "bad")]
    assert main(bad) == 2


def test_the_model_card_says_the_model_was_fitted_on_soft_targets(fitted_transformer, tmp_path):
    fitted_transformer.save(tmp_path / "model")
    card = (tmp_path / "model" / "README.md").read_text(encoding="utf-8")
    assert "Fitted on soft targets" in card and "hard view, a probability of at least 0.5" in card
