"""ULMFiT benchmark: the paper's language-model ablation on debtags, beside TF-IDF + LR.

Fits, in one run and on the same training data (the full debtags train split, or
a random subset of it), and scores on the debtags test split:

- ``tfidf+lr@0.5`` and ``tfidf+lr tuned``: TF-IDF + one-vs-rest logistic
  regression, thresholded at 0.5 or per label on a held-out 10 % of train
  (as in ``benchmarks/quality.py``);
- three ``ULMFiTClassifier`` arms sharing every hyper-parameter but the
  language-model stage, the ablation of Howard & Ruder (2018, table 6) on our data
  and without a WikiText-103 start:

  * ``no-lm``: ``lm_epochs=0``, the classifier's AWD-LSTM encoder trained from
    scratch;
  * ``lm-train``: a language model trained on the train texts first;
  * ``lm-train+unlabeled``: a language model trained on the train texts plus the
    untagged descriptions of ``unlabeled.jsonl.gz`` (``unlabeled_texts``).

Every ULMFiT arm tunes per-label thresholds and stops early on the same 10 %
multi-label stratified validation split of train; nothing is chosen on test.

Reports micro-, macro- and samples-F1 and LRAP, the wall time of each stage
(language model: the sum of its per-epoch ``dur``; classifier: the sum of
``history_``'s ``dur``; the rest of ``fit`` is tokenization, vocabulary and
threshold tuning), the total fit and predict times, the best validation loss of
each arm, and, on CUDA, the language model's tokens per second. Prints a table
and writes ``benchmarks/results/ulmfit.json``; the JSON is rewritten after each
arm, so a run cut short keeps what it finished.

Examples
--------
The CPU run of ``benchmarks/README.md`` (one thread, about an hour)::

    OMP_NUM_THREADS=1 python benchmarks/ulmfit.py --arms lm-train+unlabeled,lm-train,no-lm \\
        --preset '{"embedding_dim": 200, "hidden_dim": 400, "n_layers": 2}' \\
        --max-vocab 6000 --max-len 256 --lm-epochs 1 --max-epochs 4 --threads 1 \\
        --device cpu --out benchmarks/results/ulmfit_cpu.json

The CPU run that beats TF-IDF + LR (two threads, under an hour; the recipe found by
the GPU sweeps of ``benchmarks/ulmfit_config.py``)::

    OMP_NUM_THREADS=2 python benchmarks/ulmfit.py --arms lm-train+unlabeled \\
        --preset '{"embedding_dim": 200, "hidden_dim": 400, "n_layers": 2}' \\
        --max-vocab 6000 --max-len 256 --lm-epochs 3 --lm-lr 1e-2 --max-epochs 15 \\
        --lr 4e-2 --head-hidden-dim 1024 --no-gradual-unfreezing --threads 2 --n-jobs 1 \\
        --device cpu --out benchmarks/results/ulmfit_cpu_2threads.json

A GPU run closer to the estimator's defaults::

    python benchmarks/ulmfit.py --device cuda --preset small --max-vocab 60000 \\
        --max-len 1440 --lm-epochs 10 --max-epochs 8

A short pilot::

    python benchmarks/ulmfit.py --max-train 2000 --max-unlabeled 2000 --max-test 1000 \\
        --threads 1 --out /tmp/ulmfit_pilot.json
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np
from common import (
    Timer,
    add_data_arguments,
    format_table,
    load_debtags,
    load_unlabeled_texts,
    machine_info,
    resolve_device,
    scores,
    subsample,
    write_results,
)
from quality import run_baselines

ARMS = ("no-lm", "lm-train", "lm-train+unlabeled")
COLUMNS = [
    "model",
    "micro_f1",
    "macro_f1",
    "samples_f1",
    "lrap",
    "lm_s",
    "classifier_s",
    "fit_s",
    "predict_s",
    "best_valid_loss",
    "lm_perplexity",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Debtags test scores of ULMFiTClassifier with no, train-only and "
        "train+unlabeled language-model fine-tuning, beside TF-IDF + LR."
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--max-unlabeled",
        type=int,
        default=None,
        help="use only the first N unlabeled texts (passed as a list); "
        "default: all, passed as the path of unlabeled.jsonl.gz",
    )
    parser.add_argument(
        "--arms",
        default=",".join(ARMS),
        help=f"comma-separated ULMFiT arms among {', '.join(ARMS)}; 'none' runs the baselines only",
    )
    parser.add_argument(
        "--preset",
        default="small",
        help='AWD-LSTM size: "tiny", "small", "paper", or JSON such as '
        '\'{"embedding_dim": 200, "hidden_dim": 400, "n_layers": 3}\'',
    )
    parser.add_argument("--lm-epochs", type=int, default=1, help="language-model epochs of the lm-* arms")
    parser.add_argument(
        "--lm-lr", type=float, default=None, help="peak LM learning rate (default: the estimator's, 5e-3 from scratch)"
    )
    parser.add_argument("--max-epochs", type=int, default=4, help="classifier epochs")
    parser.add_argument("--max-vocab", type=int, default=15000)
    parser.add_argument("--min-freq", type=int, default=3)
    parser.add_argument(
        "--max-len", type=int, default=256, help="classifier pools the outputs of at most this many final tokens"
    )
    parser.add_argument("--bptt", type=int, default=72)
    parser.add_argument("--lr", type=float, default=2e-2, help="classifier head's peak rate")
    parser.add_argument("--head-hidden-dim", type=int, default=50, help="width of the classifier head's hidden layer")
    parser.add_argument(
        "--no-gradual-unfreezing",
        action="store_true",
        help="train every layer group from the first classifier epoch (one one-cycle stage, discriminative rates kept)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--device", default="auto", help='"auto", "cpu", "cuda", "cuda:1"')
    parser.add_argument("--C", type=float, default=8.0, help="inverse regularization of the logistic regressions")
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        help="labels the baselines fit in parallel (default: 1 with --threads, else all cores)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default=None, help="free text stored in the JSON (e.g. why this config)")
    parser.add_argument("--out", default=None, help="JSON output (default: benchmarks/results/ulmfit.json)")
    args = parser.parse_args(argv)
    args.arms = [] if args.arms == "none" else [arm.strip() for arm in args.arms.split(",")]
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; choose among {list(ARMS)}")
    if args.preset.lstrip().startswith("{"):
        args.preset = json.loads(args.preset)
    return args


def count_tokens(texts: list[str]) -> int:
    """Tokens the language model reads in one epoch of ``texts``."""
    from sktext.text import tokenize

    return sum(len(tokens) for tokens in tokenize(texts))


def run_arm(
    arm: str,
    X_train: list[str],
    Y_train: np.ndarray,
    X_test: list[str],
    Y_test: np.ndarray,
    unlabeled: Any,
    args: argparse.Namespace,
    device: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit and score one ULMFiT arm; return its table row and its details."""
    from sktext.ulmfit import ULMFiTClassifier

    classifier = ULMFiTClassifier(
        preset=args.preset,
        lm_epochs=0 if arm == "no-lm" else args.lm_epochs,
        lm_lr=args.lm_lr,
        unlabeled_texts=unlabeled if arm == "lm-train+unlabeled" else None,
        max_vocab=args.max_vocab,
        min_freq=args.min_freq,
        bptt=args.bptt,
        max_len=args.max_len,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        lr=args.lr,
        head_hidden_dim=args.head_hidden_dim,
        gradual_unfreezing=not args.no_gradual_unfreezing,
        threshold="auto",
        validation_fraction=0.1,
        patience=args.patience,
        device=device,
        random_state=args.seed,
        verbose=1,
    )
    with Timer() as fit_timer:
        classifier.fit(X_train, Y_train)
    with Timer() as predict_timer:
        Y_score = classifier.predict_proba(X_test)
    Y_pred = (Y_score >= classifier.thresholds_).astype(int)

    lm_history = classifier.language_model_history_
    lm_seconds = float(sum(record["dur"] for record in lm_history))
    classifier_seconds = float(sum(record["dur"] for record in classifier.history_))
    valid_losses = [record["valid_loss"] for record in classifier.history_ if "valid_loss" in record]
    last_cross_entropy = lm_history[-1].get("train_cross_entropy") if lm_history else None
    row = {
        "model": f"ulmfit {arm}",
        **scores(Y_test, Y_pred, Y_score),
        "lm_s": lm_seconds,
        "classifier_s": classifier_seconds,
        "fit_s": fit_timer.seconds,
        "predict_s": predict_timer.seconds,
        "best_valid_loss": min(valid_losses) if valid_losses else None,
        "lm_perplexity": (math.exp(last_cross_entropy) if last_cross_entropy is not None else None),
    }
    details: dict[str, Any] = {
        "vocabulary_size": len(classifier.vocabulary_),
        "architecture": classifier.architecture_,
        "n_language_model_texts": classifier.n_language_model_texts_,
        "other_fit_s": fit_timer.seconds - lm_seconds - classifier_seconds,
        "language_model_history": lm_history,
        "history": [
            {key: value for key, value in epoch.items() if isinstance(value, (int, float, str, bool))}
            for epoch in classifier.history_
        ],
        "scores_at_0.5": scores(Y_test, Y_score >= 0.5, Y_score),
    }
    if lm_history and device.startswith("cuda"):
        lm_texts = list(X_train)
        if arm == "lm-train+unlabeled":
            from sktext.ulmfit import read_unlabeled_texts

            lm_texts += read_unlabeled_texts(unlabeled)
        n_tokens = count_tokens(lm_texts)
        details["lm_tokens_per_epoch"] = n_tokens
        details["lm_tokens_per_s"] = n_tokens * len(lm_history) / lm_seconds
        print(
            f"{arm}: language model read {n_tokens:,} tokens per epoch, {details['lm_tokens_per_s']:,.0f} tokens/s",
            flush=True,
        )
    return row, details


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and write the JSON file."""
    args = parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    n_jobs = args.n_jobs if args.n_jobs is not None else (1 if args.threads else -1)
    device = resolve_device(args.device)
    data = load_debtags(args.data_dir)
    X_train, Y_train = subsample(data.train_texts, data.train_Y, args.max_train, random_state=args.seed)
    X_test, Y_test = subsample(data.test_texts, data.test_Y, args.max_test, random_state=args.seed)
    unlabeled_path = data.data_dir / "unlabeled.jsonl.gz"
    if args.max_unlabeled is None:
        unlabeled: Any = unlabeled_path
        n_unlabeled = None
    else:
        unlabeled = load_unlabeled_texts(args.data_dir, max_texts=args.max_unlabeled)
        n_unlabeled = len(unlabeled)
    print(
        f"debtags: {len(X_train):,} train / {len(X_test):,} test records, "
        f"{len(data.label_names)} labels; unlabeled: "
        f"{'all of ' + str(unlabeled_path) if n_unlabeled is None else n_unlabeled}",
        flush=True,
    )

    payload: dict[str, Any] = {
        "benchmark": "ulmfit",
        "machine": machine_info(device),
        "config": vars(args),
        "data": {
            "data_dir": data.data_dir,
            "n_train": len(X_train),
            "n_test": len(X_test),
            "n_labels": len(data.label_names),
            "n_unlabeled": n_unlabeled,
        },
        "results": [],
        "arms": {},
    }

    def save() -> None:
        path = write_results("ulmfit", payload, args.out)
        print(f"wrote {path}", flush=True)

    with Timer() as baseline_timer:
        payload["results"] += run_baselines(X_train, Y_train, X_test, Y_test, C=args.C, seed=args.seed, n_jobs=n_jobs)
    print(f"baselines: {baseline_timer.seconds:.0f} s")
    print(format_table(payload["results"], COLUMNS), flush=True)
    save()
    for arm in args.arms:
        print(f"\n== {arm} ==", flush=True)
        row, details = run_arm(arm, X_train, Y_train, X_test, Y_test, unlabeled, args, device)
        payload["results"].append(row)
        payload["arms"][arm] = details
        print(format_table(payload["results"], COLUMNS), flush=True)
        save()
    print()
    print(format_table(payload["results"], COLUMNS))
    return payload


if __name__ == "__main__":
    main()
