"""The ``sktext`` command line, end to end on the tiny BERT and toy files."""

from __future__ import annotations

import csv
import gzip
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import f1_score

from sktext import load_model, save_model
from sktext.cli import main
from sktext.persistence import read_manifest

from conftest import make_toy_data

LABELS = ["game", "editor", "audio"]


def _write_csv(path, texts, Y, extra_rows=()):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", *LABELS])
        writer.writerows([f"doc{i}", text, *row] for i, (text, row) in enumerate(zip(texts, Y)))
        writer.writerows(extra_rows)
    return path


def _write_jsonl(path, texts, Y, opener=open):
    with opener(path, "wt", encoding="utf-8") as handle:
        for i, (text, row) in enumerate(zip(texts, Y)):
            labels = [name for name, on in zip(LABELS, row) if on]
            handle.write(json.dumps({"id": i, "text": text, "labels": labels}) + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_data")
    texts, Y = make_toy_data(200, seed=0)
    test_texts, test_Y = make_toy_data(60, seed=7)
    return {
        "folder": folder,
        "train_csv": _write_csv(folder / "train.csv", texts, Y),
        "train_jsonl": _write_jsonl(folder / "train.jsonl", texts, Y),
        "test_csv": _write_csv(folder / "test.csv", test_texts, test_Y),
        "test_jsonl": _write_jsonl(folder / "test.jsonl.gz", test_texts, test_Y, opener=gzip.open),
        "test_Y": test_Y,
    }


def _fit_args(tiny_bert, data, out, *label_options, extra=()):
    return [
        "fit",
        str(data),
        *label_options,
        "--model",
        "transformer",
        "--param",
        f"model_name_or_path={tiny_bert}",
        "max_epochs=3",
        "lr=3e-3",
        "batch_size=16",
        "random_state=0",
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="module")
def csv_model(files, tiny_bert):
    out = files["folder"] / "csv_model"
    assert main(_fit_args(tiny_bert, files["train_csv"], out, "--label-columns", *LABELS)) == 0
    return out


@pytest.fixture(scope="module")
def jsonl_model(files, tiny_bert):
    out = files["folder"] / "jsonl_model"
    args = _fit_args(tiny_bert, files["train_jsonl"], out, "--labels-column", "labels", extra=["--quiet"])
    assert main(args) == 0
    return out


def test_fit_with_label_columns(csv_model):
    manifest = read_manifest(csv_model)
    assert manifest["params"]["verbose"] == 1  # the progress bar and epoch table
    saved = manifest["metadata"]["cli"]
    assert saved["label_columns"] == LABELS and saved["text_column"] == "text"
    assert list(load_model(csv_model).classes_) == LABELS


def test_fit_with_a_label_list_column(jsonl_model):
    manifest = read_manifest(jsonl_model)
    assert manifest["params"]["verbose"] == 0
    assert manifest["metadata"]["cli"]["labels_column"] == "labels"
    assert manifest["classes"] == {"type": "str", "values": sorted(LABELS)}


def test_predict_csv_with_probabilities(csv_model, files, tmp_path):
    out = tmp_path / "predictions.csv"
    args = ["predict", str(csv_model), str(files["test_csv"]), "--out", str(out), "--proba", "--keep-columns", "id"]
    assert main(args) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 60 and rows[0]["id"] == "doc0"
    assert list(rows[0]) == ["id", "predicted_labels", *(f"proba_{name}" for name in LABELS)]
    estimator = load_model(csv_model)
    texts = make_toy_data(60, seed=7)[0]
    expected = estimator.predict(texts)
    for row, predicted in zip(rows, expected):
        names = [name for name, on in zip(LABELS, predicted) if on]
        assert row["predicted_labels"] == "|".join(names)
    proba = np.array([[float(row[f"proba_{name}"]) for name in LABELS] for row in rows])
    np.testing.assert_allclose(proba, estimator.predict_proba(texts), atol=1e-6)


def test_predict_jsonl_gz_with_label_lists(jsonl_model, files, tmp_path):
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", str(jsonl_model), str(files["test_jsonl"]), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 60 and set(rows[0]) == {"predicted_labels"}
    expected = load_model(jsonl_model).predict(make_toy_data(60, seed=7)[0])
    for row, predicted in zip(rows, expected):
        assert row["predicted_labels"] == [name for name, on in zip(sorted(LABELS), predicted) if on]


def test_evaluate_writes_the_report(csv_model, files, tmp_path, capsys):
    out = tmp_path / "report"
    # The model was fitted on 0/1 columns; the gzipped JSONL holds label lists.
    args = ["evaluate", str(csv_model), str(files["test_jsonl"]), "--out", str(out), "--labels-column", "labels"]
    assert main(args) == 0
    assert {path.name for path in out.iterdir()} == {
        "report.html",
        "metrics.json",
        "f1_by_label.png",
        "threshold_curves.png",
    }
    for name in ("f1_by_label.png", "threshold_curves.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    predicted = load_model(csv_model).predict(make_toy_data(60, seed=7)[0])
    for average in ("micro", "macro", "samples"):
        expected = f1_score(files["test_Y"], predicted, average=average, zero_division=0)
        assert metrics[f"f1_{average}"] == pytest.approx(expected)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'src="f1_by_label.png"' in page and 'src="threshold_curves.png"' in page
    for key in ("f1_micro", "f1_macro", "f1_samples"):
        assert f"{metrics[key]:.3f}" in page
    assert all(f"<td>{name}</td>" in page for name in LABELS) and "micro avg" in page
    assert f"F1 micro {metrics['f1_micro']:.3f}" in capsys.readouterr().out
    # the model folder knows its training label counts, so the ranking metrics include PSP@k
    assert set(metrics["psp_at_k"]) == set(metrics["precision_at_k"]) and 0 < metrics["psp_at_k"]["1"] <= 1


def test_evaluate_uses_the_saved_label_settings(csv_model, files, tmp_path):
    assert main(["evaluate", str(csv_model), str(files["test_csv"]), "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["n_samples"] == 60


def test_predictions_read_back_as_csv_label_lists(csv_model, files, tmp_path, capsys):
    predictions = tmp_path / "predictions.csv"
    args = ["predict", str(csv_model), str(files["test_csv"]), "--out", str(predictions), "--keep-columns", "text"]
    assert main(args) == 0
    # Evaluating the model against its own predictions ('a|b' strings) scores perfectly.
    assert (
        main(
            [
                "evaluate",
                str(csv_model),
                str(predictions),
                "--out",
                str(tmp_path / "report"),
                "--labels-column",
                "predicted_labels",
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["f1_micro"] == 1.0 and metrics["precision_micro"] == 1.0


def test_evaluate_warns_about_unknown_labels(csv_model, tmp_path, capsys):
    texts, Y = make_toy_data(20, seed=3)
    data = _write_jsonl(tmp_path / "extra.jsonl", texts, Y)
    lines = data.read_text().splitlines()
    first = json.loads(lines[0])
    lines[0] = json.dumps({**first, "labels": [*first["labels"], "video"]})
    data.write_text("\n".join(lines) + "\n")
    args = ["evaluate", str(csv_model), str(data), "--out", str(tmp_path / "r"), "--labels-column", "labels"]
    assert main(args) == 0
    assert "1 label(s) in" in capsys.readouterr().err


def test_a_folder_from_before_target_columns_works_as_then(csv_model, files, tmp_path):
    # Folders written before --task and --target-column have neither in their metadata.
    saved = read_manifest(csv_model)["metadata"]["cli"]
    old = {key: value for key, value in saved.items() if key not in ("task", "target_columns")}
    folder = tmp_path / "old_model"
    save_model(load_model(csv_model), folder, metadata={"cli": old})
    for model in (csv_model, folder):
        out = tmp_path / f"{model.name}.csv"
        assert main(["predict", str(model), str(files["test_csv"]), "--out", str(out), "--proba"]) == 0
    assert (tmp_path / "old_model.csv").read_text() == (tmp_path / "csv_model.csv").read_text()
    assert main(["evaluate", str(folder), str(files["test_csv"]), "--out", str(tmp_path / "report")]) == 0
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["n_samples"] == 60


def test_module_entry_point_and_help(capsys):
    assert main(["--help"]) == 0
    assert "evaluate" in capsys.readouterr().out
    result = subprocess.run([sys.executable, "-m", "sktext", "predict"], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "the following arguments are required" in result.stderr


@pytest.fixture
def bad_files(tmp_path):
    texts, Y = make_toy_data(20, seed=0)
    _write_csv(tmp_path / "maybe.csv", texts, Y, extra_rows=[["doc20", "a game", "maybe", 0, 1]])
    (tmp_path / "dict.jsonl").write_text(json.dumps({"text": "a game", "labels": {"game": 1}}) + "\n")
    (tmp_path / "notes.txt").write_text("not data")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    return tmp_path


@pytest.mark.parametrize(
    "command, message",
    [
        ("fit {d}/nowhere.csv --label-columns game --model ulmfit --out {d}/m", "No such data file"),
        ("fit {d}/notes.txt --label-columns game --model ulmfit --out {d}/m", "neither CSV nor JSONL"),
        (
            "fit {d}/maybe.csv --text-column body --label-columns game --model ulmfit --out {d}/m",
            "has no text column 'body'",
        ),
        (
            "fit {d}/maybe.csv --label-columns game gaem --model ulmfit --out {d}/m",
            "no label column 'gaem'.*Did you mean 'game'",
        ),
        (
            "fit {d}/maybe.csv --label-columns game editor audio --model ulmfit --out {d}/m",
            "Unreadable labels: row 21 .* 'maybe' in the label column 'game'",
        ),
        ("fit {d}/dict.jsonl --labels-column labels --model ulmfit --out {d}/m", "Unreadable labels: row 1"),
        (
            "fit {d}/maybe.csv --label-columns game --model ulmfit --param maxepochs=2 --out {d}/m",
            "Unknown --param 'maxepochs'.*Did you mean 'max_epochs'.*Valid keys: .*lm_epochs",
        ),
        (
            "fit {d}/maybe.csv --label-columns game --model ulmfit --param max_epochs=two --out {d}/m",
            "max_epochs must be an integer .*got str 'two'",
        ),
        (
            "fit {d}/maybe.csv --label-columns game --model ulmfit --param gradual_unfreezing=1 --out {d}/m",
            "gradual_unfreezing must be true or false",
        ),
        ("fit {d}/maybe.csv --label-columns game --model ulmfit --param lr --out {d}/m", "expects key=value"),
        (
            "fit {d}/dict.jsonl --labels-column labels --model ulmfit --out {d}/taken",
            "is not empty; choose a new folder or pass --overwrite",
        ),
        ("predict {d}/no_model {d}/maybe.csv --out {d}/p.csv", "No sktext model at .*does not exist"),
        ("predict {d}/taken {d}/maybe.csv --out {d}/p.csv", "has no sktext.json"),
        ("predict {d}/taken {d}/maybe.csv --out {d}/p.parquet", "neither CSV nor JSONL"),
    ],
)
def test_errors_are_one_line_and_exit_2(bad_files, capsys, command, message):
    assert main(command.format(d=bad_files).split()) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("sktext ")
    assert re.search(message, err), err


def test_estimator_errors_are_reported_too(bad_files, capsys):
    texts, Y = make_toy_data(30, seed=0)
    data = _write_csv(bad_files / "ok.csv", texts, Y)
    args = f"fit {data} --label-columns game editor --model ulmfit --param lr=-1 --out {bad_files}/m"
    assert main(args.split()) == 2
    assert "The 'lr' parameter of ULMFiTClassifier must be" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    assert main(["fit", "data.csv", "--label-columns", "a"]) == 2  # no --model, no --out
    assert "required" in capsys.readouterr().err


def test_evaluate_without_matplotlib(csv_model, files, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    args = ["evaluate", str(csv_model), str(files["test_csv"]), "--out", str(tmp_path)]
    assert main(args) == 2
    assert 'pip install "sktext[report]"' in capsys.readouterr().err
