"""The ``sktext`` command line for categorical target columns and regression, on the tiny BERT.

The toy targets are functions of the topic words in the text (``make_toy_data``):
``topic`` is "game" for a text with game words, else "editor" for editor words, else
"other"; ``sound`` is "loud" for audio words, else "quiet"; the scores are 6 for a text
with their topic's words and 1 otherwise.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, r2_score

from sktext import load_model
from sktext.cli import main
from sktext.persistence import read_manifest

from conftest import make_toy_data

FOLDERS_FROM_PYTHON = Path(__file__).parent / "data" / "v0_1_0"  # saved by save_model, no command-line metadata
TOPICS = ["editor", "game", "other"]


def make_rows(n_samples: int, seed: int) -> list[dict]:
    texts, labels = make_toy_data(n_samples, seed=seed)
    topic = np.where(labels[:, 0] == 1, "game", np.where(labels[:, 1] == 1, "editor", "other"))
    return [
        {
            "id": f"doc{i}",
            "text": text,
            "topic": str(topic[i]),
            "sound": "loud" if labels[i, 2] else "quiet",
            "audio": int(labels[i, 2]),
            "game_score": 1.0 + 5.0 * labels[i, 0],
            "editor_score": 1.0 + 5.0 * labels[i, 1],
        }
        for i, text in enumerate(texts)
    ]


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_targets")
    train, test = make_rows(200, seed=0), make_rows(60, seed=7)
    return {
        "folder": folder,
        "test_rows": test,
        "train_csv": write_csv(folder / "train.csv", train),
        "train_jsonl": write_jsonl(folder / "train.jsonl", train),
        "test_csv": write_csv(folder / "test.csv", test),
        "test_jsonl": write_jsonl(folder / "test.jsonl", test),
    }


def fit(tiny_bert, data, out, *options):
    args = ["fit", str(data), *options, "--model", "transformer", "--out", str(out), "--quiet", "--param"]
    args += [f"model_name_or_path={tiny_bert}", "max_epochs=3", "lr=3e-3", "batch_size=16", "random_state=0"]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def topic_model(files, tiny_bert):
    return fit(tiny_bert, files["train_csv"], files["folder"] / "topic", "--target-column", "topic")


@pytest.fixture(scope="module")
def two_column_model(files, tiny_bert):
    options = ["--target-column", "topic", "--target-column", "sound"]
    return fit(tiny_bert, files["train_jsonl"], files["folder"] / "two", *options)


@pytest.fixture(scope="module")
def mixed_model(files, tiny_bert):
    options = ["--label-columns", "audio", "--target-column", "topic"]
    return fit(tiny_bert, files["train_csv"], files["folder"] / "mixed", *options)


@pytest.fixture(scope="module")
def score_model(files, tiny_bert):
    options = ["--task", "regression", "--target-column", "game_score"]
    return fit(tiny_bert, files["train_csv"], files["folder"] / "score", *options)


@pytest.fixture(scope="module")
def two_score_model(files, tiny_bert):
    options = ["--task", "regression", "--target-column", "game_score", "--target-column", "editor_score"]
    return fit(tiny_bert, files["train_jsonl"], files["folder"] / "scores", *options)


def truth(files, column):
    return [row[column] for row in files["test_rows"]]


# -- categorical target columns ---------------------------------------------------------------
def test_one_categorical_column_round_trip(topic_model, files, tmp_path, capsys):
    manifest = read_manifest(topic_model)
    assert manifest["estimator"] == "TransformerMultiLabelClassifier"
    saved = manifest["metadata"]["cli"]
    assert saved["task"] == "classification" and saved["target_columns"] == ["topic"]
    assert saved["label_columns"] is None and saved["labels_column"] is None

    out = tmp_path / "predictions.csv"
    args = ["predict", str(topic_model), str(files["test_csv"]), "--out", str(out), "--proba", "--keep-columns", "id"]
    assert main(args) == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["id", "predicted_topic", *(f"proba_topic_{name}" for name in TOPICS)]
    predicted = [row["predicted_topic"] for row in rows]
    assert set(predicted) <= set(TOPICS) and rows[0]["id"] == "doc0"
    proba = np.array([[float(row[f"proba_topic_{name}"]) for name in TOPICS] for row in rows])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert [TOPICS[i] for i in proba.argmax(axis=1)] == predicted
    texts = [row["text"] for row in files["test_rows"]]
    assert predicted == list(load_model(topic_model).predict(texts)[:, 0])

    capsys.readouterr()
    assert main(["evaluate", str(topic_model), str(files["test_csv"]), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "topic (accuracy" in printed and "precision" in printed and "macro avg" in printed
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text(encoding="utf-8"))
    accuracy = accuracy_score(truth(files, "topic"), predicted)
    assert metrics["targets"]["topic"]["accuracy"] == pytest.approx(accuracy)
    assert accuracy > 0.6  # the topic words are learnt
    assert (tmp_path / "report" / "report.txt").read_text(encoding="utf-8") in printed


def test_two_categorical_columns_round_trip(two_column_model, files, tmp_path, capsys):
    assert read_manifest(two_column_model)["metadata"]["cli"]["target_columns"] == ["topic", "sound"]
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", str(two_column_model), str(files["test_jsonl"]), "--out", str(out), "--proba"]) == 0
    rows = read_jsonl(out)
    assert len(rows) == 60
    assert set(rows[0]) == {"predicted_topic", "predicted_sound", "proba_topic", "proba_sound"}
    assert {row["predicted_topic"] for row in rows} <= set(TOPICS)
    assert {row["predicted_sound"] for row in rows} <= {"loud", "quiet"}
    assert sorted(rows[0]["proba_sound"]) == ["loud", "quiet"]
    assert sum(rows[0]["proba_topic"].values()) == pytest.approx(1.0, abs=1e-5)

    capsys.readouterr()
    assert main(["evaluate", str(two_column_model), str(files["test_csv"]), "--out", str(tmp_path / "r")]) == 0
    printed = capsys.readouterr().out
    assert "topic (accuracy" in printed and "sound (accuracy" in printed
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text(encoding="utf-8"))
    for column in ("topic", "sound"):
        expected = accuracy_score(truth(files, column), [row[f"predicted_{column}"] for row in rows])
        assert metrics["targets"][column]["accuracy"] == pytest.approx(expected)


def test_evaluate_reads_renamed_target_columns(two_column_model, files, tmp_path, capsys):
    """A model scored against its own predictions, named by --target-column in fit's order, is perfect."""
    predictions = tmp_path / "predictions.csv"
    args = ["predict", str(two_column_model), str(files["test_csv"]), "--out", str(predictions), "--keep-columns"]
    assert main([*args, "text"]) == 0
    args = ["evaluate", str(two_column_model), str(predictions), "--out", str(tmp_path / "r")]
    assert main([*args, "--target-column", "predicted_topic", "--target-column", "predicted_sound"]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["targets"]["topic"]["accuracy"] == 1.0 and metrics["targets"]["sound"]["accuracy"] == 1.0


def test_labels_beside_a_categorical_column(mixed_model, files, tmp_path, capsys):
    manifest = read_manifest(mixed_model)
    assert [entry["kind"] for entry in manifest["output_layout"]] == ["binary", "categorical"]
    assert manifest["metadata"]["cli"]["label_columns"] == ["audio"]
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(mixed_model), str(files["test_csv"]), "--out", str(out), "--proba"]) == 0
    rows = read_csv(out)
    expected = ["predicted_labels", "predicted_topic", "proba_audio", *(f"proba_topic_{name}" for name in TOPICS)]
    assert list(rows[0]) == expected
    assert {row["predicted_labels"] for row in rows} <= {"", "audio"}
    assert {row["predicted_topic"] for row in rows} <= set(TOPICS)

    capsys.readouterr()
    assert main(["evaluate", str(mixed_model), str(files["test_csv"]), "--out", str(tmp_path / "r")]) == 0
    printed = capsys.readouterr().out
    assert "F1 micro" in printed and "topic (accuracy" in printed
    assert {"report.html", "report.txt", "metrics.json"} <= {path.name for path in (tmp_path / "r").iterdir()}
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text(encoding="utf-8"))
    assert "f1_micro" in metrics and set(metrics["targets"]) == {"topic"}


# -- regression -------------------------------------------------------------------------------
def test_one_numeric_column_round_trip(score_model, files, tmp_path, capsys):
    manifest = read_manifest(score_model)
    assert manifest["estimator"] == "TransformerRegressor"
    saved = manifest["metadata"]["cli"]
    assert saved["task"] == "regression" and saved["target_columns"] == ["game_score"]

    out = tmp_path / "predictions.csv"
    args = ["predict", str(score_model), str(files["test_csv"]), "--out", str(out), "--keep-columns", "id"]
    assert main(args) == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["id", "predicted_game_score"]
    predicted = np.array([float(row["predicted_game_score"]) for row in rows])
    assert np.isfinite(predicted).all()
    true = np.array(truth(files, "game_score"))
    assert np.corrcoef(predicted, true)[0, 1] > 0.5  # the game words are learnt

    capsys.readouterr()
    assert main(["evaluate", str(score_model), str(files["test_csv"]), "--out", str(tmp_path / "r")]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"column\s+R2\s+MAE\s+RMSE", printed) and "game_score" in printed
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text(encoding="utf-8"))["targets"]["game_score"]
    assert set(metrics) == {"kind", "n_samples", "r2", "mae", "rmse"}
    assert metrics["r2"] == pytest.approx(r2_score(true, predicted), abs=1e-4)


def test_two_numeric_columns_round_trip(two_score_model, files, tmp_path, capsys):
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", str(two_score_model), str(files["test_jsonl"]), "--out", str(out)]) == 0
    rows = read_jsonl(out)
    assert set(rows[0]) == {"predicted_game_score", "predicted_editor_score"}
    for column in ("game_score", "editor_score"):
        predicted = np.array([row[f"predicted_{column}"] for row in rows])
        assert np.isfinite(predicted).all()
        assert np.corrcoef(predicted, truth(files, column))[0, 1] > 0.5

    capsys.readouterr()
    assert main(["evaluate", str(two_score_model), str(files["test_jsonl"]), "--out", str(tmp_path / "r")]) == 0
    printed = capsys.readouterr().out
    assert "game_score" in printed and "editor_score" in printed
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["targets"]) == {"game_score", "editor_score"} and metrics["n_samples"] == 60


def test_predict_refuses_proba_for_a_regressor(score_model, files, tmp_path, capsys):
    args = ["predict", str(score_model), str(files["test_csv"]), "--out", str(tmp_path / "p.csv"), "--proba"]
    assert main(args) == 2
    assert "--proba writes class probabilities, and TransformerRegressor predicts numbers" in capsys.readouterr().err


@pytest.mark.parametrize("model, name", [("transformer", "TransformerRegressor"), ("ulmfit", "ULMFiTRegressor")])
def test_task_regression_picks_the_regressor(files, model, name, capsys):
    # An invalid lr fails in the regressor's fit before any training, naming the class.
    args = ["fit", str(files["train_csv"]), "--task", "regression", "--target-column", "game_score"]
    args += ["--model", model, "--param", "lr=-1", "--out", str(files["folder"] / "never")]
    assert main(args) == 2
    assert f"The 'lr' parameter of {name} must be" in capsys.readouterr().err


def test_predict_with_folders_saved_from_python(files, tmp_path):
    out = tmp_path / "heads.jsonl"
    model = FOLDERS_FROM_PYTHON / "ulmfit_multioutput"  # a categorical head 'kind' and a 0/1 head 'game'
    assert main(["predict", str(model), str(files["test_jsonl"]), "--out", str(out), "--proba"]) == 0
    rows = read_jsonl(out)
    assert set(rows[0]) == {"predicted_labels", "predicted_kind", "proba", "proba_kind"}
    assert {row["predicted_kind"] for row in rows} <= {"a", "b", "c"}
    assert {tuple(row["predicted_labels"]) for row in rows} <= {(), ("game",)}
    out = tmp_path / "scores.csv"
    assert (
        main(["predict", str(FOLDERS_FROM_PYTHON / "transformer_regressor"), str(files["test_csv"]), "--out", str(out)])
        == 0
    )
    assert list(read_csv(out)[0]) == ["predicted_target_0"]


# -- errors -----------------------------------------------------------------------------------
@pytest.fixture
def bad_files(tmp_path):
    rows = make_rows(20, seed=0)
    write_csv(tmp_path / "ok.csv", rows)
    write_csv(tmp_path / "word.csv", [*rows[:2], {**rows[2], "game_score": "high"}, *rows[3:]])
    write_csv(tmp_path / "gap.csv", [rows[0], {**rows[1], "game_score": "", "topic": " "}, *rows[2:]])
    write_jsonl(tmp_path / "float.jsonl", [{**rows[0], "topic": 2.5}, *rows[1:]])
    labelled = [{**row, "tags": ["topic"] if i % 2 else []} for i, row in enumerate(rows)]
    write_jsonl(tmp_path / "tags.jsonl", labelled)
    return tmp_path


@pytest.mark.parametrize(
    "command, message",
    [
        ("fit {d}/ok.csv --target-column topc", "has no target column 'topc'.*Did you mean 'topic'.*--target-column"),
        (
            "fit {d}/ok.csv --task regression --labels-column topic --target-column game_score",
            "--task regression predicts the numbers of --target-column columns; --label-columns",
        ),
        ("fit {d}/ok.csv --task regression", "--task regression needs the columns to predict: --target-column"),
        ("fit {d}/ok.csv", "Say what to predict: --label-columns"),
        (
            "fit {d}/word.csv --task regression --target-column game_score",
            "Unreadable target: row 3 of .*word.csv holds 'high' in the target column 'game_score'; "
            "a numeric target \\(--task regression\\) needs a finite number",
        ),
        (
            "fit {d}/gap.csv --task regression --target-column game_score",
            "Row 2 of .*gap.csv has no value in the target column 'game_score' .*fill it in or drop the row",
        ),
        ("fit {d}/gap.csv --target-column topic", "Row 2 of .*gap.csv has no value in the target column 'topic'"),
        (
            "fit {d}/float.jsonl --target-column topic",
            "row 1 .* holds 2.5 .*need a model fitted with --task regression",
        ),
        ("fit {d}/ok.csv --target-column topic --target-column topic", "'topic' is given twice"),
        ("fit {d}/ok.csv --target-column text", "'text' is also the text column"),
        ("fit {d}/ok.csv --label-columns audio --target-column audio", "'audio' is also a --label-columns column"),
        (
            "fit {d}/tags.jsonl --labels-column tags --target-column topic",
            "The label 'topic' has the name of a --target-column",
        ),
        (
            "fit {d}/ok.csv --label-columns audio --target-column labels",
            "would write its predictions to 'predicted_labels'",
        ),
    ],
)
def test_fit_errors_are_one_line_and_exit_2(bad_files, capsys, command, message):
    args = [*command.format(d=bad_files).split(), "--model", "ulmfit", "--out", str(bad_files / "m")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("sktext fit: error: ")
    assert re.search(message, err), err
    assert not (bad_files / "m").exists()


def test_evaluate_errors(topic_model, score_model, files, tmp_path, capsys):
    data = str(files["test_csv"])
    cases = [
        ([str(topic_model), data, "--labels-column", "topic"], "predicts no labels .*leave out --label-columns"),
        (
            [str(topic_model), data, "--target-column", "topic", "--target-column", "sound"],
            r"predicts 1 target column\(s\) \(topic\), but --target-column names 2",
        ),
        ([str(score_model), data, "--target-column", "score"], "has no target column 'score'"),
    ]
    for args, message in cases:
        assert main(["evaluate", *args, "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and re.search(message, err), err


def test_the_report_of_a_single_label_has_the_multi_label_averages():
    # One 0/1 column is what `--label-columns audio --target-column topic` leaves for the HTML report.
    from sktext.report import evaluation_metrics

    rng = np.random.default_rng(0)
    Y, proba = rng.integers(0, 2, (50, 1)), rng.random((50, 1))
    one = evaluation_metrics(Y, proba, np.array([0.5]), ["audio"])
    twice = evaluation_metrics(np.hstack([Y, Y]), np.hstack([proba, proba]), np.array([0.5, 0.5]), ["a", "b"])
    for key in ("f1_micro", "f1_macro", "f1_samples", "precision_micro", "recall_micro", "subset_accuracy"):
        assert one[key] == pytest.approx(twice[key])
    assert list(one["classification_report"]) == ["audio", "micro avg", "macro avg", "weighted avg", "samples avg"]
