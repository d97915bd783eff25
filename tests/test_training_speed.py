"""CPU training speed-ups: the four-to-a-word dropout masks, eager attention while training, fused AdamW."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel

import sktext.net as net
from sktext import TransformerMultiLabelClassifier
from sktext.dropout import FastDropout, dropout, eager_attention
from sktext.net import fused_adamw_available

from conftest import make_toy_data, ulmfit_factory


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_drops_at_rate_p_and_scales_the_rest(p):
    torch.manual_seed(0)
    out = dropout(torch.ones(400_000), p)
    dropped = float((out == 0).float().mean())
    assert abs(dropped - p) < 0.005  # 400k draws: the standard error is below 0.001
    assert torch.allclose(out[out != 0], torch.tensor(1 / (1 - p)))


def test_dropout_masks_are_independent_across_the_four_numbers_of_a_word():
    torch.manual_seed(0)
    kept = (dropout(torch.ones(400_000), 0.5) != 0).float().view(-1, 4)
    # each position of a word is a fair coin, and two positions agree half the time
    assert torch.allclose(kept.mean(0), torch.full((4,), 0.5), atol=0.01)
    assert abs(float((kept[:, 0] == kept[:, 3]).float().mean()) - 0.5) < 0.01


def test_dropout_follows_torchs_seed_and_masks_the_gradient():
    x = torch.randn(3, 50, 7, requires_grad=True)
    torch.manual_seed(1)
    first = dropout(x, 0.3)
    torch.manual_seed(1)
    again = dropout(x, 0.3)
    torch.manual_seed(2)
    other = dropout(x, 0.3)
    assert torch.equal(first, again) and not torch.equal(first, other)
    first.sum().backward()
    expected = (first != 0).float() / 0.7
    assert torch.allclose(x.grad, expected)


def test_dropout_keeps_the_dtype():
    out = dropout(torch.ones(64, 64, dtype=torch.bfloat16), 0.1)
    assert out.dtype == torch.bfloat16 and out.shape == (64, 64)


def test_fast_dropout_takes_training_dropout_only():
    layer = torch.nn.Dropout(0.25)
    x = torch.ones(10_000)
    with FastDropout():
        torch.manual_seed(0)
        trained = layer.train()(x)
        evaluated = layer.eval()(x)
        in_place = torch.nn.functional.dropout(x.clone(), 0.25, training=True, inplace=True)
        nothing = torch.nn.functional.dropout(x, 0.0, training=True)
    torch.manual_seed(0)
    assert torch.equal(trained, dropout(x, 0.25))  # routed to sktext's masks
    assert torch.equal(evaluated, x) and torch.equal(nothing, x)
    assert abs(float((in_place == 0).float().mean()) - 0.25) < 0.03  # torch's own, still dropout


def test_eager_attention_switches_sdpa_models_and_always_switches_back(tiny_bert):
    module = torch.nn.ModuleDict({"encoder": AutoModel.from_pretrained(tiny_bert, attn_implementation="sdpa")})
    encoder = module["encoder"]
    with eager_attention(module):
        assert encoder.config._attn_implementation == "eager"
    assert encoder.config._attn_implementation == "sdpa"
    with pytest.raises(KeyboardInterrupt), eager_attention(module):
        raise KeyboardInterrupt
    assert encoder.config._attn_implementation == "sdpa"


def test_eager_and_sdpa_attention_agree(tiny_bert):
    encoder = AutoModel.from_pretrained(tiny_bert, attn_implementation="sdpa").eval()
    ids = torch.randint(5, 90, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.no_grad():
        sdpa = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        with eager_attention(encoder):
            eager = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(sdpa, eager, atol=1e-5)


def test_cpu_training_uses_fast_dropout_eager_attention_and_fused_adamw(tiny_bert, monkeypatch):
    """What a CPU fit runs: its training steps inside FastDropout, with eager attention, a fused AdamW."""
    seen = {"modes": [], "attention": set(), "fused": []}
    infer = net.TextNet.infer

    def spying_infer(self, x, **fit_params):
        modes = torch.overrides._get_current_function_mode_stack()
        seen["modes"].append(any(isinstance(mode, FastDropout) for mode in modes) and self.module_.training)
        seen["attention"].add(self.module_.encoder.config._attn_implementation)
        seen["fused"].append(self.optimizer_.defaults.get("fused"))
        return infer(self, x, **fit_params)

    monkeypatch.setattr(net.TextNet, "infer", spying_infer)
    X, Y = make_toy_data(48, seed=1)
    clf = TransformerMultiLabelClassifier(
        tiny_bert, max_epochs=1, batch_size=16, device="cpu", precision="fp32", random_state=0
    ).fit(X, Y)
    assert any(seen["modes"])  # training steps
    assert not all(seen["modes"])  # validation steps run torch's dropout-free eval path
    assert seen["attention"] == {"eager"}
    assert clf.module_.encoder.config._attn_implementation == "sdpa"  # back for prediction and saving
    assert set(seen["fused"]) == {True if fused_adamw_available("cpu") else None}


def test_fused_adamw_is_found_by_trying_it():
    assert fused_adamw_available("meta") is False
    parameter = torch.zeros(2, requires_grad=True)
    parameter.grad = torch.ones(2)
    try:
        torch.optim.AdamW([parameter], fused=True).step()
        runs = True
    except RuntimeError:
        runs = False
    assert fused_adamw_available("cpu") is runs


def _spy_on_training_steps(monkeypatch) -> dict:
    """Record, for each training step, whether it ran inside FastDropout and its optimizer's ``fused``."""
    seen = {"modes": [], "fused": []}
    infer = net.TextNet.infer

    def spying_infer(self, x, **fit_params):
        if self.module_.training:
            modes = torch.overrides._get_current_function_mode_stack()
            seen["modes"].append(any(isinstance(mode, FastDropout) for mode in modes))
            seen["fused"].append(self.optimizer_.defaults.get("fused"))
        return infer(self, x, **fit_params)

    monkeypatch.setattr(net.TextNet, "infer", spying_infer)
    return seen


def test_ulmfit_classifier_trains_without_fast_dropout(monkeypatch):
    """The AWD-LSTM draws its own dropout masks: its CPU training steps run outside FastDropout."""
    seen = _spy_on_training_steps(monkeypatch)
    X, Y = make_toy_data(48, seed=1)
    ulmfit_factory({}, max_epochs=2).fit(X, Y)
    assert seen["modes"] and not any(seen["modes"])
    assert set(seen["fused"]) == {True if fused_adamw_available("cpu") else None}


def test_cpu_speedups_hook_turns_each_one_off(tiny_bert, monkeypatch):
    """The switches benchmarks/cpu_speedups.py measures: off, the transformer trains plainly."""
    for name in net._CPU_SPEEDUPS:
        monkeypatch.setitem(net._CPU_SPEEDUPS, name, False)
    seen = _spy_on_training_steps(monkeypatch)
    attention = set()
    infer = net.TextNet.infer

    def attention_infer(self, x, **fit_params):
        attention.add(self.module_.encoder.config._attn_implementation)
        return infer(self, x, **fit_params)

    monkeypatch.setattr(net.TextNet, "infer", attention_infer)
    X, Y = make_toy_data(32, seed=1)
    TransformerMultiLabelClassifier(
        tiny_bert, max_epochs=1, batch_size=16, device="cpu", precision="fp32", random_state=0
    ).fit(X, Y)
    assert seen["modes"] and not any(seen["modes"])
    assert attention == {"sdpa"}
    assert set(seen["fused"]) == {None}
    assert fused_adamw_available("cpu") is False
