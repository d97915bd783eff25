"""The estimator base every sktext classifier shares.

It owns what does not depend on the model: input validation, label handling, seeding,
the stratified validation split, positive-class weights, the output-bias prior,
threshold tuning, ``predict`` / ``predict_proba`` / ``decision_function``, pickling and
scikit-learn tags. A subclass supplies the model through four hooks:

- ``_fit_encoding(texts)``: fit the tokenizer (or vocabulary, or language model) and
  return the texts as :class:`~sktext.batching.TokenizedTexts`;
- ``_encode(texts)``: encode new texts with what ``_fit_encoding`` fitted;
- ``_build_module(n_labels)``: a torch module mapping ``(input_ids, attention_mask)``
  to logits, exposing its final ``nn.Linear`` as ``output_layer`` and, for
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
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .batching import TokenizedTexts
from .losses import LOSSES, criterion_for
from .net import TextNet, make_callbacks, predict_batched
from .thresholds import tune_thresholds
from .validation import (
    check_fraction,
    check_label_matrix,
    check_n_labels,
    check_positive_float,
    check_positive_int,
    check_texts,
    resolve_device,
)

MAX_POS_WEIGHT = 100.0
MIN_THRESHOLD_POSITIVES = 5


class MultilabelValidSplit:
    """skorch ``train_split`` holding out a multi-label stratified validation set.

    Uses iterative stratification (``MultilabelStratifiedShuffleSplit`` from
    iterative-stratification), so rare labels keep positives on both sides. The
    validation part comes sorted by length, for fast, padding-light evaluation.

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

    def indices(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation indices for the targets ``y`` (computed once per array)."""
        if self._cache is not None and self._cache[0] is y:
            return self._cache[1]
        n_valid = int(np.ceil(self.fraction * len(y)))
        if n_valid < 1 or len(y) - n_valid < 1:
            raise ValueError(
                f"validation_fraction={self.fraction} leaves no validation or no training "
                f"sample out of {len(y)}; pass more texts, another fraction, or "
                "validation_fraction=None with a float threshold."
            )
        splitter = MultilabelStratifiedShuffleSplit(
            n_splits=1, test_size=self.fraction, random_state=self.seed
        )
        train, valid = next(splitter.split(np.zeros(len(y)), y))
        self._cache = (y, (train, valid))
        return train, valid

    def __call__(self, dataset: TokenizedTexts, y=None, **fit_params):
        train, valid = self.indices(dataset.y)
        valid = valid[np.argsort(-dataset.lengths[valid], kind="stable")]
        return dataset.subset(train), dataset.subset(valid)


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


class MultiLabelTextClassifierBase(TorchModulePicklingMixin, ClassifierMixin, BaseEstimator):
    """Base class of the sktext multi-label text classifiers (not for direct use)."""

    # -- hooks for subclasses ------------------------------------------------------
    def _fit_encoding(self, texts: list[str]) -> TokenizedTexts:
        raise NotImplementedError

    def _encode(self, texts: list[str]) -> TokenizedTexts:
        raise NotImplementedError

    def _build_module(self, n_labels: int) -> torch.nn.Module:
        raise NotImplementedError

    def _parameter_groups(self) -> list:
        """skorch ``optimizer__param_groups``: (pattern, options) pairs, first match wins."""
        return []

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
        check_bool(self.freeze_encoder, "freeze_encoder")

    # -- fit ------------------------------------------------------------------------
    def fit(self, X, y):
        """Fit the classifier on texts and a multi-label indicator matrix.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)
            The texts.
        y : {array-like, sparse matrix} of shape (n_samples, n_labels) or DataFrame
            0/1 label indicators, as ``MultiLabelBinarizer`` returns (dense or
            ``sparse_output=True``). A DataFrame's column names become ``classes_``.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        texts = check_texts(X)
        Y, classes = check_label_matrix(y, len(texts))
        self._check_params()
        n_labels = Y.shape[1]
        thresholds = self._fixed_thresholds(n_labels)
        pos_weight = self._resolve_pos_weight(Y)
        empty = np.flatnonzero(Y.sum(axis=0) == 0)
        if len(empty):
            warnings.warn(
                f"{len(empty)} label(s) have no positive example in y (e.g. "
                f"{str(classes[empty[0]])!r}); the model will learn to predict them as absent.",
                UserWarning,
                stacklevel=2,
            )
        for attribute in ("module_", "thresholds_", "history_"):
            self.__dict__.pop(attribute, None)
        self.device_ = resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.classes_ = classes
        self.n_outputs_ = n_labels
        cuda = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            dataset = self._fit_encoding(texts).with_targets(Y)
            module = self._build_module(n_labels)
            if self.freeze_encoder:
                module.freeze_encoder()
            self._init_output_bias(module, Y)
            module.to(self.device_)
            split = MultilabelValidSplit(self.validation_fraction, seed) if (
                self.validation_fraction is not None
            ) else None
            criterion_kwargs = {} if pos_weight is None else {
                "pos_weight": torch.as_tensor(pos_weight, dtype=torch.float32)
            }
            self.history_ = self._train(module, dataset, split, criterion_kwargs, seed)
        self.module_ = module.eval()
        if thresholds is None:
            _, valid = split(dataset)
            proba = expit(self._logits(valid))
            thresholds, _ = tune_thresholds(
                valid.y, proba, min_positives=MIN_THRESHOLD_POSITIVES
            )
        self.thresholds_ = thresholds
        if self.device_.type == "cuda":
            torch.cuda.empty_cache()
        return self

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
    def _n_train(dataset: TokenizedTexts, split: MultilabelValidSplit | None) -> int:
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
        criterion, loss_kwargs = criterion_for(self.loss, focal_gamma=self.focal_gamma)
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

    @staticmethod
    def _init_output_bias(module: torch.nn.Module, Y: np.ndarray) -> None:
        """Start every label's logit at its training prior (log-odds, smoothed)."""
        prior = (Y.sum(axis=0) + 0.5) / (len(Y) + 1.0)
        with torch.no_grad():
            module.output_layer.bias.copy_(torch.as_tensor(np.log(prior / (1 - prior))))

    # -- predict --------------------------------------------------------------------
    def _logits(self, dataset: TokenizedTexts) -> np.ndarray:
        return predict_batched(
            self.module_, dataset, batch_size=2 * self.batch_size, device=self.device_
        )

    def decision_function(self, X) -> np.ndarray:
        """Logits (before the sigmoid) of each label.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        logits : ndarray of shape (n_samples, n_labels)
        """
        check_is_fitted(self, "module_")
        return self._logits(self._encode(check_texts(X)))

    def predict_proba(self, X) -> np.ndarray:
        """Probability of each label, independently (sigmoid of the logits).

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_labels)
            Rows need not sum to one.
        """
        return expit(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        """Predicted 0/1 label indicators, thresholding with ``thresholds_``.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_labels), dtype int64
        """
        return (self.predict_proba(X) >= self.thresholds_).astype(np.int64)

    def score(self, X, y, sample_weight=None) -> float:
        """Subset accuracy (every label of a sample right), as scikit-learn's classifiers."""
        check_is_fitted(self, "module_")
        check_n_labels(y, self.n_outputs_)
        return super().score(X, y, sample_weight=sample_weight)

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
        tags.classifier_tags.multi_label = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.non_deterministic = True
        return tags
