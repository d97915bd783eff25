"""Model cards: the README.md that save() writes into every model folder."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

import sktext.persistence
from sktext import load_model, save_model
from sktext.card import CARD_FILE, MANY_LABELS, MAX_CARD_LABELS, model_card
from sktext.language_model import fine_tune_language_model
from sktext.persistence import MANIFEST_FILE, read_manifest
from sktext.thresholds import f1_at_thresholds

from conftest import ESTIMATOR_FACTORIES, make_toy_data

LABELS = ["game", "editor", "audio"]
OLD_FOLDERS = Path(__file__).parent / "data" / "v0_1_0"


def _fit(kind: str, resources):
    X, Y = make_toy_data(120, seed=0)
    factory = ESTIMATOR_FACTORIES[f"transformer-{kind}"]
    if kind == "embedder":
        return factory.build(resources).fit(X)
    estimator = factory.build(resources, max_epochs=2)
    if kind == "regressor":
        return estimator.fit(X, Y.sum(axis=1).astype(float))
    return estimator.fit(X, pd.DataFrame(Y, columns=LABELS))


@pytest.fixture(scope="module")
def classifier(resources):
    return _fit("classifier", resources)


@pytest.fixture(scope="module")
def classifier_folder(classifier, tmp_path_factory):
    return save_model(classifier, tmp_path_factory.mktemp("card") / "my-classifier")


def _card(folder: Path) -> str:
    return (folder / CARD_FILE).read_text(encoding="utf-8")


def _section(card: str, title: str) -> str:
    return card.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _python_block(card: str) -> str:
    return re.search(r"```python\n(.*?)```", card, re.DOTALL).group(1)


def _label_rows(card: str) -> dict[str, list[str]]:
    """``{label: [#, label, training positives, validation positives, threshold]}`` of the labels table."""
    rows = {}
    for line in _section(card, "Labels").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and cells[0].isdigit():
            rows[cells[1]] = cells
    return rows


def _run_load_snippet(card: str, folder: Path, monkeypatch) -> dict:
    monkeypatch.chdir(folder.parent)  # the snippet names the folder, not the author's path
    namespace: dict = {}
    exec(compile(_python_block(card), CARD_FILE, "exec"), namespace)
    return namespace


# -- classifiers ---------------------------------------------------------------------------------
def test_the_card_lists_every_label_with_its_support_and_threshold(classifier, classifier_folder):
    card = _card(classifier_folder)
    assert card.startswith("---\nlibrary_name: sktext\n") and "# my-classifier" in card
    assert "`TransformerMultiLabelClassifier`" in card
    rows = _label_rows(card)
    assert list(rows) == LABELS
    validation = classifier.validation_scores_["support"]
    for index, label in enumerate(LABELS):
        _, _, support, valid_support, threshold = rows[label]
        assert int(support) == classifier.label_support_[index]
        assert int(valid_support) == validation[index]
        assert threshold == f"{classifier.thresholds_[index]:.3f}"
    _, Y = make_toy_data(120, seed=0)
    np.testing.assert_array_equal(classifier.label_support_, Y.sum(axis=0))


def test_the_card_shows_the_fitted_validation_scores(classifier, classifier_folder):
    validation = _section(_card(classifier_folder), "Validation scores")
    scores = classifier.validation_scores_
    assert f"| micro F1 | {scores['f1_micro']:.4f} |" in validation
    assert f"| macro F1 | {scores['f1_macro']:.4f} |" in validation
    assert f"On the {scores['n_samples']} texts of the validation split" in validation
    assert "optimistic" in validation  # tuned on the same texts
    # The validation part is the one the history records, and its scores survive a load.
    n_valid = sum(batch.get("valid_batch_size", 0) for batch in classifier.history_[0, "batches"])
    assert scores["n_samples"] == n_valid
    assert load_model(classifier_folder).validation_scores_ == scores


def test_the_card_says_what_it_was_trained_on_and_with(classifier, classifier_folder):
    card = _card(classifier_folder)
    n_valid = classifier.validation_scores_["n_samples"]
    assert f"Training size: {120 - n_valid} texts trained on, {n_valid} held out" in card
    base = Path(classifier.model_name_or_path).name
    assert f"| base model | `{base}` (bert, 2 layers, hidden size 32" in card
    parameters = _section(card, "Parameters")
    for name, value in classifier.get_params().items():
        if name not in ("model_name_or_path", "checkpoint_dir"):  # a local path; a local setting
            assert f"| `{name}` | `{json.dumps(value)}` |" in parameters
    versions = _section(card, "Versions")
    for library in ("sktext", "torch", "transformers", "scikit-learn"):
        assert f"| {library} | " in versions and "not recorded" not in versions
    assert classifier.get_params()["model_name_or_path"] not in card  # the author's path stays home
    assert "sktext predict my-classifier texts.jsonl --out predictions.jsonl" in card


@pytest.mark.parametrize(
    ("params", "says"),
    [
        (
            {"trainable_layers": 1, "max_length": 64},
            "(the top 1 encoder layer trained, the rest frozen; texts cut at 64",
        ),
        ({"trainable_layers": None}, "(every encoder layer and the embeddings trained; texts cut at 128"),
        ({"freeze_encoder": True}, "(the encoder frozen, the head alone trained;"),
    ],
)
def test_the_card_says_which_layers_trained(resources, tmp_path, params, says):
    X, Y = make_toy_data(60, seed=0)
    estimator = ESTIMATOR_FACTORIES["transformer-classifier"].build(resources, max_epochs=1, **params).fit(X, Y)
    model = _section(_card(save_model(estimator, tmp_path / "model")), "Model")
    assert f"encoder with a linear head {says}" in model


def test_the_load_snippet_runs(classifier, classifier_folder, monkeypatch, capsys):
    namespace = _run_load_snippet(_card(classifier_folder), classifier_folder, monkeypatch)
    model = namespace["model"]
    assert type(model) is type(classifier)
    texts = ["an example text"]
    np.testing.assert_array_equal(model.predict_proba(texts), classifier.predict_proba(texts))
    assert str(classifier.predict(texts)) in capsys.readouterr().out


def test_loading_never_reads_the_card(classifier_folder, tmp_path):
    folder = shutil.copytree(classifier_folder, tmp_path / "no-card")
    (folder / CARD_FILE).unlink()
    assert load_model(folder).n_outputs_ == len(LABELS)


def test_overwriting_replaces_the_card_and_keeps_other_files(classifier, classifier_folder, tmp_path):
    folder = shutil.copytree(classifier_folder, tmp_path / "again")
    (folder / CARD_FILE).write_text("an old card", encoding="utf-8")
    (folder / "NOTES.md").write_text("mine", encoding="utf-8")
    save_model(classifier, folder, overwrite=True)
    assert _card(folder) == _card(classifier_folder).replace("my-classifier", "again")
    assert (folder / "NOTES.md").read_text(encoding="utf-8") == "mine"


def test_the_card_is_part_of_the_atomic_save(classifier, classifier_folder, tmp_path, monkeypatch):
    folder = shutil.copytree(classifier_folder, tmp_path / "model")
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}

    def failing_card(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sktext.persistence, "model_card", failing_card)
    with pytest.raises(OSError):
        save_model(classifier, folder, overwrite=True, metadata={"note": "lost"})
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]


def test_many_labels_stay_compact_but_all_listed(classifier_folder):
    manifest = copy.deepcopy(read_manifest(classifier_folder))
    n = MANY_LABELS + 10
    labels = [f"topic::{i}" for i in range(n - 1)] + ["a | b"]
    manifest["classes"] = {"type": "str", "values": labels}
    manifest["n_outputs"] = n
    manifest["thresholds"] = {"__ndarray__": np.linspace(0.1, 0.9, n).tolist(), "dtype": "<f8"}
    manifest["attributes"]["label_support_"] = {"__ndarray__": list(range(n)), "dtype": "<i8"}
    manifest["attributes"]["validation_scores_"]["support"] = [0] * n
    card = model_card(manifest, name="many")
    assert f"<details>\n<summary>All {n} labels</summary>" in card
    assert f"Training positives range from 0 to {n - 1}" in card
    rows = _label_rows(card)
    assert len(rows) == n and r"a \| b" in rows
    assert rows["topic::3"][2:] == ["3", "0", f"{np.linspace(0.1, 0.9, n)[3]:.3f}"]


def _many_labels_manifest(n: int, support: np.ndarray | None) -> dict:
    """An old classifier's manifest with ``n`` labels (no fitting needed)."""
    manifest = copy.deepcopy(read_manifest(OLD_FOLDERS / "transformer_classifier"))
    manifest["classes"] = {"type": "str", "values": [f"tag{i}" for i in range(n)]}
    manifest["n_outputs"] = n
    manifest["thresholds"] = {"__ndarray__": np.linspace(0.1, 0.9, n).tolist(), "dtype": "<f8"}
    if support is not None:
        manifest["attributes"]["label_support_"] = {"__ndarray__": support.tolist(), "dtype": "<i8"}
    return manifest


def test_20000_labels_give_a_small_card_of_the_most_frequent():
    n = 20_000
    support = np.random.default_rng(0).permutation(n)  # label i has support[i] training positives
    card = model_card(_many_labels_manifest(n, support), name="many")
    assert len(card.encode()) < 40_000
    rows = _label_rows(card)
    kept = np.argsort(-support)[:MAX_CARD_LABELS]
    assert list(rows) == [f"tag{i}" for i in kept]  # most training positives first
    assert rows[f"tag{kept[0]}"][:3] == [str(kept[0]), f"tag{kept[0]}", str(n - 1)]
    assert f"<summary>The {MAX_CARD_LABELS} labels with the most training positives, of {n}</summary>" in card
    assert f"the other {n - MAX_CARD_LABELS} of the {n} labels are left out of this card" in card
    assert "`sktext.json` in this folder holds them all" in card and "`thresholds`" in card


def test_many_labels_without_recorded_positives_keep_the_models_order():
    card = model_card(_many_labels_manifest(MAX_CARD_LABELS + 1, None), name="many")
    assert list(_label_rows(card)) == [f"tag{i}" for i in range(MAX_CARD_LABELS)]
    assert f"the first {MAX_CARD_LABELS} labels in the model's order (training positives not recorded)" in card
    assert len(_label_rows(model_card(_many_labels_manifest(MAX_CARD_LABELS, None), name="all"))) == MAX_CARD_LABELS


def test_without_validation_the_card_says_so(classifier_folder):
    manifest = copy.deepcopy(read_manifest(classifier_folder))
    manifest["params"].update(validation_fraction=None, threshold=0.5)
    del manifest["attributes"]["validation_scores_"]
    card = model_card(manifest, name="plain")
    assert "None: the fit had no validation split (`validation_fraction=None`)." in card
    assert "fixed by the `threshold` parameter" in card


@pytest.mark.parametrize("name", ["transformer_classifier", "ulmfit_multioutput", "transformer_regressor"])
def test_a_0_1_0_manifest_gives_an_honest_card(name):
    folder = OLD_FOLDERS / name
    card = model_card(read_manifest(folder), name=name, folder=folder)
    assert "not recorded" in _section(card, "Versions")
    if "classifier" in name or "multioutput" in name:
        assert "Micro and macro F1: not recorded" in card and "Training positives: not recorded" in card
    if name == "ulmfit_multioutput":
        assert "| 0 | kind | categorical | a, b, c |" in card
    assert not (folder / CARD_FILE).exists()  # the old folders stay as they were


def test_f1_at_thresholds_is_scikit_learns():
    rng = np.random.default_rng(0)
    y = (rng.random((50, 4)) < 0.3).astype(int)
    y[:, 3] = 0  # a label with no positive
    proba = rng.random((50, 4))
    thresholds = np.array([0.3, 0.5, 0.7, 0.99])
    scores = f1_at_thresholds(y, proba, thresholds)
    predicted = (proba >= thresholds).astype(int)
    for average in ("micro", "macro"):
        expected = f1_score(y, predicted, average=average, zero_division=0)
        assert scores[f"f1_{average}"] == pytest.approx(expected, abs=1e-12)
    assert scores["n_samples"] == 50 and scores["support"] == y.sum(axis=0).tolist()


# -- regressors, embedders, language models --------------------------------------------------
def test_a_regressors_card(resources, tmp_path, monkeypatch, capsys):
    regressor = _fit("regressor", resources)
    folder = regressor.save(tmp_path / "regressor")
    card = _card(folder)
    assert "`TransformerRegressor`, a text regressor of 1 target" in card
    assert "## Labels" not in card and "| target | training mean |" in card
    best = min(entry["valid_loss"] for entry in regressor.history_)
    validation = _section(card, "Validation scores")
    assert f"best {best:.4g}" in validation and "R² on the validation split: not recorded" in validation
    model = _run_load_snippet(card, folder, monkeypatch)["model"]
    assert str(regressor.predict(["an example text"])) in capsys.readouterr().out
    assert type(model) is type(regressor)
    assert "sktext predict regressor texts.jsonl --out predictions.jsonl\n" in card  # no --proba for a regressor


def test_an_embedders_card(resources, tmp_path, monkeypatch):
    embedder = _fit("embedder", resources)
    folder = embedder.save(tmp_path / "embedder")
    card = _card(folder)
    assert "shape (n_samples, 32)" in card and "nothing was trained" in card
    assert "None: an embedder has no task to score." in card
    vectors = _run_load_snippet(card, folder, monkeypatch)["vectors"]
    np.testing.assert_allclose(vectors, embedder.transform(["an example text"]), rtol=1e-5, atol=1e-6)


def test_a_language_models_card(tmp_path, monkeypatch, capsys):
    language_model = fine_tune_language_model(
        ["the cat sat on the mat ."] * 20,
        preset="tiny",
        batch_size=4,
        bptt=10,
        min_freq=1,
        lm_epochs=1,
        random_state=0,
        device="cpu",
    )
    folder = language_model.save(tmp_path / "lm")
    card = _card(folder)
    assert "`n_layers` | `2`" in card and "1 epoch recorded" in card
    assert MANIFEST_FILE in {path.name for path in folder.iterdir()}
    namespace = _run_load_snippet(card, folder, monkeypatch)
    assert namespace["language_model"].config == language_model.config
    assert len(capsys.readouterr().out.split()) == 10
