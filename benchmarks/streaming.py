"""Peak memory of ``sktext predict`` against the number of texts: flat when it streams.

Builds a small model folder (a random 2-layer BERT of hidden size 32 with the bundled
all-MiniLM-L6-v2 tokenizer, fitted for one epoch on 300 texts of the bundled sample;
``--model-dir`` takes any other), writes JSONL files of short texts (the first 120
characters of the bundled sample's descriptions, cycled, each with an id), and runs

    python -m sktext predict MODEL texts-N.jsonl --out predictions-N.jsonl --keep-columns id

in a fresh subprocess per size, reading its peak resident memory (``ru_maxrss`` from
``os.wait4``) and wall time. Each size runs with the default chunk size (streaming)
and, up to ``--whole-up-to`` texts, with ``--chunk-size`` as large as the file: one
chunk, which is what ``predict`` did before it streamed (everything in memory).

Examples
--------
The figures in ``benchmarks/results/streaming_cpu.json`` (20k, 200k and 2M texts; a few
minutes on two CPU cores, most of it the 2M run)::

    python benchmarks/streaming.py

A quick check::

    python benchmarks/streaming.py --sizes 2000 20000 --whole-up-to 20000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from common import REPO_ROOT, build_tiny_encoder, format_table, machine_info, write_results  # noqa: E402


def build_tiny_model(folder: Path) -> Path:
    """A random 2-layer BERT (hidden 32) with the bundled tokenizer, fitted briefly, saved."""
    from sklearn.preprocessing import MultiLabelBinarizer

    from sktext import TransformerMultiLabelClassifier
    from sktext.datasets import load_debtags_sample

    encoder = build_tiny_encoder(folder / "encoder")
    sample = load_debtags_sample(subset="train")
    binarizer = MultiLabelBinarizer(classes=sample.label_names)
    Y = binarizer.fit_transform(sample.labels[:300])
    clf = TransformerMultiLabelClassifier(str(encoder), max_length=64, max_epochs=1, lr=1e-3, random_state=0)
    clf.fit(sample.texts[:300], Y)
    clf.classes_ = binarizer.classes_.astype(object)
    return clf.save(folder / "model")


def write_texts(path: Path, n_texts: int) -> Path:
    """``n_texts`` short texts (<= 120 characters) as JSONL with an ``id``."""
    from sktext.datasets import load_debtags_sample

    texts = [" ".join(text.split())[:120] for text in load_debtags_sample(subset="train").texts]
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n_texts):
            handle.write(json.dumps({"id": i, "text": texts[i % len(texts)]}) + "\n")
    return path


def run_predict(model: Path, data: Path, out: Path, chunk_size: int | None) -> dict:
    """Run ``sktext predict`` in a subprocess; its peak RSS (MiB) and wall time (s)."""
    command = [
        sys.executable,
        "-m",
        "sktext",
        "predict",
        str(model),
        str(data),
        "--out",
        str(out),
        "--keep-columns",
        "id",
    ]
    if chunk_size is not None:
        command += ["--chunk-size", str(chunk_size)]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    stderr = process.stderr.read()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr}")
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000, 2_000_000])
    parser.add_argument(
        "--whole-up-to",
        type=int,
        default=200_000,
        help="also run sizes up to this in one chunk (the unstreamed baseline)",
    )
    parser.add_argument("--model-dir", help="a model folder to use instead of the tiny model")
    parser.add_argument("--work-dir", help="where the inputs and predictions go (default: a temp dir)")
    parser.add_argument("--out", help="results JSON (default benchmarks/results/streaming_cpu.json)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        work = Path(work)
        model = Path(args.model_dir) if args.model_dir else build_tiny_model(work)
        rows = []
        for n_texts in args.sizes:
            data = write_texts(work / f"texts-{n_texts}.jsonl", n_texts)
            modes = [("streamed", None)]
            if n_texts <= args.whole_up_to:
                modes.append(("one chunk", n_texts))
            for mode, chunk_size in modes:
                result = run_predict(model, data, work / "predictions.jsonl", chunk_size)
                rows.append({"texts": n_texts, "mode": mode, **result, "texts_per_s": n_texts / result["seconds"]})
                print(format_table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
            data.unlink()
    streamed = {row["texts"]: row["peak_rss_mib"] for row in rows if row["mode"] == "streamed"}
    ratios = {f"{n}/{min(streamed)}": streamed[n] / streamed[min(streamed)] for n in sorted(streamed)}
    print()
    print(format_table(rows, ["texts", "mode", "peak_rss_mib", "seconds", "texts_per_s"]))
    print(
        "streamed peak RSS relative to the smallest size:",
        ", ".join(f"{key}: {value:.2f}x" for key, value in ratios.items()),
    )
    payload = {
        "rows": rows,
        "streamed_peak_ratio": ratios,
        "model": args.model_dir or "random 2-layer BERT, hidden 32, bundled MiniLM tokenizer",
        "machine": machine_info("cpu"),
    }
    print(f"wrote {write_results('streaming_cpu', payload, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
