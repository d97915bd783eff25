"""A Hugging Face encoder with a pooled linear multi-label head (torch only)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .freezing import FreezableEncoderMixin
from .layer_cache import LowerLayerCache

POOLINGS = ("mean", "cls")


def pool_hidden_states(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """One vector per text from token states of shape (batch, length, hidden).

    ``"mean"`` averages the non-padding tokens; ``"cls"`` takes the first token's state.
    """
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class TransformerPooledEncoder(nn.Module):
    """Encoder → pooling: a fixed-size vector per text (what ``TransformerEmbedder`` outputs).

    Parameters
    ----------
    encoder : transformers.PreTrainedModel
        A bare encoder (``AutoModel``) returning ``last_hidden_state``.
    pooling : {"mean", "cls"}, default="mean"
    """

    def __init__(self, encoder: nn.Module, pooling: str = "mean") -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling

    @property
    def output_dim(self) -> int:
        """Size of the vectors."""
        return self.encoder.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Vectors of shape (batch, hidden_size) for padded ids of shape (batch, length)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool_hidden_states(hidden, attention_mask, self.pooling)


class TransformerClassifierModule(FreezableEncoderMixin, nn.Module):
    """Encoder → pooling → dropout → linear layer of one logit per label.

    The encoder can be frozen (:meth:`freeze_encoder`): it then runs in eval mode
    under ``torch.no_grad()`` and only the head trains. A frozen encoder maps a text to
    the same vector in every epoch, so inside :meth:`caching_pooled_vectors` each
    text's vector is computed once and looked up afterwards (keyed by its token ids):
    later epochs cost the head alone. Inside :meth:`caching_lower_layers` only the top
    layers of the encoder train (partial fine-tuning) and its frozen lower half runs
    once per distinct text (:class:`~sktext.models.layer_cache.LowerLayerCache`).

    Parameters
    ----------
    encoder : transformers.PreTrainedModel
        A bare encoder (``AutoModel``) returning ``last_hidden_state``.
    n_outputs : int
        Number of labels.
    pooling : {"mean", "cls"}, default="mean"
        Mean over non-padding tokens (what sentence-transformers models such as
        all-MiniLM-L6-v2 were trained for) or the first token's state.
    dropout : float, default=0.1
    """

    def __init__(self, encoder: nn.Module, n_outputs: int, pooling: str = "mean", dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(encoder.config.hidden_size, n_outputs)
        self._vector_cache: dict[bytes, torch.Tensor] | None = None

    #: Set inside :meth:`caching_lower_layers`; a class default so modules saved before it exist load.
    _layer_cache: LowerLayerCache | None = None

    @property
    def output_layer(self) -> nn.Linear:
        """The final layer, whose bias starts at the label priors."""
        return self.output

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, n_outputs) for padded ids of shape (batch, length)."""
        with self.encoder_context():
            if self._vector_cache is not None and self.encoder_frozen:
                pooled = self._cached_pool(input_ids, attention_mask)
            elif self._layer_cache is not None:
                hidden = self._layer_cache.last_hidden_state(input_ids, attention_mask)
                pooled = pool_hidden_states(hidden, attention_mask, self.pooling)
            else:
                pooled = self._pool(input_ids, attention_mask)
        return self.output(self.dropout(pooled))

    def _pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool_hidden_states(hidden, attention_mask, self.pooling)

    def _cached_pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled vectors, running the encoder only on the texts not seen before."""
        cache = self._vector_cache
        ids, mask = input_ids.cpu().numpy(), attention_mask.cpu().numpy().astype(bool)
        keys = [row[keep].tobytes() for row, keep in zip(ids, mask)]
        missing: dict[bytes, int] = {}
        for row, key in enumerate(keys):
            if key not in cache:
                missing.setdefault(key, row)
        if missing:
            index = torch.as_tensor(list(missing.values()), device=input_ids.device)
            for key, vector in zip(missing, self._pool(input_ids[index], attention_mask[index])):
                cache[key] = vector
        return torch.stack([cache[key] for key in keys])

    @contextlib.contextmanager
    def caching_pooled_vectors(self):
        """Within this context a frozen encoder runs once per distinct text; the cache is dropped on exit."""
        self._vector_cache = {}
        try:
            yield self
        finally:
            self._vector_cache = None

    @contextlib.contextmanager
    def caching_lower_layers(self, n_trainable: int, *, store: bool = True):
        """Within this context only the top ``n_trainable`` encoder layers (and the head) train.

        Every other encoder parameter (the embeddings, the lower layers) is frozen, and
        the lower layers run once per distinct text, in eval mode; each text's hidden
        states after them are kept (on the module's device, in the autocast dtype under
        autocast) and the top layers run on them. On exit the cache is dropped and every
        parameter trains again, so the module is as one fine-tuned without it. With
        ``store=False`` the lower layers stay frozen but run on every batch (for data
        whose states would not fit in memory).
        """
        cache = LowerLayerCache(self.encoder, n_trainable, store=store)
        with cache.frozen():
            self._layer_cache = cache
            try:
                yield self
            finally:
                self._layer_cache = None
