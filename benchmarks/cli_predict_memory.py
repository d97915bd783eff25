"""``sktext predict`` with a model of 20,000 labels: memory flat in the number of texts, label lists out.

Issue 21 asks that the command line predict 200,000 texts with a 20,000-label model in
less than 1.5 times the memory it takes for 20,000 texts, writing label lists rather
than dense rows. This benchmark:

1. fits ``TransformerMultiLabelClassifier(freeze_encoder=True, max_epochs=1)`` on
   ``--train-texts`` synthetic texts of ``--labels`` Zipf-tailed labels
   (:func:`synthetic_tags.zipf_tags`, labels sparse) and saves its model folder. The
   encoder is a tiny random 2-layer BERT by default (``--model`` for another), so that
   the 200,000 texts' network pass costs minutes, not an hour: what grows with the
   labels (the lexical part, the blend, the thresholds, the output) is the same as
   with any encoder;
2. writes each of ``--predict-texts`` synthetic texts as JSON lines (the training draw's
   seed, so that they carry the same labels' words: a text gets its labels predicted, as
   on real data; another seed would give other words and almost no labels) and runs
   ``python -m sktext predict MODEL TEXTS --out OUT.jsonl`` on them in a process of
   its own, which reports its peak resident memory (``ru_maxrss``, exact) as it exits;
3. reads the output back: one row per text, each ``predicted_labels`` a list of label
   names.

It prints a table (seconds, texts/s, peak MiB, output bytes, labels per row) and the
ratio of the largest run's peak to the smallest's, and writes JSON.

Example (about 25 minutes on 2 cores)::

    python benchmarks/cli_predict_memory.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import build_tiny_encoder, format_table, machine_info, write_results  # noqa: E402
from synthetic_tags import zipf_tags  # noqa: E402

#: Runs ``sktext predict`` with the given arguments, then prints its peak RSS (KiB) as JSON.
_CHILD = (
    "import json, resource, sys\n"
    "from sktext.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(json.dumps({'peak_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n"
    "sys.exit(code)\n"
)


def fit_model(args, workdir: Path) -> tuple[Path, dict]:
    from sktext import TransformerMultiLabelClassifier

    texts, Y = zipf_tags(args.train_texts, args.labels, seed=0)
    model = args.model or str(build_tiny_encoder(workdir / "encoder"))
    clf = TransformerMultiLabelClassifier(model, freeze_encoder=True, max_epochs=1, random_state=0)
    start = time.perf_counter()
    clf.fit(texts, sp.csr_matrix(Y))
    fit_s = time.perf_counter() - start
    folder = workdir / "model"
    clf.save(folder)
    info = {"fit_s": fit_s, "labels": args.labels, "labels_in_train": int((Y.sum(axis=0) > 0).sum())}
    info["model_mb"] = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6
    print(f"fitted in {fit_s:.0f} s; model folder {info['model_mb']:.0f} MB", flush=True)
    return folder, info


def predict_run(folder: Path, n_texts: int, n_labels: int, workdir: Path) -> dict:
    texts, _ = zipf_tags(n_texts, n_labels, seed=0)  # the training draw's labels' words
    source, out = workdir / f"texts_{n_texts}.jsonl", workdir / f"predictions_{n_texts}.jsonl"
    with open(source, "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": i, "text": text}) + "\n")
    del texts
    start = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-c", _CHILD, "predict", str(folder), str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"sktext predict failed ({process.returncode}): {process.stderr[-2000:]}")
    peak = json.loads(process.stdout.strip().splitlines()[-1])["peak_kib"] / 1024
    n_rows, n_labels, lists = 0, 0, True
    with open(out, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            labels = row["predicted_labels"]
            lists &= isinstance(labels, list) and all(isinstance(name, str) for name in labels)
            n_rows, n_labels = n_rows + 1, n_labels + len(labels)
    result = {
        "texts": n_texts,
        "seconds": seconds,
        "texts_per_s": n_texts / seconds,
        "peak_mib": peak,
        "output_mb": out.stat().st_size / 1e6,
        "rows": n_rows,
        "labels_per_row": n_labels / max(n_rows, 1),
        "label_lists": bool(lists and n_rows == n_texts),
    }
    print(f"  {n_texts} texts: {seconds:.0f} s, peak {peak:.0f} MiB", flush=True)
    source.unlink()
    out.unlink()
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=20_000)
    parser.add_argument("--train-texts", type=int, default=20_000)
    parser.add_argument("--predict-texts", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--model", default=None, help="encoder (default: a tiny random 2-layer BERT)")
    parser.add_argument("--model-folder", default=None, help="predict with this saved model instead of fitting one")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sktext-cli-predict-"))
    if args.model_folder:  # a model this script fitted and saved before
        folder, fitted = Path(args.model_folder), {"model_folder": args.model_folder}
    else:
        folder, fitted = fit_model(args, workdir)
    rows = [predict_run(folder, n, args.labels, workdir) for n in args.predict_texts]
    ratio = rows[-1]["peak_mib"] / rows[0]["peak_mib"]
    print(
        format_table(
            rows, ["texts", "seconds", "texts_per_s", "peak_mib", "output_mb", "labels_per_row", "label_lists"]
        )
    )
    print(f"peak memory, {rows[-1]['texts']} / {rows[0]['texts']} texts: {ratio:.2f}x (issue 21's bar: < 1.5x)")
    payload = {
        "benchmark": "cli_predict_memory",
        "machine": machine_info("cpu"),
        "config": vars(args),
        "model": fitted,
        "rows": rows,
        "peak_ratio": ratio,
    }
    write_results("cli_predict_memory", payload, args.out)
    return payload


if __name__ == "__main__":
    main()
