"""The linear baseline sktext is measured against: TF-IDF + one-vs-rest logistic regression."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer


def _sorted_indices(X):
    """The sparse matrix with sorted column indices (a sorted copy only if needed)."""
    if X.has_sorted_indices:
        return X
    X = X.copy()
    X.sort_indices()
    return X


def tfidf_logistic_regression(*, C: float = 8.0, n_jobs: int | None = None) -> Pipeline:
    """TF-IDF (word 1-2 grams, sublinear tf, min_df=2) + one-vs-rest logistic regression.

    Parameters
    ----------
    C : float, default=8.0
        Inverse regularization strength of every per-label LogisticRegression.
    n_jobs : int, default=None
        Labels fitted in parallel by OneVsRestClassifier. joblib hands large
        matrices to the workers as read-only memory maps, and liblinear sorts a
        matrix's indices in place, so the pipeline sorts them first (TfidfVectorizer
        leaves them unsorted; fitting crashed with "WRITEBACKIFCOPY base is read-only").

    Returns
    -------
    pipeline : Pipeline
        Unfitted; ``fit(texts, Y)`` then ``predict`` / ``predict_proba(texts)``.
    """
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2),
        sublinear_tf=True,
        min_df=2,
        max_df=0.9,
        strip_accents="unicode",
        dtype=np.float32,
    )
    classifier = OneVsRestClassifier(LogisticRegression(C=C, solver="liblinear", max_iter=1000), n_jobs=n_jobs)
    return make_pipeline(vectorizer, FunctionTransformer(_sorted_indices, accept_sparse=True), classifier)
