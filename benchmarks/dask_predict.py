"""Throughput of ``sktext.dask.predict_dask`` at 1 and 2 workers, and where one process's time goes.

Fits the bundled all-MiniLM-L6-v2 classifier briefly (frozen encoder, one epoch on
300 texts of the bundled sample, ``max_length=128``; ``--model-dir`` takes any other
model folder), saves it, then labels ``--n-texts`` short texts (the first 120
characters of the sample's descriptions, cycled) as a Dask DataFrame of
``--partitions`` partitions on :func:`sktext.dask.local_cluster` CPU workers (one
torch thread each). Every worker loads the model before the clock starts (the load
time is reported apart); texts/s = texts / wall time of ``compute()``.

It also times, in this process on one thread, the stages of labelling the same texts
(tokenization, the model, thresholds) and of the CPU side of ``sktext predict``
(JSON parsing and writing), which bound what one process can feed a GPU.

Examples
--------
The figures in ``benchmarks/results/dask_predict_cpu.json`` (about 3 minutes on two
shared CPU cores)::

    OMP_NUM_THREADS=1 python benchmarks/dask_predict.py --n-texts 1600 --partitions 8
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from common import format_table, machine_info, write_results  # noqa: E402


def build_model(folder: Path, max_length: int) -> Path:
    """The bundled MiniLM with a frozen encoder and a head trained for one epoch, saved."""
    from sklearn.preprocessing import MultiLabelBinarizer

    from sktext import TransformerMultiLabelClassifier
    from sktext.datasets import load_debtags_sample

    sample = load_debtags_sample(subset="train")
    binarizer = MultiLabelBinarizer(classes=sample.label_names)
    Y = binarizer.fit_transform(sample.labels[:300])
    clf = TransformerMultiLabelClassifier(max_length=max_length, max_epochs=1, freeze_encoder=True, random_state=0)
    clf.fit(sample.texts[:300], Y)
    clf.classes_ = binarizer.classes_.astype(object)
    return clf.save(folder / "model")


def short_texts(n_texts: int) -> list[str]:
    from sktext.datasets import load_debtags_sample

    texts = [" ".join(text.split())[:120] for text in load_debtags_sample(subset="train").texts]
    return [texts[i % len(texts)] for i in range(n_texts)]


def stage_times(model: Path, texts: list[str]) -> dict[str, float]:
    """Texts/s of each stage of labelling ``texts`` in this process (one torch thread)."""
    import torch

    from sktext import load_model

    torch.set_num_threads(1)
    estimator = load_model(model)
    lines = [json.dumps({"id": i, "text": text}) for i, text in enumerate(texts)]
    rates = {}
    start = time.perf_counter()
    records = [json.loads(line) for line in lines]
    rates["json_parse"] = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    encoded = estimator._encode([record["text"] for record in records])
    rates["tokenize"] = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    logits = estimator._logits(encoded)
    rates["model"] = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    predicted = 1 / (1 + __import__("numpy").exp(-logits)) >= estimator.thresholds_
    names = [str(name) for name in estimator.classes_]
    rows = [
        json.dumps({"id": i, "predicted_labels": [n for n, on in zip(names, row) if on]})
        for i, row in enumerate(predicted)
    ]
    rates["threshold_and_json_write"] = len(rows) / (time.perf_counter() - start)
    rates["mean_tokens"] = float(encoded.lengths.mean())
    return rates


def cluster_throughput(model: Path, texts: list[str], n_workers: int, partitions: int) -> dict:
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client

    from sktext.dask import _worker_model, local_cluster, predict_dask

    frame = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=partitions)
    with local_cluster(n_workers, gpus=None, torch_threads=1) as cluster, Client(cluster) as client:
        client.wait_for_workers(n_workers)
        start = time.perf_counter()
        client.run(_worker_model, str(model))
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        result = predict_dask(model, frame).compute()
        seconds = time.perf_counter() - start
    assert len(result) == len(texts)
    return {
        "workers": n_workers,
        "texts": len(texts),
        "partitions": partitions,
        "model_load_s": load_s,
        "seconds": seconds,
        "texts_per_s": len(texts) / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-texts", type=int, default=3000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--model-dir", help="a model folder to use instead of the bundled MiniLM")
    parser.add_argument("--out", help="results JSON (default benchmarks/results/dask_predict_cpu.json)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    with tempfile.TemporaryDirectory() as work:
        model = Path(args.model_dir) if args.model_dir else build_model(Path(work), args.max_length)
        texts = short_texts(args.n_texts)
        stages = stage_times(model, texts)
        print(
            "one process, one thread, texts/s by stage:",
            ", ".join(f"{key} {value:,.0f}" for key, value in stages.items()),
            flush=True,
        )
        rows = [cluster_throughput(model, texts, n, args.partitions) for n in args.workers]
    print(format_table(rows, ["workers", "texts", "partitions", "model_load_s", "seconds", "texts_per_s"]))
    payload = {
        "rows": rows,
        "stages_texts_per_s": stages,
        "model": args.model_dir or f"all-MiniLM-L6-v2, frozen, max_length={args.max_length}",
        "machine": machine_info("cpu"),
    }
    print(f"wrote {write_results('dask_predict_cpu', payload, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
