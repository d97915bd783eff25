"""The precision parameter: validation, what "auto" picks, bf16 training and prediction."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import sktext.precision as precision
from sktext import TransformerEmbedder, TransformerMultiLabelClassifier, load_model
from sktext.precision import PRECISION_CONSTRAINT, check_precision, cpu_has_fast_bf16, resolve_precision
from sktext.validation import parameter_constraints

from conftest import make_toy_data, ulmfit_factory


def tiny_classifier(tiny_bert, **params):
    defaults = dict(max_epochs=2, batch_size=16, threshold=0.5, validation_fraction=None, device="cpu", random_state=0)
    return TransformerMultiLabelClassifier(tiny_bert, **{**defaults, **params})


@pytest.fixture
def no_fast_bf16(monkeypatch):
    """A CPU whose instruction set has no bf16 arithmetic."""
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)


@pytest.fixture
def fast_bf16(monkeypatch):
    """A CPU with AVX-512 BF16 / AMX."""
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)


@pytest.fixture(scope="module")
def toy():
    return make_toy_data(80, seed=3)


CHOICES = "must be one of {'auto', 'fp32', 'bf16'}"


@pytest.mark.parametrize(
    "value, hint",
    [
        ("fp16", "float16 is not offered.*use 'bf16'"),
        ("float32", "write 'fp32' for float32"),
        ("BF16", "'bf16' for bfloat16, in lower case"),
        (16, "'auto' is bf16 where the device runs it fast"),
    ],
)
def test_unknown_precision_fails_in_fit_with_the_choices(tiny_bert, toy, value, hint):
    clf = tiny_classifier(tiny_bert, precision=value)  # __init__ only stores it
    message = f"The 'precision' parameter of TransformerMultiLabelClassifier {CHOICES} .*{hint}.*Got {value!r} instead"
    with pytest.raises(ValueError, match=message):
        clf.fit(*toy)


def test_precision_is_a_declared_constraint_of_every_estimator():
    from sktext.registry import registered_estimators

    for name, cls in registered_estimators().items():
        assert parameter_constraints(cls)["precision"] == [PRECISION_CONSTRAINT], name
        assert cls().get_params()["precision"] == "auto", name


def test_resolve_precision_checks_with_the_same_message():
    with pytest.raises(ValueError, match=f"The 'precision' parameter of resolve_precision {CHOICES}"):
        resolve_precision("half", "cpu")
    check_precision("bf16")


def test_embedder_checks_precision_in_fit(tiny_bert, toy):
    with pytest.raises(ValueError, match=f"The 'precision' parameter of TransformerEmbedder {CHOICES}"):
        TransformerEmbedder(tiny_bert, precision="half").fit(toy[0])


def test_auto_stays_fp32_on_a_cpu_without_fast_bf16(tiny_bert, toy, no_fast_bf16):
    assert resolve_precision("auto", "cpu") == torch.float32
    clf = tiny_classifier(tiny_bert, max_epochs=1).fit(*toy)
    assert clf.precision_ == "fp32"
    # and prediction runs the float32 module itself, no bf16 copy
    np.testing.assert_array_equal(clf.predict_proba(toy[0]), clf.set_params(precision="fp32").predict_proba(toy[0]))


def test_auto_is_bf16_on_a_cpu_with_fast_bf16(tiny_bert, toy, fast_bf16):
    assert resolve_precision("auto", "cpu") == torch.bfloat16
    assert tiny_classifier(tiny_bert, max_epochs=1).fit(*toy).precision_ == "bf16"


def test_forced_precisions_ignore_the_hardware(no_fast_bf16):
    assert resolve_precision("bf16", "cpu") == torch.bfloat16
    assert resolve_precision("fp32", "cpu") == torch.float32


@pytest.mark.filterwarnings("ignore:.*no pretrained language model")
def test_ulmfit_auto_stays_fp32_on_any_cpu(toy, fast_bf16):
    clf = ulmfit_factory({}, max_epochs=1, threshold=0.5, validation_fraction=None, device="cpu")
    assert clf.fit(*toy).precision_ == "fp32"


@pytest.mark.filterwarnings("ignore:.*no pretrained language model")
def test_ulmfit_trains_and_predicts_in_bf16(toy):
    params = dict(max_epochs=1, threshold=0.5, validation_fraction=None, device="cpu", precision="bf16")
    clf = ulmfit_factory({}, **params).fit(*toy)
    proba = clf.predict_proba(toy[0])
    assert clf.precision_ == "bf16" and np.isfinite(proba).all()
    np.testing.assert_allclose(proba, clf.set_params(precision="fp32").predict_proba(toy[0]), atol=0.05)


@pytest.mark.parametrize("value", ["avx512f avx512_vnni avx2", ""])
def test_cpu_without_the_flags_has_no_fast_bf16(monkeypatch, tmp_path, value):
    for query in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, query, raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {value}\n\n")
    monkeypatch.setattr(precision, "_CPUINFO", cpuinfo)
    cpu_has_fast_bf16.cache_clear()
    try:
        assert cpu_has_fast_bf16() is False
        cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
        cpu_has_fast_bf16.cache_clear()
        assert cpu_has_fast_bf16() is True
    finally:
        cpu_has_fast_bf16.cache_clear()


@pytest.fixture(scope="module")
def bf16_fitted(tiny_bert, toy):
    return tiny_classifier(tiny_bert, precision="bf16").fit(*toy)


def test_bf16_training_keeps_float32_weights_and_learns_like_fp32(bf16_fitted, tiny_bert, toy):
    assert bf16_fitted.precision_ == "bf16"
    assert {p.dtype for p in bf16_fitted.module_.parameters()} == {torch.float32}
    assert all(np.isfinite(row["train_loss"]) for row in bf16_fitted.history_)
    fp32 = tiny_classifier(tiny_bert, precision="fp32").fit(*toy)
    np.testing.assert_allclose(bf16_fitted.history_[-1]["train_loss"], fp32.history_[-1]["train_loss"], rtol=0.05)


def test_bf16_prediction_is_close_to_fp32(bf16_fitted, toy):
    bf16 = bf16_fitted.predict_proba(toy[0])
    fp32 = bf16_fitted.set_params(precision="fp32").predict_proba(toy[0])
    bf16_fitted.set_params(precision="bf16")
    assert bf16.dtype == fp32.dtype == np.float32
    assert 0 < np.abs(bf16 - fp32).max() < 0.02  # really computed in bf16, and close
    assert {p.dtype for p in bf16_fitted.module_.parameters()} == {torch.float32}


def test_pickle_after_bf16_prediction_round_trips(bf16_fitted, toy):
    expected = bf16_fitted.predict_proba(toy[0])
    restored = pickle.loads(pickle.dumps(bf16_fitted))
    assert "_bf16_module" not in vars(restored)
    np.testing.assert_array_equal(restored.predict_proba(toy[0]), expected)


def test_model_folder_keeps_the_precision(bf16_fitted, toy, tmp_path):
    loaded = load_model(bf16_fitted.save(tmp_path / "model"))
    assert loaded.precision == "bf16" and loaded.precision_ == "bf16"
    np.testing.assert_array_equal(loaded.predict_proba(toy[0]), bf16_fitted.predict_proba(toy[0]))
