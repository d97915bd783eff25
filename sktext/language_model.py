"""The ULMFiT language-model stage: train or fine-tune an AWD-LSTM on raw texts.

* :class:`LanguageModel` holds a vocabulary and a trained
  :class:`~sktext.models.awd_lstm.AWDLSTMLanguageModel`; it saves to and loads
  from a folder and generates text.
* :func:`fine_tune_language_model` builds the vocabulary from texts, starts from
  pretrained weights when given (sktext folder, :class:`LanguageModel`, or
  fastai's WikiText-103 files), and trains with one-cycle schedules, AR/TAR
  regularisation and gradient clipping — fastai's ULMFiT recipe on a skorch
  ``NeuralNet``.
* :func:`load_fastai_weights` reads fastai's ``.pth`` state dict and ``.pkl``
  token list.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skorch import NeuralNet
from skorch.utils import to_tensor
from torch import nn

from .callbacks import FiniteLossGuard, one_cycle
from .models.awd_lstm import (
    LANGUAGE_MODEL_DROPOUTS,
    AWDLSTMLanguageModel,
    Hidden,
    LanguageModelOutput,
    detach_hidden,
    resolve_architecture,
    scaled_dropouts,
    set_trainable_groups,
)
from .reliability import InterruptPropagatingNetMixin
from .text import PAD_ID, UNKNOWN_ID, Vocabulary, tokenize
from .validation import (
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    check_parameter,
    check_texts,
    resolve_device,
    seed_from,
    seeded,
)

__all__ = [
    "LanguageModel",
    "LanguageModelBatches",
    "LanguageModelNet",
    "transfer_to_vocabulary",
    "train_on_tokens",
    "resolve_language_model",
    "fine_tune_language_model",
    "load_fastai_weights",
    "fastai_state_dict_to_sktext",
]

FORMAT_NAME = "sktext.language_model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocab.json"
SAFETENSORS_FILE = "model.safetensors"
TORCH_FILE = "model.pt"
WARMUP_FRACTION = 0.25
# The decoder shares the embedding matrix; it is stored once, under the embedding.
_TIED_KEY = "decoder.projection.weight"


def _dropouts_of(model: AWDLSTMLanguageModel) -> dict[str, float]:
    encoder = model.encoder
    return {
        "output_dropout": model.decoder.output_dropout.dropout,
        "hidden_dropout": encoder.hidden_dropouts[0].dropout if len(encoder.hidden_dropouts) else 0.0,
        "input_dropout": encoder.input_dropout.dropout,
        "embedding_dropout": encoder.embedding.dropout,
        "weight_dropout": encoder.rnns[0].dropout,
    }


def _architecture_of(model: AWDLSTMLanguageModel) -> dict[str, int]:
    encoder = model.encoder
    return {
        "vocab_size": encoder.vocab_size,
        "embedding_dim": encoder.embedding_dim,
        "hidden_dim": encoder.hidden_dim,
        "n_layers": encoder.n_layers,
        "pad_id": encoder.pad_id,
    }


class LanguageModel:
    """A vocabulary and a trained AWD-LSTM language model.

    Parameters
    ----------
    model : AWDLSTMLanguageModel
    vocabulary : Vocabulary
        Must have ``model``'s vocabulary size.
    history : list of dict, optional
        Per-epoch training records (``train_loss``, ``train_cross_entropy``, ``dur``).

    Attributes
    ----------
    model : AWDLSTMLanguageModel
    vocabulary : Vocabulary
    history : list of dict
    config : dict
        Architecture sizes and dropouts (what ``config.json`` stores).

    Examples
    --------
    >>> from sktext.language_model import fine_tune_language_model
    >>> texts = ["the cat sat on the mat"] * 40
    >>> language_model = fine_tune_language_model(
    ...     texts, preset="tiny", epochs=1, batch_size=4, bptt=8, min_freq=1, random_state=0)
    >>> len(language_model.generate("the cat", n_words=5, random_state=0).split())
    5
    """

    def __init__(
        self,
        model: AWDLSTMLanguageModel,
        vocabulary: Vocabulary,
        *,
        history: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        if not isinstance(model, AWDLSTMLanguageModel):
            raise ValueError(f"model must be an AWDLSTMLanguageModel; got {type(model).__name__}.")
        if not isinstance(vocabulary, Vocabulary):
            raise ValueError(f"vocabulary must be a sktext Vocabulary; got {type(vocabulary).__name__}.")
        if len(vocabulary) != model.encoder.vocab_size:
            raise ValueError(
                f"The vocabulary has {len(vocabulary)} tokens but the model's embedding has "
                f"{model.encoder.vocab_size} rows; they must match."
            )
        self.model = model
        self.vocabulary = vocabulary
        self.history = [dict(record) for record in (history or [])]

    @property
    def config(self) -> dict[str, Any]:
        """Architecture sizes and dropout probabilities of the model."""
        return {**_architecture_of(self.model), "dropouts": _dropouts_of(self.model)}

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return self.model.encoder.embedding.weight.device

    def to(self, device: str | torch.device) -> LanguageModel:
        """Move the model to ``device`` ('auto' picks CUDA when available); returns self."""
        self.model.to(resolve_device(device))
        return self

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict of the encoder, loadable into ``AWDLSTMClassifier.encoder``."""
        return self.model.encoder.state_dict()

    def __repr__(self) -> str:
        sizes = _architecture_of(self.model)
        return (
            f"LanguageModel(vocab_size={sizes['vocab_size']}, embedding_dim={sizes['embedding_dim']}, "
            f"hidden_dim={sizes['hidden_dim']}, n_layers={sizes['n_layers']})"
        )

    # ----------------------------------------------------------------- saving
    def save(self, path: str | os.PathLike) -> Path:
        """Write the language model to a folder.

        The folder gets ``config.json`` (architecture, dropouts, history),
        ``vocab.json`` (the token list) and the weights: ``model.safetensors``
        when the ``safetensors`` package is installed, else ``model.pt`` (a
        plain state dict, loaded back with ``weights_only=True``).

        Parameters
        ----------
        path : str or path-like
            Folder to create or overwrite files in.

        Returns
        -------
        pathlib.Path
            The folder.
        """
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"LanguageModel.save needs a folder path; {str(folder)!r} is a file.")
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            name: tensor.detach().cpu().contiguous()
            for name, tensor in self.model.state_dict().items()
            if name != _TIED_KEY
        }
        try:
            from safetensors.torch import save_file
        except ImportError:
            weights_file = TORCH_FILE
            torch.save(state, folder / weights_file)
        else:
            weights_file = SAFETENSORS_FILE
            save_file(state, str(folder / weights_file), metadata={"format": FORMAT_NAME})
        config = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "architecture": "awd_lstm",
            **self.config,
            "weights": weights_file,
            "history": self.history,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=float))
        (folder / VOCABULARY_FILE).write_text(json.dumps(self.vocabulary.to_dict()))
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> LanguageModel:
        """Load a language model written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The folder.
        device : str or torch.device, default="cpu"
            Where to put the model; 'auto' picks CUDA when available.

        Returns
        -------
        LanguageModel
        """
        folder = Path(path)
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise ValueError(
                f"{str(folder)!r} is not a saved sktext language model: it has no {CONFIG_FILE}. "
                "Pass the folder given to LanguageModel.save, or use load_fastai_weights for "
                "fastai .pth/.pkl files."
            )
        config = json.loads(config_path.read_text())
        if config.get("format") != FORMAT_NAME:
            raise ValueError(
                f"{config_path} is not an sktext language model config (format "
                f"{config.get('format')!r}, expected {FORMAT_NAME!r})."
            )
        if config.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{folder} was saved by a newer sktext (format version {config['format_version']}, "
                f"this one reads up to {FORMAT_VERSION}); upgrade sktext."
            )
        vocabulary = Vocabulary.from_dict(json.loads((folder / VOCABULARY_FILE).read_text()))
        sizes = {key: config[key] for key in ("embedding_dim", "hidden_dim", "n_layers", "pad_id")}
        model = AWDLSTMLanguageModel(config["vocab_size"], **sizes, **config["dropouts"])
        state = _read_weights(folder / config["weights"])
        _load_untied_state(model, state, source=str(folder))
        return cls(model.to(resolve_device(device)), vocabulary, history=config.get("history"))

    # -------------------------------------------------------------- generation
    def generate(
        self,
        prompt: str,
        n_words: int = 40,
        *,
        temperature: float = 1.0,
        random_state: Any = None,
    ) -> str:
        """Continue ``prompt`` by sampling ``n_words`` tokens.

        Parameters
        ----------
        prompt : str
            Raw text to start from (tokenized with the sktext rules; may be empty).
        n_words : int, default=40
            Number of tokens to generate.
        temperature : float, default=1.0
            Softmax temperature; 0 picks the most likely token every time.
        random_state : int, numpy RandomState/Generator or None, default=None
            Seed for reproducible sampling.

        Returns
        -------
        str
            The ``n_words`` generated tokens (not the prompt) joined by spaces;
            ``xxunk`` and ``xxpad`` are never sampled. Use
            :func:`sktext.text.detokenize` on ``result.split()`` for display text.
        """
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string; got {type(prompt).__name__}.")
        check_parameter("LanguageModel.generate", "n_words", n_words, [NON_NEGATIVE_INT])
        check_parameter("LanguageModel.generate", "temperature", temperature, [NON_NEGATIVE_FLOAT])
        generator = torch.Generator().manual_seed(seed_from(random_state))
        model, device = self.model, self.device
        ids = torch.from_numpy(self.vocabulary.encode([prompt])[0]).to(device)
        banned = torch.tensor([UNKNOWN_ID, PAD_ID], device=device)
        was_training = model.training
        model.eval()
        generated: list[int] = []
        try:
            with torch.no_grad():
                output = model(ids.unsqueeze(0))
                for _ in range(n_words):
                    logits = output.logits[0, -1].float()
                    logits[banned] = float("-inf")
                    if temperature == 0:
                        token = int(logits.argmax())
                    else:
                        probabilities = torch.softmax(logits / temperature, dim=0).cpu()
                        token = int(torch.multinomial(probabilities, 1, generator=generator))
                    generated.append(token)
                    output = model(torch.tensor([[token]], device=device), output.hidden)
        finally:
            model.train(was_training)
        return self.vocabulary.decode(generated)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(f"The weights file {str(path)!r} named in {CONFIG_FILE} is missing.")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as error:
            raise ValueError(
                f"{path} is a safetensors file but the safetensors package is not installed; pip install safetensors."
            ) from error
        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_untied_state(model: AWDLSTMLanguageModel, state: Mapping[str, torch.Tensor], source: str) -> None:
    state = {name: tensor for name, tensor in state.items() if name != _TIED_KEY}
    result = model.load_state_dict(state, strict=False)
    missing = [name for name in result.missing_keys if name != _TIED_KEY]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"The weights in {source} do not fit the configured AWD-LSTM: missing "
            f"{missing[:5]}, unexpected {list(result.unexpected_keys)[:5]}."
        )


# ------------------------------------------------------------ fastai weights
class _TokenListUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds plain Python containers and strings."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_token_list(vocab: str | os.PathLike | Sequence[str]) -> list[str]:
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
) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
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
    sizes : dict
        ``vocab_size``, ``embedding_dim``, ``hidden_dim``, ``n_layers``
        inferred from the shapes.
    state_dict : dict
        Loadable into ``AWDLSTMLanguageModel`` with those sizes.
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
    sizes = {
        "vocab_size": vocab_size,
        "embedding_dim": embedding_dim,
        "hidden_dim": hidden_dim,
        "n_layers": n_layers,
    }
    return sizes, converted


def load_fastai_weights(
    weights_path: str | os.PathLike,
    vocab_path: str | os.PathLike | Sequence[str],
    *,
    drop_mult: float = 1.0,
    weights_only: bool = True,
) -> LanguageModel:
    """Load fastai's pretrained AWD-LSTM language model (e.g. WikiText-103).

    Parameters
    ----------
    weights_path : str or path-like
        fastai's ``.pth`` file: a state dict, possibly wrapped as ``{'model': ...}``.
    vocab_path : str, path-like or sequence of str
        fastai's ``.pkl`` token list (index = id), or the list itself. It is
        read with an unpickler that refuses any object but lists and strings.
    drop_mult : float, default=1.0
        Multiplies fastai's language-model dropouts for the returned model.
    weights_only : bool, default=True
        Passed to ``torch.load``; set False only for a file you trust that
        torch refuses to read safely (e.g. one with optimizer state objects).

    Returns
    -------
    LanguageModel
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
    sizes, converted = fastai_state_dict_to_sktext(state)
    tokens = _read_token_list(vocab_path)
    if len(tokens) != sizes["vocab_size"]:
        raise ValueError(
            f"The vocabulary has {len(tokens)} tokens but the weights have {sizes['vocab_size']} "
            "embedding rows; pass the token list saved with these weights."
        )
    vocabulary = Vocabulary(tokens)
    model = AWDLSTMLanguageModel(
        sizes["vocab_size"],
        sizes["embedding_dim"],
        sizes["hidden_dim"],
        sizes["n_layers"],
        **scaled_dropouts(LANGUAGE_MODEL_DROPOUTS, drop_mult),
    )
    _load_untied_state(model, converted, source=str(path))
    return LanguageModel(model, vocabulary)


def resolve_language_model(pretrained: Any) -> LanguageModel | None:
    """Turn what ``pretrained=`` accepts into a :class:`LanguageModel` (or None).

    Parameters
    ----------
    pretrained : None, LanguageModel, str/path or (str, str)
        A language model, a folder written by :meth:`LanguageModel.save`, or a
        ``(weights.pth, vocab.pkl)`` pair of fastai files.

    Returns
    -------
    LanguageModel or None
    """
    if pretrained is None or isinstance(pretrained, LanguageModel):
        return pretrained
    if isinstance(pretrained, (str, os.PathLike)):
        path = Path(pretrained)
        if path.is_dir():
            return LanguageModel.load(path)
        raise ValueError(
            f"pretrained={str(path)!r} is not a folder saved by LanguageModel.save. For fastai "
            "files pass the pair (weights.pth, vocab.pkl)."
        )
    if isinstance(pretrained, (tuple, list)) and len(pretrained) == 2:
        return load_fastai_weights(*pretrained)
    raise ValueError(
        "pretrained must be None, a LanguageModel, a folder saved by LanguageModel.save, or a "
        f"(weights.pth, vocab.pkl) pair of fastai files; got {type(pretrained).__name__}."
    )


def transfer_to_vocabulary(
    source: LanguageModel, vocabulary: Vocabulary, drop_mult: float = 1.0
) -> AWDLSTMLanguageModel:
    """Copy a language model onto a new vocabulary.

    Tokens known to ``source`` keep their embedding row and decoder bias; new
    tokens start at the mean embedding and the mean decoder bias. The LSTM
    weights are copied unchanged.

    Parameters
    ----------
    source : LanguageModel
    vocabulary : Vocabulary
    drop_mult : float, default=1.0
        Multiplies fastai's language-model dropouts for the new model.

    Returns
    -------
    AWDLSTMLanguageModel
        On the CPU.
    """
    sizes = _architecture_of(source.model)
    model = AWDLSTMLanguageModel(
        len(vocabulary),
        sizes["embedding_dim"],
        sizes["hidden_dim"],
        sizes["n_layers"],
        sizes["pad_id"],
        **scaled_dropouts(LANGUAGE_MODEL_DROPOUTS, drop_mult),
    )
    state = {name: tensor.detach().cpu() for name, tensor in source.model.state_dict().items()}
    old_embedding, old_bias = state["encoder.embedding.weight"], state["decoder.projection.bias"]
    old_index = torch.tensor([source.vocabulary.stoi.get(token, -1) for token in vocabulary.itos])
    known = old_index >= 0
    embedding = old_embedding.mean(dim=0).repeat(len(vocabulary), 1)
    bias = old_bias.mean().repeat(len(vocabulary))
    embedding[known] = old_embedding[old_index[known]]
    bias[known] = old_bias[old_index[known]]
    state["encoder.embedding.weight"], state["decoder.projection.bias"] = embedding, bias
    _load_untied_state(model, state, source="the pretrained language model")
    return model


# ------------------------------------------------------------------ training
class LanguageModelBatches(torch.utils.data.IterableDataset):
    """Token streams cut into BPTT windows, one pass per iteration.

    Each pass shuffles the texts, concatenates them, splits the result into
    ``batch_size`` parallel streams, and yields ``(inputs, targets)`` windows in
    order, so the LSTM state carries from one batch to the next. Window lengths
    jitter as in fastai v1: ``bptt`` with probability 0.95 else ``bptt / 2``,
    then a normal draw with standard deviation 5, at least 5 tokens.

    Parameters
    ----------
    documents : list of ndarray of int64
        Token ids of each text.
    batch_size : int
    bptt : int
    random_state : int or None
        Seed of the shuffles and window lengths.
    shuffle : bool, default=True
    jitter : bool, default=True
    """

    def __init__(
        self,
        documents: Sequence[np.ndarray],
        batch_size: int,
        bptt: int,
        random_state: int | None = None,
        shuffle: bool = True,
        jitter: bool = True,
    ) -> None:
        super().__init__()
        self.documents = list(documents)
        self.batch_size = batch_size
        self.bptt = bptt
        self.shuffle = shuffle
        self.jitter = jitter
        n_tokens = sum(len(document) for document in self.documents)
        self.stream_length = n_tokens // batch_size
        if self.stream_length < 2:
            raise ValueError(
                f"The texts hold {n_tokens} tokens, too few for batch_size={batch_size} streams "
                f"(each needs at least 2 tokens). Pass more text or a smaller batch_size."
            )
        seeds = np.random.SeedSequence(random_state).spawn(2)
        self._order_generator = np.random.default_rng(seeds[0])
        self._length_generator = np.random.default_rng(seeds[1])
        self._planned: list[list[int]] = []

    def _window_lengths(self) -> list[int]:
        lengths, position, end = [], 0, self.stream_length - 1
        while position < end:
            if self.jitter:
                base = self.bptt if self._length_generator.random() < 0.95 else self.bptt / 2
                length = max(5, int(round(self._length_generator.normal(base, 5))))
            else:
                length = self.bptt
            length = min(length, end - position)
            lengths.append(length)
            position += length
        return lengths

    def plan(self, n_epochs: int) -> int:
        """Draw the window lengths of the next ``n_epochs`` passes; return their batch count."""
        new = [self._window_lengths() for _ in range(n_epochs)]
        self._planned.extend(new)
        return sum(len(lengths) for lengths in new)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        lengths = self._planned.pop(0) if self._planned else self._window_lengths()
        order = (
            self._order_generator.permutation(len(self.documents)) if self.shuffle else np.arange(len(self.documents))
        )
        tokens = np.concatenate([self.documents[index] for index in order])
        streams = tokens[: self.stream_length * self.batch_size].reshape(self.batch_size, -1)
        position = 0
        for length in lengths:
            window = streams[:, position : position + length + 1]
            yield torch.from_numpy(window[:, :-1].copy()), torch.from_numpy(window[:, 1:].copy())
            position += length


class LanguageModelNet(InterruptPropagatingNetMixin, NeuralNet):
    """skorch ``NeuralNet`` for BPTT language-model training with AR/TAR.

    Keeps the LSTM state between consecutive batches of an epoch (detached),
    adds activation regularisation ``alpha * mean(dropped_last ** 2)`` and
    temporal activation regularisation ``beta * mean((raw_t - raw_{t-1}) ** 2)``
    to the training loss, and records the plain cross-entropy of each batch as
    ``train_cross_entropy``. Fed a :class:`LanguageModelBatches`, it iterates it
    directly (the batches are already cut).

    Parameters
    ----------
    *args, **kwargs
        As for ``skorch.NeuralNet``.
    alpha : float, default=2.0
        Activation regularisation weight.
    beta : float, default=1.0
        Temporal activation regularisation weight.
    """

    def __init__(self, *args: Any, alpha: float = 2.0, beta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alpha = alpha
        self.beta = beta

    def get_iterator(self, dataset: Any, training: bool = False) -> Any:
        if isinstance(dataset, LanguageModelBatches):
            return dataset
        return super().get_iterator(dataset, training=training)

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        super().on_epoch_begin(net, **kwargs)
        self.hidden_state_: Hidden | None = None

    def infer(self, x: Any, **fit_params: Any) -> LanguageModelOutput:
        x = to_tensor(x, device=self.device)
        output = self.module_(x, getattr(self, "hidden_state_", None))
        self.hidden_state_ = detach_hidden(output.hidden)
        return output

    def get_loss(self, y_pred: LanguageModelOutput, y_true: Any, X: Any = None, training: bool = False) -> torch.Tensor:
        targets = to_tensor(y_true, device=self.device)
        logits = y_pred.logits
        cross_entropy = self.criterion_(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
        if not training:
            return cross_entropy
        self.history.record_batch("train_cross_entropy", cross_entropy.item())
        loss = cross_entropy
        if self.alpha:
            loss = loss + self.alpha * y_pred.dropped_outputs[-1].float().pow(2).mean()
        raw = y_pred.raw_outputs[-1]
        if self.beta and raw.size(1) > 1:
            loss = loss + self.beta * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
        return loss


def fine_tune_language_model(
    texts: Sequence[str],
    *,
    pretrained: Any = None,
    preset: str | Mapping[str, int] | None = None,
    max_vocab: int = 60000,
    min_freq: int = 3,
    epochs: int = 10,
    lr: float | None = None,
    frozen_epochs: int = 1,
    frozen_lr: float | None = None,
    batch_size: int = 64,
    bptt: int = 70,
    drop_mult: float = 1.0,
    weight_decay: float = 0.01,
    gradient_clip: float | None = 0.25,
    random_state: Any = None,
    device: str | torch.device = "auto",
    verbose: int = 0,
) -> LanguageModel:
    """Train (or fine-tune) an AWD-LSTM language model on raw texts — ULMFiT's stage 2.

    Parameters
    ----------
    texts : sequence of str
        Raw texts (labelled and unlabelled ones alike).
    pretrained : None, LanguageModel, str/path or (str, str), default=None
        Starting weights: a :class:`LanguageModel`, a folder written by
        :meth:`LanguageModel.save`, or a ``(weights.pth, vocab.pkl)`` pair of
        fastai files (see :func:`load_fastai_weights`). None trains from scratch.
    preset : str or dict, default=None
        Architecture when training from scratch (``"paper"``, ``"small"``,
        ``"tiny"`` or a dict of sizes); None means ``"small"``. The pretrained
        model fixes the architecture, so giving both is an error.
    max_vocab : int, default=60000
        Largest vocabulary, special tokens included.
    min_freq : int, default=3
        Tokens seen fewer times in ``texts`` become ``xxunk``.
    epochs : int, default=10
        Epochs with all layers training (one one-cycle schedule).
    lr : float, default=None
        Peak learning rate of those epochs; None means 2e-3 when fine-tuning
        (fastai's IMDb recipe) and 5e-3 from scratch.
    frozen_epochs : int, default=1
        With ``pretrained``: first epochs training only the embedding and
        decoder (the last layer group), so the new words' rows settle before
        the LSTMs move. Ignored from scratch.
    frozen_lr : float, default=None
        Peak learning rate of the frozen epochs; None means ``10 * lr``.
    batch_size : int, default=64
        Number of parallel token streams.
    bptt : int, default=70
        Mean window length of truncated backpropagation through time.
    drop_mult : float, default=1.0
        Multiplies fastai's LM dropouts (output 0.1, hidden 0.15, input 0.25,
        embedding 0.02, weight 0.2).
    weight_decay : float, default=0.01
        Decoupled (AdamW) weight decay.
    gradient_clip : float or None, default=0.25
        Largest gradient norm (the AWD-LSTM paper's value); None disables clipping.
    random_state : int, RandomState, Generator or None, default=None
        Seeds weight initialisation, dropout, shuffling and window lengths
        (inside a forked torch RNG: the global torch seed is left alone).
    device : str or torch.device, default="auto"
        'auto' uses CUDA when available.
    verbose : int, default=0
        1 prints a line per epoch; 2 adds a progress bar.

    Returns
    -------
    LanguageModel
        On ``device``; ``history`` holds per-epoch ``train_loss`` (with AR/TAR),
        ``train_cross_entropy`` and ``dur``.

    Notes
    -----
    Training uses AdamW (betas (0.8, 0.99), eps 1e-5) under torch's
    ``OneCycleLR`` (25% warm-up, cosine, momentum cycled 0.8 → 0.7 → 0.8 through
    Adam's beta1) in skorch's ``LRScheduler`` callback, activation
    regularisation alpha 2 and temporal beta 1, and the LSTM state carried
    across consecutive batches. The vocabulary is built from ``texts`` only;
    with ``pretrained``, words it shares with the pretrained vocabulary keep
    their rows and the others start at the mean embedding and mean decoder bias
    (pretrained words absent from ``texts`` are dropped, as in fastai).
    """
    texts = check_texts(texts, name="texts")
    constraints = {
        "epochs": [NON_NEGATIVE_INT],
        "frozen_epochs": [NON_NEGATIVE_INT],
        "batch_size": [POSITIVE_INT],
        "bptt": [POSITIVE_INT],
        "lr": [POSITIVE_FLOAT, None],
        "frozen_lr": [POSITIVE_FLOAT, None],
        "gradient_clip": [POSITIVE_FLOAT, None],
        "weight_decay": [NON_NEGATIVE_FLOAT],
        "verbose": [NON_NEGATIVE_INT],
        "random_state": ["random_state"],
        "device": ["device"],
    }
    arguments = locals()
    for name, allowed in constraints.items():
        check_parameter("fine_tune_language_model", name, arguments[name], allowed)
    source = resolve_language_model(pretrained)
    if source is not None and preset is not None:
        raise ValueError(
            "preset sets the architecture of a model trained from scratch, but pretrained already "
            "fixes it; leave preset=None when passing pretrained."
        )
    architecture = resolve_architecture("small" if preset is None else preset)
    scaled_dropouts(LANGUAGE_MODEL_DROPOUTS, drop_mult)  # validates drop_mult early
    return train_on_tokens(
        tokenize(texts),
        source=source,
        architecture=architecture,
        max_vocab=max_vocab,
        min_freq=min_freq,
        epochs=epochs,
        lr=lr,
        frozen_epochs=frozen_epochs,
        frozen_lr=frozen_lr,
        batch_size=batch_size,
        bptt=bptt,
        drop_mult=drop_mult,
        weight_decay=weight_decay,
        gradient_clip=gradient_clip,
        seed=seed_from(random_state),
        device=resolve_device(device),
        verbose=verbose,
    )


def train_on_tokens(
    token_lists: list[list[str]],
    *,
    source: LanguageModel | None,
    architecture: Mapping[str, int],
    max_vocab: int,
    min_freq: int,
    epochs: int,
    lr: float | None,
    frozen_epochs: int,
    frozen_lr: float | None,
    batch_size: int,
    bptt: int,
    drop_mult: float,
    weight_decay: float,
    gradient_clip: float | None,
    seed: int,
    device: torch.device,
    verbose: int,
) -> LanguageModel:
    """The body of :func:`fine_tune_language_model`, on tokenized texts and checked arguments.

    For callers that already tokenized the texts (the ULMFiT estimator reuses the
    tokens for its classifier); ``source`` is a resolved :class:`LanguageModel` or
    None, ``architecture`` a dict of sizes (ignored with a source), ``seed`` an int
    and ``device`` a ``torch.device``.
    """
    lr = lr if lr is not None else (2e-3 if source is not None else 5e-3)
    frozen_lr = frozen_lr if frozen_lr is not None else 10 * lr
    vocabulary = Vocabulary.from_tokens(token_lists, max_vocab=max_vocab, min_freq=min_freq)
    batches = LanguageModelBatches(vocabulary.encode_tokens(token_lists), batch_size, bptt, random_state=seed)
    with seeded(seed, device):
        if source is None:
            model = AWDLSTMLanguageModel.from_preset(architecture, len(vocabulary), drop_mult)
        else:
            model = transfer_to_vocabulary(source, vocabulary, drop_mult)
        net = _build_net(model, device, weight_decay, gradient_clip, batch_size, verbose)
        phases = []
        if source is not None and frozen_epochs > 0:
            phases.append((frozen_epochs, frozen_lr, 1))
        if epochs > 0:
            phases.append((epochs, lr, None))
        for index, (n_epochs, peak_lr, n_trainable) in enumerate(phases):
            set_trainable_groups(model, n_trainable)
            total_steps = batches.plan(n_epochs)
            net.set_params(max_epochs=n_epochs, lr=peak_lr, callbacks__lr_scheduler__total_steps=total_steps)
            if index == 0:
                net.fit(batches, None)
            else:
                net.partial_fit(batches, None)
        set_trainable_groups(model, None)
    model.eval()
    history = _epoch_records(net.history) if phases else []
    return LanguageModel(model.to(device), vocabulary, history=history)


def _epoch_records(history: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
    """Plain-number copies of the per-epoch entries worth keeping from a skorch history."""
    records = []
    for entry in history:
        record = {"epoch": int(entry["epoch"])}
        for key in ("train_loss", "train_cross_entropy", "dur"):
            if key in entry:
                record[key] = float(entry[key])
        records.append(record)
    return records


def _build_net(
    model: AWDLSTMLanguageModel,
    device: torch.device,
    weight_decay: float,
    gradient_clip: float | None,
    batch_size: int,
    verbose: int,
) -> Any:
    from skorch.callbacks import GradientNormClipping, LRScheduler, PassthroughScoring, ProgressBar

    callbacks = [
        (
            "lr_scheduler",
            LRScheduler(
                policy=one_cycle,
                step_every="batch",
                total_steps=1,  # set per phase
                warmup_fraction=WARMUP_FRACTION,
                anneal_strategy="cos",
                cycle_momentum=True,
                momentum_range=(0.7, 0.8),
                final_div_factor=1e5,
            ),
        ),
        ("gradient_clipping", GradientNormClipping(gradient_clip_value=gradient_clip)),
        ("train_cross_entropy", PassthroughScoring("train_cross_entropy", on_train=True)),
        ("finite_loss", FiniteLossGuard("lm_lr")),
    ]
    if verbose > 1:
        callbacks.append(("progress_bar", ProgressBar(batches_per_epoch="auto")))
    return LanguageModelNet(
        module=model,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        optimizer__betas=(0.8, 0.99),
        optimizer__eps=1e-5,
        optimizer__weight_decay=weight_decay,
        lr=1e-3,
        batch_size=batch_size,
        train_split=None,
        callbacks=callbacks,
        device=str(device),
        verbose=verbose,
    )
