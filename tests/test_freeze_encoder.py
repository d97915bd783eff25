"""freeze_encoder=True: only the head trains, the encoder runs without gradients or dropout."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from test_sklearn_contract import FACTORIES

from sktext import TransformerMultiLabelClassifier, ULMFiTClassifier, load_model, save_model
from sktext.language_model import fine_tune_language_model
from sktext.models.awd_lstm import AWDLSTMClassifier
from sktext.net import TextNet
from sktext.pretrained import load_pretrained

from conftest import make_toy_data

FIXED = dict(threshold=0.5, validation_fraction=None)


@pytest.fixture(scope="module")
def language_model():
    texts, _ = make_toy_data(240, seed=11)
    return fine_tune_language_model(
        texts, preset="tiny", lm_epochs=2, batch_size=8, bptt=16, min_freq=1, random_state=0, device="cpu"
    )


@pytest.fixture(scope="module")
def frozen_transformer(tiny_bert):
    X, Y = make_toy_data(240, seed=0)
    return TransformerMultiLabelClassifier(
        tiny_bert, freeze_encoder=True, max_epochs=10, lr=1e-2, batch_size=16, random_state=0, **FIXED
    ).fit(X, Y)


def _same_state(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k].cpu(), second[k].cpu()) for k in first)


def test_transformer_encoder_stays_as_loaded_and_head_learns(frozen_transformer, tiny_bert):
    _, pretrained = load_pretrained(tiny_bert)
    module = frozen_transformer.module_
    assert _same_state(module.encoder.state_dict(), pretrained.state_dict())
    assert not any(parameter.requires_grad for parameter in module.encoder.parameters())
    assert all(parameter.requires_grad for parameter in module.output.parameters())
    assert module.encoder_frozen
    Xh, Yh = make_toy_data(120, seed=7)
    # A random tiny encoder, frozen: the head still separates the topic words, if less well.
    assert f1_score(Yh, frozen_transformer.predict(Xh), average="micro") > 0.7


def test_frozen_transformer_module_has_no_encoder_graph_and_no_encoder_dropout(tiny_bert):
    _, encoder = load_pretrained(tiny_bert)
    assert encoder.config.hidden_dropout_prob > 0
    from sktext.models.transformer import TransformerClassifierModule

    module = TransformerClassifierModule(encoder, n_outputs=3, dropout=0.0).freeze_encoder().train()
    assert module.training and not module.encoder.training
    assert not any(submodule.training for submodule in module.encoder.modules())
    input_ids = torch.randint(5, 100, (4, 9))
    mask = torch.ones_like(input_ids)
    first, second = module(input_ids, mask), module(input_ids, mask)
    torch.testing.assert_close(first, second)  # dropout off inside the encoder
    first.sum().backward()
    assert all(parameter.grad is None for parameter in module.encoder.parameters())
    assert module.output.weight.grad is not None
    # Unfreezing gives back a trainable encoder with dropout.
    module.freeze_encoder(False).train()
    assert module.encoder.training and all(p.requires_grad for p in module.encoder.parameters())


def test_frozen_parameters_stay_out_of_the_optimizer(tiny_bert):
    from sktext.models.transformer import TransformerClassifierModule

    _, encoder = load_pretrained(tiny_bert)
    module = TransformerClassifierModule(encoder, n_outputs=3).freeze_encoder()
    net = TextNet(module, criterion=torch.nn.BCEWithLogitsLoss, optimizer=torch.optim.AdamW).initialize()
    optimized = [p for group in net.optimizer_.param_groups for p in group["params"]]
    assert {id(p) for p in optimized} == {id(p) for p in module.output.parameters()}


def test_awd_lstm_frozen_encoder_runs_without_gradients_or_dropout():
    torch.manual_seed(0)
    model = AWDLSTMClassifier.from_preset(
        "tiny", vocab_size=60, n_outputs=3, drop_mult=1.0, output_dropout=0.0, head_hidden_dropout=0.0, bptt=4
    )
    input_ids = torch.randint(2, 60, (5, 11))
    model.train()
    assert not torch.equal(model(input_ids), model(input_ids))  # encoder dropout while trainable
    model.freeze_encoder().train()
    assert not model.encoder.training and model.head.training
    first = model(input_ids)
    torch.testing.assert_close(first, model(input_ids))
    first.sum().backward()
    assert all(parameter.grad is None for parameter in model.encoder.parameters())
    assert model.head.output.weight.grad is not None


def test_ulmfit_trains_only_the_head_in_one_stage(language_model):
    X, Y = make_toy_data(240, seed=0)
    classifier = ULMFiTClassifier(
        language_model,
        lm_epochs=0,
        freeze_encoder=True,
        max_epochs=10,
        lr=1e-2,
        drop_mult=0.1,
        min_freq=1,
        bptt=16,
        batch_size=16,
        random_state=0,
        device="cpu",
        **FIXED,
    ).fit(X, Y)
    module = classifier.module_
    assert _same_state(module.encoder.state_dict(), language_model.encoder_state_dict())
    assert [record["stage"] for record in classifier.history_] == [1] * 10
    assert not any(parameter.requires_grad for parameter in module.encoder.parameters())
    assert all(parameter.requires_grad for parameter in module.head.parameters())
    Xh, Yh = make_toy_data(120, seed=7)
    assert f1_score(Yh, classifier.predict(Xh), average="micro") > 0.6


def test_ulmfit_still_runs_the_language_model_stage(language_model):
    X, Y = make_toy_data(80, seed=0)
    classifier = ULMFiTClassifier(
        language_model,
        lm_epochs=1,
        freeze_encoder=True,
        max_epochs=2,
        min_freq=1,
        bptt=16,
        batch_size=16,
        random_state=0,
        device="cpu",
        **FIXED,
    ).fit(X, Y)
    assert len(classifier.language_model_history_) == 2  # frozen LM epoch for new words, then one
    assert len(classifier.history_) == 2 and {record["stage"] for record in classifier.history_} == {1}


def test_ulmfit_frozen_random_encoder_is_an_error():
    X, Y = make_toy_data(40, seed=0)
    with pytest.raises(ValueError, match="freeze_encoder=True.*random.*language_model"):
        ULMFiTClassifier(preset="tiny", lm_epochs=0, freeze_encoder=True).fit(X, Y)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_bad_freeze_encoder_fails_in_fit(name, tiny_bert):
    factory, _ = FACTORIES[name]
    estimator = factory({"tiny_bert": tiny_bert}, freeze_encoder="yes")
    with pytest.raises(ValueError, match="'freeze_encoder' parameter of .* must be True or False. Got 'yes' instead"):
        estimator.fit(*make_toy_data(40, seed=0))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_frozen_focal_model_survives_pickle_and_model_folders(name, tiny_bert, tmp_path):
    factory, _ = FACTORIES[name]
    X, Y = make_toy_data(120, seed=0)
    fitted = factory({"tiny_bert": tiny_bert}, freeze_encoder=True, loss="focal", focal_gamma=1.5, max_epochs=2).fit(
        X, Y
    )
    expected = fitted.predict_proba(X)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
    assert restored.module_.encoder_frozen
    loaded = load_model(save_model(fitted, tmp_path / "model"))
    # A local model path is saved as its last part only (no absolute path of the author).
    ignored = {"model_name_or_path"}
    assert {k: v for k, v in loaded.get_params().items() if k not in ignored} == {
        k: v for k, v in fitted.get_params().items() if k not in ignored
    }
    assert loaded.freeze_encoder is True and loaded.loss == "focal" and loaded.focal_gamma == 1.5
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)


def test_frozen_encoder_runs_once_per_text_per_fit(tiny_bert, monkeypatch):
    from transformers import BertModel

    rows = []
    forward = BertModel.forward

    def counting_forward(self, *args, **kwargs):
        rows.append(len(kwargs["input_ids"]))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(BertModel, "forward", counting_forward)
    X, Y = make_toy_data(160, seed=3)
    n_distinct = len(set(X))
    clf = TransformerMultiLabelClassifier(
        tiny_bert, freeze_encoder=True, max_epochs=6, patience=None, lr=1e-2, batch_size=16, random_state=0
    )
    clf.fit(X, Y)
    # Six epochs over the training part and six validation passes, yet every text is
    # encoded once during training; threshold tuning reads the validation part once more.
    assert sum(rows) <= n_distinct + len(X) * clf.validation_fraction + 1
    rows.clear()
    unfrozen = TransformerMultiLabelClassifier(
        tiny_bert, max_epochs=2, patience=None, lr=1e-2, batch_size=16, random_state=0
    ).fit(X, Y)
    assert sum(rows) >= 2 * len(X) * (1 - unfrozen.validation_fraction)
    probabilities = clf.predict_proba(X)
    assert probabilities.shape == (160, 3) and np.isfinite(probabilities).all()
