"""``fit(X, y, sample_weight=w)``: a weight of 2 is the text twice, and weights flow through routing."""

import numpy as np
import pytest
import sklearn
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sktext import TransformerMultiLabelClassifier, TransformerRegressor, ULMFiTClassifier
from sktext.language_model import fine_tune_language_model
from sktext.lexical import TfidfLinearClassifier
from sktext.thresholds import tune_thresholds

from conftest import ESTIMATOR_FACTORIES, ULMFIT_DEFAULTS, make_toy_data

TRAINING_FACTORIES = {name: f for name, f in ESTIMATOR_FACTORIES.items() if f.kind in ("classifier", "regressor")}


def _weights_and_duplicates(texts, Y, seed=0):
    """Integer weights 1 or 2, and the data with every text repeated that many times."""
    weights = np.random.default_rng(seed).integers(1, 3, size=len(texts))
    rows = np.repeat(np.arange(len(texts)), weights)
    return weights, [texts[i] for i in rows], Y[rows]


# One batch holds the whole (duplicated) data set, the encoder is frozen and nothing
# drops out: the weighted mean loss over the texts is then exactly the mean loss over
# the duplicated texts, step for step, so the two fits must agree.
FULL_BATCH = dict(
    batch_size=512,
    validation_fraction=None,
    threshold=0.5,
    lexical=None,
    dropout=0.0,
    freeze_encoder=True,
    weight_decay=0.0,
    max_epochs=8,
    lr=3e-2,
    random_state=0,
)


def test_weight_two_is_the_text_twice_for_the_transformer_classifier(tiny_bert):
    texts, Y = make_toy_data(60)
    weights, dup_texts, dup_Y = _weights_and_duplicates(texts, Y)
    weighted = TransformerMultiLabelClassifier(tiny_bert, pos_weight="balanced", **FULL_BATCH)
    weighted.fit(texts, Y, sample_weight=weights)
    duplicated = TransformerMultiLabelClassifier(tiny_bert, pos_weight="balanced", **FULL_BATCH).fit(dup_texts, dup_Y)
    np.testing.assert_allclose(weighted.predict_proba(texts), duplicated.predict_proba(texts), atol=1e-4)
    unweighted = TransformerMultiLabelClassifier(tiny_bert, pos_weight="balanced", **FULL_BATCH).fit(texts, Y)
    assert np.abs(unweighted.predict_proba(texts) - weighted.predict_proba(texts)).max() > 1e-3


def test_weight_two_is_the_text_twice_for_the_transformer_regressor(tiny_bert):
    texts, Y = make_toy_data(60)
    y = Y[:, 0] * 3.0 + Y[:, 1]
    weights, dup_texts, _ = _weights_and_duplicates(texts, Y)
    dup_y = np.repeat(y, weights)
    params = {k: v for k, v in FULL_BATCH.items() if k not in ("threshold", "lexical")}
    weighted = TransformerRegressor(tiny_bert, **params).fit(texts, y, sample_weight=weights)
    duplicated = TransformerRegressor(tiny_bert, **params).fit(dup_texts, dup_y)
    np.testing.assert_allclose(weighted.predict(texts), duplicated.predict(texts), atol=1e-4)
    np.testing.assert_allclose(weighted.target_mean_, duplicated.target_mean_)
    np.testing.assert_allclose(weighted.target_scale_, duplicated.target_scale_)


def test_weight_two_is_close_to_the_text_twice_for_ulmfit():
    # A language model fitted beforehand fixes the vocabulary (which counts words, so
    # duplicated texts would reorder it); without LM epochs and dropout, one batch.
    # ULMFiT's head normalises with BatchNorm, whose batch statistics count texts
    # unweighted, so here the match is close rather than exact: much closer to the
    # duplicated fit than the unweighted fit is.
    texts, Y = make_toy_data(60)
    weights, dup_texts, dup_Y = _weights_and_duplicates(texts, Y)
    language_model = fine_tune_language_model(texts, preset="tiny", lm_epochs=1, min_freq=1, bptt=16, random_state=0)
    params = {
        **ULMFIT_DEFAULTS,
        "language_model": language_model,
        "preset": None,
        "lm_epochs": 0,
        "drop_mult": 0.0,
        "batch_size": 512,
        "validation_fraction": None,
        "threshold": 0.5,
        "lexical": None,
        "weight_decay": 0.0,
        "max_epochs": 5,
    }
    weighted = ULMFiTClassifier(**params).fit(texts, Y, sample_weight=weights).predict_proba(texts)
    duplicated = ULMFiTClassifier(**params).fit(dup_texts, dup_Y).predict_proba(texts)
    unweighted = ULMFiTClassifier(**params).fit(texts, Y).predict_proba(texts)
    assert np.abs(weighted - duplicated).max() < 0.01
    assert np.abs(weighted - duplicated).max() < 0.25 * np.abs(unweighted - duplicated).max()


@pytest.mark.parametrize("name", sorted(TRAINING_FACTORIES))
def test_every_estimator_takes_sample_weight_with_its_defaults(name, resources, toy_data):
    texts, Y = toy_data
    texts, Y = texts[:80], Y[:80]
    build = TRAINING_FACTORIES[name].build
    y = Y if TRAINING_FACTORIES[name].kind == "classifier" else Y[:, 0] * 2.0 - Y[:, 1]
    weights = np.linspace(0.0, 2.0, len(texts))
    estimator = build(resources, max_epochs=2).fit(texts, y, sample_weight=weights)
    assert np.shape(estimator.predict(texts[:5]))[0] == 5


def test_zero_weight_texts_do_not_count():
    # The lexical part alone: texts with weight 0 leave the linear models as without them
    # (the vocabulary still counts every text, so keep it the same on both sides).
    texts, Y = make_toy_data(120)
    weights = np.r_[np.ones(80), np.zeros(40)]
    shuffled = np.r_[Y[:80], Y[80:][:, ::-1]]  # the zero-weight texts get other labels
    model = TfidfLinearClassifier(threshold=0.5, min_df=1, max_df=1.0)
    weighted = model.fit(texts, shuffled, sample_weight=weights).decision_function(texts)
    reference = TfidfLinearClassifier(threshold=0.5, min_df=1, max_df=1.0).fit(texts, Y).decision_function(texts)
    unweighted = (
        TfidfLinearClassifier(threshold=0.5, min_df=1, max_df=1.0).fit(texts, shuffled).decision_function(texts)
    )
    assert np.abs(weighted - unweighted).max() > 0.1  # the weights did something ...
    assert (
        np.corrcoef(weighted.ravel(), reference.ravel())[0, 1]
        > np.corrcoef(unweighted.ravel(), reference.ravel())[0, 1]
    )


def test_threshold_tuning_counts_weighted_texts_as_duplicates():
    rng = np.random.default_rng(0)
    Y = rng.random((200, 4)) < 0.3
    proba = np.clip(Y * 0.4 + rng.random((200, 4)) * 0.6, 0, 1)
    weights = rng.integers(1, 4, size=200)
    rows = np.repeat(np.arange(200), weights)
    weighted, weighted_global = tune_thresholds(Y, proba, sample_weight=weights, shrinkage=0.0, min_positives=1)
    duplicated, duplicated_global = tune_thresholds(Y[rows], proba[rows], shrinkage=0.0, min_positives=1)
    np.testing.assert_allclose(weighted, duplicated)
    assert weighted_global == duplicated_global


def test_sample_weight_flows_through_pipeline_and_grid_search_with_routing(tiny_bert):
    texts, Y = make_toy_data(80)
    weights = np.r_[np.full(40, 3.0), np.full(40, 0.2)]
    params = dict(max_epochs=2, lr=3e-3, batch_size=16, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        classifier = TransformerMultiLabelClassifier(tiny_bert, **params).set_fit_request(sample_weight=True)
        scorer = make_scorer(f1_score, average="micro").set_score_request(sample_weight=True)
        search = GridSearchCV(Pipeline([("clf", classifier)]), {"clf__lr": [3e-3]}, cv=2, scoring=scorer)
        search.fit(texts, Y, sample_weight=weights)
        direct = TransformerMultiLabelClassifier(tiny_bert, **params).fit(texts, Y, sample_weight=weights)
    plain = TransformerMultiLabelClassifier(tiny_bert, **params).fit(texts, Y)
    routed = search.best_estimator_.predict_proba(texts)
    np.testing.assert_allclose(routed, direct.predict_proba(texts), atol=1e-6)
    assert np.abs(routed - plain.predict_proba(texts)).max() > 1e-4


def test_pipeline_passes_step_sample_weight_without_routing(tiny_bert):
    texts, Y = make_toy_data(60)
    weights = np.r_[np.full(30, 2.0), np.ones(30)]
    params = dict(max_epochs=1, lr=3e-3, batch_size=16, random_state=0)
    pipeline = Pipeline([("clf", TransformerMultiLabelClassifier(tiny_bert, **params))])
    pipeline.fit(texts, Y, clf__sample_weight=weights)
    direct = TransformerMultiLabelClassifier(tiny_bert, **params).fit(texts, Y, sample_weight=weights)
    np.testing.assert_allclose(pipeline.predict_proba(texts), direct.predict_proba(texts), atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(7), r"one weight per text, i\.e\. shape \(60,\)"),
        (np.r_[np.ones(59), -1.0], r"finite and >= 0; got -1\.0 at position 59"),
        (np.r_[np.ones(59), np.nan], r"finite and >= 0; got nan at position 59"),
        (np.zeros(60), "zero everywhere"),
        (["a"] * 60, "must be numbers"),
    ],
)
def test_bad_sample_weight_is_named(tiny_bert, weights, message):
    texts, Y = make_toy_data(60)
    with pytest.raises(ValueError, match=message):
        TransformerMultiLabelClassifier(tiny_bert, max_epochs=1).fit(texts, Y, sample_weight=weights)
