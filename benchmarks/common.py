"""Shared pieces of the sktext benchmarks: data, baselines, metrics, reporting.

The benchmarks use the FULL debtags data (24,607 train / 5,693 test Debian package
descriptions, 326 labels), which is not shipped with sktext. It is looked up in

1. the ``data_dir`` argument, else
2. the ``SKTEXT_DEBTAGS_DIR`` environment variable, else
3. ``../shared/data/debtags`` beside the repository.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, label_ranking_average_precision_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MultiLabelBinarizer

from sktext.baselines import tfidf_logistic_regression as make_tfidf_lr
from sktext.precision import _cpu_fields_from_proc
from sktext.thresholds import tune_thresholds

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "debtags"
DATA_DIR_ENV = "SKTEXT_DEBTAGS_DIR"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


# --------------------------------------------------------------------------- data


@dataclass
class DebtagsData:
    """The full debtags data, binarized.

    Attributes
    ----------
    train_texts, test_texts : list of str
        Package descriptions.
    train_Y, test_Y : ndarray of shape (n_samples, n_labels), dtype=int64
        Binary indicator matrices, columns in the order of ``label_names``.
    label_names : list of str
        The 326 labels, in the order of ``labels.txt``.
    train_ids, test_ids : list of str
        Binary package names.
    data_dir : Path
        Where the data was read from.
    train_sources : list of str
        Source package of each train text (sibling binaries share one).
    """

    train_texts: list[str]
    train_Y: np.ndarray
    test_texts: list[str]
    test_Y: np.ndarray
    label_names: list[str]
    train_ids: list[str] = field(repr=False)
    test_ids: list[str] = field(repr=False)
    data_dir: Path = field(default=DEFAULT_DATA_DIR)
    train_sources: list[str] = field(default_factory=list, repr=False)


def add_data_arguments(parser: argparse.ArgumentParser, *, subsets: bool = True) -> None:
    """Add ``--data-dir`` and, with ``subsets``, ``--max-train`` / ``--max-test`` to ``parser``."""
    parser.add_argument(
        "--data-dir", default=None, help="full debtags folder (default: $SKTEXT_DEBTAGS_DIR or ../shared/data/debtags)"
    )
    if subsets:
        parser.add_argument(
            "--max-train",
            type=int,
            default=None,
            help="fit on a random subset of this many train records (the baselines too)",
        )
        parser.add_argument(
            "--max-test", type=int, default=None, help="score on a random subset of this many test records"
        )


def add_transformer_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the TransformerMultiLabelClassifier options the quality-style benchmarks share."""
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="model_name_or_path of the transformer")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--patience", type=int, default=3)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Find the full debtags data folder.

    Parameters
    ----------
    data_dir : path-like, default=None
        Explicit folder. If None, ``$SKTEXT_DEBTAGS_DIR``, then
        ``../shared/data/debtags`` beside the repository.

    Returns
    -------
    data_dir : Path
        A folder that holds ``train.jsonl.gz``, ``test.jsonl.gz`` and ``labels.txt``.

    Raises
    ------
    FileNotFoundError
        If the folder or one of those files is missing.
    """
    if data_dir is not None:
        path, origin = Path(data_dir), "the data_dir argument"
    elif os.environ.get(DATA_DIR_ENV):
        path, origin = Path(os.environ[DATA_DIR_ENV]), f"${DATA_DIR_ENV}"
    else:
        path, origin = DEFAULT_DATA_DIR, "the default location"
    needed = ("train.jsonl.gz", "test.jsonl.gz", "labels.txt")
    missing = [name for name in needed if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The full debtags data was expected in {path} (from {origin}), but it "
            f"lacks {', '.join(missing)}. Point {DATA_DIR_ENV} at the folder "
            f"holding {', '.join(needed)} (or pass --data-dir). For a quick look "
            "without it, use sktext.datasets.load_debtags_sample()."
        )
    return path


def read_jsonl_gz(path: Path) -> list[dict[str, Any]]:
    """Read a gzipped JSON-lines file into a list of dicts."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def load_debtags(data_dir: str | os.PathLike | None = None) -> DebtagsData:
    """Load the full debtags train and test splits.

    Parameters
    ----------
    data_dir : path-like, default=None
        See :func:`resolve_data_dir`.

    Returns
    -------
    data : DebtagsData
        Texts, indicator matrices (``MultiLabelBinarizer`` with the classes of
        ``labels.txt``), label names and ids.
    """
    path = resolve_data_dir(data_dir)
    label_names = (path / "labels.txt").read_text(encoding="utf-8").split()
    binarizer = MultiLabelBinarizer(classes=label_names)
    binarizer.fit([])
    splits = {}
    for split in ("train", "test"):
        records = read_jsonl_gz(path / f"{split}.jsonl.gz")
        # int64 on purpose: scikit-learn 1.9's OneVsRestClassifier fitted on an int8
        # indicator matrix of this data gave chance-level probabilities.
        Y = binarizer.transform([record["labels"] for record in records]).astype(np.int64)
        splits[split] = (
            [record["text"] for record in records],
            Y,
            [record["id"] for record in records],
            [record["source"] for record in records],
        )
    return DebtagsData(
        train_texts=splits["train"][0],
        train_Y=splits["train"][1],
        test_texts=splits["test"][0],
        test_Y=splits["test"][1],
        label_names=label_names,
        train_ids=splits["train"][2],
        test_ids=splits["test"][2],
        data_dir=path,
        train_sources=splits["train"][3],
    )


def load_unlabeled_texts(
    data_dir: str | os.PathLike | None = None, *, max_texts: int | None = None, with_sources: bool = False
) -> list[str] | tuple[list[str], list[str]]:
    """Load the untagged in-domain descriptions (for language-model fine-tuning).

    Parameters
    ----------
    data_dir : path-like, default=None
        See :func:`resolve_data_dir`.
    max_texts : int, default=None
        Return only the first ``max_texts`` texts (file order, sorted by id).
    with_sources : bool, default=False
        Also return each text's source package (sibling binaries share one).

    Returns
    -------
    texts : list of str
    sources : list of str
        Only with ``with_sources``.
    """
    path = resolve_data_dir(data_dir) / "unlabeled.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"Expected the unlabeled texts in {path}; not found.")
    texts, sources = [], []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if max_texts is not None and len(texts) >= max_texts:
                break
            record = json.loads(line)
            texts.append(record["text"])
            sources.append(record["source"])
    return (texts, sources) if with_sources else texts


def subsample(
    texts: Sequence[str], Y: np.ndarray, n_samples: int | None, *, random_state: int = 0
) -> tuple[list[str], np.ndarray]:
    """Draw ``n_samples`` records at random (all of them if None or larger).

    Parameters
    ----------
    texts : sequence of str of length n
    Y : ndarray of shape (n, n_labels)
    n_samples : int or None
    random_state : int, default=0

    Returns
    -------
    texts, Y : list of str, ndarray
        The drawn records, in their original order.
    """
    if n_samples is None or n_samples >= len(texts):
        return list(texts), Y
    rng = np.random.default_rng(random_state)
    rows = np.sort(rng.choice(len(texts), size=n_samples, replace=False))
    return [texts[row] for row in rows], Y[rows]


def split_validation(
    Y: np.ndarray, validation_fraction: float = 0.1, *, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into train / validation, stratified over labels.

    Uses iterative stratification (``iterstrat``), so rare labels get positives
    on both sides where possible.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_labels)
    validation_fraction : float, default=0.1
    random_state : int, default=0

    Returns
    -------
    train_rows, validation_rows : ndarray of int
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=validation_fraction, random_state=random_state)
    train_rows, validation_rows = next(splitter.split(np.zeros((len(Y), 1)), Y))
    return np.sort(train_rows), np.sort(validation_rows)


def dev_split(data: DebtagsData, n_dev: int) -> tuple[tuple[list[str], np.ndarray], tuple[list[str], np.ndarray]]:
    """Train texts to draw from and ``n_dev`` dev texts, both from debtags **train**.

    A fixed stratified split (seed 0), for choosing defaults on validation data only;
    the test split is never touched.

    Returns
    -------
    (pool_texts, pool_Y), (dev_texts, dev_Y)
    """
    pool_rows, dev_rows = split_validation(data.train_Y, n_dev / len(data.train_texts), random_state=0)
    return _pool_and_dev(data, pool_rows, dev_rows)


def grouped_dev_split(
    data: DebtagsData, n_dev: int
) -> tuple[tuple[list[str], np.ndarray], tuple[list[str], np.ndarray]]:
    """As :func:`dev_split`, with whole source packages held out, as debtags' test split is made.

    A random dev part of train shares source packages (sibling binaries with near-identical
    descriptions) with the texts a model learns from, which the test split never does;
    holding out whole sources (seed 0, until ``n_dev`` texts) removes that leak.
    """
    by_source: dict[str, list[int]] = {}
    for row, source in enumerate(data.train_sources):
        by_source.setdefault(source, []).append(row)
    names = sorted(by_source)
    dev_rows: list[int] = []
    for index in np.random.default_rng(0).permutation(len(names)):
        if len(dev_rows) >= n_dev:
            break
        dev_rows += by_source[names[index]]
    held = np.zeros(len(data.train_texts), dtype=bool)
    held[dev_rows] = True
    return _pool_and_dev(data, np.flatnonzero(~held), np.flatnonzero(held))


def _pool_and_dev(
    data: DebtagsData, pool_rows: np.ndarray, dev_rows: np.ndarray
) -> tuple[tuple[list[str], np.ndarray], tuple[list[str], np.ndarray]]:
    """``(texts, Y)`` of the train rows to draw from and of the dev rows."""
    pool = ([data.train_texts[i] for i in pool_rows], data.train_Y[pool_rows])
    return pool, ([data.train_texts[i] for i in dev_rows], data.train_Y[dev_rows])


def build_tiny_encoder(folder: Path) -> Path:
    """A random 2-layer BERT (hidden size 32) with the default model's tokenizer, saved in ``folder``.

    Its network costs little, so what a benchmark sees is the cost around it.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from sktext.pretrained import DEFAULT_MODEL, resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_MODEL))
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------- baselines


def tfidf_lr_baseline(
    X_train: Sequence[str], Y_train: np.ndarray, X_test: Sequence[str], *, C: float = 8.0, n_jobs: int | None = None
) -> np.ndarray:
    """Fit TF-IDF + logistic regression on train; return test probabilities.

    Parameters
    ----------
    X_train : sequence of str of length n_train
    Y_train : array-like of shape (n_train, n_labels)
    X_test : sequence of str of length n_test
    C : float, default=8.0
    n_jobs : int, default=None

    Returns
    -------
    Y_score : ndarray of shape (n_test, n_labels)
        Sigmoid probabilities; threshold at 0.5 for the plain baseline.
    """
    model = make_tfidf_lr(C=C, n_jobs=n_jobs).fit(list(X_train), np.asarray(Y_train))
    return model.predict_proba(list(X_test))


def tfidf_lr_thresholds(
    X_train: Sequence[str],
    Y_train: np.ndarray,
    *,
    C: float = 8.0,
    validation_fraction: float = 0.1,
    random_state: int = 0,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, Pipeline]:
    """Per-label thresholds for TF-IDF + logistic regression, tuned on held-out data.

    The train data is split (iterative stratification) into a fitting part and a
    ``validation_fraction`` part; the model fitted on the first part scores the
    second, which sets one F1-maximizing threshold per label, or the global
    micro-F1 threshold for labels with fewer than 5 held-out positives
    (:func:`sktext.thresholds.tune_thresholds`, the rule ``threshold="auto"`` uses).

    Parameters
    ----------
    X_train : sequence of str of length n_train
    Y_train : array-like of shape (n_train, n_labels)
    C : float, default=8.0
    validation_fraction : float, default=0.1
    random_state : int, default=0
    n_jobs : int, default=None

    Returns
    -------
    thresholds : ndarray of shape (n_labels,)
        Predict with ``Y_score >= thresholds``.
    model : Pipeline
        The model fitted on the fitting part only.
    """
    X_train = list(X_train)
    Y_train = np.asarray(Y_train)
    fit_rows, validation_rows = split_validation(Y_train, validation_fraction, random_state=random_state)
    model = make_tfidf_lr(C=C, n_jobs=n_jobs).fit([X_train[row] for row in fit_rows], Y_train[fit_rows])
    validation_score = model.predict_proba([X_train[row] for row in validation_rows])
    thresholds, _ = tune_thresholds(Y_train[validation_rows], validation_score)
    return thresholds, model


def tfidf_lr_thresholded(
    X_train: Sequence[str],
    Y_train: np.ndarray,
    X_test: Sequence[str],
    *,
    C: float = 8.0,
    validation_fraction: float = 0.1,
    refit: bool = True,
    random_state: int = 0,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """TF-IDF + logistic regression with per-label thresholds tuned on held-out data.

    Thresholds come from :func:`tfidf_lr_thresholds`. With ``refit=True`` the
    model is then refitted on all of the train data (the plain baseline's model)
    and the thresholds are kept; with ``refit=False`` the model fitted on the
    fitting part scores the test data.

    Parameters
    ----------
    X_train : sequence of str of length n_train
    Y_train : array-like of shape (n_train, n_labels)
    X_test : sequence of str of length n_test
    C : float, default=8.0
    validation_fraction : float, default=0.1
    refit : bool, default=True
    random_state : int, default=0
    n_jobs : int, default=None

    Returns
    -------
    Y_score : ndarray of shape (n_test, n_labels)
        Test probabilities.
    thresholds : ndarray of shape (n_labels,)
        Predict with ``Y_score >= thresholds``.
    """
    thresholds, model = tfidf_lr_thresholds(
        X_train, Y_train, C=C, validation_fraction=validation_fraction, random_state=random_state, n_jobs=n_jobs
    )
    if refit:
        model = make_tfidf_lr(C=C, n_jobs=n_jobs).fit(list(X_train), np.asarray(Y_train))
    return model.predict_proba(list(X_test)), thresholds


# ------------------------------------------------------------------------ metrics


def scores(Y_true: np.ndarray, Y_pred: np.ndarray, Y_score: np.ndarray) -> dict[str, float]:
    """The benchmark metrics.

    Parameters
    ----------
    Y_true : array-like of shape (n_samples, n_labels)
        True binary indicator matrix.
    Y_pred : array-like of shape (n_samples, n_labels)
        Predicted binary indicator matrix.
    Y_score : array-like of shape (n_samples, n_labels)
        Scores or probabilities (for the ranking metric).

    Returns
    -------
    metrics : dict
        ``micro_f1``, ``macro_f1``, ``samples_f1`` (scikit-learn ``f1_score`` with
        ``zero_division=0``), ``lrap`` (label ranking average precision) and
        ``predicted_cardinality`` (mean number of predicted labels per sample).
    """
    Y_true = np.asarray(Y_true)
    Y_pred = np.asarray(Y_pred)
    result = {
        average + "_f1": float(f1_score(Y_true, Y_pred, average=average, zero_division=0))
        for average in ("micro", "macro", "samples")
    }
    result["lrap"] = float(label_ranking_average_precision_score(Y_true, np.asarray(Y_score)))
    result["predicted_cardinality"] = float(Y_pred.sum(axis=1).mean())
    return result


# ---------------------------------------------------------------------- reporting


class Timer:
    """Wall-clock timer used as a context manager; ``seconds`` holds the duration.

    Synchronizes CUDA (if in use) on entry and exit so that GPU work is counted.
    """

    def __enter__(self) -> Timer:
        _cuda_synchronize()
        self.seconds = float("nan")
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        _cuda_synchronize()
        self.seconds = time.perf_counter() - self._start


def _cuda_synchronize() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` becomes ``"cuda"`` when available, else ``"cpu"``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def machine_info(device: str | None = None) -> dict[str, Any]:
    """Where and how a benchmark ran: device, library versions, CPUs, date, command.

    Parameters
    ----------
    device : str, default=None
        The torch device used (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    """
    import sklearn

    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "scikit_learn": sklearn.__version__,
        "device": device,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if device is not None and device.startswith("cuda") and torch.cuda.is_available():
            info["device_name"] = torch.cuda.get_device_name(torch.device(device))
            info["cuda"] = torch.version.cuda
        else:
            info["device_name"] = platform.processor() or platform.machine()
            info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        pass
    info.update(_cpu_model())
    for module in ("transformers", "skorch", "accelerate"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            pass
    info["git_commit"] = _git_commit()
    return info


#: Flags of /proc/cpuinfo that decide a CPU's low-precision speed (bf16 and int8 arithmetic).
_SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile")


def _cpu_model() -> dict[str, Any]:
    """The first CPU's vendor, family, model and speed-relevant flags (Linux), else nothing.

    Two machines that both say "AMD EPYC" can differ by a CPU generation (family 25
    is Zen 3/4, 26 is Zen 5), and with it by their bf16 throughput.
    """
    fields = _cpu_fields_from_proc()
    if fields is None:
        return {}
    flags = set(fields.get("flags", "").split())
    return {
        "cpu_model_name": fields.get("model name"),
        "cpu_vendor": fields.get("vendor_id"),
        "cpu_family": fields.get("cpu family"),
        "cpu_model": fields.get("model"),
        "cpu_speed_flags": [flag for flag in _SPEED_FLAGS if flag in flags],
    }


def _git_commit() -> str | None:
    """The repository's HEAD commit, with ``+dirty`` if the tree has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Format rows as a plain-text table (floats with 4 significant decimals).

    Parameters
    ----------
    rows : sequence of dict
        One dict per row; missing keys print as empty cells.
    columns : sequence of str
        Keys to show, in order; the first column is left-aligned.

    Returns
    -------
    table : str
    """

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
        return str(value)

    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[index]) for line in cells]) for index, column in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = [value.rjust(width) for value, width in zip(values[1:], widths[1:])]
        return "  ".join([first] + rest)

    return "\n".join(
        [line(list(columns)), line(["-" * width for width in widths])] + [line(values) for values in cells]
    )


def write_results(name: str, payload: dict[str, Any], out: str | os.PathLike | None = None) -> Path:
    """Write a benchmark's results as JSON.

    Parameters
    ----------
    name : str
        File stem; the default path is ``benchmarks/results/NAME.json``.
    payload : dict
        JSON-serializable results (numpy scalars and arrays are converted).
    out : path-like, default=None
        Explicit output file instead of the default.

    Returns
    -------
    path : Path
        The file written.
    """
    path = Path(out) if out is not None else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_to_json) + "\n", encoding="utf-8")
    return path


def _to_json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_debtags_fields(path: str | os.PathLike | None = None) -> dict[str, dict[str, str]]:
    """Debian ``section`` and ``priority`` of every debtags package, by package id.

    Categorical targets for the mixed-head task, built by ``build_fields.py`` into
    ``benchmarks/data/debtags_fields.jsonl.gz``.
    """
    path = Path(path) if path else Path(__file__).resolve().parent / "data" / "debtags_fields.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; build it with python benchmarks/build_fields.py.")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    return {r["id"]: {"section": r["section"], "priority": r["priority"]} for r in records}
