"""ULMFiTClassifier specifics: the LM stage, gradual unfreezing, discriminative rates."""

import numpy as np
import pytest
import torch

from sktext.language_model import fine_tune_language_model
from sktext.ulmfit import ULMFiTClassifier

from conftest import make_toy_data

FAST = dict(min_freq=1, bptt=16, batch_size=16, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def language_model():
    texts, _ = make_toy_data(200, seed=11)
    return fine_tune_language_model(
        texts, preset="tiny", lm_epochs=2, batch_size=8, bptt=16, min_freq=1, random_state=0, device="cpu"
    )


@pytest.mark.parametrize(
    "params, stages",
    [
        # tiny has 4 layer groups (embedding, two LSTMs, head): three one-epoch stages
        # (head, then one more group each), then every group for the remaining epochs.
        ({"max_epochs": 5}, [1, 2, 3, 4, 4]),
        ({"max_epochs": 2}, [1, 2]),
        ({"max_epochs": 3, "gradual_unfreezing": False}, [1, 1, 1]),
        ({"max_epochs": 2, "freeze_encoder": True, "lm_epochs": 1}, [1, 1]),
    ],
)
def test_unfreezing_stages_follow_the_recipe(params, stages):
    X, Y = make_toy_data(40, seed=0)
    options = dict(preset="tiny", lm_epochs=0, threshold=0.5, validation_fraction=None, **FAST)
    classifier = ULMFiTClassifier(**{**options, **params}).fit(X, Y)
    assert [record["stage"] for record in classifier.history_] == stages
    assert [record["epoch"] for record in classifier.history_] == list(range(1, len(stages) + 1))


def test_first_stage_trains_only_the_head_of_a_given_language_model(language_model):
    X, Y = make_toy_data(80, seed=0)
    classifier = ULMFiTClassifier(
        language_model, lm_epochs=0, max_epochs=1, threshold=0.5, validation_fraction=None, **FAST
    ).fit(X, Y)
    assert classifier.vocabulary_ == language_model.vocabulary
    assert classifier.language_model_history_ == []
    assert classifier.architecture_ == {"embedding_dim": 32, "hidden_dim": 64, "n_layers": 2}
    trained, source = classifier.module_.encoder.state_dict(), language_model.encoder_state_dict()
    assert all(torch.equal(trained[name], source[name].cpu()) for name in source)
    assert all(parameter.requires_grad for parameter in classifier.module_.parameters())
    assert [record["stage"] for record in classifier.history_] == [1]


def test_stages_run_in_order_and_unfreeze_everything(language_model, tmp_path):
    X, Y = make_toy_data(80, seed=0)
    folder = language_model.save(tmp_path / "lm")
    classifier = ULMFiTClassifier(str(folder), lm_epochs=1, max_epochs=4, **FAST).fit(X, Y)
    # tiny has 4 layer groups: embedding, two LSTMs, head
    assert [record["stage"] for record in classifier.history_] == [1, 2, 3, 4]
    assert [record["epoch"] for record in classifier.history_] == [1, 2, 3, 4]
    # a frozen epoch for the new words, then one with every layer
    assert len(classifier.language_model_history_) == 2
    assert all(parameter.requires_grad for parameter in classifier.module_.parameters())


def test_discriminative_rates_and_no_decay_for_biases_and_norms():
    X, Y = make_toy_data(40, seed=0)
    classifier = ULMFiTClassifier(
        preset="tiny", lm_epochs=0, lr_decay=2.0, max_epochs=1, threshold=0.5, validation_fraction=None, **FAST
    ).fit(X, Y)
    module = classifier.module_
    groups = dict(classifier._stage_parameter_groups(module, lr=1.0))
    assert len(groups) == len(list(module.parameters()))
    assert groups["head.output.weight"] == {"lr": 1.0}
    assert groups["head.output.bias"] == {"lr": 1.0, "weight_decay": 0.0}
    assert groups["head.pooled_norm.weight"] == {"lr": 1.0, "weight_decay": 0.0}
    assert groups["encoder.rnns.1.weight_hh_l0_raw"] == {"lr": 0.5}
    assert groups["encoder.rnns.0.module.bias_ih_l0"] == {"lr": 0.25, "weight_decay": 0.0}
    assert groups["encoder.embedding.weight"] == {"lr": 0.125}


def test_head_bias_starts_at_label_priors():
    X, Y = make_toy_data(100, seed=0)
    classifier = ULMFiTClassifier(
        preset="tiny", lm_epochs=0, max_epochs=1, lr=1e-12, threshold=0.5, validation_fraction=None, **FAST
    ).fit(X, Y)
    prior = (Y.sum(0) + 0.5) / (len(Y) + 1)
    bias = classifier.module_.output_layer.bias.detach().numpy()
    np.testing.assert_allclose(bias, np.log(prior / (1 - prior)), atol=1e-4)


def test_long_texts_and_unknown_words_predict(language_model):
    X, Y = make_toy_data(70, seed=0)
    classifier = ULMFiTClassifier(
        preset="tiny", lm_epochs=1, max_epochs=1, max_len=32, threshold=0.5, validation_fraction=None, **FAST
    ).fit(X, Y)
    proba = classifier.predict_proba(["game " * 3000, "zyzzyva quux", ""])
    assert proba.shape == (3, 3) and np.isfinite(proba).all()


@pytest.mark.parametrize(
    "params, match",
    [
        ({"preset": "tiny", "language_model": "somewhere"}, "leave preset=None"),
        ({"preset": "huge"}, "'preset' parameter of ULMFiTClassifier must be None, one of"),
        ({"lm_epochs": -1}, "'lm_epochs' parameter of ULMFiTClassifier must be an int >= 0. Got -1 instead"),
        ({"gradual_unfreezing": "yes"}, "'gradual_unfreezing' parameter .* must be True or False"),
        ({"drop_mult": 3.0}, "drop_mult"),
        ({"head_hidden_dim": 0}, "head_hidden_dim"),
        ({"max_vocab": 5}, "'max_vocab' parameter .* must be an int >= 9"),
        ({"language_model": 42}, "'language_model' parameter of ULMFiTClassifier must be None, a LanguageModel"),
        ({"language_model": "/no/such/folder"}, "not a folder saved by LanguageModel.save"),
    ],
)
def test_clear_errors_for_bad_params(params, match):
    X, Y = make_toy_data(40, seed=0)
    with pytest.raises(ValueError, match=match):
        ULMFiTClassifier(**{**FAST, "lm_epochs": 0, **params}).fit(X, Y)


# -- unlabeled_texts: extra texts for the language-model stage only ---------------------
UNLABELED = ["zyzzyva quux reads the zyzzyva files"] * 30


def _fit_with_unlabeled(unlabeled_texts, **params):
    X, Y = make_toy_data(40, seed=0)
    defaults = dict(preset="tiny", lm_epochs=1, max_epochs=1, threshold=0.5, validation_fraction=None)
    return ULMFiTClassifier(unlabeled_texts=unlabeled_texts, **{**FAST, **defaults, **params}).fit(X, Y)


def test_unlabeled_texts_join_the_language_model_stage_only():
    plain = _fit_with_unlabeled(None)
    extended = _fit_with_unlabeled(UNLABELED)
    assert "zyzzyva" not in plain.vocabulary_ and "zyzzyva" in extended.vocabulary_
    assert (plain.n_language_model_texts_, extended.n_language_model_texts_) == (40, 70)
    # the classifier still sees the 40 labelled texts: same number of batches per epoch
    assert len(extended.history_[-1]["batches"]) == len(plain.history_[-1]["batches"])
    assert sum(b["train_batch_size"] for b in extended.history_[-1]["batches"]) == 40
    assert extended.predict_proba(["zyzzyva game"]).shape == (1, 3)


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl", ".txt"])
def test_unlabeled_texts_are_read_from_a_file_in_fit(tmp_path, suffix):
    import gzip
    import json

    path = tmp_path / f"unlabeled{suffix}"
    lines = (
        [json.dumps({"id": i, "text": text}) for i, text in enumerate(UNLABELED)] if "jsonl" in suffix else UNLABELED
    )
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n\n")
    classifier = _fit_with_unlabeled(str(path))
    assert classifier.unlabeled_texts == str(path)  # stored untouched, read in fit
    assert "zyzzyva" in classifier.vocabulary_
    assert classifier.n_language_model_texts_ == 70


def test_unlabeled_texts_survive_clone_and_get_params(tmp_path):
    from sklearn.base import clone

    path = tmp_path / "unlabeled.txt"
    for value in (UNLABELED, path):
        classifier = ULMFiTClassifier(unlabeled_texts=value)
        assert classifier.get_params()["unlabeled_texts"] == value
        assert clone(classifier).unlabeled_texts == value


@pytest.mark.parametrize(
    "unlabeled_texts, params, match",
    [
        ("just one text", {}, "which is not a file.*wrap it in a list"),
        (["fine", 3], {}, "only str.*index 1 is 3"),
        ([], {}, "holds no texts"),
        (UNLABELED, {"lm_epochs": 0}, "lm_epochs=0 skips, so they would be ignored"),
        (b"bytes", {}, "'unlabeled_texts' parameter .* Got b'bytes' instead"),
    ],
)
def test_clear_errors_for_bad_unlabeled_texts(unlabeled_texts, params, match):
    with pytest.raises(ValueError, match=match):
        _fit_with_unlabeled(unlabeled_texts, **params)


def test_clear_errors_for_bad_unlabeled_files(tmp_path):
    empty = tmp_path / "empty.jsonl.gz"
    import gzip

    with gzip.open(empty, "wt") as handle:
        handle.write("\n")
    with pytest.raises(ValueError, match="holds no texts"):
        _fit_with_unlabeled(empty)
    no_field = tmp_path / "no_field.jsonl"
    no_field.write_text('{"description": "a text"}\n')
    with pytest.raises(ValueError, match="string 'text' field; line 1"):
        _fit_with_unlabeled(no_field)
    csv = tmp_path / "texts.csv"
    csv.write_text("a text\n")
    with pytest.raises(ValueError, match="must end in one of"):
        _fit_with_unlabeled(csv)


def test_head_hidden_dim_sets_the_head_width_and_survives_a_model_folder(tmp_path):
    X, Y = make_toy_data(60, seed=0)
    classifier = ULMFiTClassifier(
        preset="tiny", lm_epochs=0, max_epochs=1, head_hidden_dim=24, threshold=0.5, validation_fraction=None, **FAST
    ).fit(X, Y)
    assert classifier.module_.head.hidden.out_features == 24
    assert classifier.module_.head.output.in_features == 24
    restored = ULMFiTClassifier.load(classifier.save(tmp_path / "model"))
    assert restored.head_hidden_dim == 24
    np.testing.assert_allclose(restored.predict_proba(X), classifier.predict_proba(X), atol=1e-6)
