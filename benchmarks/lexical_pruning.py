"""The lexical part's weight pruning (``TfidfLinearClassifier(min_weight=...)``), on dev splits of train.

How much of ``coef_`` each ``min_weight`` leaves out, and what that does to the
margins' cost and to quality. One lexical model per data set is fitted with
``min_weight=0`` (every weight but float32's crumbs; the ``class_weight`` the deep
classifier's default picks at that size: ``"balanced"`` below 10,000 texts), then each
level is applied to its ``coef_`` after the fit, thresholds kept (a fit with
``min_weight`` prunes before it tunes them, so this is a little pessimistic). Scored
on a dev split held out of the **train** texts (never a test split):

- ``kept``: the share of the weights left; ``coef_mb``: their CSR bytes;
- ``margins_s``: the margins of the dev texts (the sparse product, median of 3);
- micro- / macro-F1 of the thresholded predictions, precision@1, and ``changed``, the
  share of (text, label) decisions that differ from ``min_weight=0``'s.

Data sets (``--data``): ``debtags`` at ``--sizes`` train texts (``all``: train minus
dev) with 4,000 dev texts; ``npm`` (``benchmarks/data/npm_tags``, 20 % of train held
out); ``synthetic`` (:func:`synthetic_tags.zipf_tags`, 8,000 texts of 20,000 labels and
2,000 dev texts).

Example (about 12 minutes on 2 cores)::

    python benchmarks/lexical_pruning.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_data_arguments, format_table, load_debtags, machine_info, write_results  # noqa: E402

LEVELS = (0.0, 1e-3, 3e-3, 1e-2, 3e-2)
COLUMNS = [
    "data",
    "n_train",
    "n_labels",
    "min_weight",
    "kept",
    "coef_mb",
    "margins_s",
    "micro_f1",
    "macro_f1",
    "p_at_1",
    "changed",
]


def _data_sets(args) -> list[tuple[str, list[str], sp.csr_matrix, list[str], sp.csr_matrix]]:
    """``(name, train texts, train Y, dev texts, dev Y)`` of each data set asked for."""
    sets = []
    if "debtags" in args.data:
        data = load_debtags(args.data_dir)
        order = np.random.default_rng(0).permutation(len(data.train_texts))
        dev, rest = order[:4000], order[4000:]
        for size in args.sizes:
            rows = rest if size == "all" else np.random.default_rng(10).choice(rest, int(size), replace=False)
            sets.append(
                (
                    "debtags",
                    [data.train_texts[i] for i in rows],
                    sp.csr_matrix(data.train_Y[rows]),
                    [data.train_texts[i] for i in dev],
                    sp.csr_matrix(data.train_Y[dev]),
                )
            )
    if "npm" in args.data:
        from many_labels import load_npm

        (texts, Y), _ = load_npm(None)
        order = np.random.default_rng(0).permutation(len(texts))
        dev, rest = order[: len(texts) // 5], order[len(texts) // 5 :]
        sets.append(("npm", [texts[i] for i in rest], Y[rest], [texts[i] for i in dev], Y[dev]))
    if "synthetic" in args.data:
        from synthetic_tags import zipf_tags

        texts, Y = zipf_tags(10_000, 20_000, seed=0)
        Y = sp.csr_matrix(Y)
        sets.append(("synthetic", texts[:8000], Y[:8000], texts[8000:], Y[8000:]))
    return sets


def measure(name: str, train_texts, train_Y, dev_texts, dev_Y) -> list[dict]:
    from scipy.special import expit
    from sklearn.metrics import f1_score

    from sktext.lexical import TfidfLinearClassifier, _margins

    class_weight = "balanced" if len(train_texts) < 10_000 else None
    start = time.perf_counter()
    model = TfidfLinearClassifier(min_weight=0, class_weight=class_weight, random_state=0, n_jobs=-1)
    model.fit(train_texts, train_Y)
    print(
        f"{name}: {len(train_texts)} texts, {train_Y.shape[1]} labels, fit {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    features = model.vectorizer_.transform(dev_texts)
    truth = dev_Y.toarray()
    full = sp.csr_matrix(model.coef_)
    reference, rows = None, []
    for level in LEVELS:
        coef = full.copy()
        coef.data[np.abs(coef.data) < level] = 0
        coef.eliminate_zeros()
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            margins = _margins(features, coef, model.intercept_)
            seconds.append(time.perf_counter() - start)
        predicted = expit(margins) >= model.thresholds_
        reference = predicted if reference is None else reference
        best = margins.argmax(axis=1)
        rows.append(
            {
                "data": name,
                "n_train": len(train_texts),
                "n_labels": int(train_Y.shape[1]),
                "min_weight": level,
                "kept": coef.nnz / max(full.nnz, 1),
                "coef_mb": (coef.data.nbytes + coef.indices.nbytes + coef.indptr.nbytes) / 1e6,
                "margins_s": statistics.median(seconds),
                "micro_f1": f1_score(truth, predicted, average="micro", zero_division=0),
                "macro_f1": f1_score(truth, predicted, average="macro", zero_division=0),
                "p_at_1": float(truth[np.arange(len(best)), best].mean()),
                "changed": float(np.mean(predicted != reference)),
            }
        )
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, subsets=False)
    parser.add_argument(
        "--data", nargs="+", default=["debtags", "npm", "synthetic"], choices=["debtags", "npm", "synthetic"]
    )
    parser.add_argument(
        "--sizes", nargs="+", default=["1000", "3000", "all"], help="debtags train sizes ('all': train minus dev)"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    rows = []
    for data_set in _data_sets(args):
        rows += measure(*data_set)
    print(format_table(rows, COLUMNS))
    payload = {"benchmark": "lexical_pruning", "machine": machine_info("cpu"), "config": vars(args), "rows": rows}
    write_results("lexical_pruning", payload, args.out)
    return payload


if __name__ == "__main__":
    main()
