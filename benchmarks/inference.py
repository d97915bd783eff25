"""CPU inference benchmark: one fitted model, run six ways; and training at fp32 vs bf16.

One run, one model, the same texts and threads for every contender:

1. **Training.** ``TransformerMultiLabelClassifier`` (the bundled all-MiniLM-L6-v2) is
   fitted on the bundled sample's train split at ``precision="fp32"`` and
   ``precision="bf16"``, with the same seed and number of epochs, once per seed of
   ``--train-seeds`` (0 1 2). All are scored on the sample's test split (the F1 cost of
   bf16 at equal epochs: the mean of the paired per-seed differences, as one fit's F1
   varies by about 0.01 with its seed) and timed (training samples/s: skorch's epoch
   durations, and the whole ``fit``; means over the seeds).
2. **Prediction.** The fp32-trained model predicts ``--n-texts`` texts of the full
   debtags test split (scored on the sample's 40 labels) with each contender, each in
   its own process (so peak memory is that contender's alone, model loading included):

   - ``torch_fp32_loop``: a plain loop over the Hugging Face encoder, mean pooling and
     the head, fp32, ``inference_mode``, batches of 64 sorted by token length (what
     ``predict_proba`` did before ``precision``; the baseline of the ratios);
   - ``sktext_fp32``: ``predict_proba`` with ``precision="fp32"``;
   - ``sktext_default``: ``predict_proba`` with the default ``precision="auto"``;
   - ``onnx_fp32`` / ``onnx_int8``: :class:`sktext.deploy.OnnxPredictor` on
     ``export_onnx(...)`` / ``export_onnx(..., quantize="int8")`` (no torch imported);
   - ``hf_pipeline``: ``pipeline("feature-extraction")`` at batch 64 on the same
     encoder, then the same mean pooling and head in numpy.

   Per contender: texts/s (tokenization included), peak resident memory, max |delta p|
   against ``sktext_fp32``, micro / macro F1 and their change against it (at the
   model's tuned thresholds), single-text latency p50 / p99 (``--n-latency`` texts one
   at a time, as a warmed-up service sees them: the same texts once before timing),
   and the seconds spent tokenizing the texts (the share of the batch time that
   tokenization takes).

Examples
--------
Full run (5,000 texts, three paired fits; about 25 minutes on two idle cores)::

    python benchmarks/inference.py

Smaller::

    python benchmarks/inference.py --n-texts 1000 --n-train 1000 --n-latency 50 --train-seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent))  # this checkout's sktext, also in the workers

from common import (  # noqa: E402
    add_data_arguments,
    format_table,
    load_debtags,
    machine_info,
    subsample,
    write_results,
)

CONTENDERS = ("torch_fp32_loop", "sktext_fp32", "sktext_default", "onnx_fp32", "onnx_int8", "hf_pipeline")
REFERENCE = "sktext_fp32"
BASELINE = "torch_fp32_loop"
LOOP_BATCH_SIZE = 64
WARM_UP_TEXTS = 16
COLUMNS = [
    "contender",
    "precision",
    "texts_per_s",
    "speedup",
    "peak_rss_mib",
    "max_abs_dp",
    "micro_f1",
    "d_micro_f1",
    "macro_f1",
    "d_macro_f1",
    "latency_p50_ms",
    "latency_p99_ms",
    "tokenize_s",
]
#: Per-fit figures that a training row gives as their mean over ``--train-seeds``.
AVERAGED_OVER_SEEDS = (
    "fit_s",
    "epoch_s",
    "epoch_samples_per_s",
    "fit_samples_per_s",
    "micro_f1",
    "macro_f1",
    "micro_f1_fp32_prediction",
)
TRAIN_COLUMNS = [
    "precision",
    "n_seeds",
    "epoch_samples_per_s",
    "fit_samples_per_s",
    "fit_s",
    "micro_f1",
    "macro_f1",
    "d_micro_f1",
    "d_macro_f1",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, subsets=False)
    parser.add_argument(
        "--n-texts", type=int, default=5000, help="predicted texts (random subset of the full debtags test split)"
    )
    parser.add_argument(
        "--n-train", type=int, default=3000, help="bundled-sample train texts the model is fitted on (at most 3000)"
    )
    parser.add_argument("--epochs", type=int, default=1, help="training epochs, both precisions")
    parser.add_argument(
        "--train-seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="seeds of the paired fp32 / bf16 fits (F1 differences are averaged over them)",
    )
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--n-latency", type=int, default=200, help="texts predicted one at a time for the latency percentiles"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch and onnxruntime threads (default: torch's default)"
    )
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work-dir",
        default=None,
        help="where the fitted model, exports and predictions go (default: a temporary folder)",
    )
    parser.add_argument("--out", default=None, help="JSON output (default: benchmarks/results/inference_cpu.json)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ------------------------------------------------------------------------ workers


def _peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the parent's, kept across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    values = np.asarray(seconds) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def _torch_contender(name: str, work: Path, threads: int):
    """``(predict(texts) -> proba, tokenize(texts), precision)`` for a torch-based contender."""
    import torch

    from sktext import load_model

    torch.set_num_threads(threads)
    clf = load_model(work / "model")
    if name == "sktext_fp32":
        clf.set_params(precision="fp32")
    if name.startswith("sktext"):
        resolved = "bf16" if clf._compute_dtype() == torch.bfloat16 else "fp32"
        return clf.predict_proba, clf._encode, resolved

    tokenizer, module = clf.tokenizer_, clf.module_.eval()
    encoder, head = module.encoder, module.output
    max_length = clf.max_length

    def tokenize(texts):
        return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]

    if name == "torch_fp32_loop":

        def predict(texts):
            ids = tokenize(texts)
            order = np.argsort([-len(row) for row in ids], kind="stable")
            proba = np.empty((len(texts), len(clf.classes_)), dtype=np.float32)
            with torch.inference_mode():
                for start in range(0, len(texts), LOOP_BATCH_SIZE):
                    rows = order[start : start + LOOP_BATCH_SIZE]
                    width = len(ids[rows[0]])
                    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
                    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
                    for row, index in enumerate(rows):
                        input_ids[row, : len(ids[index])] = torch.tensor(ids[index])
                        attention_mask[row, : len(ids[index])] = 1
                    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                    proba[rows] = torch.sigmoid(head(pooled)).numpy()
            return proba

        return predict, tokenize, "fp32"

    from transformers import pipeline  # hf_pipeline

    extract = pipeline("feature-extraction", model=encoder, tokenizer=tokenizer, device=torch.device("cpu"))
    weight = head.weight.detach().numpy().T
    bias = head.bias.detach().numpy()

    def predict(texts):
        lengths = [len(row) for row in tokenize(texts)]
        outputs = extract(
            texts,
            batch_size=LOOP_BATCH_SIZE,
            return_tensors=True,
            tokenize_kwargs={"truncation": True, "max_length": max_length},
        )
        pooled = np.stack([output[0, :length].float().mean(0).numpy() for output, length in zip(outputs, lengths)])
        return 1.0 / (1.0 + np.exp(-(pooled @ weight + bias)))

    return predict, tokenize, "fp32"


def _onnx_contender(name: str, work: Path, threads: int):
    from sktext.deploy import OnnxPredictor

    predictor = OnnxPredictor(work / name, n_threads=threads)
    return predictor.predict_proba, predictor._token_ids, "int8" if name.endswith("int8") else "fp32"


def run_worker(args: argparse.Namespace) -> None:
    """One contender in this process: time batch and single-text prediction, save the results."""
    work = Path(args.work_dir)
    texts = json.loads((work / "texts.json").read_text(encoding="utf-8"))
    name = args.worker
    make = _onnx_contender if name.startswith("onnx") else _torch_contender
    predict, tokenize, precision = make(name, work, args.threads)
    predict(texts[:WARM_UP_TEXTS])
    start = time.perf_counter()
    proba = np.asarray(predict(texts), dtype=np.float32)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    tokenize(texts)
    tokenize_s = time.perf_counter() - start
    latencies = []
    singles = texts[: args.n_latency]
    for text in singles:  # a warm service: every length seen once (oneDNN kernels are per shape)
        predict([text])
    for text in singles:
        start = time.perf_counter()
        predict([text])
        latencies.append(time.perf_counter() - start)
    p50, p99 = _percentiles_ms(latencies)
    np.save(work / f"{name}.npy", proba)
    result = {
        "contender": name,
        "precision": precision,
        "predict_s": seconds,
        "texts_per_s": len(texts) / seconds,
        "tokenize_s": tokenize_s,
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "peak_rss_mib": _peak_rss_mib(),
        "torch_imported": "torch" in sys.modules,
    }
    (work / f"{name}.json").write_text(json.dumps(result), encoding="utf-8")


# ------------------------------------------------------------------------- parent


def _f1(Y_true: np.ndarray, proba: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    predicted = (proba >= thresholds).astype(int)
    return {
        f"{average}_f1": float(f1_score(Y_true, predicted, average=average, zero_division=0))
        for average in ("micro", "macro")
    }


def train_both(args: argparse.Namespace, threads: int) -> tuple[list[dict[str, Any]], Any]:
    """Fit at fp32 and bf16 on the bundled sample, once per ``--train-seeds`` seed; score on its test split.

    Returns one row per precision (speeds and F1 averaged over the seeds; the per-seed
    F1 and the paired bf16 - fp32 differences with them) and the first seed's fp32 model.
    The network alone (``lexical=None``): the plain loop and the HF pipeline have no
    lexical part, and the recorded results predate it.
    """
    import torch

    from sktext import TransformerMultiLabelClassifier
    from sktext.datasets import load_debtags_sample

    torch.set_num_threads(threads)
    X_train, Y_train = load_debtags_sample(subset="train", return_X_y=True)
    X_test, Y_test = load_debtags_sample(subset="test", return_X_y=True)
    X_train, Y_train = subsample(X_train, Y_train, args.n_train, random_state=args.seed)
    runs: dict[str, list[dict[str, Any]]] = {"fp32": [], "bf16": []}
    first_fp32 = None
    for seed in args.train_seeds:
        for precision in ("fp32", "bf16"):
            clf = TransformerMultiLabelClassifier(
                args.model,
                max_length=args.max_length,
                batch_size=args.batch_size,
                max_epochs=args.epochs,
                patience=None,
                device="cpu",
                precision=precision,
                lexical=None,
                random_state=seed,
            )
            start = time.perf_counter()
            clf.fit(X_train, Y_train)
            fit_s = time.perf_counter() - start
            n_fit = int(round(len(X_train) * (1 - clf.validation_fraction)))
            epoch_s = sum(record["dur"] for record in clf.history_)
            run = {
                "seed": seed,
                "fit_s": fit_s,
                "epoch_s": epoch_s,
                "epoch_samples_per_s": n_fit * args.epochs / epoch_s,
                "fit_samples_per_s": len(X_train) * args.epochs / fit_s,
                **_f1(Y_test, clf.predict_proba(X_test), clf.thresholds_),
            }
            fp32_predicted = clf.set_params(precision="fp32").predict_proba(X_test)
            run["micro_f1_fp32_prediction"] = _f1(Y_test, fp32_predicted, clf.thresholds_)["micro_f1"]
            runs[precision].append(run)
            if first_fp32 is None and precision == "fp32":
                first_fp32 = clf
            print(f"fitted at {precision}, seed {seed}: {fit_s:.1f} s, micro-F1 {run['micro_f1']:.4f}", flush=True)
    rows = []
    for precision, seeds in runs.items():
        row = {"precision": precision, "n_seeds": len(seeds)}
        for key in AVERAGED_OVER_SEEDS:
            row[key] = float(np.mean([run[key] for run in seeds]))
        row["runs"] = seeds
        rows.append(row)
    for row in rows:
        for average in ("micro", "macro"):
            paired = [run[f"{average}_f1"] - base[f"{average}_f1"] for run, base in zip(row["runs"], runs["fp32"])]
            row[f"d_{average}_f1"] = float(np.mean(paired))
            row[f"d_{average}_f1_per_seed"] = paired
    return rows, first_fp32.set_params(precision="auto")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables and write the JSON file."""
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return {}
    import torch
    from transformers.utils import logging as transformers_logging

    from sktext.datasets import load_debtags_sample

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    threads = args.threads or torch.get_num_threads()
    data = load_debtags(args.data_dir)
    sample = load_debtags_sample(subset="train")
    columns = [data.label_names.index(name) for name in sample.label_names]
    texts, Y = subsample(data.test_texts, data.test_Y[:, columns], args.n_texts, random_state=args.seed)
    print(f"{len(texts):,} debtags test texts, {len(columns)} labels; {threads} threads", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work_dir or scratch)
        work.mkdir(parents=True, exist_ok=True)
        training, model = train_both(args, threads)
        model.save(work / "model", overwrite=True)
        model.export_onnx(work / "onnx_fp32", overwrite=True)
        model.export_onnx(work / "onnx_int8", quantize="int8", overwrite=True)
        (work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        results = {}
        for name in args.contenders:
            command = [
                sys.executable,
                __file__,
                "--worker",
                name,
                "--work-dir",
                str(work),
                "--threads",
                str(threads),
                "--n-latency",
                str(args.n_latency),
            ]
            subprocess.run(command, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "true"})
            results[name] = json.loads((work / f"{name}.json").read_text(encoding="utf-8"))
            results[name]["proba"] = np.load(work / f"{name}.npy")
            print(f"  {name}: {results[name]['texts_per_s']:.1f} texts/s", flush=True)

    thresholds = np.asarray(model.thresholds_)
    probabilities = {name: result.pop("proba") for name, result in results.items()}
    table = [{**result, **_f1(Y, probabilities[name], thresholds)} for name, result in results.items()]
    by_name = {row["contender"]: row for row in table}
    for row in table:
        if REFERENCE in by_name:
            difference = probabilities[row["contender"]] - probabilities[REFERENCE]
            row["max_abs_dp"] = float(np.abs(difference).max())
            row["d_micro_f1"] = row["micro_f1"] - by_name[REFERENCE]["micro_f1"]
            row["d_macro_f1"] = row["macro_f1"] - by_name[REFERENCE]["macro_f1"]
        if BASELINE in by_name:
            row["speedup"] = row["texts_per_s"] / by_name[BASELINE]["texts_per_s"]

    print("\nprediction (speedup: against torch_fp32_loop; deltas: against sktext_fp32)")
    print(format_table(table, COLUMNS))
    print(
        f"\ntraining on {args.n_train} bundled-sample texts, {args.epochs} epoch(s), seeds {args.train_seeds}, "
        "scored on its 1,000 test texts (means over the seeds)"
    )
    print(format_table(training, TRAIN_COLUMNS))
    ratios = {
        "train_bf16_vs_fp32": training[1]["epoch_samples_per_s"] / training[0]["epoch_samples_per_s"],
        "train_bf16_micro_f1_change": training[1]["d_micro_f1"],
    }
    if "sktext_default" in by_name and BASELINE in by_name:
        ratios["predict_default_vs_fp32_loop"] = by_name["sktext_default"]["speedup"]
    print("\n" + "\n".join(f"  {key:32s} {value:+.4f}" for key, value in ratios.items()))

    payload = {
        "benchmark": "inference",
        "machine": machine_info("cpu"),
        "config": {**vars(args), "threads": threads, "loop_batch_size": LOOP_BATCH_SIZE},
        "data": {"data_dir": data.data_dir, "n_texts": len(texts), "n_labels": len(columns), "n_train": args.n_train},
        "prediction": table,
        "training": training,
        "ratios": ratios,
    }
    path = write_results("inference_cpu", payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
