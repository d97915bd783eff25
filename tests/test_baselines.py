"""The TF-IDF + logistic regression baseline that the demo and benchmarks compare against."""

import numpy as np

from sktext.baselines import tfidf_logistic_regression

from conftest import make_toy_data


def test_baseline_hands_liblinear_sorted_indices_and_learns_the_toy_topics():
    # liblinear sorts unsorted indices in place, which fails on the read-only memory
    # maps joblib gives its workers when n_jobs > 1; TfidfVectorizer leaves them unsorted.
    X, Y = make_toy_data(200, seed=0)
    model = tfidf_logistic_regression(n_jobs=1).fit(X, Y)
    features = model[:-1].transform(X)
    assert features.has_sorted_indices
    X_test, Y_test = make_toy_data(100, seed=1)
    assert (model.predict(X_test) == Y_test).mean() > 0.9


def test_baseline_fits_read_only_sparse_input():
    # What a joblib worker receives: a matrix whose buffers cannot be written.
    X, Y = make_toy_data(200, seed=0)
    model = tfidf_logistic_regression(n_jobs=1)
    vectorize, sort, classifier = model.steps[0][1], model.steps[1][1], model.steps[2][1]
    features = vectorize.fit_transform(X)
    features.has_sorted_indices = False  # as TfidfVectorizer leaves them on real data
    for array in (features.data, features.indices, features.indptr):
        array.setflags(write=False)
    classifier.fit(sort.fit_transform(features), Y)
    assert np.isfinite(classifier.predict_proba(sort.transform(features))).all()


def test_tuned_baselines_are_the_two_linear_models_with_tuned_thresholds():
    from sktext.baselines import tuned_linear_baselines

    X, Y = make_toy_data(200, seed=0)
    X_test, Y_test = make_toy_data(100, seed=1)
    baselines = tuned_linear_baselines()
    assert sorted(baselines) == ["TF-IDF + LR", "TF-IDF + LinearSVC"]
    assert {b.loss for b in baselines.values()} == {"log_loss", "squared_hinge"}
    for baseline in baselines.values():
        baseline.fit(X, Y)
        assert baseline.thresholds_.shape == (3,)
        assert (baseline.predict(X_test) == Y_test).mean() > 0.9
