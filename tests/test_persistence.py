"""Model folders: JSON + safetensors round trips that run no pickled code."""

from __future__ import annotations

import copy
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from sklearn.base import BaseEstimator
from test_sklearn_contract import FACTORIES

from sktext import TransformerMultiLabelClassifier, ULMFiTClassifier, load_model, save_model
from sktext.card import CARD_FILE
from sktext.classification import MultiLabelTextClassifierBase
from sktext.models.awd_lstm import AWDLSTMLanguageModel
from sktext.persistence import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    _decode_classes,
    _encode_classes,
    _encode_params,
    read_manifest,
)

from conftest import make_toy_data

LABELS = ["game", "editor", "audio"]
PICKLE_SUFFIXES = {".pkl", ".pickle", ".pt", ".pth", ".bin", ".joblib", ".npy", ".npz"}


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def fitted(request, tiny_bert):
    factory, _ = FACTORIES[request.param]
    X, Y = make_toy_data(120, seed=0)
    estimator = factory({"tiny_bert": tiny_bert}, max_epochs=2)
    return estimator.fit(X, pd.DataFrame(Y, columns=LABELS))


@pytest.fixture(scope="module")
def folder(fitted, tmp_path_factory):
    return save_model(fitted, tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture(scope="module")
def texts():
    return make_toy_data(60, seed=7)[0] + ["", "naïve café 東京 🎮", "game " * 300]


def test_round_trip_gives_the_same_probabilities(fitted, folder, texts):
    restored = load_model(folder)
    assert type(restored) is type(fitted)
    np.testing.assert_array_equal(restored.predict_proba(texts), fitted.predict_proba(texts))
    np.testing.assert_array_equal(restored.predict(texts), fitted.predict(texts))
    saved, params = restored.get_params(), fitted.get_params()
    # A local model path is kept as its last part: the author's absolute path is not shared.
    if "model_name_or_path" in params:
        assert saved.pop("model_name_or_path") == Path(params.pop("model_name_or_path")).name
    assert saved == params
    assert not restored.module_.training


def test_string_classes_and_thresholds_survive(fitted, folder):
    restored = load_model(folder)
    assert list(restored.classes_) == LABELS and restored.classes_.dtype == object
    assert restored.n_outputs_ == 3
    np.testing.assert_array_equal(restored.thresholds_, fitted.thresholds_)
    assert restored.thresholds_.dtype == np.asarray(fitted.thresholds_).dtype
    assert len(restored.history_) == len(fitted.history_)
    assert restored.history_[-1, "train_loss"] == fitted.history_[-1, "train_loss"]


def test_edited_thresholds_and_unsaved_params(fitted, tmp_path, texts):
    edited = copy.copy(fitted)  # shares the module; only attributes are replaced below
    edited.thresholds_ = np.array([0.1, 0.5, 0.9])
    edited.set_params(random_state=np.random.RandomState(0), threshold=np.array([0.2, 0.3, 0.4]))
    restored = load_model(save_model(edited, tmp_path / "edited"))
    np.testing.assert_array_equal(restored.thresholds_, [0.1, 0.5, 0.9])
    np.testing.assert_array_equal(restored.predict(texts), edited.predict(texts))
    np.testing.assert_array_equal(restored.threshold, [0.2, 0.3, 0.4])
    assert restored.random_state is None  # an object: dropped, back to the default
    manifest = read_manifest(tmp_path / "edited")
    assert "RandomState" in manifest["dropped_params"]["random_state"]


def test_ulmfit_folder_holds_vocabulary_and_architecture(tmp_path):
    factory, _ = FACTORIES["ulmfit"]
    X, Y = make_toy_data(80, seed=1)
    fitted = factory({}, max_epochs=1).fit(X, Y)
    folder = fitted.save(tmp_path / "ulmfit")
    vocabulary = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
    assert vocabulary["itos"] == fitted.vocabulary_.itos
    manifest = read_manifest(folder)
    assert manifest["attributes"]["architecture_"] == fitted.architecture_
    assert manifest["classes"] == {"type": "int", "values": [0, 1, 2]}
    restored = ULMFiTClassifier.load(folder)
    assert restored.vocabulary_ == fitted.vocabulary_ and restored.classes_.dtype.kind == "i"


def test_folder_has_a_model_card(fitted, folder):
    card = (folder / CARD_FILE).read_text(encoding="utf-8")
    assert f"`{type(fitted).__name__}`, a multi-label text classifier of 3 labels" in card
    for index, (label, threshold) in enumerate(zip(LABELS, fitted.thresholds_)):
        support = f"{fitted.label_support_[index]} | {fitted.validation_scores_['support'][index]}"
        assert f"| {index} | {label} | {support} | {threshold:.3f} |" in card
    assert f"| micro F1 | {fitted.validation_scores_['f1_micro']:.4f} |" in card
    assert f"| macro F1 | {fitted.validation_scores_['f1_macro']:.4f} |" in card


def test_folder_holds_no_pickle(folder):
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {MANIFEST_FILE, "model.safetensors"}
    for path in files:
        assert path.suffix not in PICKLE_SUFFIXES, path
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as weights:
                assert len(list(weights.keys())) > 0
        else:
            assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))


def test_loading_runs_no_pickle(fitted, folder, texts, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("loading a model folder must not unpickle anything")

    for module, name in [(torch, "load"), (pickle, "load"), (pickle, "loads")]:
        monkeypatch.setattr(module, name, refuse)
    restored = load_model(folder)
    np.testing.assert_array_equal(restored.predict_proba(texts), fitted.predict_proba(texts))


def test_classmethods_check_the_class(fitted, folder):
    assert type(MultiLabelTextClassifierBase.load(folder)) is type(fitted)
    assert type(type(fitted).load(folder)) is type(fitted)
    other = next(cls for cls in (TransformerMultiLabelClassifier, ULMFiTClassifier) if not isinstance(fitted, cls))
    with pytest.raises(ValueError, match=f"holds a {type(fitted).__name__}, not a {other.__name__}"):
        other.load(folder)


def _copy_with_manifest(folder, destination, **changes):
    shutil.copytree(folder, destination)
    manifest = json.loads((destination / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest.update(changes)
    (destination / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    return destination


def test_format_version_mismatch(folder, tmp_path):
    newer = _copy_with_manifest(folder, tmp_path / "newer", format_version=FORMAT_VERSION + 1)
    expected = rf"saved by sktext format {FORMAT_VERSION + 1} .*reads format {FORMAT_VERSION}.*Upgrade"
    with pytest.raises(ValueError, match=expected):
        load_model(newer)
    older = _copy_with_manifest(folder, tmp_path / "older", format_version=0)
    with pytest.raises(ValueError, match=r"saved by sktext format 0 .*re-save it"):
        load_model(older)


def test_unknown_estimator_class(folder, tmp_path):
    odd = _copy_with_manifest(folder, tmp_path / "odd", estimator="FancyClassifier")
    with pytest.raises(ValueError, match="'FancyClassifier', which this sktext does not know"):
        load_model(odd)


def test_missing_or_foreign_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match=r"has no sktext.json.*model.pkl"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        load_model(tmp_path / "model.pkl")


def test_save_refuses_to_mix_folders(fitted, folder, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty"):
        save_model(fitted, tmp_path)
    with pytest.raises(ValueError, match="no sktext.json"):
        save_model(fitted, tmp_path, overwrite=True)
    again = shutil.copytree(folder, tmp_path / "again")
    save_model(fitted, again, overwrite=True, metadata={"note": "second"})
    assert read_manifest(again)["metadata"] == {"note": "second"}
    with pytest.raises(ValueError, match="fitted|not fitted"):
        save_model(type(fitted)(), tmp_path / "unfitted")


def test_data_parameters_are_dropped_but_paths_kept():
    class WithTexts(BaseEstimator):
        def __init__(self, unlabeled_texts=None, language_model=None, preset=None):
            self.unlabeled_texts = unlabeled_texts
            self.language_model = language_model
            self.preset = preset

    kept, dropped = _encode_params(WithTexts(["a text", "another"], object(), {"n_layers": 2}))
    assert set(dropped) == {"unlabeled_texts", "language_model"}
    assert kept == {"preset": {"n_layers": 2}}
    kept, dropped = _encode_params(WithTexts("extra.txt", ("weights.pth", "vocab.pkl")))
    assert dropped == {} and kept["language_model"] == ["weights.pth", "vocab.pkl"]


def test_classes_must_be_int_or_str():
    classes = _decode_classes(_encode_classes(np.arange(3)))
    assert classes.dtype == np.int64 and list(classes) == [0, 1, 2]
    with pytest.raises(ValueError, match="all be int or all be str"):
        _encode_classes(np.array([1, "a"], dtype=object))


def test_tied_weights_stay_tied(tmp_path):
    """The language model's decoder shares the embedding; safetensors stores it once."""
    from safetensors.torch import load_model as load_weights
    from safetensors.torch import save_model as save_weights

    torch.manual_seed(0)
    model = AWDLSTMLanguageModel.from_preset("tiny", vocab_size=50)
    save_weights(model, str(tmp_path / "lm.safetensors"))
    with safe_open(str(tmp_path / "lm.safetensors"), framework="pt") as weights:
        stored = set(weights.keys())
    assert len(stored) == len(model.state_dict()) - 1
    torch.manual_seed(1)
    copy_ = AWDLSTMLanguageModel.from_preset("tiny", vocab_size=50)
    load_weights(copy_, str(tmp_path / "lm.safetensors"))
    assert copy_.decoder.projection.weight is copy_.encoder.embedding.weight
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(copy_.state_dict()[name], tensor, rtol=0, atol=0)
