"""Fitted on a sparse label matrix, predict answers sparse; the k best labels without the dense matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sktext import TransformerMultiLabelClassifier, load_model, thresholds

from conftest import make_toy_data


@pytest.fixture(scope="module")
def fitted(tiny_bert):
    X, Y = make_toy_data(200, seed=3)
    Y = np.column_stack([Y, Y[:, ::-1], Y[:, :1]])  # 7 labels
    # fp32: chunks batch the texts differently from one call over all of them, and bf16
    # rounds differently in other batches (about 2e-4), which could flip a label at its threshold
    clf = TransformerMultiLabelClassifier(
        tiny_bert, max_epochs=2, lr=1e-3, batch_size=16, precision="fp32", random_state=0
    )
    return clf.fit(X, sp.csr_matrix(Y)), make_toy_data(90, seed=8)[0]


def test_sparse_fit_predicts_a_sparse_matrix_equal_to_the_thresholded_probabilities(fitted, monkeypatch):
    clf, X_test = fitted
    monkeypatch.setattr(thresholds, "PREDICT_CHUNK_TEXTS", 32)  # several chunks
    predicted = clf.predict(X_test)
    assert sp.issparse(predicted) and predicted.format == "csr" and predicted.dtype == np.int8
    dense = (clf.predict_proba(X_test) >= clf.thresholds_).astype(np.int8)
    np.testing.assert_array_equal(predicted.toarray(), dense)
    assert clf.sparse_output_


def test_dense_fit_still_predicts_a_dense_matrix(tiny_bert):
    X, Y = make_toy_data(120, seed=4)
    clf = TransformerMultiLabelClassifier(tiny_bert, max_epochs=1, batch_size=16, random_state=0).fit(X, Y)
    assert isinstance(clf.predict(X[:5]), np.ndarray) and not clf.sparse_output_


def test_sparse_output_survives_a_model_folder_and_scores(fitted, tmp_path):
    clf, X_test = fitted
    loaded = load_model(clf.save(tmp_path / "model"))
    assert sp.issparse(loaded.predict(X_test))
    np.testing.assert_array_equal(loaded.predict(X_test).toarray(), clf.predict(X_test).toarray())
    truth = clf.predict(X_test)
    assert clf.score(X_test, truth) == 1.0


def test_top_k_equals_the_dense_ranking(fitted, monkeypatch):
    clf, X_test = fitted
    monkeypatch.setattr(thresholds, "PREDICT_CHUNK_TEXTS", 25)
    indices, scores = clf.predict_top_k(X_test, k=3)
    proba = clf.predict_proba(X_test)
    assert indices.shape == scores.shape == (len(X_test), 3)
    np.testing.assert_allclose(scores, np.take_along_axis(proba, indices, axis=1), atol=1e-6)
    assert (np.diff(scores, axis=1) <= 0).all()  # most probable first
    np.testing.assert_allclose(scores, -np.sort(-proba, axis=1)[:, :3], atol=1e-6)


def test_top_k_works_through_a_pipeline(fitted):
    clf, X_test = fitted
    strip = FunctionTransformer(lambda texts: [text.strip() for text in texts])
    pipeline = Pipeline([("strip", strip), ("clf", clf)])
    kept = pipeline.predict_proba(X_test, top_k=2)
    assert sp.issparse(kept) and kept.shape == (len(X_test), 7) and (kept.getnnz(axis=1) == 2).all()
    indices, scores = clf.predict_top_k(X_test, k=2)
    np.testing.assert_allclose(np.take_along_axis(kept.toarray(), indices, axis=1), scores, atol=1e-6)


@pytest.mark.parametrize("k", [0, 8, 2.5, True])
def test_top_k_names_a_bad_k(fitted, k):
    clf, X_test = fitted
    with pytest.raises(ValueError, match="must be an int from 1 to n_outputs_ \\(7\\)"):
        clf.predict_top_k(X_test, k=k)


def test_a_sparse_y_stays_sparse_through_the_fit_and_fits_what_the_dense_one_fits(tiny_bert, monkeypatch):
    """The label matrix is densified a batch (or the validation part) at a time, never whole: same model."""
    from sktext.batching import TokenizedTexts

    X, Y = make_toy_data(160, seed=4)
    Y = np.column_stack([Y, Y[:, :1] * 0])  # a label without positives too
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    seen = []
    original = TokenizedTexts.with_targets

    def recorded(self, y, sample_weight=None):
        if y is not None:  # (prediction datasets have no targets)
            seen.append(type(y))
        return original(self, y, sample_weight)

    monkeypatch.setattr(TokenizedTexts, "with_targets", recorded)
    params = dict(max_epochs=3, lr=1e-3, batch_size=16, precision="fp32", pos_weight="balanced", random_state=0)
    models = []
    for y in (Y, sp.csr_matrix(Y)):
        with pytest.warns(UserWarning, match="no positive example"):
            models.append(
                TransformerMultiLabelClassifier(tiny_bert, monitor="valid_f1", **params).fit(
                    X, y, sample_weight=weights
                )
            )
    assert seen == [np.ndarray, sp.csr_matrix]
    dense, sparse = models
    np.testing.assert_array_equal(sparse.label_support_, dense.label_support_)
    np.testing.assert_allclose(sparse.thresholds_, dense.thresholds_)
    np.testing.assert_allclose(sparse.blend_weights_, dense.blend_weights_)
    assert [row["valid_f1"] for row in sparse.history_] == [row["valid_f1"] for row in dense.history_]
    X_test = make_toy_data(40, seed=9)[0]
    np.testing.assert_allclose(sparse.predict_proba(X_test), dense.predict_proba(X_test), atol=1e-6)
