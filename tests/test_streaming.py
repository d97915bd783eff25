"""``sktext predict`` a chunk at a time: same output as one chunk, all or nothing on failure."""

from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest

from sktext import TransformerMultiLabelClassifier, load_model
from sktext.cli import main
from sktext.io import DataFileError, iter_record_chunks, read_records
from sktext.streaming import PredictionWriter

from conftest import make_toy_data

LABELS = ["game", "editor", "audio"]


def _fitted_folder(tiny_bert, folder, precision):
    texts, Y = make_toy_data(120, seed=0)
    clf = TransformerMultiLabelClassifier(
        tiny_bert, max_epochs=2, batch_size=16, lr=3e-3, precision=precision, random_state=0
    )
    clf.fit(texts, Y)
    clf.classes_ = np.asarray(LABELS, dtype=object)
    return clf.save(folder / "model")


@pytest.fixture(scope="module")
def model_folder(tiny_bert, tmp_path_factory):
    """fp32: a text's probabilities do not depend on the texts that share its batch (bf16's do, slightly)."""
    return _fitted_folder(tiny_bert, tmp_path_factory.mktemp("streaming"), "fp32")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("streaming_data")
    texts, _ = make_toy_data(53, seed=5)
    with gzip.open(folder / "texts.jsonl.gz", "wt", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": i, "text": text}) + "\n")
    with open(folder / "texts.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows(enumerate(texts))
    return {"folder": folder, "texts": texts}


def _predict_proba_file(folder, source, out, chunk_size) -> np.ndarray:
    assert (
        main(["predict", str(folder), str(source), "--out", str(out), "--proba", "--chunk-size", str(chunk_size)]) == 0
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return np.array([[row["proba"][label] for label in LABELS] for row in rows])


def test_chunks_move_default_precision_probabilities_by_less_than_1e_3(tiny_bert, data, tmp_path):
    """At the default precision (bf16 on a CPU with fast bf16) batches differ with the chunks, and so do the last decimals."""
    folder = _fitted_folder(tiny_bert, tmp_path, "auto")
    source = data["folder"] / "texts.jsonl.gz"
    small = _predict_proba_file(folder, source, tmp_path / "small.jsonl", 7)
    whole = _predict_proba_file(folder, source, tmp_path / "whole.jsonl", 10_000)
    assert small.shape == whole.shape == (53, 3)
    np.testing.assert_allclose(small, whole, atol=1e-3)


@pytest.mark.parametrize("name, out", [("texts.jsonl.gz", "p.jsonl"), ("texts.csv", "p.csv.gz")])
def test_small_chunks_write_what_one_chunk_writes(model_folder, data, tmp_path, name, out):
    outputs = []
    for chunk_size in (7, 10_000):
        path = tmp_path / f"{chunk_size}-{out}"
        args = [
            "predict",
            str(model_folder),
            str(data["folder"] / name),
            "--out",
            str(path),
            "--proba",
            "--keep-columns",
            "id",
            "--chunk-size",
            str(chunk_size),
        ]
        assert main(args) == 0
        outputs.append(gzip.decompress(path.read_bytes()) if out.endswith(".gz") else path.read_bytes())
    assert outputs[0] == outputs[1]
    lines = outputs[0].decode().splitlines()
    assert len(lines) == 53 + out.startswith("p.csv")  # CSV: one header row
    if out == "p.jsonl":
        rows = [json.loads(line) for line in lines]
        assert [row["id"] for row in rows] == list(range(53))
        proba = np.array([[row["proba"][label] for label in LABELS] for row in rows])
        expected = load_model(model_folder).predict_proba(data["texts"])
        np.testing.assert_allclose(proba, expected, atol=1e-6)


def test_a_bad_row_leaves_no_output_and_keeps_the_old_file(model_folder, tmp_path, capsys):
    source = tmp_path / "bad.jsonl"
    rows = [{"text": f"a game {i}"} for i in range(30)]
    rows[24] = {"body": "no text here"}
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "predictions.jsonl"
    out.write_text("earlier predictions\n")
    args = ["predict", str(model_folder), str(source), "--out", str(out), "--chunk-size", "10"]
    assert main(args) == 2
    assert "Row 25 of" in capsys.readouterr().err
    assert out.read_text() == "earlier predictions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "predictions.jsonl"]


def test_chunks_and_their_columns(tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps({"text": str(i), **({"late": 1} if i == 4 else {})}) + "\n" for i in range(5)))
    chunks = list(iter_record_chunks(source, 2))
    assert [len(records) for records, _ in chunks] == [2, 2, 1]
    assert chunks[0][1] == ["text"] and chunks[-1][1] == ["text", "late"]
    records, columns = read_records(source)  # the same reader, the whole file as one chunk
    assert records == [row for chunk, _ in chunks for row in chunk] and columns == ["text", "late"]
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataFileError, match="holds no rows"):
        list(iter_record_chunks(tmp_path / "empty.jsonl"))
    with pytest.raises(DataFileError, match="chunk size must be a positive integer or None, got 0"):
        list(iter_record_chunks(source, 0))


def test_chunk_size_must_be_positive(model_folder, data, tmp_path, capsys):
    args = [
        "predict",
        str(model_folder),
        str(data["folder"] / "texts.csv"),
        "--out",
        str(tmp_path / "p.csv"),
        "--chunk-size",
        "0",
    ]
    assert main(args) == 2
    assert "expected a positive integer, got '0'" in capsys.readouterr().err


def test_writer_publishes_only_on_success(tmp_path):
    out = tmp_path / "rows.csv"
    with PredictionWriter(out) as writer:
        writer.write([{"a": 1, "b": "x"}])
        writer.write([{"a": 2, "b": "y"}])
        assert not out.exists()
    assert out.read_text().splitlines() == ["a,b", "1,x", "2,y"] and writer.n_rows == 2
    with pytest.raises(RuntimeError), PredictionWriter(tmp_path / "never.jsonl") as writer:
        writer.write([{"a": 1}])
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


@pytest.mark.parametrize("proba", [True, False])
def test_many_labels_are_predicted_a_few_texts_a_call_with_the_same_output(
    model_folder, data, tmp_path, monkeypatch, proba
):
    """A model of many labels never makes the (chunk, n_labels) probabilities at once: a block of texts a call."""
    import sktext.thresholds

    source = data["folder"] / "texts.jsonl.gz"
    args = ["predict", str(model_folder), str(source), "--out"] + (["--proba"] if proba else [])
    assert main([*args[:4], str(tmp_path / "whole.jsonl"), *args[4:]]) == 0
    sizes = []
    original = TransformerMultiLabelClassifier.predict_proba

    def recorded(self, X, *rest, **kwargs):
        sizes.append(len(X))
        return original(self, X, *rest, **kwargs)

    monkeypatch.setattr(TransformerMultiLabelClassifier, "predict_proba", recorded)
    monkeypatch.setattr(sktext.thresholds, "PREDICT_CHUNK_ENTRIES", 5 * len(LABELS) + 2)  # 5 texts of 3 labels
    assert main([*args[:4], str(tmp_path / "blocks.jsonl"), *args[4:]]) == 0
    assert sizes == [5] * 10 + [3]
    whole, blocks = (tmp_path / "whole.jsonl").read_text(), (tmp_path / "blocks.jsonl").read_text()
    assert blocks == whole and len(whole.splitlines()) == 53
    assert ('"proba"' in whole) == proba
