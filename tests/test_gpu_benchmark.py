"""benchmarks/gpu.py's smoke run: the whole GPU benchmark on the CPU, without the full data or a GPU."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
ROWS = ("hf_trainer", "hf_pipeline", "sktext_fit", "sktext_epochs", "sktext_predict_proba")
RATIOS = ("predict_vs_pipeline", "train_vs_trainer")
TARGETS = ("predict_vs_pipeline", "train_vs_trainer", "fit_s", "micro_f1", "macro_f1")
STAGES = ("encoding", "training", "validation_logits", "lexical", "blend", "thresholds")


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_the_smoke_run_reports_every_row_and_ratio(tmp_path):
    out = tmp_path / "gpu_smoke.json"
    result_dir = tmp_path / "result"
    command = [sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--result-dir", str(result_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "targets (issue 24)" in done.stdout

    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["benchmark"] == "gpu_smoke" and payload["status"] == "complete"
    assert payload["data"]["source"] == "sktext.datasets.load_debtags_sample()"
    assert payload["machine"]["torch"] and payload["machine"]["transformers"]
    trainer_ran = importlib.util.find_spec("accelerate") is not None
    if not trainer_ran:
        assert "skipped" in payload["anchors"]["hf_trainer"]
        assert any("accelerate" in note for note in payload["notes"])

    rows = {row["row"]: row for row in payload["rows"]}
    assert tuple(rows) == ROWS
    for name, row in rows.items():
        if name == "hf_trainer" and not trainer_ran:
            continue
        assert finite(row["n_texts"]) and row["n_texts"] > 0, row
        assert finite(row["seconds"]) and row["seconds"] > 0, row
        if name != "sktext_fit":
            assert finite(row["per_s"]) and row["per_s"] > 0, row
    for name in ("sktext_fit", "sktext_predict_proba"):
        assert 0 <= rows[name]["micro_f1"] <= 1 and 0 <= rows[name]["macro_f1"] <= 1

    assert set(payload["ratios"]) == set(RATIOS)
    for name, value in payload["ratios"].items():
        if name == "train_vs_trainer" and not trainer_ran:
            assert value is None
        else:
            assert finite(value) and value > 0, (name, value)
    assert set(payload["targets"]) == set(TARGETS)

    ours = payload["sktext"]
    assert ours["epochs_run"] == len(ours["epoch_s"]) == 2
    assert all(finite(seconds) for seconds in ours["epoch_s"])
    assert math.isclose(ours["outside_network_s"], ours["fit_s"] - sum(ours["epoch_s"]), rel_tol=1e-9)
    assert set(ours["fit_seconds"]) == set(STAGES)
    assert all(finite(seconds) and seconds >= 0 for seconds in ours["fit_seconds"].values())
    assert ours["texts_trained"] > 0
