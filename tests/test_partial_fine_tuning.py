"""trainable_layers=t: only the top t encoder layers train; the frozen lower ones run once per text per fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sktext import TransformerMultiLabelClassifier, TransformerRegressor, load_model, save_model
from sktext.models.layer_cache import LowerLayerCache, auto_trainable_layers, count_layers
from sktext.models.transformer import TransformerClassifierModule
from sktext.pretrained import load_pretrained

from conftest import make_toy_data

SMALL = dict(max_epochs=3, lr=3e-3, batch_size=16, random_state=0)


def _padded_batch(vocab_size: int, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, vocab_size, (5, 12), generator=generator)
    mask = torch.ones_like(input_ids)
    for row, length in enumerate([12, 9, 3, 12, 6]):
        mask[row, length:] = 0
    input_ids[mask == 0] = pad_id
    input_ids[3] = input_ids[0]  # a text twice in one batch: one cache entry
    return input_ids, mask


def _random_encoder(family: str):
    import transformers

    sizes = dict(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64)
    config = {
        "roberta": lambda: transformers.RobertaConfig(**sizes, max_position_embeddings=64, pad_token_id=1),
        "distilbert": lambda: transformers.DistilBertConfig(
            vocab_size=100, dim=32, n_layers=3, n_heads=2, hidden_dim=64, max_position_embeddings=64
        ),
        # Embeddings smaller than the hidden states, projected before the first layer.
        "electra": lambda: transformers.ElectraConfig(**sizes, embedding_size=16, max_position_embeddings=64),
    }[family]()
    torch.manual_seed(0)
    return transformers.AutoModel.from_config(config)


@pytest.fixture(params=["tiny-bert", "roberta", "distilbert", "electra"])
def encoder(request, tiny_bert):
    if request.param == "tiny-bert":
        return load_pretrained(tiny_bert)[1]
    return _random_encoder(request.param)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("store", [True, False])
def test_cached_top_layers_give_the_full_forward(encoder, pooling, store):
    module = TransformerClassifierModule(encoder, n_outputs=4, pooling=pooling).eval()
    input_ids, mask = _padded_batch(encoder.config.vocab_size, encoder.config.pad_token_id or 0)
    with torch.inference_mode():
        expected = module(input_ids, mask)
        for n_trainable in range(1, count_layers(encoder) + 1):
            with module.caching_lower_layers(n_trainable, store=store):
                first, second = module(input_ids, mask), module(input_ids, mask)  # filling, then from the cache
                # Stored: once per distinct text; not stored: every row of every batch.
                assert module._layer_cache.n_computed == (4 if store else 10)
            torch.testing.assert_close(first, expected, rtol=0, atol=1e-5)
            torch.testing.assert_close(second, expected, rtol=0, atol=1e-5)


def test_cache_keeps_real_tokens_in_the_autocast_dtype_and_freezes_all_but_the_top(tiny_bert):
    _, encoder = load_pretrained(tiny_bert)
    module = TransformerClassifierModule(encoder, n_outputs=3).eval()
    input_ids, mask = _padded_batch(encoder.config.vocab_size)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = module(input_ids, mask)
        with module.caching_lower_layers(1):
            cached = module(input_ids, mask)
            states = list(module._layer_cache._states.values())
            trainable = {name for name, parameter in module.named_parameters() if parameter.requires_grad}
    assert sorted(len(state) for state in states) == [3, 6, 9, 12]
    assert {state.dtype for state in states} == {torch.bfloat16}
    torch.testing.assert_close(cached, expected, rtol=0, atol=2e-2)  # states rounded to bf16
    assert trainable == {
        name for name, _ in module.named_parameters() if name.startswith(("output.", "encoder.encoder.layer.1."))
    }
    assert all(parameter.requires_grad for parameter in module.parameters())  # given back on exit
    assert module._layer_cache is None


def test_states_cached_in_inference_mode_train_the_top_layers(tiny_bert):
    """A text first seen in a validation pass (inference mode) may be a training text too."""
    _, encoder = load_pretrained(tiny_bert)
    module = TransformerClassifierModule(encoder, n_outputs=3)
    input_ids, mask = _padded_batch(encoder.config.vocab_size)
    with module.caching_lower_layers(1):
        with torch.inference_mode():
            module.eval()(input_ids, mask)
        module.train()(input_ids, mask).sum().backward()
        assert module._layer_cache.n_computed == 4
    bottom, top = module.encoder.encoder.layer
    assert all(parameter.grad is not None for parameter in top.parameters())
    assert all(parameter.grad is None for parameter in bottom.parameters())
    assert all(parameter.grad is None for parameter in module.encoder.embeddings.parameters())


def _states(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


@pytest.fixture(scope="module")
def partly_fine_tuned(tiny_bert):
    X, Y = make_toy_data(160, seed=0)
    return TransformerMultiLabelClassifier(tiny_bert, trainable_layers=1, **SMALL).fit(X, Y)


def test_fit_changes_only_the_top_layers_and_the_head(partly_fine_tuned, tiny_bert):
    _, pretrained = load_pretrained(tiny_bert)
    before, module = pretrained.state_dict(), partly_fine_tuned.module_
    after = module.encoder.state_dict()
    lower = [name for name in before if not name.startswith(("encoder.layer.1.", "pooler."))]
    assert any(name.startswith("embeddings.") for name in lower) and any("layer.0." in name for name in lower)
    assert all(torch.equal(before[name], after[name]) for name in lower)
    top = [name for name in before if name.startswith("encoder.layer.1.") and name.endswith("weight")]
    assert all(not torch.equal(before[name], after[name]) for name in top)
    # The module left by the fit is an ordinary one: every parameter trainable, no cache.
    assert all(parameter.requires_grad for parameter in module.parameters())
    assert module._layer_cache is None and not module.encoder_frozen
    assert partly_fine_tuned.validation_scores_["f1_micro"] > 0.6


def test_lower_layers_run_once_per_text_per_fit(tiny_bert, monkeypatch):
    from transformers.models.bert.modeling_bert import BertLayer

    rows: dict[int, int] = {}
    forward = BertLayer.forward

    def counting_forward(self, hidden_states, *args, **kwargs):
        rows[id(self)] = rows.get(id(self), 0) + len(hidden_states)
        return forward(self, hidden_states, *args, **kwargs)

    monkeypatch.setattr(BertLayer, "forward", counting_forward)
    X, Y = make_toy_data(160, seed=3)
    n_distinct = len(set(X))
    clf = TransformerMultiLabelClassifier(tiny_bert, trainable_layers=1, **{**SMALL, "max_epochs": 4}, patience=None)
    clf.fit(X, Y)
    bottom, top = (rows[id(layer)] for layer in clf.module_.encoder.encoder.layer)
    n_valid = round(len(X) * clf.validation_fraction)
    # Four epochs over the training part and four validation passes, yet the bottom layer
    # sees each text once during training; threshold tuning reads the validation part once more.
    assert bottom <= n_distinct + n_valid
    assert top >= 4 * len(X)


@pytest.mark.parametrize("estimator_class", [TransformerMultiLabelClassifier, TransformerRegressor])
@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True])
def test_bad_trainable_layers_fail_in_fit(estimator_class, value, tiny_bert):
    estimator = estimator_class(tiny_bert, trainable_layers=value, **SMALL)
    match = r"The 'trainable_layers' parameter of \w+ must be an int >= 1, 'auto' or None \(the number of top encoder"
    with pytest.raises(ValueError, match=match):
        estimator.fit(*make_toy_data(40, seed=0))


@pytest.mark.parametrize("estimator_class", [TransformerMultiLabelClassifier, TransformerRegressor])
def test_more_trainable_layers_than_the_encoder_has_is_an_error(estimator_class, tiny_bert):
    estimator = estimator_class(tiny_bert, trainable_layers=3, **SMALL)
    with pytest.raises(ValueError, match=r"at most the encoder's number of layers, 2 .* Got 3 instead.*None"):
        estimator.fit(*make_toy_data(40, seed=0))


def test_trainable_layers_with_a_frozen_encoder_is_an_error(tiny_bert):
    estimator = TransformerMultiLabelClassifier(tiny_bert, trainable_layers=1, freeze_encoder=True, **SMALL)
    with pytest.raises(
        ValueError, match=r"freeze_encoder=True trains no encoder layer.*trainable_layers='auto' or None"
    ):
        estimator.fit(*make_toy_data(40, seed=0))


def test_clone_and_params_round_trip():
    estimator = TransformerMultiLabelClassifier(trainable_layers=2)
    assert estimator.get_params()["trainable_layers"] == 2
    assert clone(estimator).trainable_layers == 2
    assert "trainable_layers=2" in repr(estimator)
    assert TransformerMultiLabelClassifier().trainable_layers == "auto"
    assert TransformerRegressor().trainable_layers is None  # partial fine-tuning not measured for regression
    assert TransformerRegressor(trainable_layers=1).set_params(trainable_layers=None).trainable_layers is None


def test_auto_trains_the_top_third_of_the_layers():
    # A third, rounded up, at least one; all-MiniLM-L6-v2 (6 layers, the default model): its top two.
    assert [auto_trainable_layers(n) for n in (1, 2, 3, 6, 12, 24)] == [1, 1, 1, 2, 4, 8]


def test_model_folder_and_predictions_as_usual(partly_fine_tuned, tmp_path):
    X, _ = make_toy_data(40, seed=5)
    loaded = load_model(save_model(partly_fine_tuned, tmp_path / "model"))
    assert loaded.trainable_layers == 1
    np.testing.assert_array_equal(loaded.predict_proba(X), partly_fine_tuned.predict_proba(X))


def test_default_trains_the_top_layers_and_none_every_layer(tiny_bert):
    X, Y = make_toy_data(120, seed=0)
    default = TransformerMultiLabelClassifier(tiny_bert, **SMALL).fit(X, Y)
    everything = TransformerMultiLabelClassifier(tiny_bert, trainable_layers=None, **SMALL).fit(X, Y)
    frozen = TransformerMultiLabelClassifier(tiny_bert, freeze_encoder=True, **SMALL).fit(X, Y)
    assert (default.trainable_layers_, everything.trainable_layers_, frozen.trainable_layers_) == (1, None, 0)
    _, pretrained = load_pretrained(tiny_bert)
    before = pretrained.state_dict()
    embeddings = "embeddings.word_embeddings.weight"
    assert torch.equal(default.module_.encoder.state_dict()[embeddings], before[embeddings])
    assert not torch.equal(everything.module_.encoder.state_dict()[embeddings], before[embeddings])


def test_auto_fine_tunes_all_of_an_encoder_without_a_layer_list(tmp_path, tiny_bert):
    """ALBERT shares one layer's weights across its depth: nothing to cache, so "auto" trains it all."""
    import transformers

    tokenizer, _ = load_pretrained(tiny_bert)
    config = transformers.AlbertConfig(
        vocab_size=len(tokenizer),
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    transformers.AlbertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    X, Y = make_toy_data(60, seed=0)
    clf = TransformerMultiLabelClassifier(str(tmp_path), **SMALL).fit(X, Y)
    assert clf.trainable_layers_ is None
    with pytest.raises(ValueError, match="one list of its config.num_hidden_layers=2 layers.*trainable_layers=None"):
        TransformerMultiLabelClassifier(str(tmp_path), trainable_layers=1, **SMALL).fit(X, Y)


def test_states_too_large_for_memory_run_the_bottom_every_step(tiny_bert, monkeypatch):
    import sktext.models.layer_cache as layer_cache

    X, Y = make_toy_data(120, seed=0)
    params = dict(trainable_layers=1, precision="fp32", **SMALL)  # fp32: a bf16 fit keeps the states rounded
    stored = TransformerMultiLabelClassifier(tiny_bert, **params).fit(X, Y)
    monkeypatch.setattr(layer_cache, "LAYER_CACHE_MAX_BYTES", 0)
    made = []
    original = layer_cache.LowerLayerCache.__init__

    def recording_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self.store)

    monkeypatch.setattr(layer_cache.LowerLayerCache, "__init__", recording_init)
    recomputed = TransformerMultiLabelClassifier(tiny_bert, **params).fit(X, Y)
    assert made == [False]
    # The same model either way (the bottom is frozen and in eval mode), within float noise.
    np.testing.assert_allclose(recomputed.predict_proba(X), stored.predict_proba(X), rtol=0, atol=1e-4)


def test_regressor_trains_its_top_layers(tiny_bert):
    X, Y = make_toy_data(80, seed=0)
    reg = TransformerRegressor(tiny_bert, trainable_layers=2, **SMALL).fit(X, Y.sum(axis=1).astype(float))
    _, pretrained = load_pretrained(tiny_bert)
    name = "embeddings.word_embeddings.weight"  # trainable_layers equal to the layers: embeddings frozen
    assert torch.equal(reg.module_.encoder.state_dict()[name], pretrained.state_dict()[name])
    assert np.isfinite(reg.predict(X)).all()


def test_layer_cache_refuses_encoders_it_cannot_split():
    encoder = torch.nn.Module()
    encoder.config = type("Config", (), {"num_hidden_layers": 2})()
    with pytest.raises(ValueError, match="one list of its config.num_hidden_layers=2 layers.*trainable_layers=None"):
        LowerLayerCache(encoder, 1)
