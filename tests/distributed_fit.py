"""Run by test_distributed.py under ``torchrun --nproc_per_node 2``: a data-parallel fit.

Usage: ``distributed_fit.py TINY_BERT TRAIN_CSV MODEL_DIR REPORT_JSON``. Fits through
``sktext fit`` (which joins the process group and saves on rank 0 only), then fits
once more with ``random_state=None`` and checks that every process ends with the same
weights; rank 0 writes what it saw to REPORT_JSON.
"""

import json
import os
import sys

import torch

from sktext import TransformerMultiLabelClassifier
from sktext.cli import main
from sktext.distributed import is_main_process, world

from conftest import make_toy_data

tiny_bert, train_csv, model_dir, report = sys.argv[1:5]
torch.set_num_threads(1)
params = [
    f"model_name_or_path={tiny_bert}",
    "dropout=0",
    "batch_size=16",
    "max_epochs=3",
    "lr=3e-3",
    "validation_fraction=0.25",
    "random_state=0",
    "precision=fp32",  # compared to 1e-4 with a one-process fit: bf16 rounding would blur it
]
status = main(
    [
        "fit",
        train_csv,
        "--label-columns",
        "game",
        "editor",
        "audio",
        "--model",
        "transformer",
        "--param",
        *params,
        "--out",
        model_dir,
        "--quiet",
    ]
)

texts, Y = make_toy_data(90, seed=2)
clf = TransformerMultiLabelClassifier(tiny_bert, max_epochs=1, batch_size=8, random_state=None)
clf.fit(texts, Y)
weights = torch.cat([p.detach().reshape(-1) for p in clf.module_.parameters()])
gathered = [torch.zeros_like(weights) for _ in range(world()[1])]
torch.distributed.all_gather(gathered, weights)
if is_main_process():
    with open(report, "w") as handle:
        json.dump(
            {
                "status": status,
                "world": list(world()),
                "max_weight_gap": max(float((g - weights).abs().max()) for g in gathered),
            },
            handle,
        )
# Skip the interpreter's teardown. A process that exits straight after a collective can
# abort there: torch's gloo worker thread, still releasing the collective's tensors,
# needs the interpreter that is being finalized ("terminate called without an active
# exception", in about a third of the runs here), and torchrun reports a failed run.
# Everything this script checks is in REPORT_JSON by now, and an error above still
# exits non-zero.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
