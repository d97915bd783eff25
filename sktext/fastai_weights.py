"""fastai's AWD-LSTM weights and vocabulary transfer, for the ULMFiT language model.

- :func:`read_fastai_weights`: fastai's ``.pth`` state dict, its key names mapped to
  sktext's (:func:`fastai_state_dict_to_sktext`), and its ``.pkl`` token list, read
  with an unpickler that rebuilds nothing but lists and strings
  (:func:`read_token_list`); ``sktext.language_model.load_fastai_weights`` wraps them
  into a ``LanguageModel``.
- :func:`transfer_to_vocabulary`: a language model copied onto a new vocabulary
  (known words keep their rows, new ones start at the mean).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .models.awd_lstm import LANGUAGE_MODEL_DROPOUTS, AWDLSTMConfig, AWDLSTMLanguageModel
from .text import Vocabulary

__all__ = [
    "fastai_state_dict_to_sktext",
    "load_untied_state",
    "read_fastai_weights",
    "read_token_list",
    "transfer_to_vocabulary",
]

# The decoder shares the embedding matrix; fastai's files hold it twice, sktext once.
TIED_KEY = "decoder.projection.weight"


def load_untied_state(model: AWDLSTMLanguageModel, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``, the decoder's tied weight being the embedding's."""
    state = {name: tensor for name, tensor in state.items() if name != TIED_KEY}
    result = model.load_state_dict(state, strict=False)
    missing = [name for name in result.missing_keys if name != TIED_KEY]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"The weights in {source} do not fit the configured AWD-LSTM: missing "
            f"{missing[:5]}, unexpected {list(result.unexpected_keys)[:5]}."
        )


class _TokenListUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds plain Python containers and strings."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_token_list(vocab: str | os.PathLike | Sequence[str]) -> list[str]:
    if isinstance(vocab, (str, os.PathLike)):
        path = Path(vocab)
        if not path.is_file():
            raise ValueError(f"The fastai vocabulary file {str(path)!r} does not exist.")
        with path.open("rb") as file:
            try:
                tokens = _TokenListUnpickler(file).load()
            except pickle.UnpicklingError as error:
                raise ValueError(
                    f"{path} is not a plain pickled list of tokens ({error}). fastai's "
                    "itos_wt103.pkl is one; if yours holds a fastai object, re-save it as "
                    "pickle.dump(list(vocab), file) where fastai is installed."
                ) from error
    else:
        tokens = vocab
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(token, str) for token in tokens):
        raise ValueError(
            f"The fastai vocabulary must be a list of token strings (index = id); got {type(tokens).__name__}."
        )
    # fastai pads its vocabulary to a multiple of 8 with repeated "xxfake" tokens;
    # give repeats unique names our tokenizer never produces ("xxfake#60001").
    seen: set[str] = set()
    unique = []
    for index, token in enumerate(tokens):
        unique.append(token if token not in seen else f"{token}#{index}")
        seen.add(token)
    return unique


def fastai_state_dict_to_sktext(
    state: Mapping[str, torch.Tensor],
) -> tuple[AWDLSTMConfig, dict[str, torch.Tensor]]:
    """Convert a fastai AWD-LSTM language-model state dict to sktext's names.

    Parameters
    ----------
    state : mapping of str to Tensor
        Keys ``0.encoder.weight``, ``0.rnns.{i}.weight_hh_l0_raw``,
        ``0.rnns.{i}.module.{weight_ih_l0, bias_ih_l0, bias_hh_l0}``,
        ``1.decoder.bias`` (and the duplicates ``0.encoder_dp.emb.weight``,
        ``1.decoder.weight``, ``0.rnns.{i}.module.weight_hh_l0``, which are
        checked or ignored).

    Returns
    -------
    config : AWDLSTMConfig
        ``vocab_size``, ``embedding_dim``, ``hidden_dim`` and ``n_layers`` inferred
        from the shapes, with fastai's language-model dropouts.
    state_dict : dict
        Loadable into ``AWDLSTMLanguageModel(config)``.
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"Expected a fastai state dict (a mapping of names to tensors); got {type(state).__name__}.")
    if "0.encoder.weight" not in state or "1.decoder.bias" not in state:
        hint = ""
        if any(key.startswith("0.module.") for key in state):
            hint = " The keys look like a fastai classifier; pass the language model's weights."
        raise ValueError(
            "Not a fastai AWD-LSTM language model state dict: it needs '0.encoder.weight' and "
            f"'1.decoder.bias'; its first keys are {list(state)[:5]}.{hint}"
        )
    embedding = state["0.encoder.weight"]
    vocab_size, embedding_dim = embedding.shape
    n_layers = 0
    while f"0.rnns.{n_layers}.weight_hh_l0_raw" in state:
        n_layers += 1
    if n_layers == 0:
        raise ValueError(
            "The fastai state dict has no '0.rnns.0.weight_hh_l0_raw': it is not an AWD-LSTM "
            "with weight dropout (QRNN models are not supported)."
        )
    hidden_dim = state["0.rnns.0.weight_hh_l0_raw"].shape[1] if n_layers > 1 else embedding_dim
    converted = {"encoder.embedding.weight": embedding, "decoder.projection.bias": state["1.decoder.bias"]}
    missing = []
    for layer in range(n_layers):
        source, target = f"0.rnns.{layer}.", f"encoder.rnns.{layer}."
        for name in ("weight_hh_l0_raw", "module.weight_ih_l0", "module.bias_ih_l0", "module.bias_hh_l0"):
            if source + name in state:
                converted[target + name] = state[source + name]
            else:
                missing.append(source + name)
    if missing:
        raise ValueError(f"The fastai state dict lacks {missing}; the file may be truncated.")
    last_hidden = converted[f"encoder.rnns.{n_layers - 1}.weight_hh_l0_raw"].shape[1]
    if last_hidden != embedding_dim:
        raise ValueError(
            f"The last LSTM outputs {last_hidden} features but the embedding has {embedding_dim}; "
            "only tied AWD-LSTM language models can be loaded."
        )
    decoder = state.get("1.decoder.weight")
    if decoder is not None and (decoder.shape != embedding.shape or not torch.equal(decoder, embedding)):
        warnings.warn(
            "The fastai decoder weight differs from the embedding; sktext ties them and keeps the embedding.",
            UserWarning,
            stacklevel=2,
        )
    config = AWDLSTMConfig(vocab_size, embedding_dim, hidden_dim, n_layers)
    return config, converted


def read_fastai_weights(
    weights_path: str | os.PathLike,
    vocab_path: str | os.PathLike | Sequence[str],
    *,
    lm_drop_mult: float = 1.0,
    weights_only: bool = True,
) -> tuple[AWDLSTMLanguageModel, Vocabulary]:
    """Read fastai's pretrained AWD-LSTM language model (e.g. WikiText-103).

    The reading behind :func:`sktext.language_model.load_fastai_weights`, whose
    docstring describes the parameters; it returns the parts of a ``LanguageModel``.

    Returns
    -------
    model : AWDLSTMLanguageModel
    vocabulary : Vocabulary
    """
    path = Path(weights_path)
    if not path.is_file():
        raise ValueError(f"The fastai weights file {str(path)!r} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"torch.load(weights_only=True) refused {path}: it holds more than tensors ({error}). "
            "If you trust the file, pass weights_only=False."
        ) from error
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    config, converted = fastai_state_dict_to_sktext(state)
    tokens = read_token_list(vocab_path)
    if len(tokens) != config.vocab_size:
        raise ValueError(
            f"The vocabulary has {len(tokens)} tokens but the weights have {config.vocab_size} "
            "embedding rows; pass the token list saved with these weights."
        )
    model = AWDLSTMLanguageModel(config.with_dropouts(LANGUAGE_MODEL_DROPOUTS, lm_drop_mult))
    load_untied_state(model, converted, source=str(path))
    return model, Vocabulary(tokens)


def transfer_to_vocabulary(source, vocabulary: Vocabulary, lm_drop_mult: float = 1.0) -> AWDLSTMLanguageModel:
    """Copy a language model onto a new vocabulary.

    Tokens known to ``source`` keep their embedding row and decoder bias; new
    tokens start at the mean embedding and the mean decoder bias. The LSTM
    weights are copied unchanged.

    Parameters
    ----------
    source : LanguageModel
        What to copy: its ``model`` and ``vocabulary`` are read.
    vocabulary : Vocabulary
    lm_drop_mult : float, default=1.0
        Multiplies fastai's language-model dropouts for the new model.

    Returns
    -------
    AWDLSTMLanguageModel
        On the CPU.
    """
    config = dataclasses.replace(source.model.config, vocab_size=len(vocabulary))
    model = AWDLSTMLanguageModel(config.with_dropouts(LANGUAGE_MODEL_DROPOUTS, lm_drop_mult))
    state = {name: tensor.detach().cpu() for name, tensor in source.model.state_dict().items()}
    old_embedding, old_bias = state["encoder.embedding.weight"], state["decoder.projection.bias"]
    old_index = torch.tensor([source.vocabulary.stoi.get(token, -1) for token in vocabulary.itos])
    known = old_index >= 0
    embedding = old_embedding.mean(dim=0).repeat(len(vocabulary), 1)
    bias = old_bias.mean().repeat(len(vocabulary))
    embedding[known] = old_embedding[old_index[known]]
    bias[known] = old_bias[old_index[known]]
    state["encoder.embedding.weight"], state["decoder.projection.bias"] = embedding, bias
    load_untied_state(model, state, source="the pretrained language model")
    return model
