"""The classifiers' stratified validation split: iterative-stratification's, at any label count."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

from sktext.splits import stratified_shuffle_split


def _library_split(Y, fraction, seed):
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    return next(splitter.split(np.zeros(len(Y)), Y))


@pytest.mark.parametrize("seed", range(6))
def test_the_split_is_iterative_stratifications_row_for_row(seed):
    rng = np.random.default_rng(seed)
    n, n_labels = int(rng.integers(20, 400)), int(rng.integers(2, 40))
    Y = rng.random((n, n_labels)) < rng.uniform(0.0, 0.3, n_labels)  # rare and empty labels too
    Y[: n // 10] = False  # rows without a label
    Y[n // 10 : n // 5] = Y[n // 5 : n // 5 + (n // 5 - n // 10)]  # repeated rows: ties
    fraction = float(rng.choice([0.1, 0.2, 0.25, 0.5]))
    train, valid = stratified_shuffle_split(Y.astype(np.float32), fraction, seed)
    expected_train, expected_valid = _library_split(Y, fraction, seed)
    np.testing.assert_array_equal(train, expected_train)
    np.testing.assert_array_equal(valid, expected_valid)
    sparse_train, sparse_valid = stratified_shuffle_split(sp.csr_matrix(Y), fraction, seed)
    np.testing.assert_array_equal(sparse_valid, expected_valid)
    np.testing.assert_array_equal(sparse_train, expected_train)


def test_the_split_keeps_rare_labels_on_both_sides_at_thousands_of_labels():
    rng = np.random.default_rng(0)
    n, n_labels = 3_000, 5_000
    rows = np.repeat(np.arange(n), 3)
    Y = sp.csr_matrix((np.ones(len(rows)), (rows, rng.zipf(1.3, len(rows)) % n_labels)), shape=(n, n_labels))
    train, valid = stratified_shuffle_split(Y, 0.1, 0)
    np.testing.assert_array_equal(np.sort(np.r_[train, valid]), np.arange(n))  # every row once
    assert 200 <= len(valid) <= 300  # labels of one positive all go to training: fewer than a tenth
    counts = np.asarray((Y > 0).sum(axis=0)).ravel()
    held_out = np.asarray((Y[valid] > 0).sum(axis=0)).ravel()
    twice = counts >= 10  # labels with ten or more positives keep about a tenth of them in validation
    assert np.all(np.abs(held_out[twice] - 0.1 * counts[twice]) <= 1)
