"""sktext on Dask: a cluster of one worker per GPU, and prediction partition by partition.

A leaf module (the estimators never import it); it needs ``pip install "sktext[dask]"``
and imports dask and distributed inside the functions that use them.

Searches need nothing from here: scikit-learn's searches run on Dask through joblib::

    from distributed import Client
    from sklearn.model_selection import GridSearchCV
    import joblib

    client = Client(local_cluster())                # or Client("scheduler-address:8786")
    search = GridSearchCV(TransformerMultiLabelClassifier(), grid, cv=folds)
    with joblib.parallel_backend("dask"):
        search.fit(texts, Y)

Each task receives the unfitted estimator (its parameters only) and the data, fits a
clone on its worker and sends back the scores; the final refit runs in the client.
:func:`local_cluster` makes the workers fit for it: one task at a time each, one GPU
each (``CUDA_VISIBLE_DEVICES``, so ``device="auto"`` picks that worker's GPU), a set
number of torch threads. ``docs/SCALING.md`` has the whole recipe.

:func:`predict_dask` labels a Dask DataFrame, Series or Bag: every worker loads the
model from a model folder (:func:`sktext.save_model`) once, on its first partition,
and keeps it for the next ones; tasks carry only the folder's path.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .thresholds import apply_thresholds_in_chunks, label_lists, prediction_chunks

__all__ = ["local_cluster", "predict_dask", "worker_environment"]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _require_distributed():
    try:
        import distributed  # imports dask
    except ImportError as error:
        raise ImportError(
            f"sktext.dask needs dask and distributed ({error.name} is missing); install them with "
            'pip install "sktext[dask]".'
        ) from None
    return distributed


def worker_environment(gpu: int | str | None, torch_threads: int = 1) -> dict[str, str]:
    """The environment of one worker process: its GPU (or none) and its thread count.

    Parameters
    ----------
    gpu : int, str or None
        The GPU the worker owns, as ``nvidia-smi`` numbers it (or a GPU UUID). None hides
        every GPU from the worker (``CUDA_VISIBLE_DEVICES=""``): it fits and predicts on CPU.
    torch_threads : int, default=1
        Threads for torch's CPU kernels (``OMP_NUM_THREADS`` and friends).

    Returns
    -------
    environment : dict of str to str
    """
    if isinstance(torch_threads, bool) or not isinstance(torch_threads, int) or torch_threads < 1:
        raise ValueError(f"torch_threads must be a positive integer, got {torch_threads!r}.")
    environment = dict.fromkeys(_THREAD_VARIABLES, str(torch_threads))
    environment["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else str(gpu)
    return environment


def dask_setup(worker=None) -> None:
    """Dask's preload hook (``dask worker --preload sktext.dask``): set torch's thread count.

    torch in a worker process does not always follow the ``OMP_NUM_THREADS`` its nanny
    sets, so this sets it explicitly, and loads sktext (and torch) before the first task.
    :func:`local_cluster` preloads it on every worker.
    """
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) >= 1:
        torch.set_num_threads(int(threads))


def _visible_gpus() -> list[str]:
    """The GPUs this process may use, by the numbers or UUIDs ``CUDA_VISIBLE_DEVICES`` gives."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None and listed.strip():
        return [name.strip() for name in listed.split(",") if name.strip()][:count]
    return [str(index) for index in range(count)]


def local_cluster(
    n_workers: int | None = None,
    *,
    gpus: str | list | None = "auto",
    torch_threads: int | None = None,
    dashboard: bool = False,
    **worker_options,
):
    """A Dask cluster on this machine whose workers each fit one model at a time.

    Every worker is its own process with one thread (one task, so one model, at a time)
    and, on a GPU machine, one GPU of its own: it sees only that GPU (as ``cuda:0``),
    so estimators with ``device="auto"`` use it. This is what dask-cuda's
    ``LocalCUDACluster`` does; this needs only dask and distributed.

    Parameters
    ----------
    n_workers : int, optional
        Workers to start. Default: one per GPU in ``gpus``; with no GPU, the number of
        CPU cores divided by ``torch_threads``.
    gpus : "auto", list of int or str, or None, default="auto"
        ``"auto"``: the GPUs this process sees (``CUDA_VISIBLE_DEVICES``, else all).
        A list: those GPUs. None: no GPU, CPU workers only.
    torch_threads : int, optional
        torch threads per worker. Default: 1 on GPU workers, else the CPU cores divided
        by ``n_workers`` (at least 1).
    dashboard : bool, default=False
        Serve Dask's dashboard (needs bokeh).
    **worker_options
        Further options of :class:`distributed.Nanny` (``memory_limit="8GiB"``...).

    Returns
    -------
    cluster : distributed.SpecCluster
        Pass it to ``distributed.Client``; close it (or use ``with``) when done.

    Examples
    --------
    >>> from distributed import Client
    >>> with local_cluster(2, gpus=None) as cluster, Client(cluster) as client:  # doctest: +SKIP
    ...     client.run(lambda: __import__("os").environ["CUDA_VISIBLE_DEVICES"])
    """
    distributed = _require_distributed()
    if gpus == "auto":
        gpus = _visible_gpus()
    elif gpus is not None and (isinstance(gpus, (str, bytes)) or not hasattr(gpus, "__iter__")):
        raise ValueError(f"gpus must be 'auto', a list of GPU numbers or None; got {gpus!r}.")
    gpus = list(gpus or [])
    from .distributed import available_cores

    cores = available_cores()
    if n_workers is None:
        n_workers = len(gpus) or max(1, cores // (torch_threads or 1))
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}.")
    if gpus and n_workers > len(gpus):
        raise ValueError(
            f"n_workers={n_workers} but only {len(gpus)} GPU(s) ({', '.join(map(str, gpus))}): one "
            "worker per GPU. Pass fewer workers, or gpus=None for CPU workers."
        )
    if torch_threads is None:
        torch_threads = 1 if gpus else max(1, cores // n_workers)
    workers = {
        f"worker-{index}": {
            "cls": distributed.Nanny,
            "options": {
                "nthreads": 1,
                "env": worker_environment(gpus[index] if gpus else None, torch_threads),
                "preload": ["sktext.dask"],
                **worker_options,
            },
        }
        for index in range(n_workers)
    }
    scheduler = {
        "cls": distributed.Scheduler,
        "options": {"dashboard": dashboard, "dashboard_address": ":8787" if dashboard else None},
    }
    return distributed.SpecCluster(workers=workers, scheduler=scheduler)


# -- prediction -----------------------------------------------------------------------------
_MODELS: dict[tuple[str, int], Any] = {}
_MODELS_LOCK = threading.Lock()


def _worker_model(folder: str):
    """The model in ``folder``, loaded once per process (again if the folder is re-saved)."""
    from .persistence import MANIFEST_FILE, load_model

    key = (folder, os.stat(Path(folder) / MANIFEST_FILE).st_mtime_ns)
    with _MODELS_LOCK:
        if key not in _MODELS:
            for stale in [other for other in _MODELS if other[0] == folder]:
                del _MODELS[stale]
            _MODELS[key] = load_model(folder)
        return _MODELS[key]


def _label_names(folder: str) -> list[str]:
    """The label names of a multi-label classifier's folder, read from its manifest only."""
    from .persistence import _decode_classes, read_manifest

    manifest = read_manifest(folder)
    if manifest.get("output_layout") is not None or manifest.get("classes") is None:
        kind = "several categorical targets" if manifest.get("output_layout") else "a regressor"
        raise ValueError(
            f"predict_dask labels texts with a multi-label classifier; the folder {folder!r} holds "
            f"{manifest.get('estimator')} fitted as {kind}. Use map_partitions with the "
            "estimator's own predict for it."
        )
    return [str(name) for name in _decode_classes(manifest["classes"])]


def _predict_matrix(folder: str, texts: list[str], proba: bool) -> np.ndarray | sp.csr_matrix:
    """The partition's probabilities (dense float32), or its 0/1 predictions as an int8 CSR matrix.

    Predicted a chunk of texts at a time (:func:`~sktext.thresholds.prediction_chunks`):
    at tens of thousands of labels no dense (partition, n_labels) array of probabilities
    is made for the labels, only their sparse decisions.
    """
    estimator = _worker_model(folder)
    n_labels = len(estimator.classes_)
    if not texts:
        return np.zeros((0, n_labels), dtype=np.float32) if proba else sp.csr_matrix((0, n_labels), dtype=np.int8)
    chunks = (estimator.predict_proba(texts[start:stop]) for start, stop in prediction_chunks(len(texts), n_labels))
    if proba:
        return np.vstack([chunk.astype(np.float32) for chunk in chunks])
    return apply_thresholds_in_chunks(chunks, estimator.thresholds_, n_labels)


def _texts_of(frame, text_column: str | None) -> list[str]:
    series = frame if text_column is None else frame[text_column]
    return series.tolist()


def _predict_frame(frame, folder: str, text_column: str | None, proba: bool, names: list[str]):
    import pandas as pd

    matrix = _predict_matrix(folder, _texts_of(frame, text_column), proba)
    return pd.DataFrame(matrix if proba else matrix.toarray(), index=frame.index, columns=names)


def _predict_bag_partition(items: list, folder: str, text_column: str | None, proba: bool, names: list[str]) -> list:
    items = list(items)
    texts = [item if text_column is None else item[text_column] for item in items]
    matrix = _predict_matrix(folder, texts, proba)
    if proba:
        return [dict(zip(names, row.tolist())) for row in matrix]
    return label_lists(matrix, names)


def predict_dask(model_folder: str | os.PathLike, data, *, text_column: str | None = "text", proba: bool = False):
    """Label a Dask DataFrame, Series or Bag of texts, partition by partition.

    Each task carries the model folder's path, not the model: a worker loads the model
    on its first partition (on its GPU with ``device="auto"`` and a worker per GPU,
    see :func:`local_cluster`) and reuses it for every later one. The folder must be
    readable at the same path on every worker (a shared filesystem, or a copy on each
    node). The model goes where its ``device`` parameter says: with ``"auto"`` (the
    default) a worker's GPU when it has one. A worker keeps one model per folder it
    has served until it exits. Nothing runs until you compute the result.

    Parameters
    ----------
    model_folder : str or path-like
        A multi-label classifier saved with :func:`sktext.save_model` (or ``sktext fit``).
    data : dask DataFrame, dask Series or dask Bag
        The texts: a DataFrame's ``text_column``; a Series of str; a Bag of str or of
        dicts (records) holding ``text_column``.
    text_column : str or None, default="text"
        Where the text is in a DataFrame or in a Bag of dicts; ignored for a Series.
    proba : bool, default=False
        Probabilities (float32) instead of 0/1 predictions (int8, thresholded with the
        model's ``thresholds_``).

    Returns
    -------
    predictions : dask DataFrame or dask Bag
        For a DataFrame or Series: one column per label, named by the label, with the
        input's index (join it back with ``ddf.join(predictions)``). For a Bag: per
        text, the list of predicted label names, or a dict of label to probability.

    Examples
    --------
    >>> import dask.dataframe as dd  # doctest: +SKIP
    >>> texts = dd.read_parquet("texts/")  # doctest: +SKIP
    >>> labels = predict_dask("model/", texts, text_column="body")  # doctest: +SKIP
    >>> labels.to_parquet("labels/")  # doctest: +SKIP
    """
    _require_distributed()
    folder = os.path.abspath(os.fspath(model_folder))
    names = _label_names(folder)
    import dask.bag

    if isinstance(data, dask.bag.Bag):
        return data.map_partitions(_predict_bag_partition, folder, text_column, bool(proba), names)
    try:
        import dask.dataframe as dd
    except ImportError as error:
        raise ImportError(
            f"predict_dask on a DataFrame needs dask.dataframe ({error.name} is missing); install "
            'it with pip install "sktext[dask]".'
        ) from None
    if isinstance(data, dd.Series):
        text_column = None
    elif isinstance(data, dd.DataFrame):
        if text_column not in data.columns:
            raise ValueError(
                f"The DataFrame has no text column {text_column!r}; its columns are "
                f"{', '.join(map(repr, data.columns))}. Pass text_column=..."
            )
    else:
        raise TypeError(
            f"predict_dask takes a dask DataFrame, Series or Bag; got {type(data).__name__}. For "
            "a pandas DataFrame, use dask.dataframe.from_pandas(frame, npartitions=...) or the "
            "estimator's own predict."
        )
    import pandas as pd

    dtype = np.float32 if proba else np.int8
    meta = pd.DataFrame({name: pd.Series([], dtype=dtype) for name in names})
    return data.map_partitions(_predict_frame, folder, text_column, bool(proba), names, meta=meta)
