"""How a distilled student's thresholds are chosen, compared on its held-out texts only.

Reads the outputs ``distill.py --save-outputs`` keeps for each student (its
probabilities on the held-out labeled texts, their real labels, and which texts they
were) and compares decision rules by two-fold cross-validation inside the held-out
part: thresholds set on one random half, scored on the other, both ways, over
``--repeats`` random halvings. The test split is not read, so a rule may be chosen on
these figures.

Rules:

- ``tuned``: sktext's tuning (:func:`sktext.thresholds.tune_thresholds`), what
  ``DistilledClassifier(floor_at_label_rates=False)`` does;
- ``tuned + rate floor``: then :func:`sktext.thresholds.floor_at_rates` with each
  label's rate among the labeled texts the student trained on, the default;
- ``0.5 everywhere``: no tuning (for a student centred on the teacher's thresholds,
  the teacher's own decisions).

Example::

    python benchmarks/distill.py --cache-dir /work/distill_cache/full --n-labeled all \\
        --students shallow --centre yes --save-outputs
    python benchmarks/distill_thresholds.py --cache-dir /work/distill_cache/full
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import format_table, machine_info, write_results  # noqa: E402

RULES = ("tuned", "tuned + rate floor", "0.5 everywhere")


def thresholds_by_rule(rule: str, Y: np.ndarray, proba: np.ndarray, rates: np.ndarray) -> np.ndarray:
    from sktext.thresholds import floor_at_rates, tune_thresholds

    if rule == "0.5 everywhere":
        return np.full(Y.shape[1], 0.5)
    tuned, _ = tune_thresholds(Y, proba)
    return floor_at_rates(tuned, proba, rates) if rule == "tuned + rate floor" else tuned


def cross_validate(Y: np.ndarray, proba: np.ndarray, rates: np.ndarray, repeats: int, seed: int) -> dict:
    """Mean micro / macro F1 of each rule, set on one half of the held-out texts and scored on the other."""
    from sktext.thresholds import f1_at_thresholds

    rng = np.random.default_rng(seed)
    scores = {rule: [] for rule in RULES}
    for _ in range(repeats):
        order = rng.permutation(len(Y))
        halves = (order[: len(Y) // 2], order[len(Y) // 2 :])
        for fit_half, score_half in (halves, halves[::-1]):
            for rule in RULES:
                thresholds = thresholds_by_rule(rule, Y[fit_half], proba[fit_half], rates)
                result = f1_at_thresholds(Y[score_half], proba[score_half], thresholds)
                scores[rule].append((result["f1_micro"], result["f1_macro"]))
    return {rule: np.mean(values, axis=0) for rule, values in scores.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", required=True, help="distill.py's --cache-dir (its outputs/ folder)")
    parser.add_argument("--repeats", type=int, default=5, help="random halvings of the held-out texts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    paths = sorted((Path(args.cache_dir) / "outputs").glob("*.npz"))
    if not paths:
        raise SystemExit(f"no outputs in {args.cache_dir}/outputs: run distill.py with --save-outputs first")
    rows = []
    for path in paths:
        saved = np.load(path)
        rates = saved["rates"]
        means = cross_validate(saved["valid_Y"], saved["valid_proba"], rates, args.repeats, args.seed)
        for rule, (micro, macro) in means.items():
            rows.append({"student": path.stem, "rule": rule, "cv_micro_f1": micro, "cv_macro_f1": macro})
    print(format_table(rows, ["student", "rule", "cv_micro_f1", "cv_macro_f1"]))
    payload = {"machine": machine_info("cpu"), "repeats": args.repeats, "rows": rows}
    path = write_results("distill_thresholds", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
