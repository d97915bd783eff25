"""Counting word n-grams: the fast transform gives scikit-learn's TF-IDF matrix exactly."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

import sktext.terms
from sktext.terms import TermIndex, tfidf_transform

WORDS = [
    "the", "of", "and", "gtk", "GTK", "perl", "Perl", "python", "library", "tool", "for",
    "Café", "naïve", "über", "résumé", "x", "a", "io", "3d", "2", "data-set", "C++",
    "network", "client", "server", "daemon", "x11", "Qt5", "qt5", "éditeur", "日本語",
]  # fmt: skip


def corpus(n: int, seed: int) -> list[str]:
    """Texts of common, accented, capitalised, one-letter and repeated words; a few empty or unknown."""
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        words = list(rng.choice(WORDS, rng.integers(0, 25)))
        if i % 7 == 0:
            words += words[:4]  # n-grams repeated within a text
        if i % 11 == 0:
            words.append(f"unseen{i}")
        texts.append(" ".join(words) + (", punctuation!" if i % 5 == 0 else ""))
    return texts


def assert_same_matrix(got, expected):
    assert type(got) is type(expected) and got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got.indptr, expected.indptr)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.data, expected.data)  # bit for bit


@pytest.fixture
def index_at_once(monkeypatch):
    """Every transform uses the index, from the first call on."""
    monkeypatch.setattr(sktext.terms, "TERM_INDEX_AFTER_TEXTS", 0)


@pytest.mark.parametrize(
    "params",
    [
        {"ngram_range": (1, 2), "sublinear_tf": True, "strip_accents": "unicode", "dtype": np.float32},
        {"ngram_range": (1, 1)},
        {"ngram_range": (1, 3), "min_df": 2},
        {"ngram_range": (2, 3)},
        # unigrams cut by max_df while bigrams holding them stay
        {"ngram_range": (1, 2), "max_df": 0.3, "min_df": 2},
        {"ngram_range": (1, 2), "max_features": 50},
        {"ngram_range": (1, 2), "stop_words": "english", "lowercase": False},
        {"ngram_range": (1, 2), "norm": None, "use_idf": False},
        {"ngram_range": (1, 2), "strip_accents": "ascii", "smooth_idf": False, "norm": "l1"},
    ],
)
def test_the_index_gives_the_vectorizers_matrix_bit_for_bit(params, index_at_once):
    vectorizer = TfidfVectorizer(**params).fit(corpus(300, seed=0))
    for texts in (corpus(200, seed=1), ["", "   ", "unseen words only", "x a 2"], corpus(1, seed=2)):
        assert_same_matrix(tfidf_transform(vectorizer, texts), vectorizer.transform(texts))


def test_the_index_is_built_after_enough_texts_and_then_used(monkeypatch):
    monkeypatch.setattr(sktext.terms, "TERM_INDEX_AFTER_TEXTS", 250)
    built = []
    monkeypatch.setattr(sktext.terms, "TermIndex", lambda vocabulary: built.append(1) or TermIndex(vocabulary))
    vectorizer = TfidfVectorizer(ngram_range=(1, 2)).fit(corpus(300, seed=0))
    texts = corpus(100, seed=1)
    for call in range(4):
        assert_same_matrix(tfidf_transform(vectorizer, texts), vectorizer.transform(texts))
        assert len(built) == (call >= 2)  # 100, 200 texts: scikit-learn's; from 300 on, one index
    # fitted again: the index of the old vocabulary is never used, and the new one is
    # built once the refitted vectorizer has seen enough texts of its own
    vectorizer.fit(corpus(300, seed=5)[::-1] + ["brand new words"])
    for call in range(3):
        assert_same_matrix(tfidf_transform(vectorizer, texts), vectorizer.transform(texts))
        assert len(built) == 1 + (call >= 2)


def test_the_index_after_a_refit_counts_the_new_vocabulary(index_at_once):
    vectorizer = TfidfVectorizer(ngram_range=(1, 2)).fit(corpus(300, seed=0))
    texts = corpus(50, seed=1) + ["brand new words"]
    tfidf_transform(vectorizer, texts)
    vectorizer.fit(["brand new words here", "and brand new ones"])
    assert_same_matrix(tfidf_transform(vectorizer, texts), vectorizer.transform(texts))


@pytest.mark.parametrize(
    "params",
    [
        {"analyzer": "char_wb", "ngram_range": (2, 4)},
        {"token_pattern": r"\S+"},
        {"tokenizer": str.split, "token_pattern": None},
    ],
)
def test_other_analyses_are_left_to_scikit_learn(params, index_at_once):
    vectorizer = TfidfVectorizer(**params).fit(corpus(100, seed=0))
    texts = corpus(40, seed=1)
    assert_same_matrix(tfidf_transform(vectorizer, texts), vectorizer.transform(texts))


def test_threads_transforming_at_once_while_the_index_is_built_get_the_same_matrix(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(sktext.terms, "TERM_INDEX_AFTER_TEXTS", 100)
    vectorizer = TfidfVectorizer(ngram_range=(1, 3)).fit(corpus(300, seed=0))
    batches = [corpus(60, seed=seed) for seed in range(12)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda texts: tfidf_transform(vectorizer, texts), batches))
    for texts, got in zip(batches, results):
        assert_same_matrix(got, vectorizer.transform(texts))
