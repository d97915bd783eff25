"""The lexical model (TF-IDF + a linear model per label) and its blend with the networks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.svm import LinearSVC

from sktext import TransformerMultiLabelClassifier, load_model
from sktext.lexical import COEF_RELATIVE_TOLERANCE, TfidfLinearClassifier, apply_blend, fit_blend
from sktext.validation import seed_from

from conftest import make_many_rare_labels, make_toy_data, ulmfit_factory


def dense(coef) -> np.ndarray:
    """``coef_`` as a dense array, whichever form the fit kept (CSR for many rare labels)."""
    return coef.toarray() if sp.issparse(coef) else np.asarray(coef)


@pytest.fixture(scope="module")
def toy():
    return make_toy_data(240, seed=0), make_toy_data(120, seed=7)


@pytest.mark.parametrize("loss", ["squared_hinge", "log_loss"])
def test_linear_model_learns_words_and_tunes_thresholds(toy, loss):
    (X, Y), (X_test, Y_test) = toy
    clf = TfidfLinearClassifier(loss=loss, random_state=0).fit(X, Y)
    assert clf.thresholds_.shape == (3,)
    assert ((clf.thresholds_ > 0) & (clf.thresholds_ < 1)).all()
    assert f1_score(Y_test, clf.predict(X_test), average="micro") > 0.9
    assert clf.predict_proba(X_test).shape == (120, 3)


def test_a_sparse_y_gives_a_sparse_predict(toy, monkeypatch):
    import sktext.thresholds

    (X, Y), (X_test, _) = toy
    dense_fit = TfidfLinearClassifier(random_state=0).fit(X, Y)
    sparse_fit = TfidfLinearClassifier(random_state=0).fit(X, sp.csr_matrix(Y))
    monkeypatch.setattr(sktext.thresholds, "PREDICT_CHUNK_TEXTS", 7)  # several chunks
    predicted = sparse_fit.predict(X_test)
    assert isinstance(predicted, sp.csr_matrix) and predicted.dtype == np.int8
    np.testing.assert_array_equal(predicted.toarray(), dense_fit.predict(X_test))
    rebuilt = TfidfLinearClassifier.from_state(*sparse_fit.to_state())
    assert isinstance(rebuilt.predict(X_test[:3]), sp.csr_matrix)


def test_linear_model_state_round_trip_and_pickle(toy):
    (X, Y), (X_test, _) = toy
    clf = TfidfLinearClassifier(random_state=0).fit(X, Y)
    rebuilt = TfidfLinearClassifier.from_state(*clf.to_state())
    np.testing.assert_allclose(rebuilt.decision_function(X_test), clf.decision_function(X_test), atol=1e-6)
    np.testing.assert_array_equal(rebuilt.predict(X_test), clf.predict(X_test))
    unpickled = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(unpickled.predict(X_test), clf.predict(X_test))
    assert clone(clf).get_params() == clf.get_params()


def _dense_layout(arrays: dict) -> dict:
    """``to_state``'s arrays as models saved before ``coef_`` was sparse held them: one dense ``coef``."""
    old = {key: value for key, value in arrays.items() if not key.startswith("coef_")}
    shape = (len(arrays["intercept"]), len(arrays["idf"]))
    old["coef"] = sp.csr_matrix((arrays["coef_data"], arrays["coef_indices"], arrays["coef_indptr"]), shape).toarray()
    return old


def _damaged(arrays: dict, damage: str) -> dict:
    arrays = dict(arrays)
    if damage == "dense coef of another width":
        arrays = _dense_layout(arrays)
        arrays["coef"] = arrays["coef"][:, :-1]
    elif damage == "column out of range":
        arrays["coef_indices"] = arrays["coef_indices"] + len(arrays["idf"])
    elif damage == "row offsets of another label count":
        arrays["coef_indptr"] = arrays["coef_indptr"][:-1]
    else:  # fewer values than columns
        arrays["coef_data"] = arrays["coef_data"][:-1]
    return arrays


@pytest.mark.parametrize(
    "damage",
    ["dense coef of another width", "column out of range", "row offsets of another label count", "values missing"],
)
def test_linear_model_state_refuses_parts_that_disagree(toy, damage):
    (X, Y), _ = toy
    config, arrays = TfidfLinearClassifier(threshold=0.5).fit(X, Y).to_state()
    with pytest.raises(ValueError, match="parts disagree"):
        TfidfLinearClassifier.from_state(config, _damaged(arrays, damage))


def test_linear_model_state_of_the_dense_layout_predicts_as_before(toy):
    """Models saved before ``coef_`` was sparse held one dense ``coef`` array: they load and predict the same."""
    (X, Y), (X_test, _) = toy
    clf = TfidfLinearClassifier(random_state=0).fit(X, Y)
    config, arrays = clf.to_state()
    assert {"coef_data", "coef_indices", "coef_indptr"} <= set(arrays) and "coef" not in arrays
    rebuilt = TfidfLinearClassifier.from_state(config, _dense_layout(arrays))
    assert rebuilt.coef_.dtype == np.float32 and sp.issparse(rebuilt.coef_) == sp.issparse(clf.coef_)
    np.testing.assert_array_equal(dense(rebuilt.coef_), dense(clf.coef_))
    np.testing.assert_array_equal(rebuilt.decision_function(X_test), clf.decision_function(X_test))


def _dense_reference(clf: TfidfLinearClassifier, X, Y, random_state) -> np.ndarray:
    """The weights of each label's LinearSVC as scikit-learn gives them, dense: what ``coef_`` holds."""
    features = clf.vectorizer_.transform(X)
    features.sort_indices()
    seed = seed_from(random_state)
    return np.vstack(
        [
            LinearSVC(loss="squared_hinge", dual="auto", max_iter=5000, random_state=seed).fit(features, y).coef_
            for y in np.asarray(Y).T
        ]
    )


@pytest.mark.parametrize("random_state", [0, 3])
def test_coef_equals_the_dense_fit_and_stays_dense_at_few_labels(toy, random_state):
    (X, Y), (X_test, _) = toy
    clf = TfidfLinearClassifier(threshold=0.5, min_weight=0, random_state=random_state).fit(X, Y)
    # three frequent labels: most weights are non-zero, CSR would be no smaller and slower
    assert isinstance(clf.coef_, np.ndarray) and clf.coef_.dtype == np.float32
    assert clf.coef_.shape == (3, len(clf.vectorizer_.vocabulary_))
    reference = _dense_reference(clf, X, Y, random_state)
    largest = np.abs(reference).max(axis=1, keepdims=True)
    # equal in float32, but for the crumbs below the tolerance, which are left out
    np.testing.assert_allclose(clf.coef_, reference, rtol=1e-6, atol=COEF_RELATIVE_TOLERANCE * largest.max())
    assert np.count_nonzero(clf.coef_) == (np.abs(reference) > COEF_RELATIVE_TOLERANCE * largest).sum()
    margins = clf.vectorizer_.transform(X_test) @ reference.T + clf.intercept_
    np.testing.assert_allclose(clf.decision_function(X_test), margins, rtol=1e-5, atol=1e-5)


def test_many_rare_labels_keep_coef_far_below_its_dense_size():
    """A label's weights live on its support vectors' terms: with many rare labels, most weights are absent."""
    texts, Y = make_many_rare_labels(1000, 1000)
    clf = TfidfLinearClassifier(threshold=0.5, min_weight=0, random_state=0).fit(texts, Y)
    assert isinstance(clf.coef_, sp.csr_matrix)
    n_labels, n_features = clf.coef_.shape
    dense_bytes = n_labels * n_features * np.dtype(np.float32).itemsize
    stored = clf.coef_.data.nbytes + clf.coef_.indices.nbytes + clf.coef_.indptr.nbytes
    assert stored < 0.5 * dense_bytes  # a float32 and an int32 per weight kept: 0.4 here
    assert clf.coef_.getnnz(axis=1)[Y.sum(axis=0) == 0].sum() == 0  # a label never seen has no weights
    assert clf.predict(texts[:50]).shape == (50, n_labels)
    # each row is its label's own weights, up to the last label (the rows are gathered
    # as the workers return them, into buffers that grow many times over here)
    assert clf.coef_.nnz > 4 * 65_536
    seen = np.flatnonzero(Y.sum(axis=0) > 0)
    some = np.r_[seen[:2], seen[len(seen) // 2], seen[-2:]]
    reference = _dense_reference(clf, texts, Y[:, some], 0)
    largest = np.abs(reference).max(axis=1, keepdims=True)
    np.testing.assert_allclose(
        clf.coef_[some].toarray(), reference, rtol=1e-6, atol=COEF_RELATIVE_TOLERANCE * largest.max()
    )


def test_weights_below_min_weight_are_left_out_and_the_margins_move_less_than_it():
    texts, Y = make_many_rare_labels(600, 200)
    test_texts = make_many_rare_labels(200, 200, seed=1)[0]
    full = TfidfLinearClassifier(threshold=0.5, min_weight=0, random_state=0).fit(texts, Y)
    pruned = TfidfLinearClassifier(threshold=0.5, random_state=0).fit(texts, Y)  # min_weight=0.01
    dense, kept = sp.csr_matrix(full.coef_).toarray(), sp.csr_matrix(pruned.coef_).toarray()
    left_out = (kept == 0) & (dense != 0)
    assert left_out.sum() > 0.15 * np.count_nonzero(dense)  # rare labels: many tiny weights
    assert np.abs(dense[left_out]).max() < 0.01
    np.testing.assert_array_equal(kept[kept != 0], dense[kept != 0])
    np.testing.assert_array_equal(pruned.intercept_, full.intercept_)
    # each TF-IDF row has unit norm: a margin moves by at most the norm of its label's left-out weights
    moved = np.abs(pruned.decision_function(test_texts) - full.decision_function(test_texts))
    assert moved.max() > 0
    assert (moved <= np.linalg.norm(np.where(left_out, dense, 0), axis=1) + 1e-6).all()


@pytest.mark.parametrize("n_texts", [1, 7, 200])
def test_the_margins_are_the_same_by_every_way_of_applying_sparse_weights(monkeypatch, n_texts):
    import sktext.lexical

    texts, Y = make_many_rare_labels(600, 200)
    clf = TfidfLinearClassifier(threshold=0.5, min_weight=0.05, random_state=0).fit(texts, Y)
    assert sp.issparse(clf.coef_)
    test_texts = make_many_rare_labels(n_texts, 200, seed=1)[0] + ["no known word"]
    expected = (clf.vectorizer_.transform(test_texts) @ dense(clf.coef_).T).astype(np.float64) + clf.intercept_
    by_term = clf.decision_function(test_texts)  # one block of the used terms' weights, from the CSC copy
    monkeypatch.setattr(sktext.lexical, "MARGINS_BLOCK_BYTES", 1)
    monkeypatch.setattr(sktext.lexical, "MARGINS_GATHER_MIN_DENSITY", 0.0)
    label_blocks = clf.decision_function(test_texts)  # one label a block, from the CSR form
    monkeypatch.setattr(sktext.lexical, "MARGINS_GATHER_MIN_DENSITY", 2.0)
    product = clf.decision_function(test_texts)  # the sparse product
    np.testing.assert_allclose(by_term, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(label_blocks, by_term)
    np.testing.assert_allclose(product, by_term, rtol=1e-5, atol=1e-6)
    assert by_term.dtype == np.float64 and by_term.shape == (n_texts + 1, 200)


def test_the_copy_of_the_weights_by_term_goes_with_the_model():
    import gc

    from sktext.lexical import _BY_TERM

    texts, Y = make_many_rare_labels(600, 200)
    clf = TfidfLinearClassifier(threshold=0.5, min_weight=0.05, random_state=0).fit(texts, Y)
    clf.decision_function(texts[:3])
    assert id(clf.coef_) in _BY_TERM
    key = id(clf.coef_)
    del clf
    gc.collect()
    assert key not in _BY_TERM


def test_min_weight_keeps_the_largest_weights_of_a_label_whose_weights_are_all_small(toy):
    (X, Y), (X_test, _) = toy
    # a tiny C shrinks every weight below 0.01: pruning keeps each label's top tenth, not nothing
    full = TfidfLinearClassifier(threshold=0.5, C=1e-4, min_weight=0, random_state=0).fit(X, Y)
    pruned = TfidfLinearClassifier(threshold=0.5, C=1e-4, random_state=0).fit(X, Y)
    dense = sp.csr_matrix(full.coef_).toarray()
    assert np.abs(dense).max() < 0.01
    kept = sp.csr_matrix(pruned.coef_).toarray()
    largest = np.abs(dense).max(axis=1, keepdims=True)
    np.testing.assert_array_equal(kept != 0, np.abs(dense) > 0.1 * largest)
    assert (pruned.decision_function(X_test).std(axis=0) > 0).all()  # no label became a constant


def test_linear_model_predicts_constant_labels_as_constant():
    X, Y = make_toy_data(60, seed=1)
    Y = np.column_stack([Y, np.zeros(len(Y), int)])
    clf = TfidfLinearClassifier(threshold=0.5).fit(X, Y)
    assert clf.predict(X)[:, -1].sum() == 0


def test_linear_model_names_bad_parameters():
    X, Y = make_toy_data(40)
    with pytest.raises(ValueError, match="The 'C' parameter of TfidfLinearClassifier must be a finite float > 0"):
        TfidfLinearClassifier(C=float("inf")).fit(X, Y)
    with pytest.raises(ValueError, match="The 'loss' parameter"):
        TfidfLinearClassifier(loss="hinge").fit(X, Y)
    with pytest.raises(
        ValueError, match="The 'min_weight' parameter of TfidfLinearClassifier must be a finite float >= 0"
    ):
        TfidfLinearClassifier(min_weight=-0.1).fit(X, Y)


def test_blend_weights_favour_the_informative_part():
    rng = np.random.default_rng(0)
    Y = rng.random((200, 5)) < 0.3
    informative = np.where(Y, 2.0, -2.0) + rng.normal(0, 1, Y.shape)
    noise = rng.normal(0, 1, Y.shape)
    (a, b, _), _ = fit_blend(noise, informative, Y)
    assert b > 0.5 and a < 0.2 * b
    (a, b, _), centre = fit_blend(informative, noise, Y)
    assert a > 0.5 and b < 0.2 * a
    np.testing.assert_allclose(centre, informative.mean(axis=0))
    weights = np.array([0.5, 2.0, -1.0])
    np.testing.assert_allclose(
        apply_blend(weights, centre, noise, informative), 0.5 * (noise - centre) + 2 * informative - 1
    )


def test_blend_centres_away_a_label_prior_in_the_network_logits():
    # The network's logit of a rare label sits far below a frequent one's (its prior),
    # with the same evidence on top: after centring both labels fire on their evidence.
    rng = np.random.default_rng(1)
    Y = np.column_stack([rng.random(300) < 0.5, rng.random(300) < 0.05])
    evidence = np.where(Y, 1.5, -1.5) + rng.normal(0, 0.5, Y.shape)
    prior = np.log(Y.mean(axis=0) / (1 - Y.mean(axis=0)))
    weights, centre = fit_blend(evidence + prior, np.zeros_like(evidence), Y)
    predicted = apply_blend(weights, centre, evidence + prior, np.zeros_like(evidence)) >= 0
    assert predicted[Y[:, 1], 1].mean() > 0.9  # the rare label's positives pass one shared threshold
    assert predicted[Y[:, 0], 0].mean() > 0.9 and predicted[~Y[:, 0], 0].mean() < 0.1
    assert ((evidence + prior)[Y[:, 1], 1] < 0).mean() > 0.9  # which its raw logits do not


def test_a_blend_over_more_pairs_than_its_cap_fits_on_a_weighted_sample(monkeypatch):
    from sktext import lexical

    rng = np.random.default_rng(2)
    Y = rng.random((400, 200)) < 0.01  # 80,000 pairs, a rare positive each
    neural = np.where(Y, 1.0, -1.0) + rng.normal(0, 1.5, Y.shape)
    margins = np.where(Y, 0.5, -1.0) + rng.normal(0, 0.5, Y.shape)
    every_pair, centre = fit_blend(neural, margins, Y)
    monkeypatch.setattr(lexical, "BLEND_MAX_PAIRS", 10_000)
    sampled, sampled_centre = fit_blend(neural, margins, Y)
    np.testing.assert_array_equal(sampled_centre, centre)  # centres are means over every text
    np.testing.assert_allclose(sampled, every_pair, rtol=0.15, atol=0.1)
    assert not np.array_equal(sampled, every_pair)  # it did sample
    np.testing.assert_array_equal(fit_blend(neural, margins, Y)[0], sampled)  # the same sample each time


def _untrained_transformer(tiny_bert, **params):
    # One epoch at a tiny rate: the network alone learns next to nothing.
    return TransformerMultiLabelClassifier(tiny_bert, max_epochs=1, lr=1e-6, batch_size=16, random_state=0, **params)


def test_lexical_part_carries_a_network_that_has_not_learned(tiny_bert, toy):
    (X, Y), (X_test, Y_test) = toy
    alone = _untrained_transformer(tiny_bert, lexical=None).fit(X, Y)
    blended = _untrained_transformer(tiny_bert).fit(X, Y)
    assert not hasattr(alone, "lexical_")
    a, b, _ = blended.blend_weights_
    assert a >= 0 and b > 0
    assert f1_score(Y_test, blended.predict(X_test), average="micro") > 0.9
    assert f1_score(Y_test, alone.predict(X_test), average="micro") < 0.8
    logits = blended.decision_function(X_test)
    np.testing.assert_allclose(blended.predict_proba(X_test), 1 / (1 + np.exp(-logits)), rtol=1e-5)


def test_blended_model_folder_round_trip(tiny_bert, toy, tmp_path):
    from safetensors.numpy import load_file, save_file

    (X, Y), (X_test, _) = toy
    clf = _untrained_transformer(tiny_bert).fit(X, Y)
    folder = clf.save(tmp_path / "model")
    loaded = load_model(folder)
    assert isinstance(loaded.lexical_, TfidfLinearClassifier)
    np.testing.assert_array_equal(dense(loaded.lexical_.coef_), dense(clf.lexical_.coef_))
    np.testing.assert_allclose(loaded.predict_proba(X_test), clf.predict_proba(X_test), atol=1e-5)
    np.testing.assert_array_equal(loaded.predict(X_test), clf.predict(X_test))
    # a folder saved before the lexical weights were sparse: one dense "coef" array
    weights = folder / "lexical.safetensors"
    save_file(_dense_layout(load_file(str(weights))), str(weights), metadata={"format": "sktext.model"})
    older = load_model(folder)
    np.testing.assert_array_equal(dense(older.lexical_.coef_), dense(clf.lexical_.coef_))
    np.testing.assert_array_equal(older.predict_proba(X_test), loaded.predict_proba(X_test))


def test_lexical_part_is_configurable_and_checked(tiny_bert, toy):
    (X, Y), _ = toy
    clf = _untrained_transformer(tiny_bert, lexical=TfidfLinearClassifier(loss="log_loss", C=4.0))
    clf.fit(X, Y)
    assert clf.lexical_.loss == "log_loss" and clf.lexical_.C == 4.0
    assert clone(clf).get_params()["lexical__C"] == 4.0
    with pytest.raises(ValueError, match="The 'lexical' parameter of TransformerMultiLabelClassifier"):
        _untrained_transformer(tiny_bert, lexical="bm25").fit(X, Y)


def test_no_validation_split_means_no_lexical_part(tiny_bert, toy):
    (X, Y), _ = toy
    clf = _untrained_transformer(tiny_bert, validation_fraction=None, threshold=0.5).fit(X, Y)
    assert not hasattr(clf, "lexical_")


def test_networks_learn_the_toy_task_alone(tiny_bert, toy):
    (X, Y), (X_test, Y_test) = toy
    transformer = TransformerMultiLabelClassifier(
        tiny_bert, max_epochs=10, lr=3e-3, batch_size=16, random_state=0, lexical=None
    ).fit(X, Y)
    assert f1_score(Y_test, transformer.predict(X_test), average="micro") > 0.85
    ulmfit = ulmfit_factory({}, lexical=None).fit(X, Y)
    assert f1_score(Y_test, ulmfit.predict(X_test), average="micro") > 0.6


def test_ulmfit_from_scratch_on_few_texts_says_what_would_help(toy):
    (X, Y), _ = toy
    with pytest.warns(UserWarning, match="no pretrained language model.*unlabeled_texts"):
        ulmfit_factory({}, max_epochs=1).fit(X, Y)


def test_balanced_class_weight_raises_the_margins_of_a_rare_label():
    X, Y = make_toy_data(200, seed=2)
    rare = np.zeros(len(X), int)
    rare[[i for i, text in enumerate(X) if "vim" in text][:4]] = 1
    Y = np.column_stack([Y, rare])
    plain = TfidfLinearClassifier(threshold=0.5, random_state=0).fit(X, Y)
    balanced = TfidfLinearClassifier(threshold=0.5, class_weight="balanced", random_state=0).fit(X, Y)
    positives = rare == 1
    assert balanced.decision_function(X)[positives, -1].mean() > plain.decision_function(X)[positives, -1].mean()


def test_default_lexical_part_is_cost_sensitive_only_below_many_texts(tiny_bert, toy, monkeypatch):
    from sktext import classification

    (X, Y), _ = toy
    assert _untrained_transformer(tiny_bert).fit(X, Y).lexical_.class_weight == "balanced"
    monkeypatch.setattr(classification, "LEXICAL_BALANCED_MAX_TEXTS", len(X))
    assert _untrained_transformer(tiny_bert).fit(X, Y).lexical_.class_weight is None


# -- the lexical part's cost: fitted once, in threads, beside the network on an accelerator --
def _one_process_lexical() -> TfidfLinearClassifier:
    """The default lexical part (at the toy's size), its labels fitted in this process (where a spy sees them)."""
    return TfidfLinearClassifier(class_weight="balanced", random_state=0, n_jobs=1)


def _count_label_fits(monkeypatch) -> list[str]:
    """Spy on the per-label fits in this process: each call appends the name of the thread that ran it."""
    import threading

    from sktext import lexical

    calls: list[str] = []
    real = lexical._fit_label

    def spy(*args, **kwargs):
        calls.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(lexical, "_fit_label", spy)
    return calls


def test_lexical_part_fits_twice_by_default_and_once_without_refit(tiny_bert, toy, monkeypatch):
    (X, Y), (X_test, _) = toy
    calls = _count_label_fits(monkeypatch)
    refit = _untrained_transformer(tiny_bert, lexical=_one_process_lexical()).fit(X, Y)
    assert len(calls) == 2 * Y.shape[1]  # the training part, then all texts
    calls.clear()
    once = _untrained_transformer(tiny_bert, lexical=_one_process_lexical(), lexical_refit=False).fit(X, Y)
    assert len(calls) == Y.shape[1]
    # Same split, same network: the blend is fitted on the same validation margins;
    # only the model that predicts differs (it has not seen the validation texts).
    np.testing.assert_allclose(refit.blend_weights_, once.blend_weights_, rtol=1e-3)
    assert not np.allclose(refit.decision_function(X_test), once.decision_function(X_test))


def test_lexical_part_refits_by_default_only_below_the_size_where_it_pays(tiny_bert, toy, monkeypatch):
    from sktext import classification

    (X, Y), _ = toy
    calls = _count_label_fits(monkeypatch)
    _untrained_transformer(tiny_bert, lexical=_one_process_lexical()).fit(X, Y)
    assert len(calls) == 2 * Y.shape[1]  # 240 texts: the refit pays
    calls.clear()
    monkeypatch.setattr(classification, "LEXICAL_REFIT_MAX_TEXTS", len(X))
    _untrained_transformer(tiny_bert, lexical=_one_process_lexical()).fit(X, Y)
    assert len(calls) == Y.shape[1]


def test_lexical_part_beside_the_network_gives_the_same_model(tiny_bert, toy, monkeypatch):
    (X, Y), (X_test, _) = toy
    after = _untrained_transformer(tiny_bert).fit(X, Y)
    calls = _count_label_fits(monkeypatch)
    monkeypatch.setattr(TransformerMultiLabelClassifier, "_overlap_lexical", lambda self: True)
    beside = _untrained_transformer(tiny_bert, lexical=_one_process_lexical()).fit(X, Y)
    assert calls and all(name.startswith("sktext-lexical") or "ThreadPool" in name for name in calls)
    np.testing.assert_allclose(beside.predict_proba(X_test), after.predict_proba(X_test), atol=1e-6)
    np.testing.assert_array_equal(beside.thresholds_, after.thresholds_)


def test_a_failed_fit_stops_the_lexical_thread(tiny_bert, toy, monkeypatch):
    import threading
    import time

    from skorch.callbacks import Callback

    from sktext import lexical

    class Explode(Callback):
        def on_epoch_end(self, net, **kwargs):
            raise RuntimeError("boom")

    fitted: list[int] = []
    real = lexical._fit_label

    def slow(*args, **kwargs):  # 60 labels of 0.1 s: still under way when the epoch ends
        time.sleep(0.1)
        result = real(*args, **kwargs)
        fitted.append(1)
        return result

    monkeypatch.setattr(lexical, "_fit_label", slow)
    monkeypatch.setattr(TransformerMultiLabelClassifier, "_overlap_lexical", lambda self: True)
    (X, Y), _ = toy
    Y = np.tile(Y, 20)
    clf = _untrained_transformer(tiny_bert, lexical=_one_process_lexical(), callbacks=[Explode()])
    with pytest.raises(RuntimeError, match="boom"):
        clf.fit(X, Y)
    deadline = time.monotonic() + 30
    while any(t.name.startswith("sktext-lexical") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("sktext-lexical") for t in threading.enumerate())
    assert len(fitted) < 2 * Y.shape[1]  # it stopped at a label, not after every fit
    assert not hasattr(clf, "lexical_")


def test_margins_beside_the_network_predict_what_they_predict_in_turn(tiny_bert, toy, monkeypatch):
    import threading

    from scipy.special import expit

    (X, Y), (X_test, _) = toy
    clf = _untrained_transformer(tiny_bert).fit(X, Y)
    margins = clf.lexical_.decision_function(X_test)
    lexical = clf.__dict__.pop("lexical_")
    network = clf.decision_function(X_test)  # the network alone
    clf.lexical_ = lexical
    network[:] = apply_blend(clf.blend_weights_, clf.blend_centre_, network, margins)  # in its float32
    in_turn = expit(network)
    threads: list[str] = []
    real = type(lexical).decision_function

    def recorded(self, texts):
        threads.append(threading.current_thread().name)
        return real(self, texts)

    monkeypatch.setattr(type(lexical), "decision_function", recorded)
    np.testing.assert_array_equal(clf.predict_proba(X_test), in_turn)
    assert threads and threads[0].startswith("sktext-lexical")

    def broken(self, texts):
        raise MemoryError("no room for the margins")

    monkeypatch.setattr(type(clf.lexical_), "decision_function", broken)
    with pytest.raises(MemoryError, match="no room for the margins"):  # not lost in the thread
        clf.predict_proba(X_test)
    assert not any(t.name.startswith("sktext-lexical") for t in threading.enumerate())


def test_tol_reaches_every_label_solver_and_is_checked(toy, monkeypatch):
    from sktext import lexical

    (X, Y), _ = toy
    seen: list[float] = []
    real = lexical.LinearSVC

    def recording(**kwargs):
        seen.append(kwargs["tol"])
        return real(**kwargs)

    monkeypatch.setattr(lexical, "LinearSVC", recording)
    TfidfLinearClassifier(threshold=0.5, tol=0.25, random_state=0).fit(X, Y)
    assert seen and set(seen) == {0.25}
    with pytest.raises(ValueError, match="tol"):
        TfidfLinearClassifier(tol=0).fit(X, Y)


def test_parallel_workers_fit_the_same_linear_models(toy):
    (X, Y), (X_test, _) = toy
    one = TfidfLinearClassifier(class_weight="balanced", random_state=0, n_jobs=1).fit(X, Y)
    two = TfidfLinearClassifier(class_weight="balanced", random_state=0, n_jobs=2).fit(X, Y)
    np.testing.assert_array_equal(dense(two.coef_), dense(one.coef_))
    np.testing.assert_array_equal(two.predict(X_test), one.predict(X_test))


def test_fit_says_where_its_seconds_went(tiny_bert, toy):
    import time

    (X, Y), _ = toy
    start = time.perf_counter()
    clf = _untrained_transformer(tiny_bert).fit(X, Y)
    wall = time.perf_counter() - start
    stages = clf.fit_seconds_
    assert {"encoding", "training", "validation_logits", "lexical", "blend", "thresholds"} <= set(stages)
    assert all(seconds >= 0 for seconds in stages.values())
    assert sum(stages.values()) <= wall
    assert stages["training"] >= sum(row["dur"] for row in clf.history_) * 0.9


def test_verbose_fit_says_what_it_will_cost_before_it_runs(tiny_bert, toy, capsys):
    (X, Y), _ = toy
    TransformerMultiLabelClassifier(tiny_bert, max_epochs=2, batch_size=16, verbose=1, random_state=0).fit(X, Y)
    out = capsys.readouterr().out
    plan = out[: out.index("Training: 2 epochs")]
    assert "fit plan: 240 texts (216 to train on, 24 held out for validation)" in plan
    assert "Tokens per text: median" in plan
    assert "Training: 2 epochs of 14 steps of 16 texts = 28 steps" in out
    assert "Lexical part: a TF-IDF linear model for each of 3 labels, fitted on the training part, then on" in out
    assert "at a time, after the network" in out
    # the estimate comes from timed steps, before the run's first epoch ends
    estimate = out.index("s a step over 5 timed steps; the 21 steps left take about")
    assert estimate < out.index("valid_loss")


def test_quiet_fit_prints_nothing(tiny_bert, toy, capsys):
    (X, Y), _ = toy
    _untrained_transformer(tiny_bert).fit(X, Y)
    assert capsys.readouterr().out == ""


def test_default_lexical_part_goes_parallel_only_when_the_work_pays_for_the_workers(tiny_bert, toy, monkeypatch):
    from sktext import classification
    from sktext.distributed import available_cores

    (X, Y), (X_test, _) = toy
    small = _untrained_transformer(tiny_bert).fit(X, Y)
    assert small.lexical_.n_jobs == 1  # 240 texts x 3 labels: in this process
    monkeypatch.setattr(classification, "LEXICAL_PARALLEL_MIN_PAIRS", 1)
    parallel = _untrained_transformer(tiny_bert).fit(X, Y)
    assert parallel.lexical_.n_jobs == available_cores()
    np.testing.assert_array_equal(dense(parallel.lexical_.coef_), dense(small.lexical_.coef_))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"max_features": 40},
        {"min_df": 0.02, "max_df": 0.5},
        {"min_df": 3, "max_df": 100, "ngram_range": (1, 3)},
    ],
)
def test_terms_counted_once_give_each_subset_the_vectorizer_it_would_fit(toy, params):
    from sktext.terms import TermCounts

    (X, _), (X_test, _) = toy
    model = TfidfLinearClassifier(**params)
    counts = TermCounts.of(model._vectorizer(len(X)), X)
    part = np.random.default_rng(0).choice(len(X), 200, replace=False)
    for rows in (np.sort(part), part, np.arange(len(X))):
        texts = [X[i] for i in rows]
        alone, shared = model._vectorizer(len(texts)), model._vectorizer(len(texts))
        expected, got = alone.fit_transform(texts), counts.rows(rows).fit(shared)
        assert shared.vocabulary_ == alone.vocabulary_
        np.testing.assert_array_equal(shared.idf_, alone.idf_)
        assert got.dtype == expected.dtype and (got != expected).nnz == 0
        assert (shared.transform(X_test) != alone.transform(X_test)).nnz == 0


@pytest.mark.parametrize("threshold", [0.5, "auto"])
def test_a_fit_on_rows_is_the_fit_on_those_texts_and_labels(toy, threshold):
    # How a deep classifier fits its training part's lexical model: on rows of its label
    # matrix read in place, never copied whole.
    (X, Y), (X_test, _) = toy
    rows = np.sort(np.random.default_rng(0).choice(len(X), 180, replace=False))
    weights = np.random.default_rng(1).random(len(X)) + 0.5
    params = dict(class_weight="balanced", random_state=0, threshold=threshold)
    on_rows = TfidfLinearClassifier(**params)._fit(X, Y, weights, rows=rows)
    alone = TfidfLinearClassifier(**params).fit([X[i] for i in rows], Y[rows], sample_weight=weights[rows])
    assert on_rows.vectorizer_.vocabulary_ == alone.vectorizer_.vocabulary_
    np.testing.assert_array_equal(dense(on_rows.coef_), dense(alone.coef_))
    np.testing.assert_array_equal(on_rows.thresholds_, alone.thresholds_)
    np.testing.assert_array_equal(on_rows.decision_function(X_test), alone.decision_function(X_test))


def test_a_large_label_matrix_is_checked_a_block_of_rows_at_a_time(toy, monkeypatch):
    from sktext import validation

    (X, Y), _ = toy
    monkeypatch.setattr(validation, "CHECK_BLOCK_ENTRIES", 16)  # every check in blocks of a few rows
    assert not TfidfLinearClassifier(threshold=0.5).fit(X, Y.astype(np.float32)).soft_targets_
    soft = np.where(Y > 0, 0.9, 0.05).astype(np.float32)
    assert TfidfLinearClassifier(threshold=0.5).fit(X, soft).soft_targets_
    wrong = Y.astype(float)
    wrong[-1, -1] = 2.0
    with pytest.raises(ValueError, match="holding only 0 and 1; found 2"):
        TfidfLinearClassifier(threshold=0.5).fit(X, wrong.astype(int))
    soft[-1, -1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TfidfLinearClassifier(threshold=0.5).fit(X, soft)


def test_deep_classifier_lexical_part_is_the_model_fitted_on_all_texts(tiny_bert, toy):
    (X, Y), (X_test, _) = toy
    clf = _untrained_transformer(tiny_bert, lexical=_one_process_lexical()).fit(X, Y)
    alone = TfidfLinearClassifier(class_weight="balanced", random_state=0, threshold=0.5).fit(X, Y)
    assert clf.lexical_.vectorizer_.vocabulary_ == alone.vectorizer_.vocabulary_
    np.testing.assert_array_equal(dense(clf.lexical_.coef_), dense(alone.coef_))
    np.testing.assert_array_equal(clf.lexical_.decision_function(X_test), alone.decision_function(X_test))


@pytest.mark.parametrize("monitor", ["valid_loss", "valid_f1"])
def test_lexical_part_of_texts_without_words_is_left_out_with_a_warning(tiny_bert, toy, monitor):
    (_, Y), _ = toy
    texts = ["!!! ???"] * len(Y)
    with pytest.warns(UserWarning, match="lexical part is left out.*no words"):
        clf = _untrained_transformer(tiny_bert, monitor=monitor).fit(texts, Y)
    assert getattr(clf, "lexical_", None) is None


@pytest.mark.parametrize("monitor", ["valid_loss", "valid_f1"])
def test_fit_leaves_the_callers_label_matrix_as_it_was(tiny_bert, toy, monitor):
    # The fit reads a float32 y in place (no copy of the whole matrix): it must write nothing into it.
    (X, Y), _ = toy
    y = np.asarray(Y, dtype=np.float32)
    before = y.copy()
    _untrained_transformer(tiny_bert, monitor=monitor, patience=1).fit(X, y)
    np.testing.assert_array_equal(y, before)
