"""Data-parallel fits (2 gloo processes under torchrun) match a one-process fit; GPU memory after a fit."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sktext import TransformerMultiLabelClassifier, load_model
from sktext.distributed import (
    init_from_environment,
    is_main_process,
    shard_slice,
    world,
)

from conftest import make_toy_data

TESTS = Path(__file__).resolve().parent
LABELS = ["game", "editor", "audio"]


def test_one_process_is_its_own_world(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert world() == (0, 1) and is_main_process()
    assert shard_slice(10) == slice(0, 10)
    assert init_from_environment() is False  # nothing to join
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="MASTER_ADDR.*start the script with torchrun"):
        init_from_environment()


@pytest.fixture(scope="module")
def bert_without_dropout(tiny_bert, tmp_path_factory):
    """The tiny BERT with dropout off, so that one and two processes can be compared exactly."""
    from transformers import AutoTokenizer, BertModel

    folder = tmp_path_factory.mktemp("bert_without_dropout")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    BertModel.from_pretrained(tiny_bert, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).save_pretrained(
        folder
    )
    return str(folder)


def test_two_gloo_processes_fit_what_one_process_fits(bert_without_dropout, tmp_path):
    texts, Y = make_toy_data(120, seed=0)
    train = tmp_path / "train.csv"
    with open(train, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", *LABELS])
        writer.writerows([text, *row] for text, row in zip(texts, Y))
    model_dir, report = tmp_path / "model", tmp_path / "report.json"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(TESTS / "distributed_fit.py"),
        bert_without_dropout,
        str(train),
        str(model_dir),
        str(report),
    ]
    environment = {**os.environ, "PYTHONPATH": str(TESTS.parent), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(report.read_text())
    assert seen["status"] == 0 and seen["world"] == [0, 2]
    assert seen["max_weight_gap"] == 0.0  # random_state=None: rank 0's seed and weights everywhere

    parallel = load_model(model_dir)
    single = TransformerMultiLabelClassifier(
        bert_without_dropout,
        dropout=0,
        batch_size=16,
        max_epochs=3,
        lr=3e-3,
        validation_fraction=0.25,
        random_state=0,
    ).fit(texts, Y)
    for key in ("train_loss", "valid_loss"):
        np.testing.assert_allclose(parallel.history_[:, key], single.history_[:, key], rtol=1e-4, err_msg=key)
    test_texts = make_toy_data(40, seed=8)[0]
    np.testing.assert_allclose(parallel.predict_proba(test_texts), single.predict_proba(test_texts), atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_fit_keeps_only_the_fitted_module_on_the_gpu(tiny_bert):
    X, Y = make_toy_data(100)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    clf = TransformerMultiLabelClassifier(tiny_bert, max_epochs=2, device="cuda", random_state=0).fit(X, Y)
    module_bytes = sum(t.numel() * t.element_size() for t in (*clf.module_.parameters(), *clf.module_.buffers()))
    assert torch.cuda.memory_allocated() - before <= module_bytes + 2**20
    assert torch.cuda.memory_reserved() - torch.cuda.memory_allocated() < 2**22  # cache handed back


def test_the_core_imports_neither_dask_nor_the_leaf_modules():
    code = (
        "import sys, sktext; sktext.TransformerMultiLabelClassifier(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed') "
        "or m in ('sktext.dask', 'sktext.streaming', 'sktext.cli')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(TESTS.parent)},
    )
    assert result.stdout.strip() == "[]"
