"""Distillation: a fast student taught by a teacher's probabilities, its thresholds tuned on real labels.

:class:`DistilledClassifier` is a meta-estimator, as scikit-learn's ``CalibratedClassifierCV``
or ``SelfTrainingClassifier``: it takes a teacher and a student estimator, fits in one
call, drops into a ``Pipeline`` and is cloned by ``GridSearchCV`` like any classifier.
The teacher labels the labeled texts and any unlabeled ones with ``predict_proba``; the
student learns those probabilities as soft targets (every sktext classifier and
:class:`~sktext.lexical.TfidfLinearClassifier` takes them); the student's thresholds
are then tuned for F1 on the *real* labels of a held-out part of the labeled texts,
never on the teacher's hard view. :func:`shallow_encoder` makes the usual fast student's
encoder: the first layers of a pretrained one.

Examples
--------
>>> from sktext import TransformerMultiLabelClassifier
>>> from sktext.distill import DistilledClassifier, shallow_encoder
>>> student = TransformerMultiLabelClassifier(  # doctest: +SKIP
...     shallow_encoder("minilm-2-layers", n_layers=2), max_length=64
... )
>>> distilled = DistilledClassifier(  # doctest: +SKIP
...     teacher=TransformerMultiLabelClassifier(), student=student
... ).fit(texts, Y, X_unlabeled=untagged_texts)
>>> distilled.student_.save("fast-model")  # then `sktext serve fast-model`  # doctest: +SKIP
"""

from __future__ import annotations

import numbers
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GroupShuffleSplit
from sklearn.utils.validation import check_is_fitted

from .splits import stratified_indices
from .thresholds import (
    MIN_THRESHOLD_POSITIVES,
    apply_thresholds,
    f1_at_thresholds,
    floor_at_rates,
    tune_thresholds,
)
from .validation import (
    Interval,
    Types,
    check_label_matrix,
    check_n_labels,
    check_texts,
    seed_from,
    validate_parameters,
)

__all__ = ["DistilledClassifier", "shallow_encoder"]


def _is_fitted(estimator) -> bool:
    if not hasattr(estimator, "fit"):  # a predictor only (e.g. probabilities computed once): nothing to fit
        return True
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


class DistilledClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """A student classifier fitted on a teacher's probabilities over labeled and unlabeled texts.

    ``fit(X, y, X_unlabeled=...)``:

    1. the teacher: a fitted one is used as it is (wrap it in
       ``sklearn.frozen.FrozenEstimator`` to keep it fitted through ``clone``, e.g. in
       ``GridSearchCV``); an unfitted one is cloned and fitted on ``X, y``;
    2. a stratified ``validation_fraction`` of the labeled texts is held out;
    3. the teacher's ``predict_proba`` labels the other labeled texts and every
       unlabeled one: these probabilities are the student's soft targets; on the
       labeled texts they are mixed with the real labels,
       ``label_weight * y + (1 - label_weight) * p`` (Hinton et al.'s weighted sum of
       the hard-label and soft-label losses, which for BCE is the loss against the mix);
       with ``centre_on_thresholds``, each label's probabilities are first moved so
       that the teacher's own threshold falls at 0.5;
    4. a clone of the student is fitted on them;
    5. per-label thresholds are tuned for F1 (sktext's rule, as the classifiers' own)
       on the student's probabilities for the held-out texts against their real
       labels; with ``floor_at_label_rates``, each is then lowered where needed so
       that the student predicts its label on at least the label's share of the
       held-out texts. They replace the student's own ``thresholds_`` (tuned on the
       teacher's hard view), so ``student_`` saved or served alone predicts as this
       estimator.

    Parameters
    ----------
    teacher : estimator
        A multi-label classifier with ``predict_proba`` returning one probability
        per label (any sktext classifier, fitted or not).
    student : estimator
        A classifier whose ``fit`` takes per-label probabilities as ``y`` (soft
        targets: ``TransformerMultiLabelClassifier``, ``ULMFiTClassifier``,
        ``sktext.lexical.TfidfLinearClassifier``) and whose ``predict_proba`` returns
        one probability per label.
    label_weight : float in [0, 1], default=0.0
        Weight of the real labels in the labeled texts' targets; the rest is the
        teacher's probability. 0 teaches the teacher's probabilities alone; above 0.5,
        a labeled text's hard view (p >= 0.5, what the student's lexical SVMs and
        stratified split read) is its real labels. Unlabeled texts always get the
        teacher's probabilities.
    centre_on_thresholds : bool, default=False
        Move the teacher's probabilities of each label so that its threshold
        (``teacher.thresholds_``, tuned for F1 on real labels) falls at 0.5:
        ``p' = sigmoid(logit(p) - logit(threshold))``. The student's hard view (p >= 0.5:
        its stratified split, its lexical SVMs, its own threshold tuning) is then the
        teacher's predictions rather than ``p >= 0.5`` of its raw probabilities, which
        for a rare label with a low threshold is seldom positive. A teacher without
        ``thresholds_`` is refused.
    floor_at_label_rates : bool, default=True
        Lower each label's tuned threshold, where needed, so that the student predicts
        the label on at least as many held-out texts as the label's rate among the
        labeled texts it trained on says (:func:`sktext.thresholds.floor_at_rates`).
        A student taught by probabilities predicts rare labels too seldom (they are
        seldom confident), and a rare label has too few held-out positives for its own
        F1-best threshold to correct that. Measured on debtags (the fine-tuned default
        teaching students on all 24,607 labeled and 25,105 unlabeled texts; halves of
        the held-out part, thresholds set on one and scored on the other): macro-F1
        0.416 -> 0.452 for a 2-layer student and 0.424 -> 0.448 for a frozen-encoder
        one, at 0.003-0.004 micro-F1; no change for a logistic TF-IDF one
        (``benchmarks/distill_thresholds.py``). False keeps the thresholds as tuned.
    validation_fraction : float, default=0.1
        Share of the labeled texts held out to tune the student's thresholds on real
        labels; the student never trains on them.
    random_state : int, RandomState instance or None, default=None
        Seeds the held-out split. The teacher and student keep their own.

    Attributes
    ----------
    teacher_ : estimator
        The teacher that labeled the texts (the given one if it was fitted).
    student_ : estimator
        The fitted student, its ``thresholds_`` (where it has them) replaced by
        ``thresholds_``.
    classes_ : ndarray of shape (n_labels,)
    n_outputs_ : int
    thresholds_ : ndarray of shape (n_labels,)
        Tuned on real labels of the held-out texts.
    validation_scores_ : dict
        The student's F1 on the held-out texts at ``thresholds_``
        (:func:`sktext.thresholds.f1_at_thresholds`).
    n_student_texts_ : int
        Texts the student was fitted on (held-out texts excluded, unlabeled included).

    Notes
    -----
    Why a meta-estimator and not a ``teacher=`` fit parameter of the student: it is one
    object with one ``fit`` and ``predict``, which ``Pipeline``, ``clone`` and
    ``GridSearchCV`` (over ``student__*`` parameters) handle as any classifier, and the
    threshold tuning on real labels belongs to no single student.

    The unlabeled texts are a fit parameter, ``X_unlabeled``: they have no rows in ``y``.
    ``GridSearchCV`` passes it to every fit unchanged (it splits only parameters as
    long as ``X``). So are the texts' groups (``groups``, ``groups_unlabeled``), for a
    held-out part of whole groups where near-copies of a text would make the thresholds
    tuned on it too easy.
    """

    _parameter_constraints: dict = {
        "teacher": [Types(object, description="an estimator")],
        "student": [Types(object, description="an estimator")],
        "label_weight": [Interval(numbers.Real, 0, 1, closed="both")],
        "centre_on_thresholds": ["boolean"],
        "floor_at_label_rates": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        teacher,
        student,
        *,
        label_weight: float = 0.0,
        centre_on_thresholds: bool = False,
        floor_at_label_rates: bool = True,
        validation_fraction: float = 0.1,
        random_state=None,
    ) -> None:
        self.teacher = teacher
        self.student = student
        self.label_weight = label_weight
        self.centre_on_thresholds = centre_on_thresholds
        self.floor_at_label_rates = floor_at_label_rates
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(self, X, y, X_unlabeled=None, groups=None, groups_unlabeled=None):
        """Label the texts with the teacher, fit the student on that, tune its thresholds on real labels.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)
            Labeled texts.
        y : {array-like, sparse matrix} of shape (n_samples, n_labels) or DataFrame
            Their real 0/1 labels.
        X_unlabeled : list, tuple, ndarray or pandas Series of str, default=None
            Texts without labels: the teacher labels them for the student.
        groups : array-like of shape (n_samples,), default=None
            A group for each labeled text (a source, an author, a product family:
            texts of one group are near-copies of each other). Given, the held-out
            part is whole groups, a ``validation_fraction`` of them
            (``sklearn.model_selection.GroupShuffleSplit``), so that the thresholds are
            tuned on texts unlike the student's, as new data will be; without it, a
            stratified random part.
        groups_unlabeled : array-like of shape (n_unlabeled,), default=None
            The group of each unlabeled text, with ``groups``: unlabeled texts of a
            held-out group are left out of the student's texts.

        Returns
        -------
        self : object
        """
        texts = check_texts(X)
        Y, classes = check_label_matrix(y, len(texts))
        unlabeled = [] if X_unlabeled is None else check_texts(X_unlabeled)
        groups, groups_unlabeled = _check_groups(groups, groups_unlabeled, len(texts), len(unlabeled))
        validate_parameters(self)
        for role in ("teacher", "student"):
            if not hasattr(getattr(self, role), "predict_proba"):
                raise ValueError(
                    f"The {role} {type(getattr(self, role)).__name__} has no predict_proba; distillation "
                    "needs per-label probabilities (any sktext classifier has them)."
                )
        if _is_fitted(self.teacher):
            teacher = self.teacher
        else:
            teacher = clone(self.teacher).fit(X, y)
        seed = seed_from(self.random_state)
        if groups is None:
            train, valid = stratified_indices(Y, self.validation_fraction, seed)
        else:
            split = GroupShuffleSplit(n_splits=1, test_size=self.validation_fraction, random_state=seed)
            train, valid = next(split.split(texts, groups=groups))
            if groups_unlabeled is not None:
                kept = ~np.isin(groups_unlabeled, groups[valid])
                unlabeled = [text for text, keep in zip(unlabeled, kept) if keep]
        student_texts = [texts[i] for i in train] + list(unlabeled)
        # checked before the teacher's pass over every text, which may take long
        centres = self._teacher_thresholds(teacher, Y.shape[1]) if self.centre_on_thresholds else None
        soft = self._teacher_proba(teacher, student_texts, Y.shape[1])
        if centres is not None:
            soft = _centred(soft, centres)
        if self.label_weight:  # the labeled texts come first
            soft[: len(train)] = self.label_weight * Y[train] + (1 - self.label_weight) * soft[: len(train)]
        student = clone(self.student)
        try:
            with warnings.catch_warnings():
                # a label the teacher never gives 0.5 still gets its threshold, from real labels
                warnings.filterwarnings("ignore", message=r".*never reach probability 0\.5", category=UserWarning)
                student.fit(student_texts, soft)
        except ValueError as error:
            raise ValueError(
                f"The student {type(student).__name__} did not take the teacher's probabilities as y "
                f"({error}). A student must fit on per-label probabilities (soft targets), as sktext's "
                "classifiers and sktext.lexical.TfidfLinearClassifier do."
            ) from error
        proba = self._proba(student, [texts[i] for i in valid], Y.shape[1], "student")
        thresholds, _ = tune_thresholds(Y[valid], proba, min_positives=MIN_THRESHOLD_POSITIVES)
        if self.floor_at_label_rates:
            thresholds = floor_at_rates(thresholds, proba, Y[train].mean(axis=0))
        if hasattr(student, "thresholds_"):
            student.thresholds_ = thresholds.copy()
        self.teacher_ = teacher
        self.student_ = student
        self.classes_ = classes
        self.n_outputs_ = Y.shape[1]
        self.n_student_texts_ = len(student_texts)
        self.thresholds_ = thresholds
        self.validation_scores_ = f1_at_thresholds(Y[valid], proba, thresholds)
        return self

    @staticmethod
    def _proba(model, texts: list[str], n_labels: int, role: str) -> np.ndarray:
        proba = model.predict_proba(texts)
        if isinstance(proba, list) or np.ndim(proba) != 2 or np.shape(proba)[1] != n_labels:
            shape = f"a list of {len(proba)} arrays" if isinstance(proba, list) else f"shape {np.shape(proba)}"
            raise ValueError(
                f"The {role}'s predict_proba gave {shape}; distillation needs one probability per "
                f"label, shape (n_texts, {n_labels}), for the {n_labels} labels of y (a multi-label "
                f"{role} fitted on the same label columns)."
            )
        return np.asarray(proba.toarray() if hasattr(proba, "toarray") else proba, dtype=np.float64)

    @staticmethod
    def _teacher_thresholds(teacher, n_labels: int) -> np.ndarray:
        thresholds = getattr(teacher, "thresholds_", None)
        if thresholds is None or np.shape(thresholds) != (n_labels,):
            got = "none" if thresholds is None else f"shape {np.shape(thresholds)}"
            raise ValueError(
                f"centre_on_thresholds=True needs the teacher's per-label thresholds_ of shape ({n_labels},); "
                f"{type(teacher).__name__} has {got}. Use an sktext classifier as the teacher, or "
                "centre_on_thresholds=False."
            )
        return np.asarray(thresholds, dtype=np.float64)

    def _teacher_proba(self, teacher, texts: list[str], n_labels: int) -> np.ndarray:
        soft = self._proba(teacher, texts, n_labels, "teacher")
        return np.clip(soft, 0.0, 1.0).astype(np.float32)

    def predict_proba(self, X) -> np.ndarray:
        """The student's probability of each label.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_labels)
        """
        check_is_fitted(self, "student_")
        return self._proba(self.student_, check_texts(X), self.n_outputs_, "student")

    def predict(self, X) -> np.ndarray:
        """0/1 labels: the student's probabilities at ``thresholds_``.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_labels), dtype int64
        """
        return apply_thresholds(self.predict_proba(X), self.thresholds_)

    def score(self, X, y, sample_weight=None) -> float:
        """Subset accuracy, as scikit-learn's multi-label classifiers."""
        check_is_fitted(self, "student_")
        check_n_labels(y, self.n_outputs_)
        return super().score(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.classifier_tags.multi_label = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags


def _check_groups(groups, groups_unlabeled, n_labeled: int, n_unlabeled: int):
    """``groups`` and ``groups_unlabeled`` as arrays of the texts' lengths (or None), or a ValueError."""
    if groups is None:
        if groups_unlabeled is not None:
            raise ValueError(
                "groups_unlabeled was given without groups: the held-out part is drawn by the labeled "
                "texts' groups, so pass groups= (one per labeled text) as well, or neither."
            )
        return None, None

    def one_per_text(name: str, values, n_texts: int, kind: str) -> np.ndarray:
        values = np.asarray(values)
        if values.ndim != 1 or len(values) != n_texts:
            raise ValueError(f"{name} must hold one group per {kind} text ({n_texts}); got shape {values.shape}.")
        return values

    groups = one_per_text("groups", groups, n_labeled, "labeled")
    if len(np.unique(groups)) < 2:
        raise ValueError("groups must hold at least 2 distinct groups: the held-out part is whole groups.")
    if groups_unlabeled is not None:
        groups_unlabeled = one_per_text("groups_unlabeled", groups_unlabeled, n_unlabeled, "unlabeled")
    return groups, groups_unlabeled


def _centred(proba: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``sigmoid(logit(p) - logit(t))`` per label: the probabilities with each threshold ``t`` moved to 0.5."""
    from scipy.special import expit, logit

    eps = 1e-6  # 0 and 1 (clipped probabilities, a threshold of 1.0) stay finite
    shifted = logit(np.clip(proba, eps, 1 - eps)) - logit(np.clip(thresholds, eps, 1 - eps))
    return expit(shifted).astype(np.float32)


def shallow_encoder(folder, *, n_layers: int, model_name_or_path: str | None = None) -> str:
    """Save the first ``n_layers`` layers of a pretrained encoder (and its tokenizer) in ``folder``.

    The usual fast student: a transformer classifier on this folder
    (``TransformerMultiLabelClassifier(model_name_or_path=folder)``) costs about
    ``n_layers / L`` of the full encoder's ``L`` layers per token, and keeps the
    pretrained embeddings and lower layers to fine-tune from.

    Parameters
    ----------
    folder : path-like
        Where to save it (created).
    n_layers : int
        Layers to keep, from 1 to the encoder's count.
    model_name_or_path : str, default=None
        The encoder; None is sktext's default (the bundled all-MiniLM-L6-v2).

    Returns
    -------
    folder : str
        The saved folder, for ``model_name_or_path``.
    """
    from transformers import AutoConfig

    from .pretrained import DEFAULT_MODEL, load_pretrained, resolve_model_path

    name = DEFAULT_MODEL if model_name_or_path is None else model_name_or_path
    total = getattr(AutoConfig.from_pretrained(resolve_model_path(name)), "num_hidden_layers", None)
    if isinstance(n_layers, bool) or not isinstance(n_layers, numbers.Integral) or not 1 <= n_layers <= (total or 1):
        raise ValueError(f"n_layers must be an int from 1 to the encoder's {total} layers; got {n_layers!r}.")
    tokenizer, encoder = load_pretrained(name)
    layers = _layer_list(encoder)
    del layers[n_layers:]
    encoder.config.num_hidden_layers = n_layers
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _layer_list(encoder):
    """The ``ModuleList`` of an encoder's transformer layers (BERT-like, DistilBERT, ...)."""
    import torch

    candidates = [
        module
        for name, module in encoder.named_modules()
        if isinstance(module, torch.nn.ModuleList) and len(module) == encoder.config.num_hidden_layers
    ]
    if not candidates:
        raise ValueError(
            f"Could not find the {encoder.config.num_hidden_layers} layers of {type(encoder).__name__}; "
            "shallow_encoder handles encoders that keep their layers in one ModuleList (BERT-like)."
        )
    return candidates[0]
