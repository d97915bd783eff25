"""Texts to fixed-size vectors, for any other scikit-learn model.

Two transformers (in scikit-learn's sense), one per encoder family, because their
settings have little in common:

- :class:`TransformerEmbedder`: a pretrained Hugging Face encoder, mean-pooled (or the
  first token); ``fit`` only loads it.
- :class:`ULMFiTEmbedder`: an AWD-LSTM language model's encoder, concat-pooled (last,
  max and mean of the outputs, as ULMFiT's classifier head sees them); ``fit``
  fine-tunes the language model on the texts, or takes a given one as it is.

Both compute their vectors as the classifiers predict: texts in length-sorted batches
padded to their longest text, under ``torch.inference_mode``, in the number format
their ``precision`` names (:mod:`sktext.precision`).
The vectors are what ``freeze_encoder=True`` trains a head on. A fitted embedder saves
to a model folder (``save`` / ``load``, JSON and safetensors) as the estimators do.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .base import ModelFolderMixin, TorchModulePicklingMixin
from .batching import TokenizedTexts
from .models.awd_lstm import AWDLSTMConfig, AWDLSTMEncoder, AWDLSTMPooledEncoder
from .models.transformer import POOLINGS, TransformerPooledEncoder
from .net import predict_batched
from .precision import PrecisionMixin
from .pretrained import DEFAULT_MODEL, load_pretrained
from .registry import register_estimator
from .reliability import check_finite_outputs, fit_transaction
from .text import PAD_ID, tokenize
from .transformer import (
    encode_with_tokenizer,
    load_tokenizer_and_encoder,
    position_limit,
    save_tokenizer_and_encoder_config,
)
from .ulmfit import LanguageModelStageMixin
from .validation import (
    POSITIVE_INT,
    Interval,
    Options,
    Types,
    check_texts,
    resolve_device,
    seed_from,
    seeded,
    validate_parameters,
)

__all__ = ["TransformerEmbedder", "ULMFiTEmbedder"]


class _TextEmbedderBase(
    PrecisionMixin,
    ModelFolderMixin,
    TorchModulePicklingMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    """What both embedders share: fit / transform around a module mapping ids to vectors.

    A subclass declares its ``_parameter_constraints`` and supplies
    ``_fit_module(texts)`` (returns a torch module mapping ``(input_ids,
    attention_mask)`` to vectors, with an ``output_dim``) and ``_encode(texts)``
    (returns :class:`~sktext.batching.TokenizedTexts`), and for model folders
    (``save`` / ``load``, as the estimators') ``_save_encoding``, ``_load_encoding``
    and ``_build_module(None, pretrained)``.
    """

    #: ``precision`` is declared by :class:`~sktext.precision.PrecisionMixin`.
    _parameter_constraints: dict = {
        "batch_size": [POSITIVE_INT],
        "device": ["device"],
    }

    def _check_related_params(self) -> None:
        """Checks that involve several parameters at once (each alone is declared)."""

    def _validate_params(self) -> None:
        validate_parameters(self)
        self._check_related_params()

    def _fit_module(self, texts: list[str]) -> torch.nn.Module:
        raise NotImplementedError

    def _encode(self, texts: list[str]) -> TokenizedTexts:
        raise NotImplementedError

    @fit_transaction
    def fit(self, X, y=None):
        """Get the encoder ready (see the class docstring for what that involves).

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)
            The texts.
        y : None
            Ignored; present for Pipeline compatibility.

        Returns
        -------
        self : object
            The fitted embedder.
        """
        texts = check_texts(X)
        self._validate_params()
        for attribute in ("module_", "_bf16_module"):
            self.__dict__.pop(attribute, None)
        self.device_ = resolve_device(self.device)
        module = self._fit_module(texts)
        self.module_ = module.to(self.device_).eval()
        self.n_features_out_ = int(module.output_dim)
        return self

    def transform(self, X) -> np.ndarray:
        """One vector per text.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        vectors : ndarray of shape (n_samples, n_features_out_), dtype float32
        """
        check_is_fitted(self, "module_")
        dataset = self._encode(check_texts(X))
        dtype = self._compute_dtype()
        vectors = predict_batched(
            self._inference_module(dtype),
            dataset,
            batch_size=self.batch_size,
            device=self.device_,
            precision=dtype,
        )
        return check_finite_outputs(vectors, what="vectors")

    @property
    def _n_features_out(self) -> int:
        # Read by ClassNamePrefixFeaturesOutMixin.get_feature_names_out; missing before fit.
        return self.n_features_out_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = []
        return tags


@register_estimator
class TransformerEmbedder(_TextEmbedderBase):
    """Pooled vectors of a pretrained Hugging Face encoder, for any scikit-learn model.

    ``fit`` loads the tokenizer and encoder and learns nothing from ``X`` (which is
    only checked); ``transform`` returns one vector per text: the mean of the
    encoder's last hidden states over the text's tokens (what sentence-transformers
    models such as all-MiniLM-L6-v2 were trained for), or the first token's state.
    Put it in a ``Pipeline`` before a linear model — the fast, CPU-friendly
    alternative to fine-tuning, and the features ``TransformerMultiLabelClassifier(
    freeze_encoder=True)`` trains its head on.

    Parameters
    ----------
    model_name_or_path : str, default="all-MiniLM-L6-v2"
        ``"all-MiniLM-L6-v2"`` (bundled, no network needed), a local Hugging Face
        model folder, or a hub id where a hub is reachable.
    max_length : int, default=256
        Tokens kept per text (longer texts are truncated).
    pooling : {"mean", "cls"}, default="mean"
        How token states become one vector per text.
    batch_size : int, default=64
        Texts per forward pass.
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision : {"auto", "fp32", "bf16"}, default="auto"
        Number format of ``transform``: ``"auto"`` is bf16 on CUDA and on a CPU with
        fast bf16 (AVX-512 BF16 or AMX), fp32 elsewhere. See :mod:`sktext.precision`.

    Attributes
    ----------
    tokenizer_ : transformers.PreTrainedTokenizerFast
    module_ : TransformerPooledEncoder
        The encoder and its pooling, in eval mode.
    n_features_out_ : int
        Size of the vectors (the encoder's hidden size: 384 for all-MiniLM-L6-v2).
    device_ : torch.device

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.multiclass import OneVsRestClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktext import TransformerEmbedder
    >>> pipeline = make_pipeline(TransformerEmbedder(), OneVsRestClassifier(LogisticRegression()))
    >>> pipeline.fit(texts, Y).predict(["a text editor"])  # doctest: +SKIP
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        *,
        max_length: int = 256,
        pooling: str = "mean",
        batch_size: int = 64,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.max_length = max_length
        self.pooling = pooling
        self.batch_size = batch_size
        self.device = device
        self.precision = precision

    _parameter_constraints: dict = {
        "model_name_or_path": [Types(str, os.PathLike, description="a model name or folder")],
        "max_length": [POSITIVE_INT],
        "pooling": [Options(POOLINGS)],
    }

    _auto_bf16_on_cpu = True
    _bf16_weights_on_cpu = True

    def _fit_module(self, texts: list[str]) -> TransformerPooledEncoder:
        self.tokenizer_, encoder = load_pretrained(self.model_name_or_path)
        return self._build_module(None, encoder)

    def _build_module(self, n_outputs: None, pretrained) -> TransformerPooledEncoder:
        return TransformerPooledEncoder(pretrained, pooling=self.pooling)

    def _save_encoding(self, folder: Path) -> dict:
        return save_tokenizer_and_encoder_config(self.tokenizer_, self.module_.encoder, folder)

    def _load_encoding(self, folder: Path, description: dict):
        """Set ``tokenizer_``; return the encoder built from its config (weights come after)."""
        self.tokenizer_, encoder = load_tokenizer_and_encoder(folder, description)
        return encoder

    def _encode(self, texts: list[str]) -> TokenizedTexts:
        limit = position_limit(self.module_.encoder.config)
        return encode_with_tokenizer(self.tokenizer_, texts, self.max_length, max_positions=limit)


@register_estimator
class ULMFiTEmbedder(LanguageModelStageMixin, _TextEmbedderBase):
    """Concat-pooled vectors of an AWD-LSTM language model's encoder, for any scikit-learn model.

    ``fit`` gets a language model: it fine-tunes ``language_model`` on ``X`` for
    ``lm_epochs`` (as :class:`~sktext.ULMFiTClassifier`'s first stage does: one epoch
    for the new words' embeddings, then all layers), trains one from scratch on
    ``X`` when ``language_model`` is None, or takes ``language_model`` as it is with
    ``lm_epochs=0`` (then ``X`` is only checked). So pass ``fit`` every text you
    have, labelled or not. ``transform`` reads each text in ``bptt``-token chunks
    and returns ``[last output, max, mean]`` of the encoder's outputs over the last
    ``max_len`` tokens (``3 * embedding_dim`` features, 1200 for the paper's sizes):
    what ULMFiTClassifier's head sees, and what ``ULMFiTClassifier(
    freeze_encoder=True)`` trains its head on.

    A language model trained from scratch on a few hundred texts gives weak
    vectors; a pretrained one (e.g. fastai's WikiText-103 files, or one saved by
    :meth:`sktext.language_model.LanguageModel.save` after fine-tuning on many
    in-domain texts) is the intended use.

    Parameters
    ----------
    language_model : None, LanguageModel, str or (str, str), default=None
        A :class:`~sktext.language_model.LanguageModel`, a folder written by its
        ``save``, or a ``(weights.pth, vocab.pkl)`` pair of fastai files. None
        trains one on ``X`` (``lm_epochs`` must then be >= 1).
    preset : str or dict, default=None
        AWD-LSTM size when ``language_model`` is None (``"paper"``, ``"small"``,
        ``"tiny"`` or a dict of sizes); None means ``"small"``.
    lm_epochs : int, default=2
        Language-model epochs on ``X``; 0 uses ``language_model`` (and its
        vocabulary) unchanged.
    lm_lr : float or None, default=None
        Peak learning rate of those epochs; None means 2e-3 when fine-tuning and
        5e-3 from scratch.
    lm_drop_mult : float, default=0.3
        Multiplies fastai's language-model dropouts while training it.
    max_vocab : int, default=60000
    min_freq : int, default=3
        Words seen fewer times in ``X`` become ``xxunk`` (when the vocabulary is
        built, i.e. ``lm_epochs >= 1``).
    bptt : int, default=72
        Tokens per chunk, for the language model's windows and for reading texts.
    max_len : int, default=1440
        Pool over at most this many final tokens of each text.
    batch_size : int, default=64
        Texts per forward pass and parallel streams of the language model.
    weight_decay : float, default=0.01
        AdamW weight decay of the language-model stage.
    gradient_clip_norm : float or None, default=1.0
        Gradient norm clipping of the language-model stage.
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision : {"auto", "fp32", "bf16"}, default="auto"
        Number format of ``transform``: ``"auto"`` is bf16 autocast on CUDA, fp32 on a
        CPU; ``"bf16"`` forces autocast. See :mod:`sktext.precision`.
    random_state : int, RandomState instance or None, default=None
        Seeds the language-model stage.
    verbose : int, default=0
        1 prints the language model's epoch table.

    Attributes
    ----------
    vocabulary_ : Vocabulary
    architecture_ : dict
        ``embedding_dim``, ``hidden_dim`` and ``n_layers`` of the AWD-LSTM.
    language_model_history_ : list of dict
        Per-epoch records of the language-model stage (empty when skipped).
    n_language_model_texts_ : int
        Texts the language model was trained on (0 when skipped).
    module_ : AWDLSTMPooledEncoder
        The encoder and its pooling, in eval mode.
    n_features_out_ : int
        ``3 * embedding_dim``.
    device_ : torch.device

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.multiclass import OneVsRestClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktext import ULMFiTEmbedder
    >>> embedder = ULMFiTEmbedder("my-language-model", lm_epochs=0)
    >>> make_pipeline(embedder, OneVsRestClassifier(LogisticRegression())).fit(texts, Y)  # doctest: +SKIP
    """

    def __init__(
        self,
        language_model=None,
        *,
        preset=None,
        lm_epochs: int = 2,
        lm_lr: float | None = None,
        lm_drop_mult: float = 0.3,
        max_vocab: int = 60000,
        min_freq: int = 3,
        bptt: int = 72,
        max_len: int = 1440,
        batch_size: int = 64,
        weight_decay: float = 0.01,
        gradient_clip_norm: float | None = 1.0,
        device: str = "auto",
        precision: str = "auto",
        random_state=None,
        verbose: int = 0,
    ) -> None:
        self.language_model = language_model
        self.preset = preset
        self.lm_epochs = lm_epochs
        self.lm_lr = lm_lr
        self.lm_drop_mult = lm_drop_mult
        self.max_vocab = max_vocab
        self.min_freq = min_freq
        self.bptt = bptt
        self.max_len = max_len
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.gradient_clip_norm = gradient_clip_norm
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose

    _parameter_constraints: dict = {
        "random_state": ["random_state"],
        "verbose": [Interval(numbers.Integral, 0, None, closed="left"), "boolean"],
    }

    def _check_related_params(self) -> None:
        super()._check_related_params()
        if self.language_model is None and self.lm_epochs == 0:
            raise ValueError(
                "ULMFiTEmbedder needs a language model: pass language_model (a LanguageModel, "
                "a folder saved by LanguageModel.save, or fastai's (weights.pth, vocab.pkl)), "
                "or set lm_epochs >= 1 to train one on X. With language_model=None and "
                "lm_epochs=0 the vectors would come from a random encoder."
            )

    def _fit_module(self, texts: list[str]) -> AWDLSTMPooledEncoder:
        with seeded(seed_from(self.random_state), self.device_):
            language_model = self._language_model_stage(tokenize(texts))
        module = self._build_module(None, None)
        module.encoder.load_state_dict(
            {name: tensor.detach().cpu() for name, tensor in language_model.encoder_state_dict().items()}
        )
        return module

    def _build_module(self, n_outputs: None, pretrained: None) -> AWDLSTMPooledEncoder:
        """The pooled encoder of ``architecture_`` over ``vocabulary_``, without dropout."""
        config = AWDLSTMConfig.from_preset(self.architecture_, len(self.vocabulary_), drop_mult=0.0, pad_id=PAD_ID)
        return AWDLSTMPooledEncoder(AWDLSTMEncoder(config), bptt=self.bptt, max_len=self.max_len)

    def _encode(self, texts: list[str]) -> TokenizedTexts:
        return TokenizedTexts.from_sequences(self.vocabulary_.encode(texts), pad_id=PAD_ID)
