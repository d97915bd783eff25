"""Truncation from the data (``max_length="auto"``): fit time and dev F1 against fixed lengths.

Issue 20 asks whether the fine-tuned default should take its ``max_length`` from the
training texts' token lengths instead of a fixed 256: short texts waste no work at 256
(batches are padded to their own longest text, not to ``max_length``), but long texts
are cut there. ``max_length="auto"`` keeps the length that 95 % of the training texts
fit in (rounded up to a multiple of 32, at most 512 and the encoder's limit).

Two kinds of text, both from debtags train only (the dev texts hold out whole source
packages, as the test split does; never the test split):

- ``short``: the descriptions as they are (about 66 words, 100 tokens);
- ``long``: ``--join`` consecutive descriptions joined into one text, their tags united
  (about 330 words, 450 tokens at 5), on the training side and on the dev side
  separately.

Each arm is the default ``TransformerMultiLabelClassifier()`` with one ``max_length``
(``--lengths``); the table gives the length used, the fit's seconds and where they went,
the epochs and dev micro / macro F1, and the difference to the first length of the same
kind, size and seed.

Examples
--------
::

    python benchmarks/max_length.py                                     # short 1,000 and long 400 texts
    python benchmarks/max_length.py --kinds long --sizes 400 --lengths 256 auto --seeds 0 1
    python benchmarks/max_length.py --kinds short long --sizes 60 --n-dev 300 --lengths 64 auto   # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    format_table,
    grouped_dev_split,
    load_debtags,
    machine_info,
    scores,
    subsample,
    write_results,
)


def _length(value: str) -> int | str:
    return value if value == "auto" else int(value)


def joined(texts: list[str], Y: np.ndarray, size: int) -> tuple[list[str], np.ndarray]:
    """Consecutive runs of ``size`` texts joined by newlines, their label rows united."""
    n = len(texts) // size
    long_texts = ["\n".join(texts[i * size : (i + 1) * size]) for i in range(n)]
    long_Y = np.asarray(Y[: n * size]).reshape(n, size, -1).max(axis=1)
    return long_texts, long_Y


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--kinds", nargs="+", default=["short", "long"], choices=["short", "long"])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="default: 1000 short, 400 long")
    parser.add_argument("--lengths", type=_length, nargs="+", default=[256, "auto"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--n-dev", type=int, default=2000, help="descriptions held out (joined for long)")
    parser.add_argument("--join", type=int, default=5, help="descriptions per long text")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from sktext import TransformerMultiLabelClassifier

    data = load_debtags(args.data_dir)
    (pool_texts, pool_Y), (dev_texts, dev_Y) = grouped_dev_split(data, args.n_dev)
    sets = {"short": ((pool_texts, pool_Y), (dev_texts, dev_Y))}
    if "long" in args.kinds:
        sets["long"] = (joined(pool_texts, pool_Y, args.join), joined(dev_texts, dev_Y, args.join))
    rows = []
    for kind in args.kinds:
        (texts_all, Y_all), (dev_x, dev_y) = sets[kind]
        sizes = args.sizes or [1000 if kind == "short" else 400]
        for size in sizes:
            for seed in args.seeds:
                texts, Y = subsample(texts_all, Y_all, size, random_state=seed)
                words = float(np.mean([len(text.split()) for text in texts]))
                for length in args.lengths:
                    clf = TransformerMultiLabelClassifier(max_length=length, random_state=seed)
                    load_before = os.getloadavg()[0]
                    start = time.perf_counter()
                    clf.fit(texts, Y)
                    fit_s = time.perf_counter() - start
                    tokens = clf._encode(texts).lengths
                    metrics = scores(dev_y, clf.predict(dev_x), clf.predict_proba(dev_x))
                    epochs = len(clf.history_)
                    rows.append(
                        {
                            "kind": kind,
                            "n_train": size,
                            "seed": seed,
                            "max_length": length,
                            "max_length_": clf.max_length_,
                            "words": words,
                            "tokens_kept": float(tokens.mean()),
                            "cut_share": float((tokens >= clf.max_length_).mean()),
                            "fit_s": fit_s,
                            "epochs": epochs,
                            "epoch_s": clf.fit_seconds_["training"] / max(epochs, 1),
                            "fit_seconds_": dict(clf.fit_seconds_),
                            "micro_f1": metrics["micro_f1"],
                            "macro_f1": metrics["macro_f1"],
                            "load_before": load_before,
                            "load_after": os.getloadavg()[0],
                        }
                    )
                    row = rows[-1]
                    print(
                        f"  {kind} {size} texts, seed {seed}, max_length={length} ({clf.max_length_}): fit "
                        f"{fit_s:.1f} s ({epochs} epochs, {row['epoch_s']:.1f} s each), micro "
                        f"{row['micro_f1']:.4f} macro {row['macro_f1']:.4f}, load {load_before:.1f} -> "
                        f"{row['load_after']:.1f}",
                        flush=True,
                    )
    for row in rows:
        reference = next(
            other
            for other in rows
            if (other["kind"], other["n_train"], other["seed"]) == (row["kind"], row["n_train"], row["seed"])
        )
        row["fit_s_ratio"] = row["fit_s"] / reference["fit_s"]
        for column in ("micro_f1", "macro_f1"):
            row[f"d_{column}"] = row[column] - reference[column]
    columns = [
        "kind",
        "n_train",
        "seed",
        "max_length",
        "max_length_",
        "words",
        "tokens_kept",
        "cut_share",
        "fit_s",
        "fit_s_ratio",
        "epochs",
        "epoch_s",
        "micro_f1",
        "d_micro_f1",
        "macro_f1",
        "d_macro_f1",
    ]
    print(f"\nDefault model; dev F1 on debtags train texts held out by source package ({args.n_dev} descriptions)")
    print(format_table(rows, columns))
    payload = {"benchmark": "max_length", "machine": machine_info("cpu"), "config": vars(args), "rows": rows}
    path = write_results("max_length_dev", payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
