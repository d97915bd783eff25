"""TransformerMultiLabelClassifier specifics: model resolution, truncation, the real model, GPU."""

import pickle

import numpy as np
import pytest
import torch

from sktext import TransformerMultiLabelClassifier
from sktext.pretrained import resolve_model_path

from conftest import make_toy_data


def test_default_name_resolves_to_the_packaged_folder_without_network():
    folder = resolve_model_path("all-MiniLM-L6-v2")
    assert (__import__("pathlib").Path(folder) / "config.json").is_file()
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == folder


@pytest.mark.parametrize("name", ["./no/such/folder", "/definitely/missing/model"])
def test_unknown_folder_is_a_clear_error(name):
    X, Y = make_toy_data(20)
    with pytest.raises(ValueError, match="Unknown model.*no such folder"):
        TransformerMultiLabelClassifier(name).fit(X, Y)


def test_folder_without_config_is_a_clear_error(tmp_path):
    X, Y = make_toy_data(20)
    with pytest.raises(ValueError, match="no config.json"):
        TransformerMultiLabelClassifier(str(tmp_path)).fit(X, Y)


def test_unknown_hub_name_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no 40 s of retries
    X, Y = make_toy_data(20)
    with pytest.raises(ValueError, match="Unknown model 'nobody/no-such-model-xyz'"):
        TransformerMultiLabelClassifier("nobody/no-such-model-xyz").fit(X, Y)


def test_texts_are_truncated_to_max_length(tiny_bert):
    clf = TransformerMultiLabelClassifier(
        tiny_bert, max_length=12, max_epochs=1, threshold=0.5, validation_fraction=None
    )
    X, Y = make_toy_data(20)
    clf.fit(X, Y)
    assert clf._encode(["game " * 1000]).lengths.tolist() == [12]


def test_auto_max_length_fits_most_training_texts_and_truncates_the_rest(tiny_bert, tmp_path):
    from sktext import load_model

    X, Y = make_toy_data(40)
    words = [len(text.split()) for text in X]
    assert max(words) < 20  # every toy text fits in 32 tokens; two long ones must not set the length
    X = X + ["game " * 60, "game " * 60]
    Y = np.vstack([Y, Y[:2]])
    clf = TransformerMultiLabelClassifier(
        tiny_bert, max_length="auto", max_epochs=1, threshold=0.5, validation_fraction=None
    ).fit(X, Y)
    assert clf.max_length_ == 32
    assert clf._encode(["game " * 60]).lengths.tolist() == [32]
    clf.save(tmp_path / "model")
    assert load_model(tmp_path / "model")._encode(["game " * 60]).lengths.tolist() == [32]


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("model", ["tiny", "default"])
def test_encoding_gives_the_tokenizers_own_ids_and_leaves_it_as_it_was(tiny_bert, side, model):
    from transformers import AutoTokenizer

    from sktext.transformer import encode_with_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert if model == "tiny" else resolve_model_path("all-MiniLM-L6-v2"))
    tokenizer.truncation_side = side
    texts = make_toy_data(30)[0] + [
        "",
        "   ",
        "naïve café 東京 emoji 🎮 résumé",
        "a literal [SEP] and [CLS] inside the text",
        "game " * 300,
        "UPPER case Words\nand\ttabs 12345",
    ]
    for max_length in (8, 128):
        encoded = encode_with_tokenizer(tokenizer, texts, max_length)
        expected = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        assert [encoded.ids[a:b].tolist() for a, b in zip(encoded.offsets[:-1], encoded.offsets[1:])] == expected
    backend = tokenizer.backend_tokenizer
    backend.no_truncation()
    encode_with_tokenizer(tokenizer, texts, 8)
    assert backend.truncation is None  # the user's tokenizer is not reconfigured
    assert len(tokenizer(["game " * 300])["input_ids"][0]) > 128


def test_a_slow_tokenizer_encodes_through_its_own_call(tiny_bert):
    from transformers import AutoTokenizer

    from sktext.transformer import encode_with_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    texts = make_toy_data(10)[0] + ["game " * 300]

    class Slow:  # what sktext reads of a Python tokenizer: no Rust backend
        is_fast = False
        pad_token_id = tokenizer.pad_token_id
        model_max_length = tokenizer.model_max_length

        def __call__(self, *args, **kwargs):
            return tokenizer(*args, **kwargs)

    slow = encode_with_tokenizer(Slow(), texts, 16)
    fast = encode_with_tokenizer(tokenizer, texts, 16)
    assert np.array_equal(slow.ids, fast.ids) and np.array_equal(slow.offsets, fast.offsets)


@pytest.mark.parametrize(("max_length", "expected"), [("auto", 128), (12, 12), (1000, 128)])
def test_max_length_is_capped_by_the_encoder(tiny_bert, max_length, expected):
    X, Y = make_toy_data(20)
    X = ["game " * 300 + text for text in X]  # every text longer than the tiny encoder's 128 positions
    clf = TransformerMultiLabelClassifier(
        tiny_bert, max_length=max_length, max_epochs=1, threshold=0.5, validation_fraction=None
    ).fit(X, Y)
    assert clf.max_length_ == expected
    assert clf._encode(X[:1]).lengths.tolist() == [expected]


def test_head_bias_starts_at_label_priors(tiny_bert):
    X, Y = make_toy_data(100)
    clf = TransformerMultiLabelClassifier(
        tiny_bert, max_epochs=1, lr=1e-12, head_lr_multiplier=1.0, threshold=0.5, validation_fraction=None
    )
    clf.fit(X, Y)
    prior = (Y.sum(0) + 0.5) / (len(Y) + 1)
    np.testing.assert_allclose(clf.module_.output.bias.detach().cpu().numpy(), np.log(prior / (1 - prior)), atol=1e-4)


@pytest.mark.slow
def test_default_model_learns_the_bundled_sample():
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    from sktext.datasets import load_debtags_sample

    train, test = load_debtags_sample(subset="train"), load_debtags_sample(subset="test")
    mlb = MultiLabelBinarizer(classes=train.label_names)
    clf = TransformerMultiLabelClassifier(max_length=96, max_epochs=2, lr=2e-4, random_state=0)
    clf.fit(train.texts[:800], mlb.fit_transform(train.labels[:800]))
    predicted = clf.predict(test.texts[:300])
    assert f1_score(mlb.transform(test.labels[:300]), predicted, average="micro") > 0.4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_fit_pickles_to_cpu(tiny_bert):
    X, Y = make_toy_data(100)
    clf = TransformerMultiLabelClassifier(tiny_bert, max_epochs=2, device="cuda", random_state=0).fit(X, Y)
    blob = pickle.dumps(clf)
    expected = clf.predict_proba(X)
    real = torch.cuda.is_available
    torch.cuda.is_available = lambda: False
    try:
        restored = pickle.loads(blob)
    finally:
        torch.cuda.is_available = real
    assert restored.device_.type == "cpu"
    np.testing.assert_allclose(restored.predict_proba(X), expected, atol=2e-2)


def test_a_half_precision_checkpoint_trains_with_float32_weights(tiny_bert, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    half = tmp_path / "fp16"
    AutoModel.from_pretrained(tiny_bert).half().save_pretrained(half)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(half)
    X, Y = make_toy_data(60)
    clf = TransformerMultiLabelClassifier(str(half), max_epochs=1, threshold=0.5, validation_fraction=None)
    clf.fit(X, Y)
    assert {parameter.dtype for parameter in clf.module_.parameters()} == {torch.float32}
