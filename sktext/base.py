"""The estimator bases every sktext classifier and regressor shares.

:class:`TextEstimatorBase` owns what depends neither on the model nor on the task:
validation of X, seeding, the validation split, building the skorch net, the
inference loop, pickling, ``save``/``load`` and the text-input tags.
:class:`MultiLabelTextClassifierBase` adds label handling (a multi-label matrix, or
several categorical and 0/1 targets laid out by :mod:`sktext.targets`), the
stratified split, positive-class weights, the output-bias prior, threshold tuning
and ``predict`` / ``predict_proba`` / ``decision_function``;
:class:`~sktext.regression.TextRegressorBase` adds continuous targets. A subclass
supplies the model through four hooks (the same for both tasks; the transformer and
ULMFiT mixins in :mod:`sktext.transformer` and :mod:`sktext.ulmfit` implement them):

- ``_fit_encoding(texts)``: fit the tokenizer (or vocabulary, or language model) and
  return the texts as :class:`~sktext.batching.TokenizedTexts`;
- ``_encode(texts)``: encode new texts with what ``_fit_encoding`` fitted;
- ``_build_module(n_outputs)``: a torch module mapping ``(input_ids, attention_mask)``
  to one output per logit, exposing its final ``nn.Linear`` as ``output_layer`` and, for
  ``freeze_encoder=True``, a ``freeze_encoder()`` method
  (:class:`~sktext.models.freezing.FreezableEncoderMixin`);
- ``_train(module, dataset, split, criterion_kwargs)``: train it (by default one skorch run
  with the parameter groups from ``_parameter_groups()``), returning skorch's History.
"""

from __future__ import annotations

import io
import math
import numbers
import warnings

import numpy as np
import torch
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import ShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .batching import TokenizedTexts
from .losses import LOSSES, MultiHeadLoss, criterion_for
from .net import TextNet, make_callbacks, predict_batched
from .targets import BINARY, OutputLayout, check_targets
from .thresholds import tune_thresholds
from .validation import (
    check_fraction,
    check_n_labels,
    check_positive_float,
    check_positive_int,
    check_texts,
    resolve_device,
)

MAX_POS_WEIGHT = 100.0
MIN_THRESHOLD_POSITIVES = 5


class ShuffleValidSplit:
    """skorch ``train_split`` holding out a random validation set (for regression).

    The validation part comes sorted by length, for fast, padding-light evaluation.

    Parameters
    ----------
    fraction : float
        Share of the samples held out.
    seed : int
    """

    def __init__(self, fraction: float, seed: int) -> None:
        self.fraction = fraction
        self.seed = seed
        self._cache = None

    def _stratify_on(self, y: np.ndarray) -> np.ndarray:
        return y

    def _splitter(self):
        return ShuffleSplit(n_splits=1, test_size=self.fraction, random_state=self.seed)

    def indices(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation indices for the targets ``y`` (computed once per array)."""
        if self._cache is not None and self._cache[0] is y:
            return self._cache[1]
        n_valid = int(np.ceil(self.fraction * len(y)))
        if n_valid < 1 or len(y) - n_valid < 1:
            raise ValueError(
                f"validation_fraction={self.fraction} leaves no validation or no training "
                f"sample out of {len(y)}; pass more texts, another fraction, or "
                "validation_fraction=None (for a classifier, with a float threshold)."
            )
        train, valid = next(self._splitter().split(np.zeros(len(y)), self._stratify_on(y)))
        self._cache = (y, (train, valid))
        return train, valid

    def __call__(self, dataset: TokenizedTexts, y=None, **fit_params):
        train, valid = self.indices(dataset.y)
        valid = valid[np.argsort(-dataset.lengths[valid], kind="stable")]
        return dataset.subset(train), dataset.subset(valid)


class MultilabelValidSplit(ShuffleValidSplit):
    """skorch ``train_split`` holding out a multi-label stratified validation set.

    Uses iterative stratification (``MultilabelStratifiedShuffleSplit`` from
    iterative-stratification), so rare labels keep positives on both sides. The
    validation part comes sorted by length, for fast, padding-light evaluation.

    Parameters
    ----------
    fraction : float
        Share of the samples held out.
    seed : int
    layout : OutputLayout, optional
        For categorical targets: they are one-hot encoded next to the 0/1 columns, so
        every class is stratified too.
    """

    def __init__(self, fraction: float, seed: int, layout: OutputLayout | None = None) -> None:
        super().__init__(fraction, seed)
        self.layout = layout

    def _splitter(self):
        return MultilabelStratifiedShuffleSplit(
            n_splits=1, test_size=self.fraction, random_state=self.seed
        )

    def _stratify_on(self, y: np.ndarray) -> np.ndarray:
        return y if self.layout is None else self.layout.indicator_matrix(y)


class TorchModulePicklingMixin:
    """Pickles the fitted ``module_`` with ``torch.save``, so a CUDA model loads on a CPU machine."""

    def __getstate__(self):
        state = dict(super().__getstate__())
        if "module_" in state:
            buffer = io.BytesIO()
            torch.save(state["module_"], buffer)
            state["module_"] = buffer.getvalue()
        return state

    def __setstate__(self, state):
        if isinstance(state.get("module_"), bytes):
            device = state.get("device_", torch.device("cpu"))
            if device.type == "cuda" and not torch.cuda.is_available():
                device = torch.device("cpu")
            state["device_"] = device
            state["module_"] = torch.load(
                io.BytesIO(state["module_"]), map_location=device, weights_only=False
            ).eval()
        super().__setstate__(state)


def check_bool(value, name: str) -> None:
    """Raise unless ``value`` is True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}.")


class TextEstimatorBase(TorchModulePicklingMixin, BaseEstimator):
    """What every sktext estimator that trains a model on texts shares (not for direct use).

    Subclasses for a task (:class:`MultiLabelTextClassifierBase`,
    :class:`~sktext.regression.TextRegressorBase`) supply ``_criterion()``,
    ``_valid_split(seed)``, ``_init_output_bias(module, Y)`` and their ``fit`` /
    ``predict``; model mixins supply ``_fit_encoding``, ``_encode``, ``_build_module``
    and optionally ``_parameter_groups`` and ``_train``.
    """

    # -- hooks for subclasses ------------------------------------------------------
    def _fit_encoding(self, texts: list[str]) -> TokenizedTexts:
        raise NotImplementedError

    def _encode(self, texts: list[str]) -> TokenizedTexts:
        raise NotImplementedError

    def _build_module(self, n_outputs: int) -> torch.nn.Module:
        raise NotImplementedError

    def _parameter_groups(self) -> list:
        """skorch ``optimizer__param_groups``: (pattern, options) pairs, first match wins."""
        return []

    def _criterion(self) -> tuple[type[torch.nn.Module], dict]:
        """The criterion class and its keyword arguments, from the estimator's parameters."""
        raise NotImplementedError

    def _valid_split(self, seed: int) -> ShuffleValidSplit:
        """The skorch ``train_split`` used when ``validation_fraction`` is set."""
        return ShuffleValidSplit(self.validation_fraction, seed)

    def _init_output_bias(self, module: torch.nn.Module, Y: np.ndarray) -> None:
        """Set the output layer's bias from the training targets (default: leave it)."""

    def _check_params(self) -> None:
        """Validate the parameters the base reads; subclasses extend it."""
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.max_epochs, "max_epochs")
        check_positive_float(self.lr, "lr")
        check_positive_float(self.weight_decay, "weight_decay", allow_zero=True)
        check_fraction(self.warmup_fraction, "warmup_fraction", allow_none=False)
        check_fraction(self.validation_fraction, "validation_fraction")
        check_positive_int(self.patience, "patience", allow_none=True)
        if self.gradient_clip_norm is not None:
            check_positive_float(self.gradient_clip_norm, "gradient_clip_norm")
        check_bool(self.freeze_encoder, "freeze_encoder")

    # -- fit ------------------------------------------------------------------------
    def _fit_module(self, texts: list[str], Y: np.ndarray, criterion_kwargs: dict):
        """Seed, encode, build, train; set ``device_``, ``history_`` and ``module_``.

        Returns the training dataset and the validation split (None without one), for
        the task's post-processing (e.g. threshold tuning).
        """
        for attribute in ("module_", "history_"):
            self.__dict__.pop(attribute, None)
        self.device_ = resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        cuda = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            dataset = self._fit_encoding(texts).with_targets(Y)
            module = self._build_module(self._n_logits(Y))
            if self.freeze_encoder:
                module.freeze_encoder()
            self._init_output_bias(module, Y)
            module.to(self.device_)
            split = self._valid_split(seed) if self.validation_fraction is not None else None
            self.history_ = self._train(module, dataset, split, criterion_kwargs, seed)
        self.module_ = module.eval()
        return dataset, split

    def _n_logits(self, Y: np.ndarray) -> int:
        """Width of the output layer for the training targets ``Y`` (one per column by default)."""
        return Y.shape[1]

    def _release_cuda_cache(self) -> None:
        if self.device_.type == "cuda":
            torch.cuda.empty_cache()

    def _train(self, module, dataset, split, criterion_kwargs, seed):
        """One skorch run over all epochs; subclasses with stages override it."""
        net = self._make_net(
            module,
            split=split,
            criterion_kwargs=criterion_kwargs,
            seed=seed,
            max_epochs=self.max_epochs,
            parameter_groups=self._parameter_groups(),
            n_train=self._n_train(dataset, split),
        )
        net.fit(dataset, None)
        return net.history

    @staticmethod
    def _n_train(dataset: TokenizedTexts, split: ShuffleValidSplit | None) -> int:
        """Texts left for training once ``split`` holds out the validation part."""
        return len(dataset) - (0 if split is None else len(split.indices(dataset.y)[1]))

    def _make_net(
        self,
        module,
        *,
        split,
        criterion_kwargs,
        seed,
        max_epochs,
        parameter_groups,
        n_train,
        lr=None,
        anneal_strategy="linear",
        cycle_momentum=False,
        optimizer=torch.optim.AdamW,
        optimizer_kwargs=None,
    ) -> TextNet:
        """A skorch net for one training run of ``module`` (already on the device)."""
        steps_per_epoch = -(-n_train // self.batch_size)
        criterion, loss_kwargs = self._criterion()
        criterion_kwargs = {**loss_kwargs, **criterion_kwargs}
        optimizer_kwargs = dict(optimizer_kwargs or {})
        if self.device_.type == "cuda" and optimizer is torch.optim.AdamW:
            optimizer_kwargs.setdefault("fused", True)
        net = TextNet(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=self.lr if lr is None else lr,
            max_epochs=max_epochs,
            batch_size=self.batch_size,
            train_split=split,
            device=self.device_,
            callbacks=make_callbacks(
                total_steps=steps_per_epoch * max_epochs,
                warmup_fraction=self.warmup_fraction,
                anneal_strategy=anneal_strategy,
                cycle_momentum=cycle_momentum,
                gradient_clip_norm=self.gradient_clip_norm,
                patience=self.patience,
                has_validation=split is not None,
                verbose=self.verbose,
            ),
            verbose=int(bool(self.verbose)),
            seed=seed,
            optimizer__weight_decay=self.weight_decay,
            optimizer__param_groups=parameter_groups,
            **{f"optimizer__{k}": v for k, v in optimizer_kwargs.items()},
            **{f"criterion__{k}": v for k, v in criterion_kwargs.items()},
        )
        return net

    # -- predict --------------------------------------------------------------------
    def _logits(self, dataset: TokenizedTexts) -> np.ndarray:
        return predict_batched(
            self.module_, dataset, batch_size=2 * self.batch_size, device=self.device_
        )

    # -- persistence and tags ---------------------------------------------------------
    def save(self, folder, *, metadata=None, overwrite: bool = False):
        """Write the fitted estimator to a folder safe to share (JSON and safetensors, no pickle).

        See :func:`sktext.persistence.save_model`, which this calls.

        Parameters
        ----------
        folder : str or path-like
        metadata : mapping, optional
            JSON-serialisable data kept with the model.
        overwrite : bool, default=False
            Replace the model in a folder that already holds one.

        Returns
        -------
        folder : pathlib.Path
        """
        from .persistence import save_model

        return save_model(self, folder, metadata=metadata, overwrite=overwrite)

    @classmethod
    def load(cls, folder):
        """Load an estimator of this class written by :meth:`save`, running no pickled code.

        See :func:`sktext.persistence.load_model`, which this calls.

        Parameters
        ----------
        folder : str or path-like

        Returns
        -------
        estimator : instance of this class, fitted
        """
        from .persistence import load_model

        return load_model(folder, expected_class=cls)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.non_deterministic = True
        return tags


class MultiLabelTextClassifierBase(ClassifierMixin, TextEstimatorBase):
    """Base class of the sktext multi-label text classifiers (not for direct use)."""

    def _criterion(self) -> tuple[type[torch.nn.Module], dict]:
        layout = self._layout()
        if layout is None:
            return criterion_for(self.loss, focal_gamma=self.focal_gamma)
        return MultiHeadLoss, {
            "binary_logits": layout.binary_logits.tolist(),
            "binary_targets": layout.binary_targets.tolist(),
            "groups": layout.softmax_groups,
            "gamma": float(self.focal_gamma) if self.loss == "focal" else None,
        }

    def _valid_split(self, seed: int) -> MultilabelValidSplit:
        return MultilabelValidSplit(self.validation_fraction, seed, self._layout())

    def _n_logits(self, Y: np.ndarray) -> int:
        layout = self._layout()
        return Y.shape[1] if layout is None else layout.n_logits

    def _layout(self) -> OutputLayout | None:
        """The output layout of a multi-output fit; None for a multi-label one."""
        return self.__dict__.get("output_layout_")

    def _check_params(self) -> None:
        """Validate the parameters the base reads; subclasses extend it."""
        super()._check_params()
        if isinstance(self.threshold, str):
            if self.threshold != "auto":
                raise ValueError(
                    f"threshold must be 'auto', a float in (0, 1) or an array of one per "
                    f"label, got {self.threshold!r}."
                )
            if self.validation_fraction is None:
                raise ValueError(
                    "threshold='auto' tunes thresholds on the validation split, but "
                    "validation_fraction=None; set validation_fraction (e.g. 0.1) or pass "
                    "a float threshold such as 0.5."
                )
        elif isinstance(self.threshold, numbers.Real):
            check_fraction(self.threshold, "threshold", allow_none=False)
        if isinstance(self.pos_weight, str) and self.pos_weight != "balanced":
            raise ValueError(
                f"pos_weight must be None, 'balanced' or an array of one weight per label, "
                f"got {self.pos_weight!r}."
            )
        if not isinstance(self.loss, str) or self.loss not in LOSSES:
            raise ValueError(
                f"loss must be 'bce' (binary cross-entropy) or 'focal' (focal loss, for "
                f"imbalanced labels), got {self.loss!r}."
            )
        gamma = self.focal_gamma
        if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not (
            math.isfinite(gamma) and gamma >= 0
        ):
            raise ValueError(
                f"focal_gamma must be a finite number >= 0 (0 gives plain cross-entropy, "
                f"2.0 is the usual choice), got {gamma!r}."
            )

    # -- fit ------------------------------------------------------------------------
    def fit(self, X, y):
        """Fit the classifier on texts and a multi-label matrix, or several categorical targets.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)
            The texts.
        y : {array-like, sparse matrix} of shape (n_samples, n_labels) or DataFrame
            0/1 label indicators, as ``MultiLabelBinarizer`` returns (dense or
            ``sparse_output=True``); a DataFrame's column names become ``classes_``.
            Or several categorical targets (``multiclass-multioutput``): a 2-D array
            of int or str class labels, one softmax head per column; or a DataFrame
            mixing 0/1 columns (a sigmoid head each) and categorical columns (object,
            category or string dtype, or ints beyond 0/1: a softmax head each). See
            :mod:`sktext.targets`.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        texts = check_texts(X)
        Y, classes, layout = check_targets(y, len(texts))
        self._check_params()
        n_labels = Y.shape[1]
        binary = np.arange(n_labels) if layout is None else layout.binary_targets
        names = classes if layout is None else [target.name for target in layout.targets]
        thresholds = self._fixed_thresholds(len(binary))
        pos_weight = self._resolve_pos_weight(Y[:, binary])
        empty = binary[Y[:, binary].sum(axis=0) == 0]
        if len(empty):
            warnings.warn(
                f"{len(empty)} label(s) have no positive example in y (e.g. "
                f"{str(names[empty[0]])!r}); the model will learn to predict them as absent.",
                UserWarning,
                stacklevel=2,
            )
        for attribute in ("thresholds_", "output_layout_"):
            self.__dict__.pop(attribute, None)
        if layout is not None:
            self.output_layout_ = layout
        self.classes_ = classes
        self.n_outputs_ = n_labels
        criterion_kwargs = {} if pos_weight is None else {
            "pos_weight": torch.as_tensor(pos_weight, dtype=torch.float32)
        }
        dataset, split = self._fit_module(texts, Y, criterion_kwargs)
        if thresholds is None and len(binary):
            _, valid = split(dataset)
            logits = self._logits(valid)
            if layout is not None:
                logits = logits[:, layout.binary_logits]
            thresholds, _ = tune_thresholds(
                valid.y[:, binary], expit(logits), min_positives=MIN_THRESHOLD_POSITIVES
            )
        elif thresholds is None:
            thresholds = np.zeros(0)
        self.thresholds_ = thresholds
        self._release_cuda_cache()
        return self

    def _fixed_thresholds(self, n_labels: int) -> np.ndarray | None:
        if isinstance(self.threshold, str):
            return None
        if isinstance(self.threshold, numbers.Real):
            return np.full(n_labels, float(self.threshold))
        thresholds = np.asarray(self.threshold, dtype=float)
        if thresholds.shape != (n_labels,) or not ((thresholds > 0) & (thresholds < 1)).all():
            raise ValueError(
                f"threshold as an array must hold one value in (0, 1) per label, i.e. shape "
                f"({n_labels},); got shape {thresholds.shape}."
            )
        return thresholds

    def _resolve_pos_weight(self, Y: np.ndarray) -> np.ndarray | None:
        if self.pos_weight is None:
            return None
        positives = Y.sum(axis=0)
        if isinstance(self.pos_weight, str):
            negatives = len(Y) - positives
            weight = np.divide(negatives, positives, out=np.ones_like(positives), where=positives > 0)
            return np.clip(weight, 1.0, MAX_POS_WEIGHT)
        weight = np.asarray(self.pos_weight, dtype=np.float32)
        if weight.shape != (Y.shape[1],) or (weight <= 0).any():
            raise ValueError(
                f"pos_weight as an array must hold one positive weight per label, i.e. "
                f"shape ({Y.shape[1]},); got shape {weight.shape}."
            )
        return weight

    def _init_output_bias(self, module: torch.nn.Module, Y: np.ndarray) -> None:
        """Start every logit at its training prior (smoothed): log-odds, or log-priors per softmax group."""
        layout = self._layout()
        if layout is not None:
            bias = layout.bias_prior(Y)
        else:
            prior = (Y.sum(axis=0) + 0.5) / (len(Y) + 1.0)
            bias = np.log(prior / (1 - prior))
        with torch.no_grad():
            module.output_layer.bias.copy_(torch.as_tensor(bias))

    # -- predict --------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """Logits (before the sigmoid or softmax) of the output layer.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        logits : ndarray of shape (n_samples, n_labels) or (n_samples, n_logits)
            One per label for a multi-label fit; for a multi-output fit, the columns
            of every target in turn (one for a 0/1 target, one per class for a
            categorical one; ``output_layout_`` says which).
        """
        check_is_fitted(self, "module_")
        return self._logits(self._encode(check_texts(X)))

    def predict_proba(self, X) -> np.ndarray | list[np.ndarray]:
        """Probabilities: of each label (multi-label), or of each class of each target.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_labels), or list of n_outputs_ ndarrays
            Multi-label: each label's sigmoid, independently (rows need not sum to
            one). Multi-output (scikit-learn's convention, as ``MultiOutputClassifier``):
            one array of shape (n_samples, n_classes) per target, in the order of
            ``classes_[j]`` (for a 0/1 target: ``[P(0), P(1)]``).
        """
        logits = self.decision_function(X)
        layout = self._layout()
        if layout is None:
            return expit(logits)
        proba = []
        for target in layout.targets:
            if target.kind == BINARY:
                positive = expit(logits[:, target.start])
                proba.append(np.column_stack([1 - positive, positive]))
            else:
                proba.append(softmax(logits[:, target.start : target.stop], axis=1))
        return proba

    def predict(self, X) -> np.ndarray:
        """Predicted labels: 0/1 indicators (multi-label), or one class per target.

        Binary labels and 0/1 targets are thresholded with ``thresholds_``; a
        categorical target gets its most probable class.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_labels) or (n_samples, n_outputs_)
            int64 0/1 for a multi-label fit; for a multi-output fit the original
            labels (int64 when every target's classes are ints, else object, e.g.
            strings).
        """
        layout = self._layout()
        if layout is None:
            return (self.predict_proba(X) >= self.thresholds_).astype(np.int64)
        proba = self.predict_proba(X)
        columns, binary_index = [], 0
        for target, target_proba in zip(layout.targets, proba):
            if target.kind == BINARY:
                threshold = self.thresholds_[binary_index]
                binary_index += 1
                columns.append(target.classes[(target_proba[:, 1] >= threshold).astype(np.int64)])
            else:
                columns.append(target.classes[target_proba.argmax(axis=1)])
        if all(np.asarray(column).dtype.kind in "iub" for column in columns):
            return np.column_stack(columns).astype(np.int64)
        predicted = np.empty((len(columns[0]), len(columns)), dtype=object)
        for j, column in enumerate(columns):
            predicted[:, j] = column
        return predicted

    def score(self, X, y, sample_weight=None) -> float:
        """Subset accuracy (every label, or every target, of a sample right), as scikit-learn's classifiers.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)
        y : array-like of shape (n_samples, n_labels or n_outputs_) or DataFrame
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        score : float
        """
        check_is_fitted(self, "module_")
        check_n_labels(y, self.n_outputs_)
        if self._layout() is None:
            return super().score(X, y, sample_weight=sample_weight)
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y, dtype=object)
        predicted = self.predict(X).astype(object)
        correct = np.all(predicted == y, axis=1)
        return float(np.average(correct, weights=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags
