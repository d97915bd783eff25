import json
import pickle

import pytest
import torch

from sktext import load_model
from sktext.language_model import (
    LanguageModel,
    LanguageModelBatches,
    fine_tune_language_model,
    load_fastai_weights,
    transfer_to_vocabulary,
)
from sktext.models.awd_lstm import AWDLSTMConfig, AWDLSTMLanguageModel
from sktext.text import PAD_ID, UNKNOWN_ID, Vocabulary

CORPUS = ["the cat sat on the mat . the dog ate the bone ."] * 40 + ["a bird flew over the green house"] * 20
TRAINING = {"preset": "tiny", "batch_size": 4, "bptt": 10, "min_freq": 1, "random_state": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def trained():
    return fine_tune_language_model(CORPUS, lm_epochs=8, lm_lr=2e-2, **TRAINING)


def test_loss_decreases_on_a_repetitive_corpus(trained):
    cross_entropy = [record["train_cross_entropy"] for record in trained.history]
    assert len(cross_entropy) == 8
    assert cross_entropy[-1] < 0.3 * cross_entropy[0]
    assert all(record["train_loss"] >= record["train_cross_entropy"] for record in trained.history)


def test_training_is_reproducible_with_random_state():
    first = fine_tune_language_model(CORPUS[:20], lm_epochs=1, **TRAINING)
    second = fine_tune_language_model(CORPUS[:20], lm_epochs=1, **TRAINING)
    assert torch.equal(first.model.encoder.embedding.weight, second.model.encoder.embedding.weight)


def test_save_and_load_give_identical_outputs(trained, tmp_path):
    folder = trained.save(tmp_path / "lm", metadata={"corpus": "toy"})
    assert {path.name for path in folder.iterdir()} == {
        "sktext.json",
        "vocabulary.json",
        "model.safetensors",
        "README.md",
    }
    manifest = json.loads((folder / "sktext.json").read_text())
    assert manifest["kind"] == "language_model" and manifest["metadata"] == {"corpus": "toy"}
    assert manifest["config"]["n_layers"] == 2 and manifest["config"]["embedding_dim"] == 32
    for loaded in (LanguageModel.load(folder), load_model(folder)):
        assert isinstance(loaded, LanguageModel) and loaded.config == trained.config
        assert loaded.vocabulary == trained.vocabulary
        assert loaded.model.decoder.projection.weight is loaded.model.encoder.embedding.weight
        ids = torch.from_numpy(trained.vocabulary.encode(["the cat sat"])[0]).unsqueeze(0)
        trained.model.eval()
        loaded.model.eval()
        with torch.no_grad():
            assert torch.equal(loaded.model(ids).logits, trained.model(ids).logits)
        assert loaded.history == trained.history
    with pytest.raises(ValueError, match="not empty"):
        trained.save(folder)
    trained.save(folder, overwrite=True)


def test_language_model_and_estimator_folders_are_told_apart(trained, tmp_path):
    from sktext import ULMFiTClassifier

    folder = trained.save(tmp_path / "lm")
    with pytest.raises(ValueError, match="holds a LanguageModel, not a ULMFiTClassifier"):
        ULMFiTClassifier.load(folder)


def test_0_1_0_folder_with_torch_weights_still_loads(trained, tmp_path):
    # sktext 0.1.0 wrote model.pt (a plain state dict, no tied weight) where safetensors was missing.
    folder = tmp_path / "old"
    folder.mkdir()
    state = {k: v for k, v in trained.model.state_dict().items() if k != "decoder.projection.weight"}
    torch.save(state, folder / "model.pt")
    config = trained.config
    legacy = {
        "format": "sktext.language_model",
        "format_version": 1,
        "architecture": "awd_lstm",
        **{key: getattr(config, key) for key in ("vocab_size", "embedding_dim", "hidden_dim", "n_layers", "pad_id")},
        "dropouts": config.dropouts,
        "weights": "model.pt",
        "history": trained.history,
    }
    (folder / "config.json").write_text(json.dumps(legacy))
    (folder / "vocab.json").write_text(json.dumps(trained.vocabulary.to_dict()))
    loaded = LanguageModel.load(folder)
    assert torch.equal(loaded.model.encoder.embedding.weight, trained.model.encoder.embedding.weight)
    assert loaded.config == config and loaded.history == trained.history
    assert (loaded.save(tmp_path / "new") / "sktext.json").is_file()


def test_old_keyword_names_still_work_with_a_deprecation_warning():
    message = "'epochs' parameter of fine_tune_language_model is now called 'lm_epochs'"
    with pytest.warns(DeprecationWarning, match=message):
        old = fine_tune_language_model(CORPUS[:20], epochs=1, lr=1e-2, drop_mult=0.5, gradient_clip=0.5, **TRAINING)
    new = fine_tune_language_model(
        CORPUS[:20], lm_epochs=1, lm_lr=1e-2, lm_drop_mult=0.5, gradient_clip_norm=0.5, **TRAINING
    )
    assert torch.equal(old.model.encoder.embedding.weight, new.model.encoder.embedding.weight)
    with pytest.raises(ValueError, match="both 'epochs' and its new name 'lm_epochs'"):
        fine_tune_language_model(CORPUS, epochs=1, lm_epochs=1, **TRAINING)


def test_load_explains_a_wrong_folder(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        LanguageModel.load(tmp_path)


def test_language_model_pickles(trained):
    restored = pickle.loads(pickle.dumps(trained))
    assert restored.vocabulary == trained.vocabulary
    assert torch.equal(restored.model.encoder.embedding.weight, trained.model.encoder.embedding.weight)


def test_generate_returns_n_words_reproducibly(trained):
    text = trained.generate("the cat", n_words=12, random_state=3)
    assert len(text.split()) == 12
    assert text == trained.generate("the cat", n_words=12, random_state=3)
    assert "xxunk" not in text.split() and "xxpad" not in text.split()
    greedy = trained.generate("the cat", n_words=6, temperature=0)
    assert greedy == trained.generate("the cat", n_words=6, temperature=0)
    assert greedy == "sat on the mat . the"
    assert trained.generate("a bird", n_words=4, temperature=0) == "flew over the green"
    assert trained.generate("", n_words=0) == ""
    with pytest.raises(ValueError, match="temperature"):
        trained.generate("the", temperature=-1)


def fastai_files(language_model, tmp_path):
    """Write a language model with fastai's key names, file layout and token list."""
    state = language_model.model.state_dict()
    fastai_state = {
        "0.encoder.weight": state["encoder.embedding.weight"],
        "0.encoder_dp.emb.weight": state["encoder.embedding.weight"],
        "1.decoder.weight": state["encoder.embedding.weight"],
        "1.decoder.bias": state["decoder.projection.bias"],
    }
    for layer in range(language_model.model.encoder.n_layers):
        prefix = f"encoder.rnns.{layer}."
        fastai_state[f"0.rnns.{layer}.weight_hh_l0_raw"] = state[prefix + "weight_hh_l0_raw"]
        fastai_state[f"0.rnns.{layer}.module.weight_hh_l0"] = state[prefix + "weight_hh_l0_raw"]
        for name in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0"):
            fastai_state[f"0.rnns.{layer}.module.{name}"] = state[prefix + "module." + name]
    weights, vocab = tmp_path / "lstm_fwd.pth", tmp_path / "itos.pkl"
    torch.save({"model": {k: v.clone() for k, v in fastai_state.items()}, "opt": {}}, weights)
    vocab.write_bytes(pickle.dumps(list(language_model.vocabulary.itos)))
    return weights, vocab


def test_fastai_weights_load_with_identical_outputs(trained, tmp_path):
    weights, vocab = fastai_files(trained, tmp_path)
    loaded = load_fastai_weights(weights, vocab)
    assert loaded.vocabulary == trained.vocabulary
    assert loaded.config.hidden_dim == 64 and loaded.config.n_layers == 2
    ids = torch.from_numpy(trained.vocabulary.encode(CORPUS[:2])[0]).unsqueeze(0)
    trained.model.eval()
    loaded.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, trained.model(ids).logits)


def test_fastai_padding_tokens_get_unique_names(trained, tmp_path):
    weights, _ = fastai_files(trained, tmp_path)
    tokens = list(trained.vocabulary.itos)
    tokens[-2:] = ["xxfake", "xxfake"]
    loaded = load_fastai_weights(weights, tokens)
    assert loaded.vocabulary.itos[-2:] == ["xxfake", f"xxfake#{len(tokens) - 1}"]


def test_fastai_loading_explains_bad_inputs(trained, tmp_path):
    weights, vocab = fastai_files(trained, tmp_path)
    with pytest.raises(ValueError, match="vocabulary has 3 tokens"):
        load_fastai_weights(weights, ["xxunk", "xxpad", "a"])
    classifier_file = tmp_path / "classifier.pth"
    torch.save({"0.module.encoder.weight": torch.zeros(2, 2)}, classifier_file)
    with pytest.raises(ValueError, match="look like a fastai classifier"):
        load_fastai_weights(classifier_file, vocab)
    unsafe = tmp_path / "unsafe.pkl"
    unsafe.write_bytes(pickle.dumps(Vocabulary(["xxunk", "xxpad"])))
    with pytest.raises(ValueError, match="not a plain pickled list"):
        load_fastai_weights(weights, unsafe)


def test_new_words_start_at_the_mean_embedding(trained):
    texts = CORPUS + ["zebra zebra quokka"] * 2
    vocabulary = Vocabulary.build(texts, min_freq=1)
    model = transfer_to_vocabulary(trained, vocabulary)
    old_embedding = trained.model.encoder.embedding.weight.detach()
    old_bias = trained.model.decoder.projection.bias.detach()
    new_embedding = model.encoder.embedding.weight.detach()
    new_bias = model.decoder.projection.bias.detach()
    for word in ("zebra", "quokka"):
        assert word not in trained.vocabulary
        assert torch.allclose(new_embedding[vocabulary.stoi[word]], old_embedding.mean(dim=0))
        assert torch.isclose(new_bias[vocabulary.stoi[word]], old_bias.mean())
    for word in ("cat", "xxbos", "green"):
        old, new = trained.vocabulary.stoi[word], vocabulary.stoi[word]
        assert torch.equal(new_embedding[new], old_embedding[old])
        assert new_bias[new] == old_bias[old]
    assert torch.equal(model.encoder.rnns[0].weight_hh_l0_raw, trained.model.encoder.rnns[0].weight_hh_l0_raw.cpu())


def test_fine_tuning_from_fastai_files_freezes_then_unfreezes(trained, tmp_path):
    weights, vocab = fastai_files(trained, tmp_path)
    options = {key: value for key, value in TRAINING.items() if key != "preset"}
    tuned = fine_tune_language_model(
        CORPUS + ["zebra zebra quokka"], language_model=(weights, vocab), lm_epochs=1, **options
    )
    assert [record["epoch"] for record in tuned.history] == [1, 2]
    assert "zebra" in tuned.vocabulary
    assert all(parameter.requires_grad for parameter in tuned.model.parameters())
    from_folder = fine_tune_language_model(
        CORPUS, language_model=trained.save(tmp_path / "saved"), lm_epochs=0, frozen_epochs=0, **options
    )
    assert torch.equal(from_folder.model.encoder.embedding.weight, trained.model.encoder.embedding.weight)
    assert from_folder.history == []


def test_fine_tune_explains_bad_arguments(trained):
    with pytest.raises(ValueError, match="leave preset=None"):
        fine_tune_language_model(CORPUS, language_model=trained, preset="tiny")
    with pytest.raises(ValueError, match="language_model must be None"):
        fine_tune_language_model(CORPUS, language_model=42)
    with pytest.raises(ValueError, match="single str"):
        fine_tune_language_model("one text", preset="tiny")
    with pytest.raises(ValueError, match="too few for batch_size=64"):
        fine_tune_language_model(["tiny corpus"], preset="tiny", min_freq=1)
    with pytest.raises(ValueError, match="'device' parameter of fine_tune_language_model must be 'auto'"):
        fine_tune_language_model(CORPUS, preset="tiny", device="gpu0")


def test_batches_keep_streams_contiguous():
    documents = [torch.arange(2, 22).numpy()]
    batches = LanguageModelBatches(documents, batch_size=2, bptt=3, random_state=0, jitter=False)
    pairs = list(batches)
    inputs = torch.cat([x for x, _ in pairs], dim=1)
    targets = torch.cat([y for _, y in pairs], dim=1)
    assert inputs[0].tolist() == list(range(2, 11))
    assert torch.equal(targets[:, :-1], inputs[:, 1:])
    jittered = LanguageModelBatches(documents * 50, batch_size=2, bptt=10, random_state=0)
    planned = jittered.plan(2)
    assert planned == sum(1 for _ in jittered) + sum(1 for _ in jittered)


def test_generated_tokens_skip_unknown_and_padding(trained):
    assert UNKNOWN_ID == 0 and PAD_ID == 1
    with torch.no_grad():
        trained.model.decoder.projection.bias[UNKNOWN_ID] += 100.0
    try:
        assert "xxunk" not in trained.generate("the", n_words=5, temperature=0).split()
    finally:
        with torch.no_grad():
            trained.model.decoder.projection.bias[UNKNOWN_ID] -= 100.0


def test_model_type_checked():
    with pytest.raises(ValueError, match="vocabulary has 9 tokens"):
        LanguageModel(AWDLSTMLanguageModel(AWDLSTMConfig(12, 8, 8, 1)), Vocabulary.build([], min_freq=1))
