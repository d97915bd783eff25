"""AWD-LSTM language model and classifier (Merity et al. 2017; Howard & Ruder 2018).

The network is built from small parts, each a few lines:

* :class:`AWDLSTMConfig` — sizes and dropouts, the one description every module,
  preset, saved folder and fastai import is built from;
* :class:`EmbeddingDropout` — an embedding that drops whole vocabulary rows;
* :class:`LockedDropout` — one dropout mask per sequence, shared over time;
* :class:`WeightDropout` — DropConnect on an LSTM's hidden-to-hidden weights;
* :class:`AWDLSTMEncoder` — embedding + stacked single-layer LSTMs;
* :class:`LanguageModelDecoder` — output dropout + a projection tied to the embedding;
* :class:`ConcatPoolingHead` — [last, max, mean] pooling + two BatchNorm/Dropout/Linear blocks;
* :class:`AWDLSTMLanguageModel` and :class:`AWDLSTMClassifier` — the two assembled models;
* :func:`layer_groups` — parameter groups for discriminative learning rates and
  gradual unfreezing.

Sizes and dropouts follow fastai's defaults, so fastai's WikiText-103 weights load
into :class:`AWDLSTMLanguageModel` (see ``sktext.language_model.load_fastai_weights``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..text import PAD_ID
from ..validation import NON_NEGATIVE_INT, POSITIVE_INT, PROBABILITY, check_parameter
from .freezing import FreezableEncoderMixin

__all__ = [
    "AWDLSTMConfig",
    "PRESETS",
    "LANGUAGE_MODEL_DROPOUTS",
    "CLASSIFIER_DROPOUTS",
    "PAD_ID",
    "resolve_architecture",
    "scaled_dropouts",
    "EmbeddingDropout",
    "LockedDropout",
    "WeightDropout",
    "EncoderOutput",
    "detach_hidden",
    "AWDLSTMEncoder",
    "LanguageModelDecoder",
    "LanguageModelOutput",
    "AWDLSTMLanguageModel",
    "ConcatPoolingHead",
    "AWDLSTMPooledEncoder",
    "AWDLSTMClassifier",
    "layer_groups",
    "layer_group_names",
    "set_trainable_groups",
]


#: Architecture presets. ``"paper"`` is the ULMFiT / fastai AWD-LSTM; the last LSTM
#: always outputs ``embedding_dim`` features so the decoder can tie to the embedding.
PRESETS: dict[str, dict[str, int]] = {
    "paper": {"embedding_dim": 400, "hidden_dim": 1152, "n_layers": 3},
    "small": {"embedding_dim": 200, "hidden_dim": 512, "n_layers": 3},
    "tiny": {"embedding_dim": 32, "hidden_dim": 64, "n_layers": 2},
}

#: fastai's language-model dropouts (before multiplying by ``drop_mult``).
LANGUAGE_MODEL_DROPOUTS: dict[str, float] = {
    "output_dropout": 0.1,
    "hidden_dropout": 0.15,
    "input_dropout": 0.25,
    "embedding_dropout": 0.02,
    "weight_dropout": 0.2,
}

#: fastai's classifier dropouts (before multiplying by ``drop_mult``).
CLASSIFIER_DROPOUTS: dict[str, float] = {
    "output_dropout": 0.4,
    "hidden_dropout": 0.3,
    "input_dropout": 0.4,
    "embedding_dropout": 0.05,
    "weight_dropout": 0.5,
}

_ARCHITECTURE_KEYS = ("embedding_dim", "hidden_dim", "n_layers")

# The message cuDNN gives when LSTM weights are separate tensors; expected here,
# because WeightDropout hands the LSTM a freshly dropped matrix at every call.
_NON_CONTIGUOUS_WEIGHTS = ".*RNN module weights are not part of single contiguous chunk.*"


def resolve_architecture(preset: str | Mapping[str, int]) -> dict[str, int]:
    """Return the architecture sizes of a preset name or a mapping.

    Parameters
    ----------
    preset : str or mapping
        A key of :data:`PRESETS` (``"paper"``, ``"small"``, ``"tiny"``) or a
        mapping with ``embedding_dim``, ``hidden_dim`` and ``n_layers``.

    Returns
    -------
    dict
        ``{"embedding_dim": int, "hidden_dim": int, "n_layers": int}``.
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(
                f"Unknown AWD-LSTM preset {preset!r}; expected one of {sorted(PRESETS)} "
                "or a dict with embedding_dim, hidden_dim and n_layers."
            )
        return dict(PRESETS[preset])
    if isinstance(preset, Mapping):
        missing = [key for key in _ARCHITECTURE_KEYS if key not in preset]
        unknown = [key for key in preset if key not in _ARCHITECTURE_KEYS]
        if missing or unknown:
            raise ValueError(
                f"An AWD-LSTM architecture needs exactly {list(_ARCHITECTURE_KEYS)}; "
                f"got missing {missing} and unknown {unknown}. Example: {PRESETS['small']}."
            )
        sizes = {key: preset[key] for key in _ARCHITECTURE_KEYS}
        for key, value in sizes.items():
            check_parameter("an AWD-LSTM preset", key, value, [POSITIVE_INT])
        return sizes
    raise ValueError(f"preset must be a name from {sorted(PRESETS)} or a dict of sizes; got {type(preset).__name__}.")


def scaled_dropouts(defaults: Mapping[str, float], drop_mult: float) -> dict[str, float]:
    """Multiply every dropout probability by ``drop_mult``, as fastai does.

    Parameters
    ----------
    defaults : mapping
        :data:`LANGUAGE_MODEL_DROPOUTS` or :data:`CLASSIFIER_DROPOUTS`.
    drop_mult : float
        Non-negative factor; results must stay below 1.

    Returns
    -------
    dict
    """
    if isinstance(drop_mult, bool) or not isinstance(drop_mult, (int, float)) or drop_mult < 0:
        raise ValueError(f"drop_mult must be a non-negative number; got {drop_mult!r}.")
    scaled = {name: probability * drop_mult for name, probability in defaults.items()}
    too_large = {name: value for name, value in scaled.items() if value >= 1}
    if too_large:
        raise ValueError(
            f"drop_mult={drop_mult} makes dropout probabilities reach 1 ({too_large}); "
            f"use drop_mult < {1 / max(defaults.values()):.2f}."
        )
    return scaled


@dataclasses.dataclass(frozen=True)
class AWDLSTMConfig:
    """Sizes and dropouts of an AWD-LSTM, in the spirit of a transformers config.

    The language model, the classifier, the embedder's encoder, the presets, saved
    folders and fastai's weights are all described by one of these; the modules take
    it whole (``AWDLSTMLanguageModel(config)``), so no size or dropout is listed twice.
    The default dropouts are fastai's language-model ones (``drop_mult=1``); the
    classifier uses :meth:`with_dropouts` with :data:`CLASSIFIER_DROPOUTS`.

    Parameters
    ----------
    vocab_size : int
    embedding_dim : int, default=400
    hidden_dim : int, default=1152
        Features of every LSTM but the last, which outputs ``embedding_dim``.
    n_layers : int, default=3
    pad_id : int, default=1
    output_dropout : float, default=0.1
        Locked dropout on the last LSTM's output (the language model's decoder input,
        the classifier head's pooled-features dropout).
    hidden_dropout : float, default=0.15
        Locked dropout between LSTM layers.
    input_dropout : float, default=0.25
        Locked dropout on the embedded input.
    embedding_dropout : float, default=0.02
        Probability of dropping a whole vocabulary row.
    weight_dropout : float, default=0.2
        DropConnect on each LSTM's hidden-to-hidden weights.

    Examples
    --------
    >>> config = AWDLSTMConfig.from_preset("tiny", vocab_size=100)
    >>> config.sizes
    {'embedding_dim': 32, 'hidden_dim': 64, 'n_layers': 2}
    >>> AWDLSTMConfig.from_dict(config.to_dict()) == config
    True
    """

    vocab_size: int
    embedding_dim: int = 400
    hidden_dim: int = 1152
    n_layers: int = 3
    pad_id: int = PAD_ID
    output_dropout: float = 0.1
    hidden_dropout: float = 0.15
    input_dropout: float = 0.25
    embedding_dropout: float = 0.02
    weight_dropout: float = 0.2

    _parameter_constraints = {
        "vocab_size": [POSITIVE_INT],
        "embedding_dim": [POSITIVE_INT],
        "hidden_dim": [POSITIVE_INT],
        "n_layers": [POSITIVE_INT],
        "pad_id": [NON_NEGATIVE_INT],
        **{name: [PROBABILITY] for name in LANGUAGE_MODEL_DROPOUTS},
    }

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check_parameter(
                "AWDLSTMConfig", field.name, getattr(self, field.name), self._parameter_constraints[field.name]
            )

    @classmethod
    def from_preset(
        cls,
        preset: str | Mapping[str, int],
        vocab_size: int,
        *,
        dropouts: Mapping[str, float] = LANGUAGE_MODEL_DROPOUTS,
        drop_mult: float = 1.0,
        **overrides: Any,
    ) -> AWDLSTMConfig:
        """The sizes of a preset with ``dropouts`` × ``drop_mult``.

        Parameters
        ----------
        preset : str or mapping
            See :func:`resolve_architecture`.
        vocab_size : int
        dropouts : mapping, default=LANGUAGE_MODEL_DROPOUTS
            :data:`LANGUAGE_MODEL_DROPOUTS` or :data:`CLASSIFIER_DROPOUTS`.
        drop_mult : float, default=1.0
        **overrides
            Any field, e.g. ``pad_id`` or ``weight_dropout``.
        """
        fields = {**resolve_architecture(preset), **scaled_dropouts(dropouts, drop_mult), **overrides}
        return cls(vocab_size, **fields)

    @property
    def sizes(self) -> dict[str, int]:
        """``embedding_dim``, ``hidden_dim`` and ``n_layers`` (a preset's form, ``architecture_``)."""
        return {key: getattr(self, key) for key in _ARCHITECTURE_KEYS}

    @property
    def dropouts(self) -> dict[str, float]:
        """The five dropout probabilities by name."""
        return {name: getattr(self, name) for name in LANGUAGE_MODEL_DROPOUTS}

    def with_dropouts(self, dropouts: Mapping[str, float], drop_mult: float = 1.0) -> AWDLSTMConfig:
        """The same sizes with ``dropouts`` × ``drop_mult`` (see :func:`scaled_dropouts`)."""
        return dataclasses.replace(self, **scaled_dropouts(dropouts, drop_mult))

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AWDLSTMConfig:
        """Invert :meth:`to_dict`; unknown keys are an error."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"An AWDLSTMConfig has no fields {unknown}; it has {sorted(names)}.")
        return cls(**data)


def _check_probability(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a probability in [0, 1); got {value!r}.")
    return float(value)


class EmbeddingDropout(nn.Embedding):
    """Embedding layer that drops whole vocabulary rows during training.

    A dropped word gets a zero vector at every position of the batch; kept rows
    are scaled by ``1 / (1 - dropout)``. The row mask is drawn over the whole
    vocabulary, but only the rows of the tokens in the batch are multiplied, so
    the cost does not grow with the vocabulary.

    Parameters
    ----------
    num_embeddings : int
        Vocabulary size.
    embedding_dim : int
        Size of each embedding vector.
    dropout : float, default=0.0
        Probability of dropping a vocabulary row.
    padding_idx : int or None, default=PAD_ID
        Row that receives no gradient.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        dropout: float = 0.0,
        padding_idx: int | None = PAD_ID,
    ) -> None:
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx)
        self.dropout = _check_probability(dropout, "embedding dropout")

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Embed ``input_ids`` of any shape; returns ``(*input_ids.shape, embedding_dim)``."""
        embedded = super().forward(input_ids)
        if not self.training or self.dropout == 0:
            return embedded
        keep = 1.0 - self.dropout
        row_mask = self.weight.new_empty(self.num_embeddings, 1).bernoulli_(keep) / keep
        return embedded * row_mask[input_ids]


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared over all time steps.

    Parameters
    ----------
    dropout : float, default=0.0
        Probability of zeroing a feature.
    """

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = _check_probability(dropout, "locked dropout")

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Apply the dropout to ``inputs`` of shape ``(batch, time, features)``."""
        if not self.training or self.dropout == 0:
            return inputs
        keep = 1.0 - self.dropout
        mask = inputs.new_empty(inputs.size(0), 1, inputs.size(2)).bernoulli_(keep) / keep
        return inputs * mask

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"


def _keep_weights_separate() -> None:
    """Stand-in for ``nn.LSTM.flatten_parameters`` inside :class:`WeightDropout`.

    Flattening would copy the weights into one cuDNN buffer and turn the
    parameters into views of it; with a hidden-to-hidden matrix that is replaced
    at every call this buys nothing and, on some versions, leaves stale views.
    """


class WeightDropout(nn.Module):
    """DropConnect on the hidden-to-hidden weights of a single-layer LSTM.

    The raw matrix is the trainable parameter ``weight_hh_l0_raw``; at each call
    a dropped copy (or, in eval mode, a view of the raw matrix) is written into
    the wrapped LSTM's ``weight_hh_l0``, which is then a plain tensor, not a
    parameter. The LSTM still runs through ``torch``'s fused kernels (cuDNN on
    GPU): ``nn.LSTM`` picks the new tensor up through its flat weight list, and
    cuDNN copies the separate weights into its buffer at each call, which it
    would do anyway for a matrix that changes every step. The warning cuDNN
    gives about that copy is silenced, and ``flatten_parameters`` is disabled on
    the wrapped LSTM.

    Parameters
    ----------
    lstm : torch.nn.LSTM
        A single-layer, unidirectional LSTM with ``batch_first=True``.
    dropout : float, default=0.0
        Probability of dropping each hidden-to-hidden weight.

    Attributes
    ----------
    module : torch.nn.LSTM
        The wrapped LSTM (its ``weight_ih_l0``, ``bias_ih_l0`` and ``bias_hh_l0``
        stay ordinary parameters).
    weight_hh_l0_raw : torch.nn.Parameter of shape (4 * hidden_size, hidden_size)
    """

    def __init__(self, lstm: nn.LSTM, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(lstm, nn.LSTM) or lstm.num_layers != 1 or lstm.bidirectional:
            raise ValueError(
                "WeightDropout wraps a single-layer, unidirectional nn.LSTM; got "
                f"{lstm!r}. Stack several WeightDropout(nn.LSTM(...)) for more layers."
            )
        if not lstm.batch_first or lstm.proj_size:
            raise ValueError(f"WeightDropout expects nn.LSTM(..., batch_first=True) without projection; got {lstm!r}.")
        self.dropout = _check_probability(dropout, "weight dropout")
        raw_weight = lstm.weight_hh_l0
        del lstm.weight_hh_l0  # no longer a parameter of the LSTM
        self.module = lstm
        self.weight_hh_l0_raw = nn.Parameter(raw_weight.detach().clone())
        # A non-persistent buffer follows .to(device) and stays out of state_dict.
        lstm.register_buffer("weight_hh_l0", self.weight_hh_l0_raw.detach(), persistent=False)
        lstm.flatten_parameters = _keep_weights_separate

    def _hidden_weight(self) -> torch.Tensor:
        raw = self.weight_hh_l0_raw
        if self.training and self.dropout > 0:
            return F.dropout(raw, p=self.dropout, training=True)
        # A view, not the Parameter itself: assigning a Parameter would register it
        # on the LSTM a second time. Gradients still reach the raw matrix.
        return raw.view_as(raw)

    def forward(
        self,
        inputs: torch.Tensor,
        hidden: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Run the LSTM with freshly dropped hidden-to-hidden weights.

        Parameters
        ----------
        inputs : Tensor of shape (batch, time, input_size)
        hidden : tuple of two Tensors of shape (1, batch, hidden_size), optional
            Initial ``(h, c)``; zeros when None.

        Returns
        -------
        output : Tensor of shape (batch, time, hidden_size)
        hidden : tuple of two Tensors of shape (1, batch, hidden_size)
        """
        self.module.weight_hh_l0 = self._hidden_weight()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_NON_CONTIGUOUS_WEIGHTS)
                return self.module(inputs, hidden)
        finally:
            # Keep no autograd graph on the module, so it can be pickled or
            # deep-copied between calls.
            self.module.weight_hh_l0 = self.weight_hh_l0_raw.detach()

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"


Hidden = list[tuple[torch.Tensor, torch.Tensor]]


class EncoderOutput(NamedTuple):
    """What :class:`AWDLSTMEncoder` returns.

    Attributes
    ----------
    raw_outputs : list of Tensor of shape (batch, time, features)
        Output of each LSTM layer before dropout.
    dropped_outputs : list of Tensor of shape (batch, time, features)
        Output of each layer after its hidden dropout; the last layer has none
        in the encoder, so its entry is the raw output.
    hidden : list of (h, c) tuples, each of shape (1, batch, features)
        Final state of each layer.
    """

    raw_outputs: list[torch.Tensor]
    dropped_outputs: list[torch.Tensor]
    hidden: Hidden


def detach_hidden(hidden: Hidden) -> Hidden:
    """Return the hidden state cut from the autograd graph (truncated BPTT)."""
    return [(state.detach(), cell.detach()) for state, cell in hidden]


class AWDLSTMEncoder(nn.Module):
    """Embedding with dropouts followed by stacked single-layer LSTMs.

    Layer sizes are ``embedding_dim → hidden_dim → … → hidden_dim → embedding_dim``,
    so the last layer's output has the embedding size and a decoder can share
    the embedding matrix.

    Parameters
    ----------
    config : AWDLSTMConfig
        Sizes, ``pad_id`` and the ``hidden``, ``input``, ``embedding`` and ``weight``
        dropouts (``output_dropout`` is the decoder's or the head's).

    Attributes
    ----------
    config : AWDLSTMConfig
    vocab_size, embedding_dim, hidden_dim, n_layers, pad_id : int
        The config's sizes.
    embedding : EmbeddingDropout
    input_dropout : LockedDropout
    rnns : ModuleList of WeightDropout
    hidden_dropouts : ModuleList of LockedDropout
        One per layer but the last.
    """

    def __init__(self, config: AWDLSTMConfig) -> None:
        super().__init__()
        if not isinstance(config, AWDLSTMConfig):
            raise ValueError(f"AWDLSTMEncoder takes an AWDLSTMConfig; got {type(config).__name__}.")
        self.config = config
        vocab_size, embedding_dim, n_layers = config.vocab_size, config.embedding_dim, config.n_layers
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = config.hidden_dim
        self.n_layers = n_layers
        self.pad_id = config.pad_id
        self.embedding = EmbeddingDropout(vocab_size, embedding_dim, config.embedding_dropout, config.pad_id)
        self.input_dropout = LockedDropout(config.input_dropout)
        sizes = [embedding_dim] + [config.hidden_dim] * (n_layers - 1) + [embedding_dim]
        self.rnns = nn.ModuleList(
            WeightDropout(nn.LSTM(sizes[layer], sizes[layer + 1], batch_first=True), config.weight_dropout)
            for layer in range(n_layers)
        )
        self.hidden_dropouts = nn.ModuleList(LockedDropout(config.hidden_dropout) for _ in range(n_layers - 1))
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)

    def forward(self, input_ids: torch.Tensor, hidden: Hidden | None = None) -> EncoderOutput:
        """Encode a batch of token ids.

        Parameters
        ----------
        input_ids : LongTensor of shape (batch, time)
        hidden : list of (h, c), optional
            State to continue from (one pair per layer); zeros when None.

        Returns
        -------
        EncoderOutput
        """
        if hidden is not None and len(hidden) != self.n_layers:
            raise ValueError(f"hidden must hold one (h, c) pair per layer ({self.n_layers}); got {len(hidden)}.")
        output = self.input_dropout(self.embedding(input_ids))
        raw_outputs, dropped_outputs, new_hidden = [], [], []
        for layer, rnn in enumerate(self.rnns):
            output, state = rnn(output, None if hidden is None else hidden[layer])
            raw_outputs.append(output)
            if layer < self.n_layers - 1:
                output = self.hidden_dropouts[layer](output)
            dropped_outputs.append(output)
            new_hidden.append(state)
        return EncoderOutput(raw_outputs, dropped_outputs, new_hidden)


class LanguageModelDecoder(nn.Module):
    """Output dropout and a linear projection onto the vocabulary.

    Parameters
    ----------
    vocab_size : int
    embedding_dim : int
    output_dropout : float, default=0.1
        Locked dropout on the encoder output.
    tied_embedding : torch.nn.Embedding, optional
        When given, the projection shares this embedding's weight matrix.

    Attributes
    ----------
    output_dropout : LockedDropout
    projection : torch.nn.Linear
        Weight of shape (vocab_size, embedding_dim), bias of shape (vocab_size,).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        output_dropout: float = 0.1,
        tied_embedding: nn.Embedding | None = None,
    ) -> None:
        super().__init__()
        self.output_dropout = LockedDropout(output_dropout)
        self.projection = nn.Linear(embedding_dim, vocab_size)
        nn.init.zeros_(self.projection.bias)
        if tied_embedding is not None:
            if tied_embedding.weight.shape != self.projection.weight.shape:
                raise ValueError(
                    f"Cannot tie a decoder of shape {tuple(self.projection.weight.shape)} to an "
                    f"embedding of shape {tuple(tied_embedding.weight.shape)}."
                )
            self.projection.weight = tied_embedding.weight
        else:
            nn.init.uniform_(self.projection.weight, -0.1, 0.1)

    def forward(self, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits, dropped)`` for ``encoded`` of shape (batch, time, embedding_dim).

        ``logits`` has shape (batch, time, vocab_size); ``dropped`` is the input
        after output dropout (used for activation regularisation).
        """
        dropped = self.output_dropout(encoded)
        return self.projection(dropped), dropped


class LanguageModelOutput(NamedTuple):
    """What :class:`AWDLSTMLanguageModel` returns.

    Attributes
    ----------
    logits : Tensor of shape (batch, time, vocab_size)
    raw_outputs : list of Tensor
        Each LSTM layer's output before dropout.
    dropped_outputs : list of Tensor
        Each layer's output after the dropout that follows it: hidden dropout
        for inner layers, the decoder's output dropout for the last. Activation
        regularisation uses ``dropped_outputs[-1]``, temporal activation
        regularisation ``raw_outputs[-1]``.
    hidden : list of (h, c)
        Final state of each layer, to continue a stream with.
    """

    logits: torch.Tensor
    raw_outputs: list[torch.Tensor]
    dropped_outputs: list[torch.Tensor]
    hidden: Hidden


class AWDLSTMLanguageModel(nn.Module):
    """AWD-LSTM encoder with a tied decoder, predicting the next token.

    Parameters
    ----------
    config : AWDLSTMConfig
        Its default dropouts are fastai's language-model ones (``drop_mult=1``).

    Attributes
    ----------
    config : AWDLSTMConfig
    encoder : AWDLSTMEncoder
    decoder : LanguageModelDecoder
        Its projection weight is ``encoder.embedding.weight``.

    Examples
    --------
    >>> model = AWDLSTMLanguageModel.from_preset("tiny", vocab_size=100)
    >>> model(torch.randint(0, 100, (4, 7))).logits.shape
    torch.Size([4, 7, 100])
    """

    def __init__(self, config: AWDLSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = AWDLSTMEncoder(config)
        self.decoder = LanguageModelDecoder(
            config.vocab_size, config.embedding_dim, config.output_dropout, tied_embedding=self.encoder.embedding
        )

    @classmethod
    def from_preset(
        cls,
        preset: str | Mapping[str, int],
        vocab_size: int,
        drop_mult: float = 1.0,
        **overrides: Any,
    ) -> AWDLSTMLanguageModel:
        """Build a language model from a preset and fastai's LM dropouts × ``drop_mult``.

        Parameters
        ----------
        preset : str or mapping
            See :func:`resolve_architecture`.
        vocab_size : int
        drop_mult : float, default=1.0
        **overrides
            Any :class:`AWDLSTMConfig` field, e.g. ``pad_id`` or ``weight_dropout``.
        """
        return cls(AWDLSTMConfig.from_preset(preset, vocab_size, drop_mult=drop_mult, **overrides))

    def forward(self, input_ids: torch.Tensor, hidden: Hidden | None = None) -> LanguageModelOutput:
        """Predict the next token at every position.

        Parameters
        ----------
        input_ids : LongTensor of shape (batch, time)
        hidden : list of (h, c), optional
            State to continue from; zeros when None.

        Returns
        -------
        LanguageModelOutput
        """
        encoded = self.encoder(input_ids, hidden)
        logits, dropped = self.decoder(encoded.raw_outputs[-1])
        dropped_outputs = [*encoded.dropped_outputs[:-1], dropped]
        return LanguageModelOutput(logits, encoded.raw_outputs, dropped_outputs, encoded.hidden)


def _masked_concat_pool(outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Concatenate [last kept output, max, mean] over the positions where ``mask`` is True."""
    mask = mask.bool()
    positions = torch.arange(mask.size(1), device=mask.device)
    last_index = torch.where(mask, positions, positions.new_zeros(())).argmax(dim=1)
    last = outputs[torch.arange(outputs.size(0), device=outputs.device), last_index]
    expanded = mask.unsqueeze(-1)
    largest = outputs.masked_fill(~expanded, float("-inf")).amax(dim=1)
    counts = mask.sum(dim=1, keepdim=True).clamp_min(1).to(outputs.dtype)
    mean = (outputs * expanded.to(outputs.dtype)).sum(dim=1) / counts
    return torch.cat([last, largest, mean], dim=1)


class ConcatPoolingHead(nn.Module):
    """Concat pooling followed by two BatchNorm → Dropout → Linear blocks.

    The pooled vector is ``[last output, max over time, mean over time]``,
    computed over the positions the mask marks, so padding never reaches it.
    Then ``BatchNorm → Dropout(dropout) → Linear(3 * input_dim, hidden_dim) →
    ReLU → BatchNorm → Dropout(hidden_dropout) → Linear(hidden_dim, n_outputs)``.

    Parameters
    ----------
    input_dim : int
        Features per time step (the encoder's ``embedding_dim``).
    n_outputs : int
        Number of logits (labels).
    hidden_dim : int, default=50
    dropout : float, default=0.4
        fastai's classifier ``output_p`` (scaled by ``drop_mult``).
    hidden_dropout : float, default=0.1
        fastai keeps this one at 0.1 whatever ``drop_mult``.

    Attributes
    ----------
    output : torch.nn.Linear
        The final layer; set ``output.bias`` to label-prior logits
        (``log(p / (1 - p))``) to start training from the label frequencies.
    """

    def __init__(
        self,
        input_dim: int,
        n_outputs: int,
        hidden_dim: int = 50,
        dropout: float = 0.4,
        hidden_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        pooled_dim = 3 * input_dim
        self.pooled_norm = nn.BatchNorm1d(pooled_dim)
        self.pooled_dropout = nn.Dropout(_check_probability(dropout, "head dropout"))
        # The bias would duplicate the BatchNorm shift that precedes it.
        self.hidden = nn.Linear(pooled_dim, hidden_dim, bias=False)
        self.activation = nn.ReLU()
        self.hidden_norm = nn.BatchNorm1d(hidden_dim)
        self.hidden_dropout = nn.Dropout(_check_probability(hidden_dropout, "head hidden dropout"))
        self.output = nn.Linear(hidden_dim, n_outputs)

    def forward(self, outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pool and classify.

        Parameters
        ----------
        outputs : Tensor of shape (batch, time, input_dim)
        mask : BoolTensor of shape (batch, time)
            True where ``outputs`` belongs to the text; every row needs at least one.

        Returns
        -------
        Tensor of shape (batch, n_outputs)
            Logits.
        """
        return self.classify(_masked_concat_pool(outputs, mask))

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, n_outputs) for pooled vectors of shape (batch, 3 * input_dim)."""
        features = self.hidden(self.pooled_dropout(_normalize(self.pooled_norm, pooled)))
        features = self.hidden_dropout(_normalize(self.hidden_norm, self.activation(features)))
        return self.output(features)


def _normalize(norm: nn.BatchNorm1d, features: torch.Tensor) -> torch.Tensor:
    """Apply ``norm``; a one-sample training batch uses the running statistics.

    BatchNorm cannot estimate a variance from one sample, and the last batch of an
    epoch can hold a single text.
    """
    if not norm.training or features.size(0) > 1:
        return norm(features)
    return F.batch_norm(features, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)


class AWDLSTMPooledEncoder(nn.Module):
    """An AWD-LSTM encoder reading texts in chunks, then concat pooling: one vector per text.

    Texts are read ``bptt`` tokens at a time, carrying the LSTM state from one chunk
    to the next; the outputs of the last ``max_len`` tokens of each text are pooled
    into ``[last output, max over time, mean over time]`` (``3 * embedding_dim``
    features). Chunks whose outputs are not pooled run without gradient, so memory
    does not grow with text length. :class:`AWDLSTMClassifier` puts a head on this;
    ``ULMFiTEmbedder`` outputs the vectors.

    Padding goes at the end (right padding), and ``attention_mask`` marks the
    tokens (1) and padding (0): every row is ones then zeros. Rows are sorted by
    length inside ``forward`` so each chunk only runs the texts still going, and
    a text gives the same vector (in eval mode) whatever padding follows it.

    Parameters
    ----------
    encoder : AWDLSTMEncoder
    bptt : int, default=72
        Tokens per chunk.
    max_len : int, default=1440
        Pool over at most this many final tokens of each text (fastai: 72 * 20).
    """

    def __init__(self, encoder: AWDLSTMEncoder, bptt: int = 72, max_len: int = 72 * 20) -> None:
        super().__init__()
        for name, value in (("bptt", bptt), ("max_len", max_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        self.pad_id = encoder.pad_id
        self.bptt = bptt
        self.max_len = max_len
        self.encoder = encoder

    @property
    def output_dim(self) -> int:
        """Size of the pooled vectors, ``3 * embedding_dim``."""
        return 3 * self.encoder.embedding_dim

    def _text_lengths(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[int]:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, sequence); got {tuple(input_ids.shape)}.")
        if attention_mask is None:
            attention_mask = input_ids != self.pad_id
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has "
                f"{tuple(input_ids.shape)}; they must match."
            )
        mask = attention_mask.to(torch.int64)
        # Length, and length of the leading run of ones: equal for right padding.
        both = torch.stack([mask.sum(dim=1), mask.cumprod(dim=1).sum(dim=1)]).cpu()
        lengths, leading = both[0].tolist(), both[1].tolist()
        if lengths != leading:
            raise ValueError(
                "AWDLSTMClassifier expects right padding: each attention_mask row must be "
                "ones then zeros, but some row has padding before or inside the text. "
                "Pad at the end (tokenizer padding_side='right')."
            )
        if min(lengths, default=1) < 1:
            raise ValueError(
                "Every text needs at least one token (sktext's tokenizer always starts with "
                "xxbos); got a row whose attention_mask is all zeros."
            )
        return lengths

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled vectors of a right-padded batch.

        Parameters
        ----------
        input_ids : LongTensor of shape (batch, sequence)
            Token ids, padded at the end.
        attention_mask : Tensor of shape (batch, sequence), optional
            1 for tokens, 0 for padding; derived from ``input_ids != pad_id``
            when None.

        Returns
        -------
        Tensor of shape (batch, 3 * embedding_dim)
        """
        lengths = self._text_lengths(input_ids, attention_mask)
        batch_size = input_ids.size(0)
        order = sorted(range(batch_size), key=lambda row: -lengths[row])
        sorted_lengths = [lengths[row] for row in order]
        device = input_ids.device
        order_tensor = torch.tensor(order, device=device)
        input_ids = input_ids.index_select(0, order_tensor)
        longest = sorted_lengths[0]

        hidden: Hidden | None = None
        kept_outputs: list[torch.Tensor] = []
        kept_positions: list[torch.Tensor] = []
        for start in range(0, longest, self.bptt):
            end = min(start + self.bptt, longest)
            n_active = sum(length > start for length in sorted_lengths)
            if hidden is not None:
                hidden = [(state[:, :n_active], cell[:, :n_active]) for state, cell in hidden]
            chunk = input_ids[:n_active, start:end]
            # Pool this chunk if it overlaps the last max_len tokens of a running
            # text; the shortest running text has the earliest such window.
            if sorted_lengths[n_active - 1] - self.max_len < end:
                encoded = self.encoder(chunk, hidden)
                output = encoded.raw_outputs[-1]
                kept_outputs.append(F.pad(output, (0, 0, 0, 0, 0, batch_size - n_active)))
                kept_positions.append(torch.arange(start, end, device=device))
            else:
                with torch.no_grad():
                    encoded = self.encoder(chunk, hidden)
            hidden = encoded.hidden

        outputs = torch.cat(kept_outputs, dim=1)
        positions = torch.cat(kept_positions).unsqueeze(0)
        length_tensor = torch.tensor(sorted_lengths, device=device).unsqueeze(1)
        mask = (positions < length_tensor) & (positions >= length_tensor - self.max_len)
        pooled = _masked_concat_pool(outputs, mask)
        inverse = torch.empty_like(order_tensor)
        inverse[order_tensor] = torch.arange(batch_size, device=device)
        return pooled.index_select(0, inverse)


class AWDLSTMClassifier(FreezableEncoderMixin, AWDLSTMPooledEncoder):
    """AWD-LSTM encoder reading texts in chunks, with a concat-pooling head.

    The reading and pooling are :class:`AWDLSTMPooledEncoder`'s: texts are read
    ``bptt`` tokens at a time, the outputs of the last ``max_len`` tokens of each
    text are pooled, chunks whose outputs are not pooled run without gradient, and
    padding goes at the end (right padding). A text gives the same logits (in eval
    mode) whatever padding follows it.

    The encoder can be frozen (:meth:`freeze_encoder`): it then runs in eval mode
    under ``torch.no_grad()`` and only the head trains.

    Parameters
    ----------
    config : AWDLSTMConfig
        The encoder's sizes and dropouts; ``output_dropout`` is the head's dropout on
        the pooled features. :meth:`from_preset` gives fastai's classifier dropouts.
    n_outputs : int
    bptt : int, default=72
        Tokens per chunk.
    max_len : int, default=1440
        Pool over at most this many final tokens of each text (fastai: 72 * 20).
    head_hidden_dim : int, default=50
    head_hidden_dropout : float, default=0.1

    Attributes
    ----------
    config : AWDLSTMConfig
    encoder : AWDLSTMEncoder
        Same layout as ``AWDLSTMLanguageModel.encoder``, so a fine-tuned LM's
        encoder state dict loads into it.
    head : ConcatPoolingHead
        ``head.output.bias`` is the bias to set to label-prior logits.

    Examples
    --------
    >>> model = AWDLSTMClassifier.from_preset("tiny", vocab_size=100, n_outputs=5).eval()
    >>> input_ids = torch.tensor([[2, 10, 11, 12], [2, 13, 1, 1]])
    >>> model(input_ids, input_ids != 1).shape
    torch.Size([2, 5])
    """

    def __init__(
        self,
        config: AWDLSTMConfig,
        n_outputs: int,
        *,
        bptt: int = 72,
        max_len: int = 72 * 20,
        head_hidden_dim: int = 50,
        head_hidden_dropout: float = 0.1,
    ) -> None:
        if isinstance(n_outputs, bool) or not isinstance(n_outputs, int) or n_outputs < 1:
            raise ValueError(f"n_outputs must be a positive integer; got {n_outputs!r}.")
        super().__init__(AWDLSTMEncoder(config), bptt, max_len)
        self.config = config
        self.head = ConcatPoolingHead(
            config.embedding_dim,
            n_outputs,
            hidden_dim=head_hidden_dim,
            dropout=config.output_dropout,
            hidden_dropout=head_hidden_dropout,
        )

    @classmethod
    def from_preset(
        cls,
        preset: str | Mapping[str, int],
        vocab_size: int,
        n_outputs: int,
        drop_mult: float = 1.0,
        **overrides: Any,
    ) -> AWDLSTMClassifier:
        """Build a classifier from a preset and fastai's classifier dropouts × ``drop_mult``.

        Parameters
        ----------
        preset : str or mapping
            See :func:`resolve_architecture`.
        vocab_size : int
        n_outputs : int
        drop_mult : float, default=1.0
        **overrides
            Any :class:`AWDLSTMConfig` field (e.g. ``output_dropout``) or constructor
            argument (e.g. ``bptt`` or ``max_len``).
        """
        fields = {field.name for field in dataclasses.fields(AWDLSTMConfig)}
        config_overrides = {key: value for key, value in overrides.items() if key in fields}
        module_arguments = {key: value for key, value in overrides.items() if key not in fields}
        config = AWDLSTMConfig.from_preset(
            preset, vocab_size, dropouts=CLASSIFIER_DROPOUTS, drop_mult=drop_mult, **config_overrides
        )
        return cls(config, n_outputs, **module_arguments)

    @property
    def output_layer(self) -> nn.Linear:
        """The final linear layer (``head.output``), whose bias holds the label priors."""
        return self.head.output

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Classify a right-padded batch.

        Parameters
        ----------
        input_ids : LongTensor of shape (batch, sequence)
            Token ids, padded at the end.
        attention_mask : Tensor of shape (batch, sequence), optional
            1 for tokens, 0 for padding; derived from ``input_ids != pad_id``
            when None.

        Returns
        -------
        Tensor of shape (batch, n_outputs)
            Logits.
        """
        with self.encoder_context():
            pooled = super().forward(input_ids, attention_mask)
        return self.head.classify(pooled)


def _unique(parameters: Sequence[nn.Parameter], seen: set[int]) -> list[nn.Parameter]:
    unique = []
    for parameter in parameters:
        if id(parameter) not in seen:
            seen.add(id(parameter))
            unique.append(parameter)
    return unique


def _group_modules(model: nn.Module) -> list[list[nn.Module]]:
    if isinstance(model, AWDLSTMClassifier):
        encoder = model.encoder
        return [[encoder.embedding], *([rnn] for rnn in encoder.rnns), [model.head]]
    if isinstance(model, AWDLSTMLanguageModel):
        encoder = model.encoder
        return [*([rnn] for rnn in encoder.rnns), [encoder.embedding, model.decoder]]
    raise ValueError(f"layer_groups expects an AWDLSTMClassifier or AWDLSTMLanguageModel; got {type(model).__name__}.")


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """Split a model's parameters into groups for discriminative learning rates.

    Parameters
    ----------
    model : AWDLSTMClassifier or AWDLSTMLanguageModel

    Returns
    -------
    list of list of Parameter
        Classifier: ``[embedding, rnn 0, …, rnn n-1, head]``. Language model:
        ``[rnn 0, …, rnn n-1, embedding + decoder]`` (the tied matrix appears
        once). Earlier groups are closer to the input; ULMFiT trains the last
        group first and gives earlier groups smaller learning rates
        (``lr / 2.6 ** depth``).

    Examples
    --------
    >>> model = AWDLSTMClassifier.from_preset("tiny", vocab_size=50, n_outputs=3)
    >>> [len(group) for group in layer_groups(model)]
    [1, 4, 4, 7]
    """
    seen: set[int] = set()
    return [
        _unique([parameter for module in modules for parameter in module.parameters()], seen)
        for modules in _group_modules(model)
    ]


def layer_group_names(model: nn.Module) -> list[list[str]]:
    """Names (as in ``model.named_parameters()``) of the parameters of each layer group.

    Same order as :func:`layer_groups`; useful for skorch's
    ``optimizer__param_groups`` patterns and its ``Freezer`` callback.
    """
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    return [[names[id(parameter)] for parameter in group] for group in layer_groups(model)]


def set_trainable_groups(model: nn.Module, n_trainable: int | None, groups_of=None) -> None:
    """Let only the last ``n_trainable`` layer groups train (every group when None).

    The step of gradual unfreezing (``sktext.callbacks.TrainableLayerGroups``), for the
    classifier's stages and the language model's frozen first epoch alike;
    ``groups_of`` splits the model (default :func:`layer_groups`).
    """
    groups = (groups_of or layer_groups)(model)
    first = 0 if n_trainable is None else len(groups) - n_trainable
    for index, group in enumerate(groups):
        for parameter in group:
            parameter.requires_grad_(index >= first)
