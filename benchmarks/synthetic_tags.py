"""Synthetic tag data with a long Zipf tail: thousands to a hundred thousand labels, fast.

What a text classifier faces with many labels is a handful of frequent tags and a long
tail of tags with a few examples each. :func:`zipf_tags` makes such data, deterministic
from a seed, for measuring how a classifier's cost grows with the number of labels
(``many_labels.py``):

- label ``j`` (0-based) is drawn with probability proportional to ``1 / (j + 1) **
  exponent`` (exponent 1 by default), so column 0 is the most frequent label and most
  labels have few positives (at 20,000 labels and 20,000 texts, most have none or one);
- each text has 1 to 10 labels (``1 + Poisson(mean_labels - 1)``, clipped; duplicates
  drawn for the same text merge, so the mean is a little below ``mean_labels``);
- each label owns a few *signature words*, made-up word forms (three syllables, e.g.
  ``"brouzatri"``) drawn from a pool about 2.5 times the number of labels, so that some
  words are shared by several labels; a text of the label carries 1 to 3 of them, except
  with probability ``label_dropout`` (the label is then invisible in the text);
- every text also carries a signature word of a random label it does not have (noise,
  ``noise_words`` per text on average) and is filled up to 30-80 words with common words
  (a few real English ones and made-up two-syllable forms, Zipf-frequent), in random order.

So a lexical model and an encoder can learn the labels, but not perfectly. Everything
is vectorised numpy and sparse: 20,000 texts of 100,000 labels take a few seconds.

The texts' lengths, their numbers of labels drawn and of noise words, and their filler
words come from random streams that do not depend on ``n_labels``: the same seed gives
texts of the same lengths (in words) at any number of labels, so fits at 1,000 and 20,000
labels see texts of the same cost.

Examples
--------
::

    from synthetic_tags import train_test, zipf_tags

    texts, Y = zipf_tags(20_000, 5_000, seed=0)   # Y: CSR of shape (20000, 5000)
    (train_texts, train_Y), (test_texts, test_Y) = train_test(20_000, 5_000, 1_000)

    python benchmarks/synthetic_tags.py --texts 20000 --labels 100000   # statistics
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp

#: Syllables of the made-up words: onset + vowel.
_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z")
_ONSETS += ("br", "cr", "dr", "fr", "gr", "pl", "tr", "st")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ea")
_SYLLABLES = np.array([onset + vowel for onset in _ONSETS for vowel in _VOWELS])

#: Real English words among the fillers (the most frequent ones).
_COMMON_WORDS = (
    "the a of and to in for with on is by from that this it as an be are or at which "
    "can use your you its into more all new not one also based small simple fast tool "
    "library support data file files used using module provides system"
).split()

# Stream numbers: what does not depend on n_labels is drawn from streams of its own.
_STREAM_LENGTHS, _STREAM_COUNTS, _STREAM_FILLERS, _STREAM_LABELS, _STREAM_WORDS, _STREAM_ORDER = range(6)


def made_up_words(indices: np.ndarray, n_syllables: int) -> np.ndarray:
    """The made-up word of each index: its digits in base ``len(_SYLLABLES)``, as syllables.

    Parameters
    ----------
    indices : ndarray of int
        Distinct indices give distinct words (below ``len(_SYLLABLES) ** n_syllables``).
    n_syllables : int

    Returns
    -------
    words : ndarray of str, the shape of ``indices``
    """
    base = len(_SYLLABLES)
    indices = np.asarray(indices, dtype=np.int64)
    words = _SYLLABLES[indices % base]
    for _ in range(n_syllables - 1):
        indices = indices // base
        words = np.char.add(_SYLLABLES[indices % base], words)
    return words


def _draw_zipf(rng: np.random.Generator, n_labels: int, size: int, exponent: float) -> np.ndarray:
    """``size`` labels drawn with probability proportional to ``1 / (j + 1) ** exponent``."""
    weights = 1.0 / np.arange(1, n_labels + 1, dtype=np.float64) ** exponent
    cumulative = np.cumsum(weights)
    return np.searchsorted(cumulative, rng.random(size) * cumulative[-1], side="right").clip(0, n_labels - 1)


def zipf_tags(
    n_texts: int,
    n_labels: int,
    *,
    seed: int = 0,
    exponent: float = 1.0,
    mean_labels: float = 3.5,
    max_labels: int = 10,
    signature_words: int = 3,
    label_dropout: float = 0.1,
    noise_words: float = 1.0,
    min_words: int = 30,
    max_words: int = 80,
    n_fillers: int = 3000,
) -> tuple[list[str], sp.csr_matrix]:
    """Texts and their tags: Zipf label popularity, signature words in common filler.

    See the module docstring for the model of the data.

    Parameters
    ----------
    n_texts : int
    n_labels : int
    seed : int, default=0
    exponent : float, default=1.0
        Zipf exponent of the label popularity (larger: a steeper head, a thinner tail).
    mean_labels : float, default=3.5
        Mean number of labels drawn per text (before duplicates merge).
    max_labels : int, default=10
        Labels per text are clipped to ``[1, max_labels]``.
    signature_words : int, default=3
        Signature words per label.
    label_dropout : float, default=0.1
        Chance that a label of a text leaves no signature word in it.
    noise_words : float, default=1.0
        Mean number of signature words of labels the text does not have (Poisson).
    min_words, max_words : int, default=30, 80
        Text length in words, uniform (longer where a text's signature words need it).
    n_fillers : int, default=3000
        Size of the filler vocabulary (real common words first, then made-up ones).

    Returns
    -------
    texts : list of str of length n_texts
    Y : scipy.sparse.csr_matrix of shape (n_texts, n_labels), dtype=int64
        0/1 indicators (``MultiLabelBinarizer(sparse_output=True)``'s form), sorted indices.
    """
    if n_texts < 1 or n_labels < 1:
        raise ValueError(f"n_texts and n_labels must be positive; got {n_texts} and {n_labels}.")

    def stream(number: int) -> np.random.Generator:
        return np.random.default_rng([seed, number])

    # Texts: lengths and label counts, independent of n_labels.
    lengths = stream(_STREAM_LENGTHS).integers(min_words, max_words + 1, size=n_texts)
    counts = np.clip(1 + stream(_STREAM_COUNTS).poisson(mean_labels - 1, size=n_texts), 1, max_labels)

    # Labels: Zipf draws, duplicates within a text merged.
    label_rng = stream(_STREAM_LABELS)
    rows = np.repeat(np.arange(n_texts), counts)
    labels = _draw_zipf(label_rng, n_labels, len(rows), exponent)
    Y = sp.csr_matrix((np.ones(len(rows), dtype=np.int64), (rows, labels)), shape=(n_texts, n_labels))
    Y.sum_duplicates()
    Y.data[:] = 1
    Y.sort_indices()

    # Each label's signature words: indices into a shared pool of made-up words.
    word_rng = stream(_STREAM_WORDS)
    pool_size = max(int(2.5 * n_labels), signature_words)
    signatures = word_rng.integers(0, pool_size, size=(n_labels, signature_words))
    pool_codes = word_rng.choice(len(_SYLLABLES) ** 3, size=pool_size, replace=False)

    # Signature tokens of each (text, label) pair: 0 with label_dropout, else 1 to 3.
    pair_rows = np.repeat(np.arange(n_texts), np.diff(Y.indptr))
    per_pair = word_rng.integers(1, 4, size=Y.nnz) * (word_rng.random(Y.nnz) >= label_dropout)
    token_rows = np.repeat(pair_rows, per_pair)
    token_labels = np.repeat(Y.indices, per_pair)
    signature_tokens = signatures[token_labels, word_rng.integers(0, signature_words, size=len(token_labels))]

    # Noise: signature words of random labels (not removed where the text has the label: rare).
    noise_rng = stream(_STREAM_FILLERS)
    n_noise = noise_rng.poisson(noise_words, size=n_texts)
    noise_rows = np.repeat(np.arange(n_texts), n_noise)
    noise_labels = word_rng.integers(0, n_labels, size=len(noise_rows))
    noise_tokens = signatures[noise_labels, word_rng.integers(0, signature_words, size=len(noise_rows))]

    # Fillers up to each text's length (Zipf-frequent over the filler vocabulary).
    n_signature = np.bincount(token_rows, minlength=n_texts) + n_noise
    n_filler = np.maximum(lengths - n_signature, 0)
    drawn = _draw_zipf(noise_rng, n_fillers, int(lengths.sum()), 1.0)  # as many as the text is long
    position = np.arange(len(drawn)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    used = position < np.repeat(n_filler, lengths)
    filler_rows, filler_tokens = np.repeat(np.arange(n_texts), lengths)[used], drawn[used]
    fillers = np.concatenate(
        [np.array(_COMMON_WORDS), made_up_words(np.arange(n_fillers), 2)[: max(n_fillers - len(_COMMON_WORDS), 0)]]
    )[:n_fillers]

    # One vocabulary: fillers first, then the pool (three syllables: never a filler).
    vocabulary = np.concatenate([fillers, made_up_words(pool_codes, 3)]).astype(object)
    token_ids = np.concatenate([signature_tokens + n_fillers, noise_tokens + n_fillers, filler_tokens])
    token_text = np.concatenate([token_rows, noise_rows, filler_rows])
    order = np.lexsort((stream(_STREAM_ORDER).random(len(token_ids)), token_text))
    words = vocabulary[token_ids[order]]
    bounds = np.cumsum(np.bincount(token_text, minlength=n_texts))[:-1]
    texts = [" ".join(text_words) for text_words in np.split(words, bounds)]
    return texts, Y


def train_test(
    n_train: int, n_test: int, n_labels: int, *, seed: int = 0, **options
) -> tuple[tuple[list[str], sp.csr_matrix], tuple[list[str], sp.csr_matrix]]:
    """A train and a test split of one :func:`zipf_tags` draw (same labels, same signature words).

    Parameters
    ----------
    n_train, n_test, n_labels : int
    seed : int, default=0
    **options
        Passed to :func:`zipf_tags`.

    Returns
    -------
    (train_texts, train_Y), (test_texts, test_Y)
    """
    texts, Y = zipf_tags(n_train + n_test, n_labels, seed=seed, **options)
    return (texts[:n_train], Y[:n_train]), (texts[n_train:], Y[n_train:])


def describe(texts: list[str], Y: sp.csr_matrix) -> dict[str, float]:
    """Counts that tell what a draw looks like (labels per text, positives per label, words)."""
    per_text = np.diff(Y.indptr)
    per_label = np.bincount(Y.indices, minlength=Y.shape[1])
    words = np.array([text.count(" ") + 1 for text in texts])
    return {
        "texts": len(texts),
        "labels": Y.shape[1],
        "labels_per_text_mean": float(per_text.mean()),
        "labels_per_text_max": int(per_text.max()),
        "labels_with_positives": int((per_label > 0).sum()),
        "labels_with_under_5_positives": int(((per_label > 0) & (per_label < 5)).sum()),
        "positives_of_top_label": int(per_label.max()),
        "positives_per_label_median_of_present": float(np.median(per_label[per_label > 0])),
        "words_per_text_mean": float(words.mean()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--labels", type=int, nargs="+", default=[1_000, 20_000, 100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=2, help="print this many texts of each draw")
    args = parser.parse_args(argv)
    for n_labels in args.labels:
        start = time.perf_counter()
        texts, Y = zipf_tags(args.texts, n_labels, seed=args.seed)
        seconds = time.perf_counter() - start
        print(f"{n_labels} labels: {seconds:.2f} s", describe(texts, Y))
        for row in range(args.show):
            print(f"  {Y.indices[Y.indptr[row] : Y.indptr[row + 1]].tolist()}: {texts[row][:160]}...")


if __name__ == "__main__":
    main()
