"""Partial fine-tuning (``trainable_layers``): fit time and F1 on a dev split of debtags train (never the test split).

The default classifier (all-MiniLM-L6-v2, 6 layers, ``max_length=256``,
``max_epochs="auto"``) trains its top two layers (``trainable_layers="auto"``). With
``trainable_layers=t`` only the top ``t`` layers and the head train; the embeddings and
the lower ``6 - t`` layers are frozen and run once per text per fit (their states
cached), so later epochs cost the top layers alone. This benchmark fits the default at
each ``--layers`` value ("all" is None: every layer, with ``lr=1e-4`` and
``patience=3``, the defaults of full fine-tuning; ``--params`` applies to every arm)
and reports the fit's wall time, where it went (``fit_seconds_``), the epochs run and
the seconds per epoch, dev micro / macro F1, and each time as a ratio to the all-layers
fit of the same size and seed. The load average of the machine before and after each
fit is recorded beside it: on shared cores, timings move with the neighbours' work.

The dev texts are a fixed ``--n-dev``-text stratified part of debtags train
(``--grouped-dev``: whole source packages held out, as the test split is made); each
size draws its training texts from the rest.

``--validation-groups`` is an experiment on the fit itself: the validation part the fit
holds out (for early stopping, the blend and the thresholds) then holds out whole source
packages too, stratified over packages, so that it is as new to the network as the dev
texts are. sktext's fit has no such option: the benchmark replaces the split's draw
(``sktext.splits.MultilabelValidSplit._draw``, private) while it fits.

Examples
--------
::

    python benchmarks/partial_fine_tuning.py                             # 250 texts; all, 1, 2, 3 layers
    python benchmarks/partial_fine_tuning.py --sizes 250 --layers all 2
    python benchmarks/partial_fine_tuning.py --sizes 60 --layers all 2 --n-dev 200   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    dev_split,
    format_table,
    grouped_dev_split,
    load_debtags,
    machine_info,
    scores,
    subsample,
    write_results,
)

#: The "all" arm: every layer fine-tuned, with the rate and patience it had as the default.
ALL_LAYERS_DEFAULTS = {"lr": 1e-4, "patience": 3}


def _layers(value: str) -> int | None:
    return None if value == "all" else int(value)


@contextlib.contextmanager
def _validation_by_group(groups: np.ndarray):
    """Within this context a classifier's validation part holds out whole groups (``groups[i]`` of the i-th fit text)."""
    import scipy.sparse as sp

    from sktext import splits

    draw = splits.MultilabelValidSplit._draw

    def grouped_draw(self, y):
        if y.shape[0] != len(groups):
            raise RuntimeError(f"the fit has {y.shape[0]} texts and {len(groups)} groups")
        names, group_of = np.unique(groups, return_inverse=True)
        members = sp.csr_matrix(
            (np.ones(len(groups)), (group_of, np.arange(len(groups)))), shape=(len(names), len(groups))
        )
        labels = (members @ sp.csr_matrix(y, dtype=np.float64)) > 0  # a group holds every label of its texts
        _, valid_groups = splits.stratified_shuffle_split(labels, self.fraction, self.seed)
        held_out = np.isin(group_of, valid_groups)
        return np.flatnonzero(~held_out), np.flatnonzero(held_out)

    splits.MultilabelValidSplit._draw = grouped_draw
    try:
        yield
    finally:
        splits.MultilabelValidSplit._draw = draw


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250])
    parser.add_argument(
        "--layers", type=_layers, nargs="+", default=[None, 1, 2, 3], help="trainable_layers values; 'all' is None"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--n-dev", type=int, default=1000)
    parser.add_argument(
        "--grouped-dev", action="store_true", help="hold out whole source packages (common.grouped_dev_split)"
    )
    parser.add_argument(
        "--params", type=json.loads, default={}, help="JSON of other parameters, the same for every arm"
    )
    parser.add_argument(
        "--validation-groups",
        action="store_true",
        help="the fit's own validation part holds out whole source packages (an experiment; see the docstring)",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from sktext import TransformerMultiLabelClassifier

    data = load_debtags(args.data_dir)
    split = grouped_dev_split if args.grouped_dev else dev_split
    (pool_texts, pool_Y), (dev_texts, dev_Y) = split(data, args.n_dev)
    source_of = dict(zip(data.train_texts, data.train_sources))
    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            texts, Y = subsample(pool_texts, pool_Y, size, random_state=seed)
            groups = np.array([source_of[text] for text in texts]) if args.validation_groups else None
            for layers in args.layers:
                old_defaults = ALL_LAYERS_DEFAULTS if layers is None else {}
                clf = TransformerMultiLabelClassifier(
                    **{**old_defaults, **args.params, "trainable_layers": layers, "random_state": seed}
                )
                load_before = _load()
                grouping = contextlib.nullcontext() if groups is None else _validation_by_group(groups)
                start = time.perf_counter()
                with grouping:
                    clf.fit(texts, Y)
                fit_s = time.perf_counter() - start
                load_after = _load()
                metrics = scores(dev_Y, clf.predict(dev_texts), clf.predict_proba(dev_texts))
                epochs = len(clf.history_)
                rows.append(
                    {
                        "n_train": size,
                        "seed": seed,
                        "trainable_layers": "all" if layers is None else layers,
                        "fit_s": fit_s,
                        "training_s": clf.fit_seconds_["training"],
                        "epochs": epochs,
                        "epoch_s": clf.fit_seconds_["training"] / max(epochs, 1),
                        "fit_seconds_": dict(clf.fit_seconds_),
                        "precision": clf.precision_,
                        "micro_f1": metrics["micro_f1"],
                        "macro_f1": metrics["macro_f1"],
                        "load_before": load_before,
                        "load_after": load_after,
                    }
                )
                print(
                    f"  {size} texts, seed {seed}, trainable_layers={rows[-1]['trainable_layers']}: "
                    f"fit {fit_s:.1f} s ({epochs} epochs, {rows[-1]['epoch_s']:.1f} s each), micro "
                    f"{metrics['micro_f1']:.4f} macro {metrics['macro_f1']:.4f}, load {load_before:.1f} -> "
                    f"{load_after:.1f}",
                    flush=True,
                )
    for row in rows:
        reference = next(
            (
                other
                for other in rows
                if other["n_train"] == row["n_train"] and other["seed"] == row["seed"]
                if other["trainable_layers"] == "all"
            ),
            None,
        )
        if reference is not None:
            for column in ("fit_s", "epoch_s"):
                row[f"{column}_vs_all"] = row[column] / reference[column]
            for column in ("micro_f1", "macro_f1"):
                row[f"d_{column}"] = row[column] - reference[column]
    columns = [
        "n_train",
        "seed",
        "trainable_layers",
        "fit_s",
        "fit_s_vs_all",
        "training_s",
        "epochs",
        "epoch_s",
        "epoch_s_vs_all",
        "micro_f1",
        "d_micro_f1",
        "macro_f1",
        "d_macro_f1",
        "load_before",
        "load_after",
    ]
    print(f"\nDefault model; dev F1 on {len(dev_texts)} debtags train texts held out")
    print(format_table(rows, columns))
    payload = {
        "benchmark": "partial_fine_tuning",
        "machine": machine_info("cpu"),
        "config": {**vars(args), "layers": ["all" if v is None else v for v in args.layers]},
        "rows": rows,
    }
    path = write_results("partial_fine_tuning_dev", payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
