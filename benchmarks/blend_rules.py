"""Which rule blends a network's logits with the lexical model's margins (train split only).

For each train size, draws a subset of the debtags train split (the learning curve's
draw), splits it 90 / 10 (iterative stratification) into a fitting part and a validation
part, fits ``TransformerMultiLabelClassifier(lexical=None, ...)`` and the lexical model
(``TfidfLinearClassifier(class_weight="balanced")``) on the fitting part, and scores
every blend rule on a dev set of train texts that no subset draws from (the test split
is never read). Each rule tunes its thresholds on the validation part by sktext's rule:

- ``net`` / ``lex``: the network alone / the lexical model alone (refitted on the subset);
- ``blend``: ``a * net + b * lex + c``, weights by logistic regression on the
  validation part's (text, label) pairs;
- ``blend-norefit``: the same, the lexical model not refitted on the whole subset;
- ``blend-centred``: ``a * (net - centre) + b * lex + c``, the network's logits centred
  per label on the validation part (what sktext does);
- ``blend-nobias``: the network's logits less its output bias;
- ``avg-std-ALPHA``: ``ALPHA * standardised net + (1 - ALPHA) * lex``;
- ``sum``: ``net + lex``.

Example::

    python benchmarks/blend_rules.py --sizes 250 500 1000 \\
        --params '{"freeze_encoder": true, "max_epochs": "auto", "lr": 1e-3}'
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from common import Timer, add_data_arguments, format_table, load_debtags, machine_info, scores, write_results
from learning_curve import draw
from scipy.special import expit

from sktext import TransformerMultiLabelClassifier
from sktext.lexical import TfidfLinearClassifier, apply_blend, fit_blend
from sktext.splits import stratified_indices
from sktext.thresholds import apply_thresholds, tune_thresholds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, subsets=False)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dev-size", type=int, default=1500)
    parser.add_argument("--params", default="{}", help="JSON parameters of the network")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    return parser.parse_args(argv)


def standardised(scores_: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (scores_ - reference.mean(axis=0)) / (reference.std(axis=0) + 1e-6)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    params = json.loads(args.params)
    data = load_debtags(args.data_dir)
    pool = np.arange(len(data.train_texts))
    dev = draw(pool, args.dev_size, seed=12345)
    pool = np.setdiff1d(pool, dev)
    dev_texts, dev_Y = [data.train_texts[i] for i in dev], data.train_Y[dev]
    rows_out = []
    for size in args.sizes:
        rows = draw(pool, size, args.seed)
        texts, Y = [data.train_texts[i] for i in rows], data.train_Y[rows]
        fit, valid = stratified_indices(Y, 0.1, 7)
        fit_texts, valid_texts = [texts[i] for i in fit], [texts[i] for i in valid]
        with Timer() as timer:
            net = TransformerMultiLabelClassifier(lexical=None, random_state=args.seed, **params)
            net.fit(fit_texts, Y[fit])
        net_valid, net_dev = net.decision_function(valid_texts), net.decision_function(dev_texts)
        lexical = TfidfLinearClassifier(class_weight="balanced", threshold=0.5, random_state=0)
        margins_valid = lexical.fit(fit_texts, Y[fit]).decision_function(valid_texts)
        margins_dev_fit = lexical.decision_function(dev_texts)
        margins_dev = lexical.fit(texts, Y).decision_function(dev_texts)

        def evaluate(rule, valid_scores, dev_scores, Y_valid=Y[valid], size=size, seconds=timer.seconds):
            thresholds, _ = tune_thresholds(Y_valid, expit(valid_scores), min_positives=5)
            result = scores(dev_Y, apply_thresholds(expit(dev_scores), thresholds), expit(dev_scores))
            rows_out.append({"n_train": size, "rule": rule, **result, "net_fit_s": seconds})

        evaluate("net", net_valid, net_dev)
        evaluate("lex", margins_valid, margins_dev)
        no_centre = np.zeros(Y.shape[1])
        weights, _ = fit_blend(net_valid - net_valid.mean(axis=0) + net_valid.mean(axis=0), margins_valid, Y[valid])
        # The uncentred blend: fit on the raw logits (centre zero).
        raw_weights = _fit_uncentred(net_valid, margins_valid, Y[valid])
        evaluate(
            "blend",
            apply_blend(raw_weights, no_centre, net_valid, margins_valid),
            apply_blend(raw_weights, no_centre, net_dev, margins_dev),
        )
        evaluate(
            "blend-norefit",
            apply_blend(raw_weights, no_centre, net_valid, margins_valid),
            apply_blend(raw_weights, no_centre, net_dev, margins_dev_fit),
        )
        weights, centre = fit_blend(net_valid, margins_valid, Y[valid])
        evaluate(
            "blend-centred",
            apply_blend(weights, centre, net_valid, margins_valid),
            apply_blend(weights, centre, net_dev, margins_dev),
        )
        bias = net.module_.output_layer.bias.detach().cpu().numpy()
        bias_weights = _fit_uncentred(net_valid - bias, margins_valid, Y[valid])
        evaluate(
            "blend-nobias",
            apply_blend(bias_weights, bias, net_valid, margins_valid),
            apply_blend(bias_weights, bias, net_dev, margins_dev),
        )
        for alpha in (0.3, 0.5, 0.7):
            evaluate(
                f"avg-std-{alpha}",
                alpha * standardised(net_valid, net_valid) + (1 - alpha) * margins_valid,
                alpha * standardised(net_dev, net_valid) + (1 - alpha) * margins_dev,
            )
        evaluate("sum", net_valid + margins_valid, net_dev + margins_dev)
        print(
            format_table(
                [r for r in rows_out if r["n_train"] == size],
                ["rule", "n_train", "micro_f1", "macro_f1", "samples_f1", "lrap"],
            ),
            flush=True,
        )
    payload = {"options": vars(args), "machine": machine_info("cpu"), "rows": rows_out}
    write_results("blend_rules", payload, args.out)
    return payload


def _fit_uncentred(neural: np.ndarray, margins: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``fit_blend``'s weights for logits taken as they are (no centring)."""
    weights, centre = fit_blend(neural, margins, Y)
    # fit_blend centres; undo it by fitting on logits shifted so that their mean is zero
    # is not the same rule, so refit the two-feature regression here directly.
    from sklearn.linear_model import LogisticRegression

    features = np.column_stack([np.ravel(neural), np.ravel(margins)])
    model = LogisticRegression(C=1.0, max_iter=1000).fit(features, np.ravel(np.asarray(Y) > 0.5))
    coef = np.maximum(model.coef_.ravel(), 0.0)
    return np.array([coef[0], coef[1], float(model.intercept_[0])])


if __name__ == "__main__":
    main()
