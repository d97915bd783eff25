"""Shared fixtures: the registry of estimator factories, a tiny random BERT, toy data.

:data:`ESTIMATOR_FACTORIES` is the one list of how the tests build a small, fast
instance of every sktext estimator; the contract tests (``test_sklearn_contract.py``)
run over all of it, and a new estimator fails ``test_every_estimator_has_a_factory``
until it is added here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from sklearn.utils import estimator_checks

from sktext import (
    TransformerEmbedder,
    TransformerMultiLabelClassifier,
    TransformerRegressor,
    ULMFiTClassifier,
    ULMFiTEmbedder,
    ULMFiTRegressor,
)

# scikit-learn's estimator checks that need no data; every sktext estimator passes them.
DATA_FREE_SKLEARN_CHECKS = [
    estimator_checks.check_no_attributes_set_in_init,
    estimator_checks.check_estimator_cloneable,
    estimator_checks.check_estimator_repr,
    estimator_checks.check_do_not_raise_errors_in_init_or_set_params,
    estimator_checks.check_mixin_order,
]

torch.set_num_threads(1)  # tiny models: one thread is faster, and immune to oversubscription

TOPIC_WORDS = {
    "game": ["game", "play", "strategy", "arcade"],
    "editor": ["editor", "text", "edit", "vim"],
    "audio": ["audio", "music", "sound", "player"],
}
FILLER = "the a tool for with and of fast small free simple library program data".split()


def make_toy_data(n_samples: int = 240, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Texts whose labels are given by which topic words they contain."""
    rng = np.random.default_rng(seed)
    labels = list(TOPIC_WORDS)
    texts, rows = [], []
    for _ in range(n_samples):
        present = rng.random(len(labels)) < 0.4
        words = list(rng.choice(FILLER, rng.integers(3, 9)))
        for label, on in zip(labels, present):
            if on:
                words += list(rng.choice(TOPIC_WORDS[label], 2))
        rng.shuffle(words)
        texts.append(" ".join(words))
        rows.append(present.astype(int))
    return texts, np.array(rows)


def make_many_rare_labels(n_texts: int, n_labels: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Texts of common words and the signature words of a few labels, labels drawn Zipf-like (most are rare)."""
    rng = np.random.default_rng(seed)
    frequency = 1.0 / np.arange(1, n_labels + 1)
    Y = np.zeros((n_texts, n_labels), dtype=np.int64)
    texts = []
    for row in range(n_texts):
        labels = rng.choice(n_labels, size=rng.integers(1, 4), p=frequency / frequency.sum())
        Y[row, labels] = 1
        words = [f"common{i}" for i in rng.integers(0, 300, 20)] + [f"sign{j}word" for j in labels]
        texts.append(" ".join(rng.permutation(words)))
    return texts, Y


def build_tiny_bert(folder) -> str:
    """Save a random 2-layer BERT (hidden size 32) and a freshly trained WordPiece tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertModel, BertTokenizerFast

    corpus, _ = make_toy_data(400, seed=1)
    corpus += ["naïve café 東京 emoji 🎮 résumé", "UPPER case Words and numbers 12345"]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[(t, tokenizer.token_to_id(t)) for t in ("[CLS]", "[SEP]")],
    )
    fast = BertTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    fast.save_pretrained(folder)
    config = BertConfig(
        vocab_size=fast.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def toy_data():
    return make_toy_data()


# -- the estimator factories ------------------------------------------------------------
class Factory(NamedTuple):
    """How to build one estimator: ``build(resources, **params)``, its kind, and ``extra``.

    ``extra`` is, for a classifier or regressor, a learning-rate grid where the larger
    rate learns the toy task in 3 epochs and the smaller does not; for an embedder,
    the size of its vectors with the tiny models.
    """

    build: Callable[..., Any]
    kind: str
    extra: Any


def _transformer_classifier(resources, **params):
    defaults = dict(max_epochs=10, lr=3e-3, batch_size=16, random_state=0)
    return TransformerMultiLabelClassifier(resources["tiny_bert"], **{**defaults, **params})


# The toy data are a few hundred texts of random words, with no pretrained language
# model: the encoder learns from scratch, so ULMFiT trains every layer from the first
# epoch (gradual_unfreezing=False), at one rate (lr_decay=1), with light dropout.
ULMFIT_DEFAULTS = dict(
    preset="tiny",
    lm_epochs=1,
    min_freq=1,
    bptt=16,
    max_epochs=10,
    lr=1e-2,
    lr_decay=1.0,
    gradual_unfreezing=False,
    drop_mult=0.1,
    batch_size=16,
    random_state=0,
)


def ulmfit_factory(resources, **params):
    return ULMFiTClassifier(**{**ULMFIT_DEFAULTS, **params})


def _transformer_regressor(resources, **params):
    defaults = dict(max_epochs=10, lr=3e-3, batch_size=16, random_state=0)
    return TransformerRegressor(resources["tiny_bert"], **{**defaults, **params})


def _ulmfit_regressor(resources, **params):
    return ULMFiTRegressor(**{**ULMFIT_DEFAULTS, **params})


ULMFIT_EMBEDDER_DEFAULTS = dict(
    preset="tiny", lm_epochs=1, min_freq=1, bptt=16, batch_size=16, random_state=0, device="cpu"
)


def _transformer_embedder(resources, **params):
    return TransformerEmbedder(resources["tiny_bert"], **{"batch_size": 16, **params})


def _ulmfit_embedder(resources, **params):
    return ULMFiTEmbedder(**{**ULMFIT_EMBEDDER_DEFAULTS, **params})


# An LSTM trained from scratch on ~70 toy texts does not learn in 3 epochs at 3e-3 (both
# grid points then predict every label), but at 3e-2 it does.
ESTIMATOR_FACTORIES: dict[str, Factory] = {
    "transformer-classifier": Factory(_transformer_classifier, "classifier", {"lr": [1e-4, 3e-3]}),
    "ulmfit-classifier": Factory(ulmfit_factory, "classifier", {"lr": [1e-4, 3e-2]}),
    "transformer-regressor": Factory(_transformer_regressor, "regressor", {"lr": [1e-5, 3e-3]}),
    "ulmfit-regressor": Factory(_ulmfit_regressor, "regressor", {"lr": [1e-5, 3e-2]}),
    "transformer-embedder": Factory(_transformer_embedder, "embedder", 32),
    "ulmfit-embedder": Factory(_ulmfit_embedder, "embedder", 3 * 32),
}


def factories_of(kind: str) -> dict[str, tuple[Callable[..., Any], Any]]:
    """``{family: (build, extra)}`` of the estimators of one kind."""
    return {
        name.split("-")[0]: (factory.build, factory.extra)
        for name, factory in ESTIMATOR_FACTORIES.items()
        if factory.kind == kind
    }


@pytest.fixture(scope="session")
def resources(tiny_bert):
    return {"tiny_bert": tiny_bert}
