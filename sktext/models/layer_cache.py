"""Partial fine-tuning: an encoder's frozen lower layers run once per text (torch only).

When only the top ``t`` of an encoder's ``n`` layers train, the embeddings and the
bottom ``n - t`` layers are a fixed function of the tokens: in eval mode (no dropout)
they give a text the same hidden states in every epoch. :class:`LowerLayerCache`
computes those states once per distinct text, keeps only the real tokens' rows (in
the autocast dtype under autocast, so bf16 in a bf16 fit) and afterwards runs only
the top layers on them.

Both halves run the encoder's own ``forward``, so the model embeds the tokens, builds
its attention mask and calls its layers as it always does, whatever its family or
transformers version. Filling the cache, a forward pre-hook on the first top layer
takes the states it is about to receive and ends the pass there. Training, the
encoder's layer list is cut to the top layers and the same kind of hook hands the
first of them the cached states instead of what the (frozen, eval-mode) embeddings
just computed, which is thrown away. All that is read from the model is the one
``nn.ModuleList`` that holds its ``config.num_hidden_layers`` layers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["LowerLayerCache", "auto_trainable_layers", "count_layers", "find_layer_list", "layer_cache_fits"]

#: ``trainable_layers="auto"``: this share of the encoder's layers trains (rounded up, at least one).
AUTO_TRAINABLE_SHARE = 1 / 3
#: The most memory the cached states of a fit may take on a CPU (also at most half of what is free).
LAYER_CACHE_MAX_BYTES = 4 * 2**30


def find_layer_list(encoder: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """The module holding the encoder's layers, the attribute naming them, and the list itself.

    Raises
    ------
    ValueError
        The encoder has not exactly one ``nn.ModuleList`` of ``config.num_hidden_layers``
        layers (ALBERT's shared layers, for one).
    """
    n_layers = getattr(getattr(encoder, "config", None), "num_hidden_layers", None)
    found = []
    if isinstance(n_layers, int):
        for owner in encoder.modules():
            for name, child in owner.named_children():
                if isinstance(child, nn.ModuleList) and len(child) == n_layers:
                    found.append((owner, name, child))
    if len(found) != 1:
        raise ValueError(
            f"Partial fine-tuning (trainable_layers) needs an encoder with one list of its "
            f"config.num_hidden_layers={n_layers!r} layers; {type(encoder).__name__} has {len(found)}. "
            "Use trainable_layers=None to fine-tune the whole encoder."
        )
    return found[0]


def count_layers(encoder: nn.Module) -> int:
    """Number of layers of ``encoder`` (as :func:`find_layer_list` finds them)."""
    return len(find_layer_list(encoder)[2])


def auto_trainable_layers(n_layers: int) -> int:
    """How many top layers of an ``n_layers``-layer encoder ``trainable_layers="auto"`` trains."""
    return max(1, math.ceil(n_layers * AUTO_TRAINABLE_SHARE - 1e-9))


def _free_memory_bytes(device: torch.device) -> float:
    """Memory free for the cache on ``device``: the CUDA device's free memory, or the host's available RAM."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float("inf")


def layer_cache_fits(dataset, encoder: nn.Module, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether every text's cached states (``dataset.lengths`` tokens each) fit the memory budget.

    The budget is half of the free memory of ``device`` (the host's available RAM on a
    CPU), and on a CPU at most :data:`LAYER_CACHE_MAX_BYTES`.
    """
    device = torch.device(device)
    needed = int(dataset.lengths.sum()) * encoder.config.hidden_size * torch.finfo(dtype).bits // 8
    budget = _free_memory_bytes(device) / 2
    if device.type != "cuda":
        budget = min(budget, LAYER_CACHE_MAX_BYTES)
    return needed <= budget


#: How encoder families name a layer's hidden-states argument when they pass it by keyword.
_HIDDEN_STATES_NAMES = ("hidden_states", "hidden_state", "x")


def _layer_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden states a layer is called with (its first argument)."""
    if args:
        return args[0]
    for name in _HIDDEN_STATES_NAMES:
        if name in kwargs:
            return kwargs[name]
    raise TypeError(f"Cannot find the hidden states among a layer's arguments {sorted(kwargs)}.")


def _with_layer_input(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    """A layer's arguments with ``hidden`` as its hidden states."""
    if args:
        return (hidden, *args[1:]), kwargs
    name = next(name for name in _HIDDEN_STATES_NAMES if name in kwargs)
    return args, {**kwargs, name: hidden}


class _ReachedTopLayers(Exception):
    """Raised by the pre-hook that ends a pass at the first top layer, carrying its input."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = hidden


@contextlib.contextmanager
def _pre_hook(module: nn.Module, hook) -> Iterator[None]:
    """Within this context ``hook`` is a forward pre-hook (with keyword arguments) of ``module``."""
    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def _replaced(owner: nn.Module, name: str, value: nn.Module) -> Iterator[None]:
    """Within this context ``owner.<name>`` is ``value``; the original is back on exit, exception or not."""
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Within this context ``module`` and all its submodules are in eval mode; each mode is restored on exit."""
    modes = [(child, child.training) for child in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for child, training in modes:
            child.training = training


class LowerLayerCache:
    """The hidden states after an encoder's frozen bottom layers, once per distinct text.

    Within :meth:`frozen` every encoder parameter outside the top ``n_trainable``
    layers is frozen (``requires_grad=False``): the embeddings, the bottom layers, and
    whatever else the encoder holds (BERT's pooler, unused by the pooled head; a
    relative-position table shared by all layers), so that nothing the cached states
    depend on changes. :meth:`last_hidden_state` then gives what
    ``encoder(input_ids, attention_mask).last_hidden_state`` gives with the bottom in
    eval mode, running the bottom only for texts it has not seen.

    Texts are identified by their token ids (the non-padding ones), as
    :meth:`~sktext.models.transformer.TransformerClassifierModule.caching_pooled_vectors`
    identifies them; each keeps a tensor of shape (n_tokens, hidden_size) on the
    encoder's device.

    Parameters
    ----------
    encoder : transformers.PreTrainedModel
        A bare encoder (``AutoModel``) returning ``last_hidden_state``.
    n_trainable : int
        Top layers that train, from 1 to the encoder's number of layers (which
        freezes only the embeddings).
    store : bool, default=True
        Keep each text's states. False runs the frozen bottom on every batch (still
        in eval mode, without gradients, so no backward pass through it): for data
        whose states would not fit in memory.
    """

    def __init__(self, encoder: nn.Module, n_trainable: int, *, store: bool = True) -> None:
        owner, name, layers = find_layer_list(encoder)
        if not 0 < n_trainable <= len(layers):
            raise ValueError(f"n_trainable must be in [1, {len(layers)}] for this encoder; got {n_trainable!r}.")
        self.encoder = encoder
        self.n_frozen = len(layers) - n_trainable
        self.store = store
        self._owner, self._name = owner, name
        self._top = nn.ModuleList(layers[self.n_frozen :])
        self._states: dict[bytes, torch.Tensor] = {}
        self._dtype: torch.dtype | None = None  # of the states as the bottom gives them
        #: Texts the bottom has run on (each once when storing).
        self.n_computed = 0

    def frozen_parameters(self) -> list[nn.Parameter]:
        """The encoder's parameters outside the top layers (the ones :meth:`frozen` freezes)."""
        top = {id(parameter) for parameter in self._top.parameters()}
        return [parameter for parameter in self.encoder.parameters() if id(parameter) not in top]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[LowerLayerCache]:
        """Freeze the parameters outside the top layers; on exit give each its ``requires_grad`` back and drop the states."""
        parameters = self.frozen_parameters()
        flags = [parameter.requires_grad for parameter in parameters]
        for parameter in parameters:
            parameter.requires_grad_(False)
        try:
            yield self
        finally:
            for parameter, flag in zip(parameters, flags):
                parameter.requires_grad_(flag)
            self._states.clear()

    def last_hidden_state(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The encoder's last hidden states, of shape (batch, length, hidden_size), for padded ids (batch, length).

        The top layers run in the module's mode (dropout when training); the bottom
        half's states come from the cache, computed in eval mode for texts not seen before.
        """
        hidden = self._lower_states(input_ids, attention_mask)

        def feed_cached_states(module, args, kwargs):
            return _with_layer_input(args, kwargs, hidden)

        embeddings = getattr(self.encoder, "embeddings", None)
        with (
            _replaced(self._owner, self._name, self._top),
            _pre_hook(self._top[0], feed_cached_states),
            _eval_mode(embeddings) if isinstance(embeddings, nn.Module) else contextlib.nullcontext(),
        ):
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def _lower_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The bottom half's states of a padded batch (zeros at padding), from the cache."""
        real = attention_mask.bool()
        if not self.store:
            states = self._run_bottom(input_ids, attention_mask)
            self.n_computed += len(states)
            return states * real.unsqueeze(-1).to(states.dtype)
        ids, mask = input_ids.cpu().numpy(), attention_mask.cpu().numpy().astype(bool)
        keys = [row[keep].tobytes() for row, keep in zip(ids, mask)]
        missing: dict[bytes, int] = {}
        for row, key in enumerate(keys):
            if key not in self._states:
                missing.setdefault(key, row)
        if missing:
            rows = torch.as_tensor(list(missing.values()), device=input_ids.device)
            self._compute(list(missing), input_ids[rows], attention_mask[rows])
        states = torch.cat([self._states[key] for key in keys]).to(self._dtype)
        hidden = states.new_zeros((*input_ids.shape, states.shape[-1]))
        hidden[real] = states
        return hidden

    def _run_bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The encoder's states before its first top layer (eval mode, no gradients), padding rows included."""

        def stop(module, args, kwargs):
            raise _ReachedTopLayers(_layer_input(args, kwargs))

        try:
            with torch.no_grad(), _eval_mode(self.encoder), _pre_hook(self._top[0], stop):
                self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        except _ReachedTopLayers as reached:
            return reached.hidden
        raise RuntimeError(f"{type(self.encoder).__name__} never called its layer {self.n_frozen}.")

    def _compute(self, keys: list[bytes], input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Run the encoder up to its first top layer; keep each text's real tokens."""
        states = self._run_bottom(input_ids, attention_mask)
        self._dtype = states.dtype
        device_type = states.device.type
        storage = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else states.dtype
        for key, row, keep in zip(keys, states, attention_mask.bool()):
            self._states[key] = row[keep].to(storage)
        self.n_computed += len(keys)
