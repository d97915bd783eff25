"""Shared fixtures: a tiny random BERT with a WordPiece tokenizer trained on the spot, toy data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.utils import estimator_checks

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
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
    )
    fast.save_pretrained(folder)
    config = BertConfig(
        vocab_size=fast.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
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
