"""CPU training under glibc's default malloc settings and with large allocations kept for reuse.

On Linux, glibc's ``malloc`` serves every allocation above its mmap threshold (at most
32 MiB, adjusted as the program runs) with a fresh ``mmap`` and hands it back to the
kernel when freed. A training step at 256 tokens makes many such tensors: the
attention scores of one layer for a batch of 32 are 32 x 12 x 256 x 256 floats, 96 MiB.
Each is then page-faulted and zeroed by the kernel again on every step.
glibc's tunables raise both thresholds for one process, without code:

    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=4294967296

Allocations up to 1 GiB then come from the heap, and up to 4 GiB of freed heap is kept
for reuse. The variable must be set when the process starts: glibc reads it once.

This benchmark fits ``TransformerMultiLabelClassifier`` (the bundled all-MiniLM-L6-v2,
the network alone: ``lexical=None``) on the bundled sample's train texts at the default
``max_length`` (256), at fp32 and bf16, each once with glibc's defaults and once with
the variable above. Each fit runs in its own process, so that peak memory is that
fit's alone. It reports:
- skorch's epoch time and the whole ``fit``;
- the process's peak resident memory;
- micro / macro F1 on the sample's test texts. The allocator does not change the
  arithmetic, so these must be equal between the two settings.

Examples
--------
Full run (about 6 minutes on two idle cores)::

    python benchmarks/cpu_allocator.py

Smaller::

    python benchmarks/cpu_allocator.py --n-train 480 --precisions bf16
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

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent))  # this checkout's sktext, also in the workers

from common import format_table, machine_info, subsample, write_results  # noqa: E402

#: What the "reuse" setting puts in the environment of its worker processes.
KEEP_FREED_MEMORY = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=4294967296"
SETTINGS = {"glibc_default": None, "reuse": KEEP_FREED_MEMORY}
COLUMNS = [
    "precision",
    "allocator",
    "epoch_s",
    "fit_s",
    "speedup",
    "peak_rss_mib",
    "micro_f1",
    "macro_f1",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=1500, help="bundled-sample train texts (at most 3000)")
    parser.add_argument("--max-length", type=int, default=256, help="the estimator's default")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--seed", type=int, default=0, help="subsample and fit seed")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: PRECISION:RESULT_JSON
    return parser.parse_args(argv)


def run_worker(args: argparse.Namespace) -> None:
    """One fit in this process; its timings, peak memory and F1 go to the worker's JSON file."""
    import torch
    from sklearn.metrics import f1_score

    from sktext import TransformerMultiLabelClassifier
    from sktext.datasets import load_debtags_sample

    precision, out = args.worker.split(":", 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    X_train, Y_train = load_debtags_sample(subset="train", return_X_y=True)
    X_test, Y_test = load_debtags_sample(subset="test", return_X_y=True)
    X_train, Y_train = subsample(X_train, Y_train, args.n_train, random_state=args.seed)
    clf = TransformerMultiLabelClassifier(
        max_length=args.max_length,
        max_epochs=args.epochs,
        patience=None,
        device="cpu",
        precision=precision,
        lexical=None,
        random_state=args.seed,
    )
    start = time.perf_counter()
    clf.fit(X_train, Y_train)
    fit_s = time.perf_counter() - start
    Y_pred = clf.predict(X_test)
    result = {
        "precision": precision,
        "epoch_s": sum(record["dur"] for record in clf.history_),
        "fit_s": fit_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "micro_f1": float(f1_score(Y_test, Y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(Y_test, Y_pred, average="macro", zero_division=0)),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
        "torch_threads": torch.get_num_threads(),
    }
    Path(out).write_text(json.dumps(result), encoding="utf-8")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the fits, print the table and write the JSON file."""
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return {}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for precision in args.precisions:
            for allocator, tunables in SETTINGS.items():
                out = Path(scratch) / f"{precision}_{allocator}.json"
                command = [sys.executable, __file__, "--worker", f"{precision}:{out}", "--n-train", str(args.n_train)]
                command += [
                    "--max-length",
                    str(args.max_length),
                    "--epochs",
                    str(args.epochs),
                    "--seed",
                    str(args.seed),
                ]
                if args.threads:
                    command += ["--threads", str(args.threads)]
                environment = {key: value for key, value in os.environ.items() if key != "GLIBC_TUNABLES"}
                if tunables:
                    environment["GLIBC_TUNABLES"] = tunables
                subprocess.run(command, check=True, env=environment)
                row = {"allocator": allocator, **json.loads(out.read_text(encoding="utf-8"))}
                rows.append(row)
                print(f"  {precision}, {allocator}: epoch {row['epoch_s']:.1f} s, fit {row['fit_s']:.1f} s", flush=True)
    for row in rows:
        base = next(r for r in rows if r["precision"] == row["precision"] and r["allocator"] == "glibc_default")
        row["speedup"] = base["epoch_s"] / row["epoch_s"]
        row["d_micro_f1"] = row["micro_f1"] - base["micro_f1"]
    print(
        f"\n{args.n_train} bundled-sample train texts, max_length {args.max_length}, {args.epochs} epoch(s); "
        "speedup: epoch time against glibc's defaults at the same precision"
    )
    print(format_table(rows, COLUMNS))
    payload = {
        "benchmark": "cpu_allocator",
        "machine": machine_info("cpu"),
        "config": vars(args),
        "settings": SETTINGS,
        "rows": rows,
    }
    path = write_results("cpu_allocator", payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
