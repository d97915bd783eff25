import copy
import pickle
import warnings

import pytest
import torch

from sktext.models.awd_lstm import (
    CLASSIFIER_DROPOUTS,
    PRESETS,
    AWDLSTMClassifier,
    AWDLSTMConfig,
    AWDLSTMEncoder,
    AWDLSTMLanguageModel,
    ConcatPoolingHead,
    EmbeddingDropout,
    LockedDropout,
    WeightDropout,
    layer_group_names,
    layer_groups,
    resolve_architecture,
    scaled_dropouts,
)

VOCAB_SIZE = 40
PAD = 1


@pytest.fixture
def language_model():
    torch.manual_seed(0)
    return AWDLSTMLanguageModel.from_preset("tiny", VOCAB_SIZE)


def make_classifier(**overrides):
    torch.manual_seed(0)
    return AWDLSTMClassifier.from_preset("tiny", VOCAB_SIZE, n_outputs=3, **overrides)


def random_ids(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(2, VOCAB_SIZE, shape, generator=generator)


def test_presets_follow_the_paper_and_tie_sizes():
    assert PRESETS["paper"] == {"embedding_dim": 400, "hidden_dim": 1152, "n_layers": 3}
    encoder = AWDLSTMEncoder(AWDLSTMConfig(VOCAB_SIZE, **PRESETS["tiny"]))
    sizes = [(rnn.module.input_size, rnn.module.hidden_size) for rnn in encoder.rnns]
    assert sizes == [(32, 64), (64, 32)]


def test_encoder_shapes_and_outputs(language_model):
    ids = random_ids(3, 9)
    output = language_model.encoder(ids)
    assert [tuple(o.shape) for o in output.raw_outputs] == [(3, 9, 64), (3, 9, 32)]
    assert len(output.dropped_outputs) == 2
    assert [tuple(h.shape) for h, _ in output.hidden] == [(1, 3, 64), (1, 3, 32)]
    result = language_model(ids, output.hidden)
    assert result.logits.shape == (3, 9, VOCAB_SIZE)


def test_embedding_initialised_uniform_and_decoder_tied(language_model):
    weight = language_model.encoder.embedding.weight
    assert weight.abs().max() <= 0.1
    assert language_model.decoder.projection.weight is weight
    names = [name for name, _ in language_model.named_parameters()]
    assert "decoder.projection.weight" not in names  # shared, listed once
    language_model(random_ids(2, 5)).logits.sum().backward()
    assert weight.grad is not None


def test_locked_dropout_mask_is_constant_over_time():
    torch.manual_seed(0)
    dropout = LockedDropout(0.5).train()
    output = dropout(torch.ones(4, 10, 16))
    assert torch.equal(output, output[:, :1, :].expand_as(output))
    assert set(output.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(dropout.eval()(torch.ones(4, 10, 16)), torch.ones(4, 10, 16))


def test_embedding_dropout_drops_whole_rows():
    torch.manual_seed(0)
    embedding = EmbeddingDropout(20, 8, dropout=0.5).train()
    ids = torch.arange(20).repeat(2, 1)  # every word twice
    output = embedding(ids)
    assert torch.equal(output[0], output[1])
    dropped_rows = (output[0] == 0).all(dim=1)
    assert 0 < int(dropped_rows.sum()) < 20
    kept = ~dropped_rows
    assert torch.allclose(output[0][kept], 2 * embedding.weight[kept])
    assert torch.equal(embedding.eval()(ids)[0], embedding.weight)


def test_weight_dropout_changes_outputs_in_train_mode_only():
    torch.manual_seed(0)
    layer = WeightDropout(torch.nn.LSTM(6, 6, batch_first=True), dropout=0.5)
    inputs = torch.randn(2, 5, 6)
    layer.train()
    first, _ = layer(inputs)
    second, _ = layer(inputs)
    assert not torch.allclose(first, second)
    layer.eval()
    first, _ = layer(inputs)
    second, _ = layer(inputs)
    assert torch.equal(first, second)


def test_weight_dropout_keeps_raw_parameter_trainable():
    torch.manual_seed(0)
    layer = WeightDropout(torch.nn.LSTM(6, 6, batch_first=True), dropout=0.5).train()
    names = dict(layer.named_parameters())
    assert "weight_hh_l0_raw" in names and "module.weight_hh_l0" not in names
    assert set(layer.state_dict()) == {
        "weight_hh_l0_raw",
        "module.weight_ih_l0",
        "module.bias_ih_l0",
        "module.bias_hh_l0",
    }
    output, _ = layer(torch.randn(2, 5, 6))
    output.sum().backward()
    assert layer.weight_hh_l0_raw.grad is not None
    assert layer.weight_hh_l0_raw.grad.abs().sum() > 0
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    before = layer.weight_hh_l0_raw.detach().clone()
    optimizer.step()
    assert not torch.equal(before, layer.weight_hh_l0_raw)


def test_weight_dropout_survives_pickle_copy_and_dtype_moves(language_model):
    ids = random_ids(2, 6)
    language_model.train()
    language_model(ids).logits.sum().backward()  # leaves no graph on the LSTMs
    restored = pickle.loads(pickle.dumps(language_model))
    copied = copy.deepcopy(language_model)
    for model in (language_model, restored, copied):
        model.eval()
    expected = language_model(ids).logits
    assert torch.equal(restored(ids).logits, expected)
    assert torch.equal(copied(ids).logits, expected)
    doubled = copied.double()
    assert doubled(ids).logits.dtype == torch.float64
    assert torch.allclose(doubled(ids).logits.float(), expected, atol=1e-5)


def test_weight_dropout_rejects_stacked_lstm():
    with pytest.raises(ValueError, match="single-layer"):
        WeightDropout(torch.nn.LSTM(4, 4, num_layers=2, batch_first=True), 0.2)


def test_language_model_dropped_outputs_for_regularisation(language_model):
    language_model.train()
    output = language_model(random_ids(2, 7))
    assert len(output.raw_outputs) == len(output.dropped_outputs) == 2
    assert not torch.equal(output.raw_outputs[-1], output.dropped_outputs[-1])
    language_model.eval()
    output = language_model(random_ids(2, 7))
    assert torch.equal(output.raw_outputs[-1], output.dropped_outputs[-1])


def test_classifier_shape_and_prior_bias():
    model = make_classifier()
    ids = random_ids(4, 11)
    assert model(ids, torch.ones_like(ids)).shape == (4, 3)
    assert isinstance(model.head, ConcatPoolingHead)
    assert model.head.output.bias.shape == (3,)
    with torch.no_grad():
        model.head.output.bias.copy_(torch.tensor([-2.0, 0.0, 2.0]))


@pytest.mark.parametrize("bptt", [3, 72])
def test_pooling_ignores_padding(bptt):
    model = make_classifier(bptt=bptt).eval()
    text = random_ids(1, 7)
    alone = model(text, torch.ones_like(text))
    padded = torch.cat([text, torch.full((1, 5), PAD)], dim=1)
    mask = (padded != PAD).long()
    assert torch.allclose(model(padded, mask), alone, atol=1e-6)
    longer = random_ids(1, 12, seed=1)
    batch = torch.cat([padded, longer])
    batch_mask = torch.cat([mask, torch.ones_like(longer)])
    logits = model(batch, batch_mask)
    assert torch.allclose(logits[0:1], alone, atol=1e-5)
    assert torch.allclose(logits[1:2], model(longer, torch.ones_like(longer)), atol=1e-5)
    # the mask defaults to input_ids != pad_id
    assert torch.allclose(model(batch), logits)


def test_classifier_rejects_left_padding():
    model = make_classifier().eval()
    ids = torch.tensor([[PAD, PAD, 5, 6]])
    with pytest.raises(ValueError, match="right padding"):
        model(ids, (ids != PAD).long())
    with pytest.raises(ValueError, match="at least one token"):
        model(ids, torch.zeros_like(ids))


def test_chunked_reading_equals_one_pass():
    ids = random_ids(2, 40)
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    chunked = make_classifier(bptt=6, max_len=100).eval()
    whole = make_classifier(bptt=100, max_len=100).eval()
    assert torch.allclose(chunked(ids, mask), whole(ids, mask), atol=1e-5)


def test_long_text_pools_only_last_max_len_outputs():
    model = make_classifier(bptt=5, max_len=8).eval()
    ids = random_ids(2, 31)
    mask = torch.ones_like(ids)
    mask[1, 13:] = 0
    logits = model(ids, mask)
    with torch.no_grad():
        expected = []
        for row, length in enumerate([31, 13]):
            outputs = model.encoder(ids[row : row + 1, :length]).raw_outputs[-1]
            window = outputs[:, length - 8 :]
            expected.append(model.head(window, torch.ones(1, 8, dtype=torch.bool)))
    assert torch.allclose(logits, torch.cat(expected), atol=1e-5)
    # Tokens long before the window still shape the state that reaches it.
    changed = ids.clone()
    changed[0, 20] = 2 if changed[0, 20] != 2 else 3  # before row 0's window (23..30)
    assert not torch.equal(model(changed, mask)[0], logits[0])


def test_classifier_trains_through_chunks():
    model = make_classifier(bptt=4, max_len=6).train()
    ids = random_ids(3, 17)
    mask = torch.ones_like(ids)
    mask[2, 5:] = 0
    model(ids, mask).sum().backward()
    assert model.encoder.embedding.weight.grad is not None
    assert model.encoder.rnns[0].weight_hh_l0_raw.grad.abs().sum() > 0


def test_encoder_state_dict_moves_from_language_model_to_classifier(language_model):
    classifier = make_classifier()
    classifier.encoder.load_state_dict(language_model.encoder.state_dict())
    assert torch.equal(classifier.encoder.embedding.weight, language_model.encoder.embedding.weight)


def test_layer_groups_cover_every_parameter_once(language_model):
    classifier = make_classifier()
    for model, expected_groups in ((classifier, 4), (language_model, 3)):
        groups = layer_groups(model)
        assert len(groups) == expected_groups
        flat = [id(parameter) for group in groups for parameter in group]
        assert len(flat) == len(set(flat)) == len(list(model.parameters()))
    names = layer_group_names(classifier)
    assert names[0] == ["encoder.embedding.weight"]
    assert all(name.startswith("head.") for name in names[-1])
    assert layer_group_names(language_model)[-1] == ["encoder.embedding.weight", "decoder.projection.bias"]
    with pytest.raises(ValueError, match="AWDLSTMClassifier or AWDLSTMLanguageModel"):
        layer_groups(torch.nn.Linear(2, 2))


def test_dropout_defaults_and_drop_mult():
    classifier = AWDLSTMClassifier.from_preset("tiny", VOCAB_SIZE, 2, drop_mult=0.5)
    assert classifier.encoder.rnns[0].dropout == pytest.approx(0.25)
    assert classifier.encoder.input_dropout.dropout == pytest.approx(0.2)
    assert classifier.head.pooled_dropout.p == pytest.approx(0.2)
    assert classifier.head.hidden_dropout.p == pytest.approx(0.1)
    language_model = AWDLSTMLanguageModel.from_preset("tiny", VOCAB_SIZE)
    assert language_model.decoder.output_dropout.dropout == pytest.approx(0.1)
    assert language_model.encoder.embedding.dropout == pytest.approx(0.02)
    with pytest.raises(ValueError, match="drop_mult"):
        scaled_dropouts(CLASSIFIER_DROPOUTS, 2.0)
    with pytest.raises(ValueError, match="Unknown AWD-LSTM preset 'huge'"):
        resolve_architecture("huge")
    with pytest.raises(ValueError, match="missing"):
        resolve_architecture({"embedding_dim": 8})


@pytest.mark.gpu
def test_cuda_forward_backward_without_weight_warnings():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = make_classifier(bptt=4).cuda().train()
    ids = random_ids(3, 13).cuda()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(ids, torch.ones_like(ids)).sum().backward()
    assert model.encoder.rnns[0].weight_hh_l0_raw.grad.is_cuda
    language_model = AWDLSTMLanguageModel.from_preset("tiny", VOCAB_SIZE).cuda()
    restored = pickle.loads(pickle.dumps(language_model.cpu()))
    assert restored(random_ids(1, 4)).logits.shape == (1, 4, VOCAB_SIZE)


def test_one_config_describes_every_module():
    config = AWDLSTMConfig.from_preset("tiny", VOCAB_SIZE)
    assert config.sizes == PRESETS["tiny"] and config.dropouts["weight_dropout"] == pytest.approx(0.2)
    assert AWDLSTMConfig.from_dict(config.to_dict()) == config
    language_model = AWDLSTMLanguageModel(config)
    classifier = AWDLSTMClassifier(config.with_dropouts(CLASSIFIER_DROPOUTS, 0.5), n_outputs=2)
    assert language_model.encoder.config == config and classifier.config.weight_dropout == pytest.approx(0.25)
    assert classifier.head.pooled_dropout.p == pytest.approx(0.2)
    classifier.encoder.load_state_dict(language_model.encoder.state_dict())
    with pytest.raises(ValueError, match=r"'weight_dropout' parameter of AWDLSTMConfig must be a float in \[0, 1\)"):
        AWDLSTMConfig(VOCAB_SIZE, weight_dropout=1.0)
    with pytest.raises(ValueError, match=r"has no fields \['depth'\]"):
        AWDLSTMConfig.from_dict({**config.to_dict(), "depth": 3})
