"""Many labels: what a fit costs at 1,000 to 20,000+ labels, beside extreme-classification libraries.

Issue 21 asks whether sktext holds up with tens of thousands of labels. This benchmark
measures, for each arm, on each data set:

- **fit s**: wall-clock seconds of ``fit`` (for the baselines: their whole recipe,
  threshold tuning included, see below);
- **peak RSS**: the fit process's peak resident memory (``VmHWM``, exact) and the
  peak of the summed RSS of its whole process tree (sampled every 0.2 s, so joblib's
  worker processes count too);
- **predict s**: ``predict`` on the test texts, and **output bytes**: what ``predict``
  returns (sparse: data + indices + indptr; dense: the array);
- **quality**: precision@1/3/5 (from each text's 5 best-scored labels, threshold-free),
  micro-F1 and macro-F1 of ``predict`` (scikit-learn's ``f1_score``, ``zero_division=0``;
  macro over the labels with a train positive, as the issue asks, and ``macro_f1_test``
  over those with a positive in both train and test).

Each fit runs in a process of its own (this file, run with ``--worker``), so that its
peak memory is its own. The data sets:

- ``--data synthetic``: :func:`synthetic_tags.zipf_tags` at each ``--labels`` count
  (Zipf popularity, exponent 1: a long tail), ``--texts`` train and ``--test-texts``
  test texts of one draw; the texts have the same lengths at every label count;
- ``--data npm``: the npm package descriptions and their keywords
  (``benchmarks/data/npm_tags``: 14,178 train / 3,709 test texts, 2,779 labels).

The arms (``--arms``):

- ``sktext-frozen``: ``TransformerMultiLabelClassifier(freeze_encoder=True, max_epochs=1)``,
  the issue's scaling measurement (its "done when": at 20,000 labels at most 4x the
  seconds and 2x the peak memory of 1,000 labels, same texts, 2 cores);
- ``sktext``: the default ``TransformerMultiLabelClassifier`` (``--max-epochs`` overrides);
- ``tfidf-svc``: sktext's tuned TF-IDF + LinearSVC baseline
  (``sktext.baselines.tuned_linear_baselines()``, per-label thresholds);
- ``libmultilabel-tree``: LibMultiLabel's linear tree (``train_tree``, its defaults:
  K=100, dmax=10, liblinear ``-s 1``; beam width 10);
- ``napkinxc-plt``: napkinXC's probabilistic label tree (``PLT``, its defaults:
  hierarchical k-means, arity 2, at most 100 labels a leaf, logistic loss, C=10);
- optional: ``libmultilabel-1vsrest`` (one liblinear model per label, no tree; costly
  with many labels), ``napkinxc-plt-ensemble`` (3 PLTs averaged).

The sktext arms fit on a sparse ``y`` (CSR), so ``predict`` returns a CSR matrix; all
arms get sktext's own TF-IDF settings where they need features (word 1-2 grams,
sublinear tf, ``min_df=2``, ``max_df=0.9``): the baselines get a float32 CSR matrix
built once in this process (its seconds are ``features_s``, not in their fit s).

**The baselines' thresholds.** LibMultiLabel and napkinXC rank labels; to turn the
ranking into a prediction each baseline runs the recipe sktext's own estimators run:
fit on a random 90 % of the train texts, score the other 10 %, tune one threshold per
label for F1 there (labels with fewer than 5 positives there share the threshold that
maximises micro-F1; the rule of ``sktext.thresholds``, re-implemented here on sparse
scores), then refit on all train texts and predict the labels whose score reaches their
threshold. Only each text's 100 best-scored labels are candidates (tree models score
no more than that). Their fit s counts all of it; ``final_fit_s`` is the refit alone.

The baselines run in a separate virtual environment (their dependencies, LibMultiLabel's
above all, must not touch sktext's): ``--baseline-python`` (default
``$SKTEXT_XMC_PYTHON``) is its interpreter, which runs this file with ``--worker``;
features and labels travel as ``.npz`` files. Set-up commands: ``benchmarks/README.md``.

Examples
--------
::

    export SKTEXT_XMC_PYTHON=/work/venvs/xmc/bin/python
    python benchmarks/many_labels.py --smoke                          # every arm, tiny
    python benchmarks/many_labels.py --data synthetic --labels 1000 5000 20000 \\
        --texts 20000 --test-texts 5000
    python benchmarks/many_labels.py --data synthetic --arms sktext-frozen --labels 1000 5000 --texts 2000
    python benchmarks/many_labels.py --data npm
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

# Only numpy, scipy and the standard library at the top: the baselines' interpreter runs
# this file too (``--worker``), and it has neither sktext nor torch.

HERE = Path(__file__).resolve().parent
DEFAULT_NPM_DIR = HERE / "data" / "npm_tags"
BASELINE_PYTHON_ENV = "SKTEXT_XMC_PYTHON"

SKTEXT_ARMS = ("sktext-frozen", "sktext", "tfidf-svc")
BASELINE_ARMS = ("libmultilabel-tree", "napkinxc-plt", "libmultilabel-1vsrest", "napkinxc-plt-ensemble")
DEFAULT_ARMS = ("sktext-frozen", "sktext", "tfidf-svc", "libmultilabel-tree", "napkinxc-plt")

#: Labels per text the baselines keep as candidates (for thresholds and P@k).
CANDIDATES = 100
#: Labels with fewer validation positives share the micro-F1 threshold (sktext's rule).
MIN_THRESHOLD_POSITIVES = 5
#: Share of the train texts the baselines hold out to tune thresholds.
VALIDATION_FRACTION = 0.1
#: Labels ranked per text for precision@k.
TOP_K = 5


# ------------------------------------------------------------------------ metrics


def precision_at_k(Y_true: sp.csr_matrix, top: np.ndarray, ks: tuple[int, ...] = (1, 3, 5)) -> dict[str, float]:
    """Precision@k: the share of each text's ``k`` best-ranked labels that are true, averaged over texts.

    Parameters
    ----------
    Y_true : sparse matrix of shape (n_samples, n_labels)
        0/1 truth.
    top : ndarray of shape (n_samples, >= max(ks)), dtype=int
        Label indices, best first; ``-1`` pads a row with fewer candidates (a miss).
    ks : tuple of int, default=(1, 3, 5)

    Returns
    -------
    precision : dict
        ``p@1``, ``p@3``, ... .
    """
    Y_true = sp.csr_matrix(Y_true)
    n_samples, n_labels = Y_true.shape
    rows = np.repeat(np.arange(n_samples, dtype=np.int64), np.diff(Y_true.indptr))
    truth = np.sort(rows * n_labels + Y_true.indices)  # one code per true (text, label) pair
    top = np.asarray(top, dtype=np.int64)
    codes = np.arange(n_samples, dtype=np.int64)[:, None] * n_labels + top
    hits = np.isin(codes, truth) & (top >= 0)
    return {f"p@{k}": float(hits[:, :k].sum(axis=1).mean() / k) for k in ks}


def f1_scores(Y_true: sp.csr_matrix, Y_pred, train_labels: np.ndarray, test_labels: np.ndarray) -> dict[str, float]:
    """Micro-F1, macro-F1 over ``train_labels`` and macro-F1 over ``test_labels`` (``zero_division=0``)."""
    from sklearn.metrics import f1_score

    Y_true = sp.csr_matrix(Y_true, dtype=np.int8)
    Y_pred = sp.csr_matrix(Y_pred, dtype=np.int8)
    return {
        "micro_f1": float(f1_score(Y_true, Y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(Y_true, Y_pred, average="macro", labels=train_labels, zero_division=0)),
        "macro_f1_test": float(f1_score(Y_true, Y_pred, average="macro", labels=test_labels, zero_division=0)),
        "predicted_per_text": float(Y_pred.nnz / max(Y_pred.shape[0], 1)),
    }


def output_bytes(prediction) -> int:
    """Bytes of what ``predict`` returned: data + indices + indptr of a sparse matrix, else the array's."""
    if sp.issparse(prediction):
        prediction = sp.csr_matrix(prediction)
        return int(prediction.data.nbytes + prediction.indices.nbytes + prediction.indptr.nbytes)
    return int(np.asarray(prediction).nbytes)


# ------------------------------------------------------------ baselines' thresholds


def _best_cut(scores: np.ndarray, hits: np.ndarray, positives: int) -> tuple[float, float]:
    """``(threshold, f1)`` of the best cut of a ranked list (``scores`` descending, ``hits`` 0/1)."""
    if not len(scores) or positives == 0:
        return np.inf, 0.0
    f1 = 2.0 * np.cumsum(hits) / (positives + np.arange(1, len(scores) + 1))
    best = int(np.argmax(f1))
    return float(scores[best]), float(f1[best])


def tune_ranked_thresholds(
    Y_true: sp.csr_matrix, top: np.ndarray, scores: np.ndarray, *, min_positives: int = MIN_THRESHOLD_POSITIVES
) -> np.ndarray:
    """Per-label F1 thresholds on ranked candidate scores (sktext's rule, on sparse scores).

    A label with at least ``min_positives`` positives in ``Y_true`` gets the score that
    maximises its F1 when the candidates scoring at least that much are predicted; the
    others (and a label whose best F1 is 0) get the one global threshold that maximises
    micro-F1 over all candidates. A (text, label) pair that is not a candidate is never
    predicted.

    Parameters
    ----------
    Y_true : sparse matrix of shape (n_samples, n_labels)
    top : ndarray of shape (n_samples, n_candidates), dtype=int
        Candidate labels of each text; ``-1`` pads.
    scores : ndarray of shape (n_samples, n_candidates)
        Their scores (higher: more likely).

    Returns
    -------
    thresholds : ndarray of shape (n_labels,)
        Predict a candidate when its score is ``>=`` its label's threshold.
    """
    Y_true = sp.csr_matrix(Y_true)
    n_samples, n_labels = Y_true.shape
    valid = top >= 0
    rows = np.broadcast_to(np.arange(n_samples)[:, None], top.shape)[valid]
    labels, values = top[valid].astype(np.int64), scores[valid].astype(np.float64)
    truth = np.sort(np.repeat(np.arange(n_samples, dtype=np.int64), np.diff(Y_true.indptr)) * n_labels + Y_true.indices)
    hits = np.isin(rows * n_labels + labels, truth).astype(np.float64)
    positives = np.bincount(Y_true.indices, minlength=n_labels)

    order = np.argsort(-values, kind="stable")
    global_threshold, _ = _best_cut(values[order], hits[order], int(Y_true.nnz))
    thresholds = np.full(n_labels, global_threshold)

    order = np.lexsort((-values, labels))  # by label, best score first
    labels, values, hits = labels[order], values[order], hits[order]
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]]) if len(labels) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(labels)]
    for start, end in zip(starts, ends):
        label = labels[start]
        if positives[label] < min_positives:
            continue
        threshold, f1 = _best_cut(values[start:end], hits[start:end], int(positives[label]))
        if f1 > 0:
            thresholds[label] = threshold
    return thresholds


def apply_ranked_thresholds(top: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> sp.csr_matrix:
    """The candidates whose score reaches their label's threshold, as a CSR int8 matrix."""
    n_samples = top.shape[0]
    keep = (top >= 0) & (scores >= thresholds[np.where(top >= 0, top, 0)])
    rows = np.broadcast_to(np.arange(n_samples)[:, None], top.shape)[keep]
    prediction = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.int8), (rows, top[keep])), shape=(n_samples, len(thresholds))
    )
    prediction.sort_indices()
    return prediction


def _top_of_dense(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` largest entries of a dense chunk: ``(indices, values)``, best first."""
    k = min(k, values.shape[1])
    best = np.argpartition(-values, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(values, best, axis=1), axis=1, kind="stable")
    best = np.take_along_axis(best, order, axis=1)
    return best, np.take_along_axis(values, best, axis=1)


def _pad(top: np.ndarray, scores: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad ranked candidates to ``width`` columns (index -1, score -inf)."""
    missing = width - top.shape[1]
    if missing <= 0:
        return top, scores
    return (
        np.hstack([top, np.full((top.shape[0], missing), -1, dtype=top.dtype)]),
        np.hstack([scores, np.full((scores.shape[0], missing), -np.inf)]),
    )


# ------------------------------------------------------------------ memory watching


def _read_status(pid: int | str, field: str) -> int:
    """A ``kB`` field of ``/proc/PID/status`` in bytes (0 where unreadable)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (through ``/proc/PID/task/*/children``)."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", encoding="ascii") as handle:
                    children = [int(child) for child in handle.read().split()]
            except OSError:
                continue
            found += children
            frontier += children
    return found


class TreeMemoryWatcher:
    """Samples the summed RSS of this process and its descendants; ``peak`` is the largest seen (bytes)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        pid = os.getpid()
        total = sum(_read_status(process, "VmRSS") for process in [pid] + _descendants(pid))
        self.peak = max(self.peak, total)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemoryWatcher:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _mib(n_bytes: float) -> float:
    return float(n_bytes) / 2**20


# ------------------------------------------------------------------------ workers


def _save_ranked(path: Path, top: np.ndarray, scores: np.ndarray) -> None:
    np.savez(path, top=top, scores=scores)


def _read_texts(path: str) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def _sktext_estimator(arm: str, spec: dict[str, Any]):
    """The unfitted estimator of an sktext arm."""
    from sktext import TransformerMultiLabelClassifier
    from sktext.baselines import tuned_linear_baselines

    options: dict[str, Any] = {"random_state": 0}
    if spec.get("model"):
        options["model_name_or_path"] = spec["model"]
    if arm == "sktext-frozen":
        return TransformerMultiLabelClassifier(freeze_encoder=True, max_epochs=1, **options)
    if arm == "sktext":
        if spec.get("max_epochs"):
            options["max_epochs"] = spec["max_epochs"]
        return TransformerMultiLabelClassifier(**options)
    if arm == "tfidf-svc":
        return tuned_linear_baselines(n_jobs=-1, random_state=0)["TF-IDF + LinearSVC"]
    raise ValueError(f"unknown sktext arm {arm!r}")


def run_sktext_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit and predict one sktext arm; write its predictions; return its timings and memory."""
    train_texts, test_texts = _read_texts(spec["train_texts"]), _read_texts(spec["test_texts"])
    train_Y = sp.load_npz(spec["train_Y"]).tocsr().astype(np.int64)  # MultiLabelBinarizer's sparse form
    estimator = _sktext_estimator(spec["arm"], spec)
    result: dict[str, Any] = {"rss_before_fit_mib": _mib(_read_status("self", "VmRSS"))}
    with TreeMemoryWatcher() as watcher:
        start = time.perf_counter()
        estimator.fit(train_texts, train_Y)
        result["fit_s"] = time.perf_counter() - start
    result["peak_rss_mib"] = _mib(_read_status("self", "VmHWM"))
    result["peak_tree_rss_mib"] = _mib(watcher.peak)
    result["stages"] = dict(getattr(estimator, "fit_seconds_", {}) or {})

    with TreeMemoryWatcher() as watcher:
        start = time.perf_counter()
        prediction = estimator.predict(test_texts)
        result["predict_s"] = time.perf_counter() - start
        result["output_bytes"] = output_bytes(prediction)
        result["output_kind"] = "csr" if sp.issparse(prediction) else f"dense {np.asarray(prediction).dtype}"
        start = time.perf_counter()
        if hasattr(estimator, "predict_top_k"):
            top, scores = estimator.predict_top_k(test_texts, k=min(TOP_K, train_Y.shape[1]))
        else:  # TfidfLinearClassifier: margins a chunk of texts at a time
            parts = [
                _top_of_dense(estimator.decision_function(test_texts[i : i + 1000]), TOP_K)
                for i in range(0, len(test_texts), 1000)
            ]
            top, scores = np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])
        result["top_k_s"] = time.perf_counter() - start
    result["predict_peak_tree_rss_mib"] = _mib(watcher.peak)
    sp.save_npz(spec["out_prediction"], sp.csr_matrix(prediction, dtype=np.int8))
    _save_ranked(Path(spec["out_ranked"]), *_pad(top, scores, TOP_K))
    return result


def _baseline_model(arm: str, X: sp.csr_matrix, Y: sp.csr_matrix, workdir: Path):
    """Fit a baseline's model; return a function ``ranked(X) -> (top, scores)`` of its candidates."""
    n_labels = Y.shape[1]
    if arm.startswith("libmultilabel"):
        import libmultilabel.linear as linear

        if arm == "libmultilabel-tree":
            np.random.seed(0)  # its k-means draws its seed from numpy's global generator
            model = linear.train_tree(Y, X, options="", verbose=False)
        else:
            model = linear.train_1vsrest(Y, X, options="", verbose=False)

        def ranked(X_new: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
            chunk = max(1, 10_000_000 // n_labels)  # about 80 MB of dense scores at a time
            parts = []
            for start in range(0, X_new.shape[0], chunk):
                part = X_new[start : start + chunk]
                values = (
                    model.predict_values(part) if arm == "libmultilabel-tree" else linear.predict_values(model, part)
                )
                parts.append(_top_of_dense(np.asarray(values, dtype=np.float64), CANDIDATES))
            return np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])

        return ranked

    from napkinxc.models import PLT

    folder = tempfile.mkdtemp(dir=workdir, prefix="plt-")
    model = PLT(folder, seed=0, threads=0, ensemble=3 if arm == "napkinxc-plt-ensemble" else 1)
    Y = sp.csr_matrix(Y)
    label_lists = [[int(label) for label in Y.indices[Y.indptr[i] : Y.indptr[i + 1]]] for i in range(Y.shape[0])]
    model.fit(X, label_lists)

    def ranked(X_new: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        rows = model.predict_proba(X_new, top_k=min(CANDIDATES, n_labels))
        width = min(CANDIDATES, n_labels)
        top = np.full((len(rows), width), -1, dtype=np.int64)
        scores = np.full((len(rows), width), -np.inf)
        for i, row in enumerate(rows):
            if row:
                labels, values = zip(*row)
                top[i, : len(row)], scores[i, : len(row)] = labels, values
        return top, scores

    return ranked


def run_baseline_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit one baseline with tuned thresholds (see the module docstring); predict; write; return timings."""
    X_train, X_test = sp.load_npz(spec["train_X"]).tocsr(), sp.load_npz(spec["test_X"]).tocsr()
    Y_train = sp.load_npz(spec["train_Y"]).tocsr().astype(np.float64)  # liblinear wants doubles
    arm, workdir = spec["arm"], Path(spec["workdir"])
    if arm.startswith("libmultilabel"):  # imported before the clock starts, as sktext is
        import libmultilabel.linear  # noqa: F401
    else:
        import napkinxc.models  # noqa: F401
    result: dict[str, Any] = {"rss_before_fit_mib": _mib(_read_status("self", "VmRSS"))}
    rng = np.random.default_rng(0)
    held = np.zeros(X_train.shape[0], dtype=bool)
    held[
        rng.choice(X_train.shape[0], size=max(1, int(round(VALIDATION_FRACTION * X_train.shape[0]))), replace=False)
    ] = True
    with TreeMemoryWatcher() as watcher:
        start = time.perf_counter()
        ranked = _baseline_model(arm, X_train[~held], Y_train[~held], workdir)
        top, scores = ranked(X_train[held])
        thresholds = tune_ranked_thresholds(Y_train[held], top, scores)
        del ranked
        refit_start = time.perf_counter()
        ranked = _baseline_model(arm, X_train, Y_train, workdir)
        result["fit_s"] = time.perf_counter() - start
        result["final_fit_s"] = time.perf_counter() - refit_start
    result["peak_rss_mib"] = _mib(_read_status("self", "VmHWM"))
    result["peak_tree_rss_mib"] = _mib(watcher.peak)
    with TreeMemoryWatcher() as watcher:
        start = time.perf_counter()
        top, scores = ranked(X_test)
        prediction = apply_ranked_thresholds(top, scores, thresholds)
        result["predict_s"] = time.perf_counter() - start
    result["predict_peak_tree_rss_mib"] = _mib(watcher.peak)
    result["output_bytes"] = output_bytes(prediction)
    result["output_kind"] = "csr"
    sp.save_npz(spec["out_prediction"], prediction)
    _save_ranked(Path(spec["out_ranked"]), *_pad(top[:, :TOP_K], scores[:, :TOP_K], TOP_K))
    return result


def worker_main(spec_path: str) -> None:
    """``--worker SPEC``: run one arm as the spec says; write its result JSON (or its error)."""
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    try:
        run = run_baseline_worker if spec["arm"] in BASELINE_ARMS else run_sktext_worker
        result = run(spec)
        result["children_maxrss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    except Exception as error:  # reported in the table, the run goes on
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(error).__name__}: {error}"}
    Path(spec["out_result"]).write_text(json.dumps(result, indent=1), encoding="utf-8")


# ---------------------------------------------------------------------- the driver


def load_npm(
    data_dir: str | os.PathLike | None,
) -> tuple[tuple[list[str], sp.csr_matrix], tuple[list[str], sp.csr_matrix]]:
    """The npm tags data (``benchmarks/data/npm_tags``): ``(train_texts, train_Y), (test_texts, test_Y)``, Y in CSR."""
    from sklearn.preprocessing import MultiLabelBinarizer

    folder = Path(data_dir) if data_dir else DEFAULT_NPM_DIR
    labels = (folder / "labels.txt").read_text(encoding="utf-8").splitlines()
    binarizer = MultiLabelBinarizer(classes=labels, sparse_output=True).fit([])
    splits = []
    for split in ("train", "test"):
        with gzip.open(folder / f"{split}.jsonl.gz", "rt", encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle]
        Y = binarizer.transform([record["labels"] for record in records]).tocsr().astype(np.int64)
        splits.append(([record["text"] for record in records], Y))
    return splits[0], splits[1]


def tfidf_features(train_texts: list[str], test_texts: list[str]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The baselines' features: sktext's TF-IDF settings (word 1-2 grams, sublinear tf, min_df=2, max_df=0.9)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_df=0.9, strip_accents="unicode", dtype=np.float32
    )
    X_train = vectorizer.fit_transform(train_texts).tocsr()
    X_test = vectorizer.transform(test_texts).tocsr()
    X_train.sort_indices()
    X_test.sort_indices()
    return X_train, X_test


def run_arm(arm: str, files: dict[str, Path], workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one arm in its own process; return its result dict (with ``error`` where it failed)."""
    baseline = arm in BASELINE_ARMS
    python = args.baseline_python if baseline else sys.executable
    if baseline and not python:
        return {"error": f"no baseline interpreter: pass --baseline-python or set ${BASELINE_PYTHON_ENV}"}
    stem = workdir / arm
    spec = {
        "arm": arm,
        "workdir": str(workdir),
        "model": args.model,
        "max_epochs": args.max_epochs,
        **{key: str(path) for key, path in files.items()},
        "out_prediction": f"{stem}.prediction.npz",
        "out_ranked": f"{stem}.ranked.npz",
        "out_result": f"{stem}.result.json",
    }
    spec_path = Path(f"{stem}.spec.json")
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    log_path = Path(f"{stem}.log")
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            process = subprocess.run(
                [python, str(Path(__file__).resolve()), "--worker", str(spec_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=args.timeout,
                check=False,
            )
            returncode = process.returncode
        except subprocess.TimeoutExpired:
            returncode = "timeout"
    wall = time.perf_counter() - start
    result_path = Path(spec["out_result"])
    if result_path.is_file():
        result = json.loads(result_path.read_text(encoding="utf-8"))
    else:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        reason = f"timed out after {args.timeout} s" if returncode == "timeout" else f"exit status {returncode}"
        result = {"error": f"worker {reason}: {' | '.join(tail)}"}
    result["process_s"] = wall
    if "error" in result:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-2:]
        result["log_tail"] = tail
        return result
    prediction = sp.load_npz(spec["out_prediction"]).tocsr()
    ranked = np.load(spec["out_ranked"])
    result["prediction"] = prediction
    result["top"] = ranked["top"]
    return result


def evaluate(
    name: str,
    train: tuple[list[str], sp.csr_matrix],
    test: tuple[list[str], sp.csr_matrix],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Every arm on one data set: one row each."""
    (train_texts, train_Y), (test_texts, test_Y) = train, test
    train_labels = np.flatnonzero(np.bincount(train_Y.indices, minlength=train_Y.shape[1]))
    test_labels = np.intersect1d(train_labels, np.flatnonzero(np.bincount(test_Y.indices, minlength=test_Y.shape[1])))
    base = {
        "data": name,
        "n_labels": int(train_Y.shape[1]),
        "labels_in_train": len(train_labels),
        "n_train": len(train_texts),
        "n_test": len(test_texts),
    }
    print(
        f"\n{name}: {len(train_texts)} train / {len(test_texts)} test texts, {train_Y.shape[1]} labels "
        f"({len(train_labels)} with a train positive)",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="many-labels-", dir=args.workdir) as folder:
        workdir = Path(folder)
        files: dict[str, Path] = {}
        for split, texts in (("train", train_texts), ("test", test_texts)):
            files[f"{split}_texts"] = workdir / f"{split}_texts.json.gz"
            with gzip.open(files[f"{split}_texts"], "wt", encoding="utf-8") as handle:
                json.dump(texts, handle)
        files["train_Y"] = workdir / "train_Y.npz"
        sp.save_npz(files["train_Y"], sp.csr_matrix(train_Y, dtype=np.int8))
        features_s = None
        if any(arm in BASELINE_ARMS for arm in args.arms):
            start = time.perf_counter()
            X_train, X_test = tfidf_features(train_texts, test_texts)
            features_s = time.perf_counter() - start
            files["train_X"], files["test_X"] = workdir / "train_X.npz", workdir / "test_X.npz"
            sp.save_npz(files["train_X"], X_train)
            sp.save_npz(files["test_X"], X_test)
            print(f"  TF-IDF features for the baselines: {X_train.shape[1]} terms, {features_s:.1f} s", flush=True)
        for arm in args.arms:
            result = run_arm(arm, files, workdir, args)
            row = {**base, "arm": arm, "features_s": features_s if arm in BASELINE_ARMS else None}
            if "error" in result:
                row.update(error=result["error"], process_s=result["process_s"])
                print(f"  {arm}: FAILED after {result['process_s']:.1f} s: {result['error']}", flush=True)
                rows.append(row)
                continue
            prediction, top = result.pop("prediction"), result.pop("top")
            row.update(result)
            row.update(precision_at_k(test_Y, top))
            row.update(f1_scores(test_Y, prediction, train_labels, test_labels))
            stages = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in row.get("stages", {}).items())
            print(
                f"  {arm}: fit {row['fit_s']:.1f} s, peak {row['peak_rss_mib']:.0f} MiB "
                f"(tree {row['peak_tree_rss_mib']:.0f}), predict {row['predict_s']:.2f} s, "
                f"{row['output_bytes']:,} B; P@1 {row['p@1']:.3f} micro {row['micro_f1']:.3f} "
                f"macro {row['macro_f1']:.3f}" + (f"  [{stages}]" if stages else ""),
                flush=True,
            )
            rows.append(row)
    return rows


def scaling_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each arm's fit seconds and peak memory relative to its fewest-labels synthetic run."""
    summary = []
    for arm in dict.fromkeys(row["arm"] for row in rows):
        runs = sorted(
            (r for r in rows if r["arm"] == arm and r["data"] == "synthetic" and "error" not in r),
            key=lambda r: r["n_labels"],
        )
        for run in runs[1:]:
            summary.append(
                {
                    "arm": arm,
                    "labels": f"{runs[0]['n_labels']} -> {run['n_labels']}",
                    "fit_ratio": run["fit_s"] / runs[0]["fit_s"],
                    "peak_rss_ratio": run["peak_rss_mib"] / runs[0]["peak_rss_mib"],
                    "peak_tree_ratio": run["peak_tree_rss_mib"] / runs[0]["peak_tree_rss_mib"],
                }
            )
    return summary


COLUMNS = [
    "data",
    "n_labels",
    "arm",
    "fit_s",
    "peak_rss_mib",
    "peak_tree_rss_mib",
    "predict_s",
    "output_bytes",
    "p@1",
    "p@3",
    "p@5",
    "micro_f1",
    "macro_f1",
    "macro_f1_test",
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", choices=("synthetic", "npm"), default="synthetic")
    parser.add_argument("--data-dir", default=None, help=f"npm tags folder (default: {DEFAULT_NPM_DIR})")
    parser.add_argument("--labels", type=int, nargs="+", default=[1_000, 5_000, 20_000], help="synthetic label counts")
    parser.add_argument("--texts", type=int, default=20_000, help="synthetic train texts")
    parser.add_argument("--test-texts", type=int, default=5_000, help="synthetic test texts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), choices=SKTEXT_ARMS + BASELINE_ARMS)
    parser.add_argument("--model", default=None, help="model_name_or_path of the sktext arms (default: sktext's)")
    parser.add_argument("--max-epochs", type=int, default=None, help="max_epochs of the 'sktext' arm (default: its)")
    parser.add_argument(
        "--baseline-python",
        default=os.environ.get(BASELINE_PYTHON_ENV),
        help=f"interpreter of the baselines' virtual environment (default: ${BASELINE_PYTHON_ENV})",
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds before an arm's process is stopped")
    parser.add_argument("--workdir", default=None, help="folder for the temporary files (default: the system's)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 300 train / 100 test texts, 200 labels")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return {}
    if args.smoke:
        args.data, args.labels, args.texts, args.test_texts = "synthetic", [200], 300, 100

    sys.path.insert(0, str(HERE))
    from common import format_table, machine_info, write_results
    from synthetic_tags import train_test

    rows = []
    if args.data == "npm":
        train, test = load_npm(args.data_dir)
        rows += evaluate("npm", train, test, args)
    else:
        for n_labels in args.labels:
            train, test = train_test(args.texts, args.test_texts, n_labels, seed=args.seed)
            rows += evaluate("synthetic", train, test, args)
    print()
    print(format_table(rows, COLUMNS + ["error"] if any("error" in r for r in rows) else COLUMNS))
    summary = scaling_summary(rows)
    if summary:
        print("\nscaling (each arm against its fewest labels):")
        print(format_table(summary, ["arm", "labels", "fit_ratio", "peak_rss_ratio", "peak_tree_ratio"]))
    payload = {
        "benchmark": "many_labels",
        "machine": machine_info("cpu"),
        "config": {key: value for key, value in vars(args).items() if key != "worker"},
        "rows": rows,
        "scaling": summary,
    }
    name = "many_labels_" + ("smoke" if args.smoke else args.data)
    path = write_results(name, payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
