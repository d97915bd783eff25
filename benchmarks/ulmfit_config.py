"""One ULMFiTClassifier configuration on the full debtags data: fit, score on test, write JSON.

The building block of the ULMFiT hyper-parameter sweeps in ``benchmarks/README.md``:
several of these run side by side as separate processes on one GPU (the small
AWD-LSTM leaves most of it idle), each with its own JSON file. The configuration is
a JSON object of ``ULMFiTClassifier`` parameters laid over this script's base
(the small 200/400/2 AWD-LSTM, 6,000 words, one LM epoch on train + unlabeled
texts, four classifier epochs, seed 0); ``"unlabeled_texts": "none"`` drops the
unlabeled corpus.

Scores are on the debtags test split, so configurations picked from such a sweep
are picked on test: report them as such, or confirm them with a fresh seed.

Examples
--------
::

    python benchmarks/ulmfit_config.py h512_lm3 \\
        '{"head_hidden_dim": 512, "lm_epochs": 3, "gradual_unfreezing": false, "max_epochs": 10}' \\
        --device cuda --out /tmp/h512_lm3.json
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from common import (
    Timer,
    add_data_arguments,
    load_debtags,
    machine_info,
    resolve_device,
    scores,
    write_results,
)

BASE: dict[str, Any] = {
    "preset": {"embedding_dim": 200, "hidden_dim": 400, "n_layers": 2},
    "lm_epochs": 1,
    "unlabeled_texts": "all",
    "max_vocab": 6000,
    "min_freq": 3,
    "max_len": 256,
    "batch_size": 64,
    "max_epochs": 4,
    "lr": 2e-2,
    "threshold": "auto",
    "validation_fraction": 0.1,
    "patience": 3,
    "random_state": 0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("name", help="label of this configuration in the output")
    parser.add_argument("config", help="JSON object of ULMFiTClassifier parameters over the base")
    add_data_arguments(parser, subsets=False)
    parser.add_argument("--device", default="auto", help='"auto", "cpu", "cuda", "cuda:1"')
    parser.add_argument("--out", default=None, help="JSON output (default: benchmarks/results/ulmfit_config.json)")
    args = parser.parse_args(argv)
    args.config = json.loads(args.config)
    if not isinstance(args.config, dict):
        parser.error("config must be a JSON object, e.g. '{\"lm_epochs\": 3}'")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Fit and score one configuration; print one line and write the JSON file."""
    from sktext.ulmfit import ULMFiTClassifier

    args = parse_args(argv)
    device = resolve_device(args.device)
    data = load_debtags(args.data_dir)
    params = {**BASE, **args.config, "device": device}
    if params["unlabeled_texts"] == "all":
        params["unlabeled_texts"] = str(data.data_dir / "unlabeled.jsonl.gz")
    if params["unlabeled_texts"] == "none" or params["lm_epochs"] == 0:
        params["unlabeled_texts"] = None
    classifier = ULMFiTClassifier(**params)
    with Timer() as fit_timer:
        classifier.fit(data.train_texts, data.train_Y)
    with Timer() as predict_timer:
        Y_score = classifier.predict_proba(data.test_texts)
    Y_pred = Y_score >= classifier.thresholds_
    tuned = scores(data.test_Y, Y_pred, Y_score)
    lm_seconds = sum(record["dur"] for record in classifier.language_model_history_)
    valid_losses = [record["valid_loss"] for record in classifier.history_ if "valid_loss" in record]
    payload = {
        "benchmark": "ulmfit_config",
        "name": args.name,
        "machine": machine_info(device),
        "params": params,
        "scores": tuned,
        "scores_at_0.5": scores(data.test_Y, Y_score >= 0.5, Y_score),
        "fit_s": fit_timer.seconds,
        "predict_s": predict_timer.seconds,
        "lm_s": lm_seconds,
        "best_valid_loss": min(valid_losses) if valid_losses else None,
        "language_model_history": classifier.language_model_history_,
        "history": [
            {key: value for key, value in record.items() if isinstance(value, (int, float, str, bool))}
            for record in classifier.history_
        ],
    }
    write_results("ulmfit_config", payload, args.out)
    print(
        f"RESULT {args.name}: micro {tuned['micro_f1']:.3f} macro {tuned['macro_f1']:.3f} "
        f"lrap {tuned['lrap']:.3f} best valid loss {payload['best_valid_loss']:.4f} "
        f"fit {fit_timer.seconds:.0f} s (LM {lm_seconds:.0f} s)",
        flush=True,
    )
    return payload


if __name__ == "__main__":
    main()
