"""The network's output layer at tens of thousands of labels: does it weigh on a training step?

Issue 21 asks how the output layer and the loss cost at 20,000+ outputs on a CPU (the
logits of a batch, bf16, a shortlist of labels per text if full logits dominate a step).
This benchmark fine-tunes the default ``TransformerMultiLabelClassifier`` (its top
layers trained, the rest cached; no lexical part, no validation split, so that the
training stage is the network alone) for ``--epochs`` epochs on the same ``--texts``
synthetic texts (:func:`synthetic_tags.zipf_tags`) at each ``--labels`` count, and
reports the training stage's seconds, the seconds per step, the head's parameters and
the float32 bytes of one batch's logits, with the ratio of each count's step seconds to
the fewest labels'.

Example (about a minute on 2 cores)::

    python benchmarks/head_scale.py --labels 1000 20000 50000 --texts 640 --epochs 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import format_table, machine_info, write_results  # noqa: E402
from synthetic_tags import zipf_tags  # noqa: E402

COLUMNS = ["labels", "training_s", "steps", "step_s", "step_ratio", "head_params", "batch_logits_mb"]


def measure(n_labels: int, args) -> dict:
    from sktext import TransformerMultiLabelClassifier

    texts, Y = zipf_tags(args.texts, n_labels, seed=0)
    clf = TransformerMultiLabelClassifier(
        max_epochs=args.epochs, lexical=None, validation_fraction=None, threshold=0.5, random_state=0
    )
    clf.fit(texts, sp.csr_matrix(Y))
    steps = args.epochs * -(-args.texts // clf.batch_size)
    head = clf.module_.output_layer
    return {
        "labels": n_labels,
        "training_s": clf.fit_seconds_["training"],
        "steps": steps,
        "step_s": clf.fit_seconds_["training"] / steps,
        "head_params": sum(p.numel() for p in head.parameters()),
        "batch_logits_mb": clf.batch_size * n_labels * 4 / 1e6,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[1_000, 20_000, 50_000])
    parser.add_argument("--texts", type=int, default=1_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    rows = []
    for n_labels in args.labels:
        rows.append(measure(n_labels, args))
        rows[-1]["step_ratio"] = rows[-1]["step_s"] / rows[0]["step_s"]
        print(f"  {n_labels} labels: {rows[-1]['step_s'] * 1000:.0f} ms a step", flush=True)
    print(format_table(rows, COLUMNS))
    payload = {"benchmark": "head_scale", "machine": machine_info("cpu"), "config": vars(args), "rows": rows}
    write_results("head_scale", payload, args.out)
    return payload


if __name__ == "__main__":
    main()
