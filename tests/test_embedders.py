"""TransformerEmbedder and ULMFiTEmbedder: texts to vectors for any scikit-learn model."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktext import TransformerEmbedder, ULMFiTEmbedder
from sktext.language_model import fine_tune_language_model

from conftest import ULMFIT_EMBEDDER_DEFAULTS, factories_of, make_toy_data

ULMFIT = ULMFIT_EMBEDDER_DEFAULTS
# name -> (factory, vector size with the tiny models)
FACTORIES = factories_of("embedder")


@pytest.fixture(scope="module")
def resources(tiny_bert):
    return {"tiny_bert": tiny_bert}


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def make(request, resources):
    factory, dim = FACTORIES[request.param]
    make = lambda **params: factory(resources, **params)  # noqa: E731
    make.dim = dim
    return make


@pytest.fixture(scope="module")
def fitted(make):
    return make().fit(make_toy_data(240, seed=0)[0])


def test_shapes_dtype_and_feature_names(make, fitted):
    texts = make_toy_data(50, seed=7)[0]
    vectors = fitted.transform(texts)
    assert vectors.shape == (50, make.dim) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all() and fitted.n_features_out_ == make.dim
    names = fitted.get_feature_names_out()
    prefix = type(fitted).__name__.lower()
    assert len(names) == make.dim and names[0] == f"{prefix}0" and names[-1] == f"{prefix}{make.dim - 1}"
    assert make().fit_transform(texts).shape == (50, make.dim)


def test_vectors_are_deterministic_and_independent_of_batching(make, fitted):
    texts = make_toy_data(40, seed=7)[0] + ["", "naïve café 東京 🎮", "game " * 600]
    vectors = fitted.transform(texts)
    np.testing.assert_array_equal(fitted.transform(texts), vectors)
    np.testing.assert_allclose(fitted.transform(texts[::-1])[::-1], vectors, atol=1e-5)
    alone = np.vstack([fitted.transform([text]) for text in texts[:5]])
    np.testing.assert_allclose(alone, vectors[:5], atol=1e-5)
    X = make_toy_data(240, seed=0)[0]
    np.testing.assert_array_equal(make().fit(X).transform(texts), vectors)  # fitting again, same vectors


@pytest.mark.parametrize("wrapper", [OneVsRestClassifier, MultiOutputClassifier])
def test_pipeline_with_logistic_regression_learns_the_toy_task(make, wrapper):
    X, Y = make_toy_data(240, seed=0)
    # ULMFiT's vectors are small (a tiny LM); standardising them is what its own head's
    # BatchNorm does, and what a linear model on them needs.
    pipeline = make_pipeline(make(), StandardScaler(), wrapper(LogisticRegression(max_iter=2000)))
    pipeline.fit(X, Y)
    Xh, Yh = make_toy_data(120, seed=7)
    assert f1_score(Yh, pipeline.predict(Xh), average="micro") > 0.85


def test_pickle_and_clone(make, fitted):
    texts = make_toy_data(20, seed=7)[0]
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(texts), fitted.transform(texts))
    assert not restored.module_.training
    copy = clone(fitted)
    assert not hasattr(copy, "module_") and copy.get_params() == fitted.get_params()


def test_clear_errors(make, fitted):
    with pytest.raises(NotFittedError):
        make().transform(["a text"])
    with pytest.raises(NotFittedError):
        make().get_feature_names_out()
    with pytest.raises(ValueError, match="single str.*Wrap it in a list"):
        fitted.transform("one text")
    with pytest.raises(ValueError, match="only str.*index 1.*fillna"):
        fitted.transform(["a", None])
    with pytest.raises(ValueError, match="only str"):
        make().fit(["a", 3])
    with pytest.raises(ValueError, match="'batch_size' parameter of .* must be an int >= 1"):
        make(batch_size=0).fit(["a text"])


def test_transformer_embedder_specifics(resources):
    X = make_toy_data(30, seed=0)[0]
    mean = TransformerEmbedder(resources["tiny_bert"]).fit(X)
    cls = TransformerEmbedder(resources["tiny_bert"], pooling="cls").fit(X)
    assert not np.allclose(mean.transform(X), cls.transform(X))
    truncated = TransformerEmbedder(resources["tiny_bert"], max_length=4).fit(X)
    assert truncated._encode(["game " * 50]).lengths.tolist() == [4]
    with pytest.raises(ValueError, match="'pooling' parameter of TransformerEmbedder must be one of {'mean', 'cls'}"):
        TransformerEmbedder(resources["tiny_bert"], pooling="max").fit(X)


def test_ulmfit_embedder_uses_a_given_language_model_as_it_is():
    corpus = make_toy_data(200, seed=11)[0]
    language_model = fine_tune_language_model(
        corpus, preset="tiny", lm_epochs=1, batch_size=8, bptt=16, min_freq=1, random_state=0, device="cpu"
    )
    X = make_toy_data(30, seed=0)[0]
    embedder = ULMFiTEmbedder(language_model, lm_epochs=0, device="cpu").fit(X)
    assert embedder.vocabulary_ == language_model.vocabulary and embedder.language_model_history_ == []
    state = embedder.module_.encoder.state_dict()
    source = language_model.encoder_state_dict()
    assert all(torch.equal(state[name], tensor) for name, tensor in source.items())
    # Fine-tuning it on X (one frozen epoch for new words, one with all layers) changes the vectors.
    tuned = ULMFiTEmbedder(language_model, lm_epochs=1, min_freq=1, bptt=16, device="cpu", random_state=0).fit(X)
    assert len(tuned.language_model_history_) == 2 and tuned.n_language_model_texts_ == 30
    assert not np.allclose(tuned.transform(X), embedder.transform(X))


def test_ulmfit_embedder_needs_a_language_model():
    with pytest.raises(ValueError, match="needs a language model.*lm_epochs >= 1"):
        ULMFiTEmbedder(lm_epochs=0).fit(["a text"])
    with pytest.raises(ValueError, match="leave preset=None"):
        ULMFiTEmbedder("some-folder", preset="tiny").fit(["a text"])


def test_model_folder_round_trip(make, fitted, tmp_path):
    from sktext import load_model

    texts = make_toy_data(20, seed=7)[0]
    folder = fitted.save(tmp_path / "embedder")
    for loaded in (type(fitted).load(folder), load_model(folder)):
        saved, params = loaded.get_params(), fitted.get_params()
        # A local model path is kept as its last part: the author's absolute path is not shared.
        if "model_name_or_path" in params:
            assert saved.pop("model_name_or_path") == Path(params.pop("model_name_or_path")).name
        assert type(loaded) is type(fitted) and saved == params
        assert loaded.n_features_out_ == fitted.n_features_out_ and not loaded.module_.training
        np.testing.assert_allclose(loaded.transform(texts), fitted.transform(texts), rtol=1e-5, atol=1e-6)
        assert list(loaded.get_feature_names_out()) == list(fitted.get_feature_names_out())
