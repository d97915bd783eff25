"""The lexical part fitted once or twice: F1 on a dev split of debtags train (never the test split).

sktext 0.1's deep classifiers fitted their lexical part (TF-IDF + a linear SVM
per label) twice: on the network's training part, whose margins on the validation
part fit the blend weights, then again on all texts (``lexical_refit=True``). The
default now keeps the first fit (``lexical_refit=False``): half the cost, and the blend
and thresholds are fitted to the very model that predicts. This benchmark measures
what that costs in F1, paired (same network seed, same texts), at several training
sizes, with the frozen default encoder as the network (its blend leans most on the
lexical part, so any loss shows there first) and, with ``--fine-tune``, the fine-tuned
default.

The dev texts are a fixed 2,000-text stratified part of debtags train; each size draws
its training texts from the rest.

Examples
--------
::

    python benchmarks/lexical_refit.py                      # 250 / 1,000 / 3,000 texts, seeds 0 1
    python benchmarks/lexical_refit.py --sizes 250 --fine-tune --seeds 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    dev_split,
    format_table,
    load_debtags,
    machine_info,
    scores,
    subsample,
    write_results,
)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 3000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--n-dev", type=int, default=2000)
    parser.add_argument("--fine-tune", action="store_true", help="the fine-tuned default instead of the frozen encoder")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from sktext import TransformerMultiLabelClassifier

    data = load_debtags(args.data_dir)
    (pool_texts, pool_Y), (dev_texts, dev_Y) = dev_split(data, args.n_dev)
    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            texts, Y = subsample(pool_texts, pool_Y, size, random_state=seed)
            for refit in (True, False):
                clf = TransformerMultiLabelClassifier(
                    freeze_encoder=not args.fine_tune, lexical_refit=refit, random_state=seed
                )
                start = time.perf_counter()
                clf.fit(texts, Y)
                fit_s = time.perf_counter() - start
                proba = clf.predict_proba(dev_texts)
                metrics = scores(dev_Y, clf.predict(dev_texts), proba)
                rows.append(
                    {
                        "n_train": size,
                        "seed": seed,
                        "lexical_refit": refit,
                        "fit_s": fit_s,
                        "lexical_s": clf.fit_seconds_.get("lexical", 0.0),
                        "micro_f1": metrics["micro_f1"],
                        "macro_f1": metrics["macro_f1"],
                    }
                )
                print(
                    f"  {size} texts, seed {seed}, lexical_refit={refit}: micro {metrics['micro_f1']:.4f} "
                    f"macro {metrics['macro_f1']:.4f}, fit {fit_s:.1f} s",
                    flush=True,
                )
    summary = []
    for size in args.sizes:
        paired = [
            (
                next(r for r in rows if r["n_train"] == size and r["seed"] == s and not r["lexical_refit"]),
                next(r for r in rows if r["n_train"] == size and r["seed"] == s and r["lexical_refit"]),
            )
            for s in args.seeds
        ]
        summary.append(
            {
                "n_train": size,
                "d_micro_f1": float(np.mean([once["micro_f1"] - twice["micro_f1"] for once, twice in paired])),
                "d_macro_f1": float(np.mean([once["macro_f1"] - twice["macro_f1"] for once, twice in paired])),
                "lexical_s_once": float(np.mean([once["lexical_s"] for once, _ in paired])),
                "lexical_s_twice": float(np.mean([twice["lexical_s"] for _, twice in paired])),
            }
        )
    network = "fine-tuned default" if args.fine_tune else "frozen default encoder"
    print(f"\n{network}; dev F1 on {len(dev_texts)} debtags train texts held out; fitted once minus twice")
    print(format_table(summary, ["n_train", "d_micro_f1", "d_macro_f1", "lexical_s_once", "lexical_s_twice"]))
    payload = {
        "benchmark": "lexical_refit",
        "machine": machine_info("cpu"),
        "config": vars(args),
        "network": network,
        "rows": rows,
        "summary": summary,
    }
    path = write_results("lexical_refit_dev" + ("_fine_tuned" if args.fine_tune else ""), payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
