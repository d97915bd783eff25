"""ULMFiT: an AWD-LSTM language model fine-tuned on the texts, then a classifier or regressor."""

from __future__ import annotations

import json
import numbers
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from skorch.history import History

from .batching import TokenizedTexts
from .classification import MultiLabelTextClassifierBase
from .io import DataFileError, iter_jsonl, open_text, read_lines
from .language_model import LanguageModel, resolve_language_model, train_on_tokens
from .models.awd_lstm import (
    CLASSIFIER_DROPOUTS,
    LANGUAGE_MODEL_DROPOUTS,
    PRESETS,
    AWDLSTMClassifier,
    AWDLSTMConfig,
    layer_group_names,
    layer_groups,
    resolve_architecture,
    scaled_dropouts,
)
from .registry import register_estimator
from .regression import TextRegressorBase
from .text import PAD_ID, SPECIAL_TOKENS, Vocabulary, tokenize
from .validation import (
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    PATH,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    Interval,
    Options,
    Types,
    check_texts,
)

DEFAULT_PRESET = "small"
#: Below this many texts, a language model trained from scratch is warned about.
FEW_LANGUAGE_MODEL_TEXTS = 10_000
# Gradual unfreezing as in fastai's IMDb recipe: (trainable groups, share of lr) for
# one epoch each — 2e-2, then 1e-2, then 5e-3 — then every group at 1e-3.
UNFREEZING_STAGES = ((1, 1.0), (2, 0.5), (3, 0.25))
UNFROZEN_LR_SHARE = 0.05
#: Where a model folder keeps the vocabulary.
VOCABULARY_FILE = "vocabulary.json"

UNLABELED_SUFFIXES = (".txt", ".txt.gz", ".jsonl", ".jsonl.gz")


def _read_text_file(path: Path) -> list[str]:
    """Texts of a ``.txt`` (one per line, blank lines skipped) or ``.jsonl`` file, gzipped or not."""
    if path.name.lower().endswith((".txt", ".txt.gz")):
        return read_lines(path)
    texts = []
    with open_text(path) as handle:
        try:
            for number, record in iter_jsonl(handle, path):
                if not isinstance(record.get("text"), str):
                    raise DataFileError(f"line {number} is {json.dumps(record)!r:.80}")
                texts.append(record["text"])
        except DataFileError as error:
            raise ValueError(
                f"Each line of the unlabeled_texts file {path} must be a JSON object with a "
                f"string 'text' field; {error}."
            ) from None
    return texts


def read_unlabeled_texts(unlabeled_texts) -> list[str]:
    """The texts of ULMFiTClassifier's ``unlabeled_texts`` parameter, checked.

    Parameters
    ----------
    unlabeled_texts : sequence of str, str or path-like
        Texts, or the path of a ``.txt`` file (one text per line) or a ``.jsonl`` /
        ``.jsonl.gz`` file (a ``text`` field per line).

    Returns
    -------
    texts : list of str
    """
    if isinstance(unlabeled_texts, (str, os.PathLike)):
        path = Path(unlabeled_texts)
        if not path.is_file():
            raise ValueError(
                "unlabeled_texts must be a list of str or the path of an existing .txt, .jsonl "
                f"or .jsonl.gz file; got {str(unlabeled_texts)!r:.80}, which is not a file. "
                "To pass a single text, wrap it in a list."
            )
        if not path.name.lower().endswith(UNLABELED_SUFFIXES):
            raise ValueError(
                f"The unlabeled_texts file must end in one of {', '.join(UNLABELED_SUFFIXES)}; got {path.name!r}."
            )
        texts = _read_text_file(path)
        origin = f"the file {path}"
    elif isinstance(unlabeled_texts, bytes):
        raise ValueError("unlabeled_texts must be a list of str or a path, got bytes.")
    else:
        try:
            texts = list(unlabeled_texts)
        except TypeError:
            raise ValueError(
                f"unlabeled_texts must be None, a list of str or a path, got {type(unlabeled_texts).__name__}."
            ) from None
        texts = check_texts(texts, name="unlabeled_texts", allow_empty=True)
        origin = "the given sequence"
    if not texts:
        raise ValueError(f"unlabeled_texts holds no texts ({origin} is empty); pass None to use X alone.")
    return texts


class LanguageModelStageMixin:
    """ULMFiT's language-model stage, shared by ULMFiTClassifier and ULMFiTEmbedder.

    Reads the estimator's ``language_model``, ``preset``, ``lm_epochs``, ``lm_lr``,
    ``lm_drop_mult``, ``max_vocab``, ``min_freq``, ``bptt``, ``max_len``,
    ``batch_size``, ``weight_decay``, ``gradient_clip_norm``, ``verbose`` and the
    fitted ``device_``.
    """

    _parameter_constraints: dict = {
        "language_model": [
            None,
            Types(LanguageModel, description="a LanguageModel"),
            PATH,
            Types(tuple, list, description="a (weights.pth, vocab.pkl) pair"),
        ],
        "preset": [None, Options(sorted(PRESETS)), Types(Mapping, description="a dict of sizes")],
        "lm_epochs": [NON_NEGATIVE_INT],
        "lm_lr": [POSITIVE_FLOAT, None],
        "lm_drop_mult": [NON_NEGATIVE_FLOAT],
        "max_vocab": [
            Interval(numbers.Integral, len(SPECIAL_TOKENS), None, closed="left").with_hint(
                "the special tokens need as many ids"
            )
        ],
        "min_freq": [POSITIVE_INT],
        "bptt": [POSITIVE_INT],
        "max_len": [POSITIVE_INT],
        "batch_size": [POSITIVE_INT],
        "weight_decay": [NON_NEGATIVE_FLOAT],
        "gradient_clip_norm": [POSITIVE_FLOAT, None],
    }

    def _check_related_params(self) -> None:
        super()._check_related_params()
        if self.language_model is not None and self.preset is not None:
            raise ValueError(
                "preset sets the size of a language model trained from scratch, but "
                "language_model already fixes it; leave preset=None when passing language_model."
            )
        if self.language_model is None:
            self._architecture()
        scaled_dropouts(LANGUAGE_MODEL_DROPOUTS, self.lm_drop_mult)

    def _architecture(self) -> dict[str, int]:
        return resolve_architecture(DEFAULT_PRESET if self.preset is None else self.preset)

    def _language_model_stage(self, token_lists: list[list[str]]):
        """Fine-tune (or train) the language model on ``token_lists``; set the LM attributes.

        Sets ``vocabulary_``, ``architecture_``, ``language_model_history_`` and
        ``n_language_model_texts_``, and returns the language model (the given one
        when ``lm_epochs=0``), or None when there is none: then the vocabulary comes
        from ``token_lists`` and the encoder starts random.
        """
        source = resolve_language_model(self.language_model)
        if source is None and len(token_lists) < FEW_LANGUAGE_MODEL_TEXTS:
            warnings.warn(
                f"{type(self).__name__} has no pretrained language model and learns one from "
                f"scratch on only {len(token_lists)} texts, too few to learn a language: its "
                "encoder will add little. Pass language_model=(weights.pth, vocab.pkl) (fastai's "
                "WT103 files) or a saved sktext language model, or unlabeled in-domain texts "
                "(unlabeled_texts=..., tens of thousands help).",
                UserWarning,
                stacklevel=7,
            )
        self.n_language_model_texts_ = 0
        self.language_model_history_ = []
        if self.lm_epochs > 0:
            self.n_language_model_texts_ = len(token_lists)
            n_tokens = sum(len(tokens) for tokens in token_lists)
            streams = min(self.batch_size, max(1, n_tokens // (self.bptt + 1)))
            language_model = train_on_tokens(
                token_lists,
                source=source,
                architecture=self._architecture(),
                max_vocab=self.max_vocab,
                min_freq=self.min_freq,
                lm_epochs=self.lm_epochs,
                lm_lr=self.lm_lr,
                frozen_epochs=1,
                frozen_lr=None,
                batch_size=streams,
                bptt=self.bptt,
                lm_drop_mult=self.lm_drop_mult,
                weight_decay=self.weight_decay,
                gradient_clip_norm=self.gradient_clip_norm,
                # Drawn from the torch generator the caller seeded for this fit.
                seed=int(torch.randint(0, 2**31 - 1, ()).item()),
                device=self.device_,
                verbose=self.verbose,
            )
            self.language_model_history_ = language_model.history
        else:
            language_model = source
        if language_model is None:
            self.vocabulary_ = Vocabulary.from_tokens(token_lists, max_vocab=self.max_vocab, min_freq=self.min_freq)
            self.architecture_ = self._architecture()
        else:
            self.vocabulary_ = language_model.vocabulary
            self.architecture_ = language_model.config.sizes
        return language_model

    def _save_encoding(self, folder: Path) -> dict:
        self.vocabulary_.save(folder / VOCABULARY_FILE)
        return {"files": {"vocabulary": VOCABULARY_FILE}}

    def _load_encoding(self, folder: Path, description: dict) -> None:
        """Set ``vocabulary_``; the encoder's weights come with the module's."""
        self.vocabulary_ = Vocabulary.load(folder / description["files"]["vocabulary"])


class ULMFiTModelMixin(LanguageModelStageMixin):
    """The model hooks of the ULMFiT estimators: language-model stage, AWD-LSTM, unfreezing.

    Shared by :class:`ULMFiTClassifier` and :class:`ULMFiTRegressor`, which differ only
    in the task base they add.
    """

    _parameter_constraints: dict = {
        "unlabeled_texts": [None, PATH, "array-like"],
        "drop_mult": [NON_NEGATIVE_FLOAT],
        "head_hidden_dim": [POSITIVE_INT],
        "lr_decay": [POSITIVE_FLOAT],
        "gradual_unfreezing": ["boolean"],
    }

    def _check_related_params(self) -> None:
        super()._check_related_params()
        if self.unlabeled_texts is not None and self.lm_epochs == 0:
            raise ValueError(
                "unlabeled_texts are only read by the language-model stage, which "
                "lm_epochs=0 skips, so they would be ignored. Set lm_epochs >= 1 or "
                "unlabeled_texts=None."
            )
        scaled_dropouts(CLASSIFIER_DROPOUTS, self.drop_mult)
        if self.freeze_encoder and self.language_model is None and self.lm_epochs == 0:
            raise ValueError(
                "freeze_encoder=True trains only the head on the language model's encoder, "
                "but language_model=None and lm_epochs=0 leave that encoder random. Pass a "
                "language_model, set lm_epochs >= 1, or use freeze_encoder=False."
            )

    # -- the language model and the vocabulary -------------------------------------------
    def _fit_encoding(self, texts: list[str]):
        unlabeled = [] if self.unlabeled_texts is None else read_unlabeled_texts(self.unlabeled_texts)
        token_lists = tokenize(texts)
        # The unlabeled texts feed the language model (and so the vocabulary) only.
        language_model_tokens = token_lists + tokenize(unlabeled) if self.lm_epochs > 0 else token_lists
        language_model = self._language_model_stage(language_model_tokens)
        encoder_state = (
            None
            if language_model is None
            else {name: tensor.detach().cpu() for name, tensor in language_model.encoder_state_dict().items()}
        )
        dataset = TokenizedTexts.from_sequences(self.vocabulary_.encode_tokens(token_lists), pad_id=PAD_ID)
        return dataset, encoder_state

    def _encode(self, texts: list[str]) -> TokenizedTexts:
        return TokenizedTexts.from_sequences(self.vocabulary_.encode(texts), pad_id=PAD_ID)

    def _config(self, dropouts, drop_mult: float) -> AWDLSTMConfig:
        """The AWD-LSTM of ``architecture_`` over ``vocabulary_``, with ``dropouts`` x ``drop_mult``."""
        return AWDLSTMConfig.from_preset(
            self.architecture_, len(self.vocabulary_), dropouts=dropouts, drop_mult=drop_mult, pad_id=PAD_ID
        )

    # -- stage 3: the classifier ---------------------------------------------------------
    def _build_module(self, n_outputs: int, pretrained) -> AWDLSTMClassifier:
        module = AWDLSTMClassifier(
            self._config(CLASSIFIER_DROPOUTS, self.drop_mult),
            n_outputs,
            bptt=self.bptt,
            max_len=self.max_len,
            head_hidden_dim=self.head_hidden_dim,
        )
        if pretrained is not None:
            module.encoder.load_state_dict(pretrained)
        return module

    def _stages(self, n_groups: int) -> list[tuple[int, int | None, float]]:
        """(epochs, trainable layer groups or None for all, share of ``lr``) per stage."""
        n_epochs = self.__dict__.get("n_epochs_", self.max_epochs)
        if self.freeze_encoder:
            return [(n_epochs, 1, 1.0)]
        if not self.gradual_unfreezing:
            return [(n_epochs, None, 1.0)]
        stages, remaining = [], n_epochs
        for n_trainable, share in UNFREEZING_STAGES:
            if remaining == 0 or n_trainable >= n_groups:
                break
            stages.append((1, n_trainable, share))
            remaining -= 1
        if remaining:
            stages.append((remaining, None, UNFROZEN_LR_SHARE))
        return stages

    def _stage_parameter_groups(self, module: AWDLSTMClassifier, lr: float) -> list:
        """skorch ``param_groups``: one per parameter, with its group's rate and decay.

        The last layer group (the head) gets ``lr``; each group below it
        ``lr_decay`` times less. Biases and BatchNorm parameters get no weight decay.
        """
        groups = layer_group_names(module)
        parameter_groups = []
        for depth, names in enumerate(reversed(groups)):
            for name in names:
                options = {"lr": lr / self.lr_decay**depth}
                if name.rsplit(".", 1)[-1].startswith("bias") or "_norm." in name:
                    options["weight_decay"] = 0.0
                parameter_groups.append((name, options))
        return parameter_groups

    def _train(self, module, dataset, split, criterion_kwargs, seed):
        n_train = self._n_train(dataset, split)
        n_groups = len(layer_group_names(module))
        history = History()
        for stage, (n_epochs, n_trainable, share) in enumerate(self._stages(n_groups)):
            lr = self.lr * share
            net = self._make_net(
                module,
                split=split,
                criterion_kwargs=criterion_kwargs,
                seed=seed + stage,
                max_epochs=n_epochs,
                parameter_groups=self._stage_parameter_groups(module, lr),
                n_train=n_train,
                lr=lr,
                anneal_strategy="cos",
                cycle_momentum=True,
                callback_options={"layer_groups": layer_groups, "n_trainable_groups": n_trainable},
                optimizer_kwargs={"betas": (0.8, 0.99), "eps": 1e-5},
                checkpoint_name=f"stage-{stage + 1}",
            )
            # The AWD-LSTM's dropouts draw their own masks: FastDropout would only see its ops.
            net.fast_dropout = False
            net.fit(dataset, None)
            for record in net.history:
                history.append({**record, "epoch": len(history) + 1, "stage": stage + 1})
        return history


@register_estimator
class ULMFiTClassifier(ULMFiTModelMixin, MultiLabelTextClassifierBase):
    """Multi-label text classifier trained the ULMFiT way (Howard & Ruder, 2018).

    ``fit`` runs ULMFiT's stages 2 and 3 on the training texts:

    1. **Language model.** An AWD-LSTM language model is fine-tuned on the texts —
       starting from ``language_model`` when given (one epoch training only the
       embedding and decoder, so the new words settle, then ``lm_epochs`` with all
       layers), else trained from scratch for ``lm_epochs``. The vocabulary comes
       from the texts; words known to the pretrained model keep their embedding.
       With ``lm_epochs=0`` the given language model (and its vocabulary) is used
       as it is.
    2. **Classifier.** The encoder is copied under a concat-pooling head (last,
       max and mean of the LSTM outputs; BatchNorm, dropout, two linear layers)
       and trained with gradual unfreezing: one epoch for the head alone, one for
       the last two layer groups at half the rate, one for the last three at a
       quarter, then all groups at ``lr / 20`` for the remaining epochs; each
       stage is a one-cycle schedule with momentum cycled 0.8 → 0.7 → 0.8, and
       each group's rate is ``lr_decay`` times lower than the next one's
       (discriminative rates). With ``freeze_encoder=True`` only the head trains,
       for all ``max_epochs``.

    Texts of any length are read in chunks of ``bptt`` tokens and the outputs of
    the last ``max_len`` tokens are pooled. The head's bias starts at each
    label's prior log-odds, a multi-label stratified validation split drives early
    stopping, and per-label thresholds are tuned on it (see ``threshold``).
    Several categorical targets at once (int or str columns, or a DataFrame mixing
    them with 0/1 columns) get one softmax group each in the same head, as for
    :class:`~sktext.TransformerMultiLabelClassifier` (see :mod:`sktext.targets`).

    Better language models give better classifiers, and unlabelled in-domain
    texts help there: pass them as ``unlabeled_texts`` and the language model is
    fine-tuned on them together with ``X`` (stage 1 only — they never reach the
    classifier, its validation split or its thresholds). To reuse one such model
    across many fits, train it once with
    :func:`sktext.language_model.fine_tune_language_model`, save it, and pass it
    as ``language_model`` with ``lm_epochs=0`` (or a few epochs).

    ``unlabeled_texts`` is a constructor parameter, not a ``fit`` argument, so
    that it works unchanged inside ``Pipeline``, ``GridSearchCV`` and
    ``cross_val_score``, which pass only ``X`` and ``y`` to ``fit``. Being a
    parameter, it is copied with the estimator by ``clone`` (scikit-learn deep-copies
    parameters): a list of tens of thousands of texts is copied once per clone,
    i.e. per grid point and fold. A path avoids that — the string is cloned and
    the file read in each ``fit`` — and keeps ``get_params`` and the repr short;
    prefer it for large corpora.

    Parameters
    ----------
    language_model : None, LanguageModel, str or (str, str), default=None
        Starting language model: a :class:`~sktext.language_model.LanguageModel`,
        a folder written by its ``save``, or a ``(weights.pth, vocab.pkl)`` pair of
        fastai files (e.g. WikiText-103). None trains one from scratch.
    preset : str or dict, default=None
        AWD-LSTM size when ``language_model`` is None: ``"paper"`` (400/1152, 3
        layers), ``"small"`` (200/512, 3 layers), ``"tiny"`` (32/64, 2 layers) or
        a dict with ``embedding_dim``, ``hidden_dim``, ``n_layers``; None means
        ``"small"``. A given ``language_model`` fixes the size, so setting both
        is an error.
    lm_epochs : int, default=2
        Language-model fine-tuning epochs on the training texts (with all layers
        training); 0 skips the stage.
    lm_lr : float or None, default=None
        Peak learning rate of those epochs; None means 2e-3 when fine-tuning a
        given model and 5e-3 from scratch.
    lm_drop_mult : float, default=0.3
        Multiplies fastai's language-model dropouts during the LM stage.
    unlabeled_texts : None, sequence of str, str or path-like, default=None
        Extra texts for the language-model stage only: a sequence of str, or the
        path of a ``.txt`` file (one text per line, blank lines skipped) or a
        ``.jsonl`` / ``.jsonl.gz`` file (a ``text`` field per line), read in ``fit``.
        They join ``X`` for the language model and its vocabulary; the classifier
        sees only ``X``. Requires ``lm_epochs >= 1``.
    max_vocab : int, default=60000
        Largest vocabulary built from the texts, special tokens included.
    min_freq : int, default=3
        Words seen fewer times in the texts become ``xxunk``.
    bptt : int, default=72
        Tokens per chunk, for the language model's windows and the classifier's
        reading of long texts.
    max_len : int, default=1440
        The classifier pools the outputs of at most this many final tokens.
    drop_mult : float, default=0.5
        Multiplies fastai's classifier dropouts (output 0.4, hidden 0.3, input 0.4,
        embedding 0.05, weight 0.5).
    head_hidden_dim : int, default=50
        Width of the head's hidden layer between the pooled features (3 x
        ``embedding_dim``) and the outputs. fastai's 50 suits a few classes; with
        hundreds of labels that layer is a bottleneck, and a wider one (e.g. 512)
        learns the rare labels better.
    batch_size : int, default=64
        Texts per classifier batch and parallel streams of the language model;
        prediction uses twice this.
    max_epochs : int, default=5
        Classifier epochs over all unfreezing stages.
    lr : float, default=2e-2
        Peak learning rate of the head in the first stage.
    lr_decay : float, default=2.6
        Each layer group learns this many times slower than the one above it.
    gradual_unfreezing : bool, default=True
        False trains all groups from the first epoch (one stage at ``lr``, still
        with discriminative rates).
    freeze_encoder : bool, default=False
        Train only the head on a frozen encoder: one stage of ``max_epochs`` at
        ``lr`` with no unfreezing (``gradual_unfreezing`` is not read); the
        encoder runs in eval mode (no dropout) under ``torch.no_grad()``, so no
        activations are stored and there is no backward pass through it. The
        language-model stage still runs when ``lm_epochs >= 1`` — it is what
        adapts the encoder to the texts — so the fastest setting is a given
        ``language_model`` with ``lm_epochs=0``. Needs a language model: with
        ``language_model=None`` and ``lm_epochs=0`` the encoder would be random,
        which is an error. For the pooled vectors themselves, see
        :class:`~sktext.ULMFiTEmbedder`.
    weight_decay : float, default=0.01
        AdamW weight decay (not applied to biases and BatchNorm parameters).
    warmup_fraction : float, default=0.25
        Share of each stage's steps spent raising the learning rate.
    threshold : "auto", float or array-like of shape (n_labels,), default="auto"
        ``"auto"`` tunes one threshold per label for F1 on the validation split
        (labels with fewer than 5 validation positives share the threshold that
        maximises micro-F1); a float or array fixes them. Stored in
        ``thresholds_``, which may be edited after fitting.
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
    patience : int or None, default=3
        Epochs without a lower validation loss before a stage stops (best weights
        restored). None disables early stopping.
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
        Gradient norm clipping for both stages; None disables it.
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision : {"auto", "fp32", "bf16"}, default="auto"
        Number format of the classifier stage and of prediction (the language-model
        stage trains in fp32). ``"auto"``: bf16 autocast on CUDA, fp32 on a CPU (bf16's
        cost for the LSTM is not measured there); ``"bf16"`` forces autocast. See
        :mod:`sktext.precision`.
    random_state : int, RandomState instance or None, default=None
        Seeds weights, dropout, batch order, the LM stage and the validation split.
    verbose : int, default=0
        0 is silent; 1 prints skorch's epoch tables and progress bars.
    checkpoint_dir : str, path-like or None, default=None
        Where to keep the training state (weights, optimizer, schedule, early
        stopping, history, random state), written at the end of every epoch into a
        sub-folder named after the estimator, its parameters and the data. An
        interrupted or crashed ``fit``, called again with the same parameters and
        data, resumes there and ends where an uninterrupted one would. The
        language-model stage is not saved: it runs again (it is seeded). None
        (default) writes nothing.
    callbacks : list of skorch callbacks or None, default=None
        Your own skorch callbacks (``TensorBoard``, ``MlflowLogger``, ``WandbLogger``,
        ``Checkpoint``, a :class:`skorch.callbacks.Callback` of your own), each alone
        or as a ``(name, callback)`` pair, added after sktext's own. They see the
        classifier's training: each stage of gradual unfreezing is a skorch run of
        its own, so ``on_train_begin`` / ``on_train_end`` come once per stage (and
        epochs count from 1 in each; ``history_`` numbers them through). The
        language-model fine-tuning (``lm_epochs``) is not a run they see. Not saved in
        a model folder; cloned like any parameter.

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
    vocabulary_ : Vocabulary
        Tokens the classifier knows.
    architecture_ : dict
        ``embedding_dim``, ``hidden_dim`` and ``n_layers`` of the AWD-LSTM.
    language_model_history_ : list of dict
        Per-epoch ``train_loss``, ``train_cross_entropy`` and ``dur`` (seconds) of
        the language-model stage (empty when skipped).
    n_language_model_texts_ : int
        Texts the language model was fine-tuned on (``X`` plus ``unlabeled_texts``;
        0 when the stage was skipped).
    module_ : AWDLSTMClassifier
        The trained encoder and head, in eval mode.
    history_ : skorch.History
        Per-epoch classifier losses over all stages; ``stage`` numbers them.
    device_ : torch.device
        Where the model lives.

    Notes
    -----
    The defaults follow fastai's recipe, which assumes an encoder pretrained on
    WikiText-103. With a language model trained from scratch on the users' texts
    (``language_model=None``), debtags (326 labels, 24,607 texts) measured otherwise:
    ``gradual_unfreezing=False`` (every layer group training from the first epoch,
    discriminative rates kept), a wider head (``head_hidden_dim=1024``), ``lr=4e-2``,
    ``lm_epochs=3`` with ``lm_lr=1e-2`` and ``max_epochs=15`` took micro/macro-F1 from
    0.52/0.12 (fastai's recipe, 1 LM and 4 classifier epochs) to 0.65/0.34, above
    TF-IDF + logistic regression. See ``benchmarks/README.md`` ("ULMFiT").

    Examples
    --------
    >>> from sklearn.preprocessing import MultiLabelBinarizer
    >>> from sktext.ulmfit import ULMFiTClassifier
    >>> texts = ["a fast game", "a text editor", "a game editor"] * 10
    >>> Y = MultiLabelBinarizer().fit_transform([["game"], ["editor"], ["game", "editor"]] * 10)
    >>> clf = ULMFiTClassifier(preset="tiny", lm_epochs=1, min_freq=1, batch_size=10,
    ...                        threshold=0.5, validation_fraction=None, random_state=0)
    >>> clf.fit(texts, Y).predict(["an editor"]).shape
    (1, 2)
    """

    def __init__(
        self,
        language_model=None,
        *,
        preset=None,
        lm_epochs: int = 2,
        lm_lr: float | None = None,
        lm_drop_mult: float = 0.3,
        unlabeled_texts=None,
        max_vocab: int = 60000,
        min_freq: int = 3,
        bptt: int = 72,
        max_len: int = 1440,
        drop_mult: float = 0.5,
        head_hidden_dim: int = 50,
        batch_size: int = 64,
        max_epochs: int = 5,
        lr: float = 2e-2,
        lr_decay: float = 2.6,
        gradual_unfreezing: bool = True,
        freeze_encoder: bool = False,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.25,
        threshold="auto",
        lexical="tfidf",
        lexical_refit: bool | str = "auto",
        validation_fraction: float | None = 0.1,
        patience: int | None = 3,
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
        self.language_model = language_model
        self.preset = preset
        self.lm_epochs = lm_epochs
        self.lm_lr = lm_lr
        self.lm_drop_mult = lm_drop_mult
        self.unlabeled_texts = unlabeled_texts
        self.max_vocab = max_vocab
        self.min_freq = min_freq
        self.bptt = bptt
        self.max_len = max_len
        self.drop_mult = drop_mult
        self.head_hidden_dim = head_hidden_dim
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.lr = lr
        self.lr_decay = lr_decay
        self.gradual_unfreezing = gradual_unfreezing
        self.freeze_encoder = freeze_encoder
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
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


@register_estimator
class ULMFiTRegressor(ULMFiTModelMixin, TextRegressorBase):
    """Text regressor (one or several continuous targets) trained the ULMFiT way.

    The stages are :class:`ULMFiTClassifier`'s — the AWD-LSTM language model
    fine-tuned (or trained) on the texts, then the concat-pooling head trained with
    gradual unfreezing and discriminative rates — with one linear output per target,
    trained with mean squared error (or Huber loss) on the targets standardised per
    column (see :mod:`sktext.regression`). A randomly shuffled validation split (no
    stratification) drives early stopping on the validation loss, best weights
    restored.

    Parameters
    ----------
    language_model : None, LanguageModel, str or (str, str), default=None
        Starting language model, as for :class:`ULMFiTClassifier`.
    preset : str or dict, default=None
        AWD-LSTM size when ``language_model`` is None (None means ``"small"``).
    lm_epochs : int, default=2
        Language-model fine-tuning epochs; 0 skips the stage.
    lm_lr : float or None, default=None
        Peak learning rate of those epochs (None: 2e-3 fine-tuning, 5e-3 from scratch).
    lm_drop_mult : float, default=0.3
        Multiplies fastai's language-model dropouts.
    unlabeled_texts : None, sequence of str, str or path-like, default=None
        Extra texts for the language-model stage only (a list, or a ``.txt`` /
        ``.jsonl(.gz)`` path). Requires ``lm_epochs >= 1``.
    max_vocab : int, default=60000
        Largest vocabulary, special tokens included.
    min_freq : int, default=3
        Words seen fewer times become ``xxunk``.
    bptt : int, default=72
        Tokens per chunk.
    max_len : int, default=1440
        The head pools the outputs of at most this many final tokens.
    drop_mult : float, default=0.5
        Multiplies fastai's classifier dropouts.
    head_hidden_dim : int, default=50
        Width of the head's hidden layer, as for :class:`ULMFiTClassifier`.
    batch_size : int, default=64
        Texts per batch; prediction uses twice this.
    max_epochs : int, default=5
        Epochs over all unfreezing stages.
    lr : float, default=2e-2
        Peak learning rate of the head in the first stage.
    lr_decay : float, default=2.6
        Each layer group learns this many times slower than the one above it.
    gradual_unfreezing : bool, default=True
        False trains all groups from the first epoch.
    freeze_encoder : bool, default=False
        Train only the head (needs a language model).
    weight_decay : float, default=0.01
        AdamW weight decay (not applied to biases and BatchNorm parameters).
    warmup_fraction : float, default=0.25
        Share of each stage's steps spent raising the learning rate.
    output_range : (float, float) or None, default=None
        ``(low, high)`` bounds every prediction with a scaled sigmoid, e.g.
        ``(1.0, 7.0)``; all of ``y`` must lie inside. None leaves them unbounded.
    loss : {"mse", "huber"}, default="mse"
        Mean squared error, or Huber loss (quadratic within one standard deviation
        of the target, linear beyond).
    validation_fraction : float or None, default=0.1
        Share of the training data held out (random, not stratified) for early
        stopping. None trains on everything.
    patience : int or None, default=3
        Epochs without a lower validation loss before a stage stops. None disables
        early stopping.
    gradient_clip_norm : float or None, default=1.0
        Gradient norm clipping for both stages; None disables it.
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision : {"auto", "fp32", "bf16"}, default="auto"
        Number format of the classifier stage and of prediction (the language-model
        stage trains in fp32). ``"auto"``: bf16 autocast on CUDA, fp32 on a CPU (bf16's
        cost for the LSTM is not measured there); ``"bf16"`` forces autocast. See
        :mod:`sktext.precision`.
    random_state : int, RandomState instance or None, default=None
        Seeds weights, dropout, batch order, the LM stage and the validation split.
    verbose : int, default=0
        0 is silent; 1 prints skorch's epoch tables and progress bars.
    checkpoint_dir : str, path-like or None, default=None
        Where to keep the training state (weights, optimizer, schedule, early
        stopping, history, random state), written at the end of every epoch into a
        sub-folder named after the estimator, its parameters and the data. An
        interrupted or crashed ``fit``, called again with the same parameters and
        data, resumes there and ends where an uninterrupted one would. The
        language-model stage is not saved: it runs again (it is seeded). None
        (default) writes nothing.
    callbacks : list of skorch callbacks or None, default=None
        Your own skorch callbacks (``TensorBoard``, ``MlflowLogger``, ``WandbLogger``,
        ``Checkpoint``, a :class:`skorch.callbacks.Callback` of your own), each alone
        or as a ``(name, callback)`` pair, added after sktext's own. They see the
        classifier's training: each stage of gradual unfreezing is a skorch run of
        its own, so ``on_train_begin`` / ``on_train_end`` come once per stage (and
        epochs count from 1 in each; ``history_`` numbers them through). The
        language-model fine-tuning (``lm_epochs``) is not a run they see. Not saved in
        a model folder; cloned like any parameter.

    Attributes
    ----------
    n_outputs_ : int
        Number of targets.
    one_dimensional_ : bool
        Whether ``y`` was 1-D, so that ``predict`` returns 1-D.
    target_mean_, target_scale_ : ndarray of shape (n_outputs_,)
        Mean and standard deviation of each training target (scale 1 for a
        constant target).
    vocabulary_ : Vocabulary
    architecture_ : dict
    language_model_history_ : list of dict
    n_language_model_texts_ : int
    module_ : AWDLSTMClassifier
        The trained encoder and head (one output per target), in eval mode.
    history_ : skorch.History
        Per-epoch losses (standardised units) over all stages; ``stage`` numbers them.
    device_ : torch.device

    Examples
    --------
    >>> from sktext import ULMFiTRegressor
    >>> texts = ["awful film", "fine film", "wonderful film"] * 10
    >>> reg = ULMFiTRegressor(preset="tiny", lm_epochs=1, min_freq=1, batch_size=10,
    ...                       output_range=(1.0, 7.0), validation_fraction=None,
    ...                       random_state=0)
    >>> reg.fit(texts, [1.0, 4.0, 7.0] * 10).predict(["fine film"]).shape
    (1,)
    """

    def __init__(
        self,
        language_model=None,
        *,
        preset=None,
        lm_epochs: int = 2,
        lm_lr: float | None = None,
        lm_drop_mult: float = 0.3,
        unlabeled_texts=None,
        max_vocab: int = 60000,
        min_freq: int = 3,
        bptt: int = 72,
        max_len: int = 1440,
        drop_mult: float = 0.5,
        head_hidden_dim: int = 50,
        batch_size: int = 64,
        max_epochs: int = 5,
        lr: float = 2e-2,
        lr_decay: float = 2.6,
        gradual_unfreezing: bool = True,
        freeze_encoder: bool = False,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.25,
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
        self.language_model = language_model
        self.preset = preset
        self.lm_epochs = lm_epochs
        self.lm_lr = lm_lr
        self.lm_drop_mult = lm_drop_mult
        self.unlabeled_texts = unlabeled_texts
        self.max_vocab = max_vocab
        self.min_freq = min_freq
        self.bptt = bptt
        self.max_len = max_len
        self.drop_mult = drop_mult
        self.head_hidden_dim = head_hidden_dim
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.lr = lr
        self.lr_decay = lr_decay
        self.gradual_unfreezing = gradual_unfreezing
        self.freeze_encoder = freeze_encoder
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
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


__all__ = ["ULMFiTClassifier", "ULMFiTModelMixin", "ULMFiTRegressor", "read_unlabeled_texts"]
