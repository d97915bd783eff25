"""The ULMFiT language-model stage: train or fine-tune an AWD-LSTM on raw texts.

* :class:`LanguageModel` holds a vocabulary and a trained
  :class:`~sktext.models.awd_lstm.AWDLSTMLanguageModel`; it saves to and loads
  from a model folder (:mod:`sktext.persistence`'s format) and generates text.
* :func:`fine_tune_language_model` builds the vocabulary from texts, starts from
  pretrained weights when given (sktext folder, :class:`LanguageModel`, or
  fastai's WikiText-103 files), and trains with one-cycle schedules, AR/TAR
  regularisation and gradient clipping — fastai's ULMFiT recipe on
  :class:`sktext.net.LanguageModelNet`.
* :func:`load_fastai_weights` reads fastai's ``.pth`` state dict and ``.pkl``
  token list (the reading itself is :mod:`sktext.fastai_weights`').

Its parameters have the estimators' names: ``language_model``, ``lm_epochs``,
``lm_lr``, ``lm_drop_mult``, ``gradient_clip_norm``, ``bptt`` mean here what they mean
in ``ULMFiTClassifier``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .batching import LanguageModelBatches
from .fastai_weights import fastai_state_dict_to_sktext, read_fastai_weights, transfer_to_vocabulary
from .models.awd_lstm import (
    LANGUAGE_MODEL_DROPOUTS,
    AWDLSTMConfig,
    AWDLSTMLanguageModel,
    layer_groups,
    resolve_architecture,
    scaled_dropouts,
)
from .net import LanguageModelNet, fused_adamw_available, make_callbacks
from .registry import model_folder_format
from .text import PAD_ID, UNKNOWN_ID, Vocabulary, tokenize
from .validation import (
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    check_parameter,
    check_texts,
    renamed_keywords,
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

WARMUP_FRACTION = 0.25


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
    config : AWDLSTMConfig
        The model's sizes and dropouts (``model.config``).

    Examples
    --------
    >>> from sktext.language_model import fine_tune_language_model
    >>> texts = ["the cat sat on the mat"] * 40
    >>> language_model = fine_tune_language_model(
    ...     texts, preset="tiny", lm_epochs=1, batch_size=4, bptt=8, min_freq=1, random_state=0)
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
    def config(self) -> AWDLSTMConfig:
        """Sizes and dropout probabilities of the model."""
        return self.model.config

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
        config = self.config
        return (
            f"LanguageModel(vocab_size={config.vocab_size}, embedding_dim={config.embedding_dim}, "
            f"hidden_dim={config.hidden_dim}, n_layers={config.n_layers})"
        )

    # ----------------------------------------------------------------- saving
    def save(self, path: str | os.PathLike, *, metadata: Mapping | None = None, overwrite: bool = False) -> Path:
        """Write the language model to a model folder (see :func:`sktext.persistence.save_model`).

        The folder is the estimators' format: ``sktext.json`` (the
        :class:`~sktext.models.awd_lstm.AWDLSTMConfig`, the history, the
        metadata), ``vocabulary.json`` (the token list) and ``model.safetensors``
        (the tied decoder weight stored once).

        Parameters
        ----------
        path : str or path-like
            Folder to create; it must be empty unless ``overwrite``.
        metadata : mapping, optional
            JSON-serialisable data kept with the model.
        overwrite : bool, default=False
            Replace the model in a folder that already holds one.

        Returns
        -------
        pathlib.Path
            The folder.
        """
        return model_folder_format().save(self, path, metadata=metadata, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> LanguageModel:
        """Load a language model written by :meth:`save` (or by sktext 0.1.0's).

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
        return model_folder_format().load(path, expected_class=cls).to(device)

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


@renamed_keywords(drop_mult="lm_drop_mult")
def load_fastai_weights(
    weights_path: str | os.PathLike,
    vocab_path: str | os.PathLike | Sequence[str],
    *,
    lm_drop_mult: float = 1.0,
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
    lm_drop_mult : float, default=1.0
        Multiplies fastai's language-model dropouts for the returned model
        (``drop_mult``, its old name, still works and warns).
    weights_only : bool, default=True
        Passed to ``torch.load``; set False only for a file you trust that
        torch refuses to read safely (e.g. one with optimizer state objects).

    Returns
    -------
    LanguageModel
    """
    model, vocabulary = read_fastai_weights(
        weights_path, vocab_path, lm_drop_mult=lm_drop_mult, weights_only=weights_only
    )
    return LanguageModel(model, vocabulary)


def resolve_language_model(language_model: Any) -> LanguageModel | None:
    """Turn what ``language_model=`` accepts into a :class:`LanguageModel` (or None).

    Parameters
    ----------
    language_model : None, LanguageModel, str/path or (str, str)
        A language model, a folder written by :meth:`LanguageModel.save`, or a
        ``(weights.pth, vocab.pkl)`` pair of fastai files.

    Returns
    -------
    LanguageModel or None
    """
    if language_model is None or isinstance(language_model, LanguageModel):
        return language_model
    if isinstance(language_model, (str, os.PathLike)):
        path = Path(language_model)
        if path.is_dir():
            return LanguageModel.load(path)
        raise ValueError(
            f"language_model={str(path)!r} is not a folder saved by LanguageModel.save. For fastai "
            "files pass the pair (weights.pth, vocab.pkl)."
        )
    if isinstance(language_model, (tuple, list)) and len(language_model) == 2:
        return load_fastai_weights(*language_model)
    raise ValueError(
        "language_model must be None, a LanguageModel, a folder saved by LanguageModel.save, or a "
        f"(weights.pth, vocab.pkl) pair of fastai files; got {type(language_model).__name__}."
    )


# ------------------------------------------------------------------ training
@renamed_keywords(
    pretrained="language_model",
    epochs="lm_epochs",
    lr="lm_lr",
    drop_mult="lm_drop_mult",
    gradient_clip="gradient_clip_norm",
)
def fine_tune_language_model(
    texts: Sequence[str],
    *,
    language_model: Any = None,
    preset: str | Mapping[str, int] | None = None,
    max_vocab: int = 60000,
    min_freq: int = 3,
    lm_epochs: int = 10,
    lm_lr: float | None = None,
    frozen_epochs: int = 1,
    frozen_lr: float | None = None,
    batch_size: int = 64,
    bptt: int = 72,
    lm_drop_mult: float = 1.0,
    weight_decay: float = 0.01,
    gradient_clip_norm: float | None = 0.25,
    random_state: Any = None,
    device: str | torch.device = "auto",
    verbose: int = 0,
) -> LanguageModel:
    """Train (or fine-tune) an AWD-LSTM language model on raw texts — ULMFiT's stage 2.

    The parameters are named as in :class:`~sktext.ULMFiTClassifier`, whose
    language-model stage this is. The names of sktext 0.1.0 (``pretrained``,
    ``epochs``, ``lr``, ``drop_mult``, ``gradient_clip``) still work and raise a
    ``DeprecationWarning``.

    Parameters
    ----------
    texts : sequence of str
        Raw texts (labelled and unlabelled ones alike).
    language_model : None, LanguageModel, str/path or (str, str), default=None
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
    lm_epochs : int, default=10
        Epochs with all layers training (one one-cycle schedule). The estimators,
        which fine-tune briefly before training a classifier, default to 2.
    lm_lr : float, default=None
        Peak learning rate of those epochs; None means 2e-3 when fine-tuning
        (fastai's IMDb recipe) and 5e-3 from scratch.
    frozen_epochs : int, default=1
        With ``language_model``: first epochs training only the embedding and
        decoder (the last layer group), so the new words' rows settle before
        the LSTMs move. Ignored from scratch.
    frozen_lr : float, default=None
        Peak learning rate of the frozen epochs; None means ``10 * lm_lr``.
    batch_size : int, default=64
        Number of parallel token streams.
    bptt : int, default=72
        Mean window length of truncated backpropagation through time (sktext 0.1.0
        used 70 here and 72 in the estimators).
    lm_drop_mult : float, default=1.0
        Multiplies fastai's LM dropouts (output 0.1, hidden 0.15, input 0.25,
        embedding 0.02, weight 0.2). The estimators, which fine-tune, default to 0.3.
    weight_decay : float, default=0.01
        Decoupled (AdamW) weight decay.
    gradient_clip_norm : float or None, default=0.25
        Largest gradient norm (the AWD-LSTM paper's value for a language model);
        None disables clipping. The estimators use one value, 1.0 by default, for
        both their stages.
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
    with ``language_model``, words it shares with the pretrained vocabulary keep
    their rows and the others start at the mean embedding and mean decoder bias
    (pretrained words absent from ``texts`` are dropped, as in fastai).
    """
    texts = check_texts(texts, name="texts")
    constraints = {
        "lm_epochs": [NON_NEGATIVE_INT],
        "frozen_epochs": [NON_NEGATIVE_INT],
        "batch_size": [POSITIVE_INT],
        "bptt": [POSITIVE_INT],
        "lm_lr": [POSITIVE_FLOAT, None],
        "frozen_lr": [POSITIVE_FLOAT, None],
        "gradient_clip_norm": [POSITIVE_FLOAT, None],
        "weight_decay": [NON_NEGATIVE_FLOAT],
        "verbose": [NON_NEGATIVE_INT],
        "random_state": ["random_state"],
        "device": ["device"],
    }
    arguments = locals()
    for name, allowed in constraints.items():
        check_parameter("fine_tune_language_model", name, arguments[name], allowed)
    source = resolve_language_model(language_model)
    if source is not None and preset is not None:
        raise ValueError(
            "preset sets the architecture of a model trained from scratch, but language_model "
            "already fixes it; leave preset=None when passing language_model."
        )
    architecture = resolve_architecture("small" if preset is None else preset)
    scaled_dropouts(LANGUAGE_MODEL_DROPOUTS, lm_drop_mult)  # validates lm_drop_mult early
    return train_on_tokens(
        tokenize(texts),
        source=source,
        architecture=architecture,
        max_vocab=max_vocab,
        min_freq=min_freq,
        lm_epochs=lm_epochs,
        lm_lr=lm_lr,
        frozen_epochs=frozen_epochs,
        frozen_lr=frozen_lr,
        batch_size=batch_size,
        bptt=bptt,
        lm_drop_mult=lm_drop_mult,
        weight_decay=weight_decay,
        gradient_clip_norm=gradient_clip_norm,
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
    lm_epochs: int,
    lm_lr: float | None,
    frozen_epochs: int,
    frozen_lr: float | None,
    batch_size: int,
    bptt: int,
    lm_drop_mult: float,
    weight_decay: float,
    gradient_clip_norm: float | None,
    seed: int,
    device: torch.device,
    verbose: int,
) -> LanguageModel:
    """The body of :func:`fine_tune_language_model`, on tokenized texts and checked arguments.

    For callers that already tokenized the texts (the ULMFiT estimators reuse the
    tokens for their classifier); ``source`` is a resolved :class:`LanguageModel` or
    None, ``architecture`` a dict of sizes (ignored with a source), ``seed`` an int
    and ``device`` a ``torch.device``.
    """
    lm_lr = lm_lr if lm_lr is not None else (2e-3 if source is not None else 5e-3)
    frozen_lr = frozen_lr if frozen_lr is not None else 10 * lm_lr
    vocabulary = Vocabulary.from_tokens(token_lists, max_vocab=max_vocab, min_freq=min_freq)
    batches = LanguageModelBatches(vocabulary.encode_tokens(token_lists), batch_size, bptt, random_state=seed)
    with seeded(seed, device):
        if source is None:
            model = AWDLSTMLanguageModel.from_preset(architecture, len(vocabulary), lm_drop_mult)
        else:
            model = transfer_to_vocabulary(source, vocabulary, lm_drop_mult)
        net = _build_net(model, device, weight_decay, gradient_clip_norm, batch_size, verbose)
        phases = []
        if source is not None and frozen_epochs > 0:
            phases.append((frozen_epochs, frozen_lr, 1))
        if lm_epochs > 0:
            phases.append((lm_epochs, lm_lr, None))
        for index, (n_epochs, peak_lr, n_trainable) in enumerate(phases):
            net.set_params(
                max_epochs=n_epochs,
                lr=peak_lr,
                callbacks__schedule__total_steps=batches.plan(n_epochs),
                callbacks__trainable_groups__n_trainable=n_trainable,
            )
            if index == 0:
                net.fit(batches, None)
            else:
                net.partial_fit(batches, None)
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
    gradient_clip_norm: float | None,
    batch_size: int,
    verbose: int,
) -> LanguageModelNet:
    callbacks = make_callbacks(
        total_steps=1,  # set per phase
        warmup_fraction=WARMUP_FRACTION,
        anneal_strategy="cos",
        cycle_momentum=True,
        momentum_range=(0.7, 0.8),
        final_div_factor=1e5,
        gradient_clip_norm=gradient_clip_norm,
        progress_bar=verbose > 1,
        layer_groups=layer_groups,
        lr_parameter=("lm_lr", None),  # the net's rate of the phase
    )
    return LanguageModelNet(
        module=model,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        optimizer__betas=(0.8, 0.99),
        optimizer__eps=1e-5,
        optimizer__weight_decay=weight_decay,
        **({"optimizer__fused": True} if fused_adamw_available(device) else {}),
        lr=1e-3,
        batch_size=batch_size,
        train_split=None,
        callbacks=callbacks,
        device=str(device),
        verbose=verbose,
    )
