"""The task base of the sktext classifiers: labels, thresholds and ``predict``.

:class:`MultiLabelTextClassifierBase` adds to :class:`~sktext.base.TextEstimatorBase`
what a classifier needs: the targets and their output layout (a multi-label matrix is
the layout whose every target is binary; categorical targets get softmax groups, see
:mod:`sktext.targets`), the stratified validation split, positive-class weights, the
output-bias prior, threshold tuning, and ``predict`` / ``predict_proba`` /
``decision_function`` / ``score``. One path serves both cases; only the shape of
``classes_`` and ``predict_proba`` differs at the edge (an array for multi-label, a
list per target for multi-output, as scikit-learn's ``MultiOutputClassifier``).
"""

from __future__ import annotations

import numbers
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import expit, softmax
from sklearn.base import ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from .base import TextEstimatorBase
from .distributed import available_cores, world
from .lexical import TfidfLinearClassifier, apply_blend, fit_blend
from .losses import LOSSES, criterion_for_layout
from .reliability import fit_transaction
from .splits import MultilabelValidSplit
from .targets import BINARY, check_targets
from .thresholds import (
    MIN_THRESHOLD_POSITIVES,
    apply_thresholds,
    apply_thresholds_in_chunks,
    f1_at_thresholds,
    prediction_chunks,
    tune_thresholds,
)
from .validation import (
    FRACTION,
    NON_NEGATIVE_FLOAT,
    Options,
    Types,
    check_n_labels,
    check_sample_weight,
    check_texts,
    column_sums,
    dense_rows,
    hard_view,
    is_soft,
)

__all__ = ["MultiLabelTextClassifierBase"]

MAX_POS_WEIGHT = 100.0
#: (text, label) pairs from which the default lexical part fits its labels in worker
#: processes: below, their start (seconds) outweighs the work (the bundled sample's
#: 3,000 texts x 40 labels stay in one process; debtags' 3,000 x 326 go parallel).
LEXICAL_PARALLEL_MIN_PAIRS = 500_000
#: The default lexical part's SVMs are cost-sensitive (``class_weight="balanced"``) below
#: this many texts and weigh every text alike from there on (see ``_lexical_model``).
LEXICAL_BALANCED_MAX_TEXTS = 10_000
#: ``lexical_refit="auto"`` refits the lexical part on all texts below this many texts.
#: On a dev split of debtags train (frozen default encoder) the second fit added +0.003 /
#: +0.005 micro / macro F1 at 1,000 texts, +0.003 / +0.009 at 3,000, +0.007 / +0.009 at
#: 10,000 and +0.001 / -0.000 at 22,607, where it doubles the lexical part's cost
#: (``benchmarks/lexical_refit.py``); the limit lies between the last two sizes.
LEXICAL_REFIT_MAX_TEXTS = 20_000


class MultiLabelTextClassifierBase(ClassifierMixin, TextEstimatorBase):
    """Base class of the sktext multi-label text classifiers (not for direct use)."""

    _parameter_constraints: dict = {
        "threshold": [Options(["auto"]), FRACTION, "array-like"],
        "pos_weight": [None, Options(["balanced"]), "array-like"],
        "loss": [
            Options(
                LOSSES,
                hint="'bce' is binary cross-entropy, 'focal' the focal loss and 'asymmetric' the asymmetric loss, both for imbalanced labels",
            )
        ],
        "focal_gamma": [NON_NEGATIVE_FLOAT.with_hint("0 gives plain cross-entropy, 2.0 is the usual choice")],
        "lexical": [
            Options(["tfidf"]),
            None,
            Types(TfidfLinearClassifier, description="a sktext.lexical.TfidfLinearClassifier"),
        ],
        "lexical_refit": ["boolean", Options(["auto"])],
        "monitor": [
            Options(
                ["valid_loss", "valid_f1"],
                hint="'valid_f1' stops on the validation part's blended, threshold-tuned micro-F1",
            )
        ],
    }

    def _criterion(self) -> tuple[type[torch.nn.Module], dict]:
        return criterion_for_layout(self.output_layout_, self.loss, focal_gamma=self.focal_gamma)

    def _valid_split(self, seed: int) -> MultilabelValidSplit:
        return MultilabelValidSplit(self.validation_fraction, seed, self.output_layout_)

    def _n_logits(self, Y: np.ndarray) -> int:
        return self.output_layout_.n_logits

    def _check_related_params(self) -> None:
        super()._check_related_params()
        if isinstance(self.threshold, str) and self.validation_fraction is None:
            raise ValueError(
                "threshold='auto' tunes thresholds on the validation split, but "
                "validation_fraction=None; set validation_fraction (e.g. 0.1) or pass "
                "a float threshold such as 0.5."
            )

    # -- fit ------------------------------------------------------------------------
    @fit_transaction
    def fit(self, X, y, sample_weight=None):
        """Fit the classifier on texts and a multi-label matrix, or several categorical targets.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)
            The texts.
        y : {array-like, sparse matrix} of shape (n_samples, n_labels) or DataFrame
            0/1 label indicators, as ``MultiLabelBinarizer`` returns (dense or
            ``sparse_output=True``); a DataFrame's column names become ``classes_``.
            Or soft targets: per-label probabilities, floats in [0, 1] with at least
            one strictly between (detected from the values; ``soft_targets_`` says so).
            The loss learns them as they are (binary cross-entropy, or the focal
            loss; not ``loss="asymmetric"``), the output bias starts at their column
            means and ``pos_weight="balanced"`` counts expected positives; the
            validation split, the thresholds, ``label_support_`` and ``score`` use
            their hard view, ``y >= 0.5``.
            Or several categorical targets (``multiclass-multioutput``): a 2-D array
            of int or str class labels, one softmax head per column; or a DataFrame
            mixing 0/1 columns (a sigmoid head each) and categorical columns (object,
            category or string dtype, or ints beyond 0/1: a softmax head each). See
            :mod:`sktext.targets`.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each text: it multiplies the text's loss (a weight
            of 2 counts the text twice), its share of the label priors the output
            layer starts from and of ``pos_weight="balanced"``, its count in the F1
            the thresholds are tuned for, and its weight in the lexical part and the
            blend. With metadata routing on, request it with
            ``set_fit_request(sample_weight=True)`` to have ``Pipeline`` or
            ``GridSearchCV`` pass it.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        texts = check_texts(X)
        Y, classes, layout = check_targets(y, len(texts))
        weights = check_sample_weight(sample_weight, len(texts))
        self._validate_params()
        soft = is_soft(Y)
        hard = hard_view(Y) if soft else Y  # what needs a yes or no reads the hard view
        if soft and self.loss == "asymmetric":
            raise ValueError(
                "loss='asymmetric' is made for 0/1 targets (it shifts the probability of every "
                "negative), and y holds soft targets (probabilities). Use loss='bce' (the default) "
                "or loss='focal' for them."
            )
        binary = layout.binary_targets
        columns = layout.binary_columns  # the same, as a view where it can be
        names = [target.name for target in layout.targets]
        thresholds = self._fixed_thresholds(len(binary))
        pos_weight = self._resolve_pos_weight(Y[:, columns], weights)  # soft: expected positives
        support = column_sums(hard[:, columns])
        empty = binary[support == 0]
        if len(empty) and soft:
            warnings.warn(
                f"{len(empty)} label(s) never reach probability 0.5 in y (e.g. {str(names[empty[0]])!r}): "
                "their hard view has no positive, so no threshold can be tuned for them and predict "
                "will not give them (predict_proba still ranks them). If the column is meant as "
                "probabilities, that is expected; if it holds percentages, divide them by 100.",
                UserWarning,
                stacklevel=3,
            )
        elif len(empty):
            warnings.warn(
                f"{len(empty)} label(s) have no positive example in y (e.g. "
                f"{str(names[empty[0]])!r}); the model will learn to predict them as absent.",
                UserWarning,
                stacklevel=3,
            )
        for attribute in ("thresholds_", "lexical_", "blend_weights_", "blend_centre_", "validation_scores_"):
            self.__dict__.pop(attribute, None)
        self.output_layout_ = layout
        self.sparse_output_ = bool(sp.issparse(y) and layout.is_multilabel)
        self.soft_targets_ = soft
        self._criterion()  # a loss these targets cannot take fails here, before any training
        self.classes_ = classes
        self.n_outputs_ = Y.shape[1]
        self.label_support_ = support.astype(np.int64)
        self.n_samples_fit_ = len(texts)
        criterion_kwargs = (
            {} if pos_weight is None else {"pos_weight": torch.as_tensor(pos_weight, dtype=torch.float32)}
        )
        lexical = self._lexical_model(len(texts), len(binary)) if len(binary) else None
        refit = self._lexical_refits(len(texts))
        job = _LexicalJob(lexical, texts, Y[:, columns], weights, refit) if lexical is not None else None
        score = self._early_stopping_score(Y, hard, weights, thresholds, job)
        self._validation_f1 = score
        try:
            dataset, split = self._fit_module(
                texts, Y, criterion_kwargs, weights, before_training=self._lexical_starter(job, score)
            )
            if split is not None and (thresholds is None or lexical is not None):
                train, valid = split.indices(dataset.y)
                with self._fit_stage("validation_logits"):
                    logits = self._logits(dataset.subset(valid))[:, layout.binary_logit_columns]
                if job is not None:
                    logits = self._fit_lexical(job, train, valid, logits)
                valid_hard = dense_rows(hard, valid)[:, columns]  # the validation part, dense
                if thresholds is None:
                    with self._fit_stage("thresholds"):
                        thresholds = _tuned_thresholds(
                            valid_hard, expit(logits), None if weights is None else weights[valid]
                        )
                if len(binary):
                    self.validation_scores_ = f1_at_thresholds(valid_hard, expit(logits), thresholds)
        finally:
            del self._validation_f1
            if job is not None:
                job.cancel()
        if thresholds is None:
            thresholds = np.zeros(0)
        self.thresholds_ = thresholds
        self._release_cuda_cache()
        return self

    # -- the lexical part ---------------------------------------------------------------
    def _lexical_model(self, n_texts: int, n_labels: int) -> TfidfLinearClassifier | None:
        """The unfitted lexical model the ``lexical`` parameter asks for, or None.

        The default (``"tfidf"``) fits its labels in worker processes on every core
        this process may use, shared out between the processes of a data-parallel fit
        (which all fit it, on one machine under ``torchrun``); in this process when the
        fit has fewer than :data:`LEXICAL_PARALLEL_MIN_PAIRS` (text, label) pairs,
        where starting the workers would cost more than it saves. A model passed in
        keeps its own ``n_jobs``. Its SVMs are cost-sensitive (``class_weight="balanced"``)
        below :data:`LEXICAL_BALANCED_MAX_TEXTS` texts and weigh every text alike from
        there on. On a dev split of debtags train that holds out whole source packages
        (as the test split does), balanced SVMs gave more macro-F1 at 1,000 texts; with
        many texts they cost liblinear tens of times more passes (all of debtags: 250 s
        of the lexical part against 70 s on 2 cores) for no more F1 on a random dev
        split (``benchmarks/lexical_refit.py``).
        """
        if self.lexical is None or self.validation_fraction is None:
            return None
        if isinstance(self.lexical, str):  # "tfidf"
            parallel = n_texts * n_labels >= LEXICAL_PARALLEL_MIN_PAIRS
            n_jobs = max(1, available_cores() // world()[1]) if parallel else 1
            class_weight = "balanced" if n_texts < LEXICAL_BALANCED_MAX_TEXTS else None
            return TfidfLinearClassifier(class_weight=class_weight, random_state=0, n_jobs=n_jobs)
        return clone(self.lexical)

    def _plan(self, dataset, split) -> str:
        plan = super()._plan(dataset, split)
        n_labels = len(self.output_layout_.binary_targets)
        lexical = self._lexical_model(len(dataset), n_labels) if n_labels else None
        if lexical is None or split is None:
            return plan
        where = "beside the network" if self._overlap_lexical() else "after the network"
        refits = self._lexical_refits(len(dataset))
        fits = "on the training part, then on all texts" if refits else "once, on the training part"
        return (
            f"{plan}\nLexical part: a TF-IDF linear model for each of {n_labels} "
            f"labels, fitted {fits}, {lexical.n_jobs or 1} at a time, {where}."
        )

    def _lexical_refits(self, n_texts: int) -> bool:
        """Whether the lexical part is fitted a second time, on all ``n_texts`` (``lexical_refit``)."""
        if self.lexical_refit == "auto":
            return n_texts < LEXICAL_REFIT_MAX_TEXTS
        return bool(self.lexical_refit)

    def _overlap_lexical(self) -> bool:
        """Whether the lexical part trains in a worker thread while the network trains.

        Where the network trains on an accelerator, the CPU cores are idle meanwhile;
        on a CPU they are the network's, and the lexical part runs after it instead.
        """
        return self.device_.type != "cpu"

    def _lexical_starter(self, job: _LexicalJob | None, score: _ValidationF1 | None = None):
        """``before_training`` for :meth:`_fit_module`: start ``job`` in a thread where it overlaps.

        Where early stopping watches the blended F1 (``score``) and the lexical part
        cannot overlap, it is fitted now, before the network: the first epoch's score
        needs its margins.
        """

        def start(split, dataset) -> None:
            if split is None:
                return
            if score is not None:
                score.bind(split.validation_order(dataset))
            if job is not None and self._overlap_lexical():
                job.start(split.indices(dataset.y)[0], n_jobs_left_for_torch=1)
            elif job is not None and score is not None:
                with self._fit_stage("lexical"):
                    job.start(split.indices(dataset.y)[0])

        return start

    # -- early stopping on F1 --------------------------------------------------------
    def _early_stopping_score(self, Y: np.ndarray, hard: np.ndarray, weights, thresholds, job) -> _ValidationF1 | None:
        """The validation score for ``monitor="valid_f1"`` (None for the validation loss)."""
        if self.monitor != "valid_f1" or self.validation_fraction is None or not self.patience:
            return None
        layout = self.output_layout_
        if not len(layout.binary_targets):
            raise ValueError(
                "monitor='valid_f1' watches the F1 of 0/1 labels, and y has none (only "
                "categorical targets); use monitor='valid_loss'."
            )
        if world()[1] > 1:
            raise ValueError(
                "monitor='valid_f1' is not available in a data-parallel fit (each process sees "
                "part of every validation batch); use monitor='valid_loss'."
            )
        columns = layout.binary_columns
        return _ValidationF1(Y[:, columns], hard[:, columns], layout.binary_logit_columns, weights, thresholds, job)

    def _validation_score(self):
        return self.__dict__.get("_validation_f1")

    def _stopping_on(self) -> str:
        if self.monitor == "valid_f1":
            return "the validation part's micro-F1 (blended, thresholds tuned)"
        return super()._stopping_on()

    def _fit_lexical(self, job: _LexicalJob, train, valid, neural_logits) -> np.ndarray:
        """Fit ``lexical_``, ``blend_weights_`` and ``blend_centre_``; return the validation part's blend.

        The lexical model learns from the network's training part; the blend weights
        come from both models' outputs on the validation part, which is also what the
        thresholds are tuned on. With ``lexical_refit`` (below 20,000 texts by default) a second lexical
        model, fitted on all the texts, is the one that predicts: a linear model
        profits from every example (its margins on the validation part are in-sample,
        too confident to tune on, hence the first model). Both fits run in a worker
        thread while the network trains where :meth:`_overlap_lexical`, else now. Where
        the texts have no words, a warning says so and the network's logits come back
        as they were.
        """
        with self._fit_stage("lexical"):
            try:
                if not job.started:
                    job.start(train)
                part, full = job.result()
            except ValueError as error:
                warnings.warn(f"The lexical part is left out: {error}", UserWarning, stacklevel=4)
                return neural_logits
            margins = part.decision_function([job.texts[i] for i in valid])
        with self._fit_stage("blend"):
            valid_weight = None if job.sample_weight is None else job.sample_weight[valid]
            self.blend_weights_, self.blend_centre_ = fit_blend(
                neural_logits, margins, dense_rows(job.Y, valid), sample_weight=valid_weight
            )
        self.lexical_ = full
        return apply_blend(self.blend_weights_, self.blend_centre_, neural_logits, margins)

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

    def _resolve_pos_weight(self, Y: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray | None:
        if self.pos_weight is None:
            return None
        weights = np.ones(Y.shape[0]) if sample_weight is None else sample_weight
        positives = column_sums(Y, weights).astype(np.float32)
        if isinstance(self.pos_weight, str):
            negatives = np.float32(weights.sum()) - positives
            weight = np.divide(negatives, positives, out=np.ones_like(positives), where=positives > 0)
            return np.clip(weight, 1.0, MAX_POS_WEIGHT)
        weight = np.asarray(self.pos_weight, dtype=np.float32)
        if weight.shape != (Y.shape[1],) or not (np.isfinite(weight) & (weight > 0)).all():
            raise ValueError(
                f"pos_weight as an array must hold one positive weight per label, i.e. shape "
                f"({Y.shape[1]},), each finite; got {weight.tolist() if weight.size <= 10 else f'shape {weight.shape}'}."
            )
        return weight

    def _init_output_bias(self, module: torch.nn.Module, Y: np.ndarray, sample_weight: np.ndarray | None) -> None:
        """Start every logit at its training prior (smoothed): log-odds, or log-priors per softmax group."""
        bias = self.output_layout_.bias_prior(Y, sample_weight)
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
        texts = check_texts(X)
        lexical = self.__dict__.get("lexical_")
        if lexical is None:
            return self._logits(self._encode(texts))
        # The lexical margins (scikit-learn's TF-IDF transform in Python, then one sparse
        # product) in a worker thread: the tokenizer (Rust) and the network's kernels
        # release the GIL, so the two overlap, on an accelerator and on the CPU alike
        # (5,693 debtags texts, tiny encoder, 2 cores: 1.71 s against 2.01 s in turn;
        # from one text to 64 the same within noise; benchmarks/fit_cost.py proxy).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sktext-lexical") as pool:
            margins = pool.submit(lexical.decision_function, texts)
            logits = self._logits(self._encode(texts))
            margins = margins.result()
        columns = self.output_layout_.binary_logit_columns
        logits[:, columns] = apply_blend(self.blend_weights_, self.blend_centre_, logits[:, columns], margins)
        return logits

    def predict_proba(self, X, top_k: int | None = None) -> np.ndarray | sp.csr_matrix | list[np.ndarray]:
        """Probabilities: of each label (multi-label), or of each class of each target.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)
        top_k : int, default=None
            Multi-label only: keep each text's ``top_k`` most probable labels, in a
            sparse matrix built a chunk of texts at a time, so that no dense
            (n_samples, n_labels) array is made (for many labels; it passes through
            ``Pipeline.predict_proba(X, top_k=...)``). See also :meth:`predict_top_k`.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_labels), or list of n_outputs_ ndarrays
            Multi-label: each label's sigmoid, independently (rows need not sum to
            one); with ``top_k``, a CSR matrix of that shape holding ``top_k``
            probabilities per row. Multi-output (scikit-learn's convention, as
            ``MultiOutputClassifier``): one array of shape (n_samples, n_classes) per
            target, in the order of ``classes_[j]`` (for a 0/1 target: ``[P(0), P(1)]``).
        """
        if top_k is not None:
            indices, scores = self.predict_top_k(X, k=top_k)
            n, k = indices.shape
            return sp.csr_matrix(
                (scores.ravel(), indices.ravel(), np.arange(0, n * k + 1, k)), shape=(n, self.n_outputs_)
            )
        logits = self.decision_function(X)
        layout = self.output_layout_
        if layout.is_multilabel:
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
        y_pred : ndarray or scipy.sparse.csr_matrix of shape (n_samples, n_labels), or ndarray of shape (n_samples, n_outputs_)
            int64 0/1 for a multi-label fit on a dense ``y``; a CSR matrix of int8 0/1
            for a fit on a sparse ``y`` (as scikit-learn's ``OneVsRestClassifier``),
            built a chunk of texts at a time, so no dense (n_samples, n_labels) array
            is made; for a multi-output fit the original labels (int64 when every
            target's classes are ints, else object, e.g. strings).
        """
        check_is_fitted(self, "module_")
        layout = self.output_layout_
        if layout.is_multilabel and self.__dict__.get("sparse_output_", False):
            return self._predict_sparse(check_texts(X))
        logits = self.decision_function(X)
        decided = apply_thresholds(expit(logits[:, layout.binary_logit_columns]), self.thresholds_)
        if layout.is_multilabel:
            return decided
        columns, binary_index = [], 0
        for target in layout.targets:
            if target.kind == BINARY:
                columns.append(target.classes[decided[:, binary_index]])
                binary_index += 1
            else:
                columns.append(target.classes[logits[:, target.start : target.stop].argmax(axis=1)])
        if all(np.asarray(column).dtype.kind in "iub" for column in columns):
            return np.column_stack(columns).astype(np.int64)
        predicted = np.empty((len(columns[0]), len(columns)), dtype=object)
        for j, column in enumerate(columns):
            predicted[:, j] = column
        return predicted

    def _chunks(self, texts: list[str]):
        """``texts`` in chunks (:func:`~sktext.thresholds.prediction_chunks`), with the multi-label probabilities of each."""
        for start, stop in prediction_chunks(len(texts), self.n_outputs_):
            chunk = texts[start:stop]
            yield start, expit(self.decision_function(chunk))

    def _predict_sparse(self, texts: list[str]) -> sp.csr_matrix:
        return apply_thresholds_in_chunks(
            (proba for _, proba in self._chunks(texts)), self.thresholds_, self.n_outputs_
        )

    def predict_top_k(self, X, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most probable labels of each text, without the dense probability matrix.

        What ranking metrics (precision@k, nDCG@k) and tag suggestions need: the texts
        are predicted a chunk at a time and only each text's ``k`` best labels are
        kept, so memory grows with ``n_samples * k``, not ``n_samples * n_labels``.
        Thresholds play no part; compare the probabilities with ``thresholds_`` to
        keep only the labels ``predict`` would give. Through a ``Pipeline``, ask
        ``predict_proba(X, top_k=k)``, which returns the same as a sparse matrix.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)
        k : int, default=5
            Labels per text, at most ``n_outputs_`` (more is an error).

        Returns
        -------
        indices : ndarray of shape (n_samples, k), dtype=int64
            Column indices of the labels, most probable first (``classes_[indices]``
            gives their names).
        proba : ndarray of shape (n_samples, k)
            Their probabilities, in the same order.
        """
        check_is_fitted(self, "module_")
        if not self.output_layout_.is_multilabel:
            raise ValueError(
                "predict_top_k ranks the labels of a multi-label fit; this model was fitted on "
                "categorical targets: use predict_proba, whose columns rank each target's classes."
            )
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= self.n_outputs_:
            raise ValueError(f"k (top_k) must be an int from 1 to n_outputs_ ({self.n_outputs_}); got {k!r}.")
        texts = check_texts(X)
        indices = np.empty((len(texts), k), dtype=np.int64)
        scores = np.empty((len(texts), k))
        for start, proba in self._chunks(texts):
            best = np.argpartition(-proba, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(proba, best, axis=1), axis=1, kind="stable")
            best = np.take_along_axis(best, order, axis=1)
            indices[start : start + len(proba)] = best
            scores[start : start + len(proba)] = np.take_along_axis(proba, best, axis=1)
        return indices, scores

    def score(self, X, y, sample_weight=None) -> float:
        """Subset accuracy (every label, or every target, of a sample right), as scikit-learn's classifiers.

        Soft targets (probabilities) are scored on their hard view, ``y >= 0.5``.

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
        if sp.issparse(y):
            y = y.toarray()
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        if is_soft(y):
            y = hard_view(y, np.int64)  # soft targets are scored on their hard view
        y = y.astype(object)
        predicted = self.predict(X)
        predicted = (predicted.toarray() if sp.issparse(predicted) else predicted).astype(object)
        correct = np.all(predicted == y, axis=1)
        return float(np.average(correct, weights=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags


def _tuned_thresholds(hard: np.ndarray, proba: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """The classifiers' thresholds for the validation part: after training and, for early stopping, each epoch."""
    thresholds, _ = tune_thresholds(hard, proba, min_positives=MIN_THRESHOLD_POSITIVES, sample_weight=weights)
    return thresholds


class _ValidationF1:
    """``score(validation_logits)`` for early stopping: the micro-F1 the fit would get there.

    As after training: the network's logits of the 0/1 labels, blended with the
    lexical part's margins (the blend fitted on these logits; the margins are the
    training part's lexical model's, computed once), thresholds tuned by the fit's rule
    (or the fixed ones), micro-F1 of the decisions. Without a lexical part, or where it
    cannot be fitted (no words), the network's logits alone.

    Parameters
    ----------
    targets, hard : ndarray of shape (n_texts, n_labels)
        The 0/1 labels' targets (soft ones too: the blend learns them, as after
        training) and their hard view (the thresholds and the F1 read it), for every
        text of the fit.
    columns : ndarray or slice
        The 0/1 labels' columns among the network's logits (a slice where they are all).
    weights : ndarray of shape (n_texts,) or None
    thresholds : ndarray of shape (n_labels,) or None
        Fixed thresholds; None tunes them.
    job : _LexicalJob or None
    """

    def __init__(
        self, targets: np.ndarray, hard: np.ndarray, columns, weights, thresholds, job: _LexicalJob | None
    ) -> None:
        self.targets, self.hard, self.columns = targets, hard, columns
        self.weights, self.thresholds, self.job = weights, thresholds, job
        self.order: np.ndarray | None = None
        self._margins: np.ndarray | None | bool = False  # False: not computed yet

    def bind(self, order: np.ndarray) -> None:
        """The validation texts, in the order the validation part holds them."""
        self.order = order

    def _lexical_margins(self) -> np.ndarray | None:
        if self._margins is False:
            self._margins = None
            if self.job is not None and self.job.started:
                try:
                    part, _ = self.job.result()
                except ValueError:  # no words: the fit warns when it blends
                    return None
                self._margins = part.decision_function([self.job.texts[i] for i in self.order])
        return self._margins

    def __call__(self, logits: np.ndarray) -> float:
        Y = dense_rows(self.hard, self.order)
        weights = None if self.weights is None else self.weights[self.order]
        logits = np.asarray(logits, dtype=np.float64)[:, self.columns]
        margins = self._lexical_margins()
        if margins is not None:
            blend, centre = fit_blend(logits, margins, dense_rows(self.targets, self.order), sample_weight=weights)
            logits = apply_blend(blend, centre, logits, margins)
        proba = expit(logits)
        thresholds = self.thresholds
        if thresholds is None:
            thresholds = _tuned_thresholds(Y, proba, weights)
        return float(f1_at_thresholds(Y, proba, thresholds)["f1_micro"])


class _LexicalJob:
    """The lexical part's fits, now or in a worker thread: on the training part, then (``refit``) on all texts.

    Neither needs the network, so on an accelerator both run while it trains.

    Parameters
    ----------
    lexical : TfidfLinearClassifier
        Unfitted; its threshold is set to 0.5 (the deep classifier tunes its own on
        the blend), so each fit fits every label once.
    texts, Y, sample_weight
        All the fit's texts, 0/1 targets and weights (or None).
    refit : bool
        Fit a second model on all texts (the one that predicts) beside the training
        part's (whose validation margins fit the blend).
    """

    def __init__(
        self, lexical: TfidfLinearClassifier, texts: list[str], Y: np.ndarray, sample_weight, refit: bool
    ) -> None:
        self.lexical = lexical.set_params(threshold=0.5)
        self.texts, self.Y, self.sample_weight, self.refit = texts, Y, sample_weight, refit
        self.started = False
        self._stop = threading.Event()
        self._future: Future | None = None
        self._value: tuple[TfidfLinearClassifier, TfidfLinearClassifier] | None = None
        self._error: ValueError | None = None

    def _fit_on(self, counts, rows: np.ndarray | None = None) -> TfidfLinearClassifier:
        """A lexical model fitted on all the texts, or on their ``rows`` (the label matrix read in place)."""
        return clone(self.lexical)._fit(
            self.texts, self.Y, self.sample_weight, stop=self._stop, counts=counts, rows=rows
        )

    def _fit(self, train: np.ndarray) -> tuple[TfidfLinearClassifier, TfidfLinearClassifier]:
        counts = self.lexical._term_counts(self.texts) if self.refit else None  # both fits' terms counted once
        part = self._fit_on(None if counts is None else counts.rows(train), rows=train)
        return part, (self._fit_on(counts) if self.refit else part)

    def start(self, train: np.ndarray, *, n_jobs_left_for_torch: int | None = None) -> None:
        """Fit (on the rows ``train``, then all): in a worker thread when ``n_jobs_left_for_torch`` is given, else here.

        In a thread the default lexical model keeps that many cores free (the one
        that feeds the accelerator).
        """
        self.started = True
        if n_jobs_left_for_torch is None:
            try:
                self._value = self._fit(train)
            except ValueError as error:  # texts without words: raised again by result(), as from a thread
                self._error = error
            return
        if self.lexical.n_jobs is not None and self.lexical.n_jobs > 1:
            self.lexical.set_params(n_jobs=max(1, self.lexical.n_jobs - n_jobs_left_for_torch))
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sktext-lexical")
        self._future = executor.submit(self._fit, train)
        executor.shutdown(wait=False)

    def result(self) -> tuple[TfidfLinearClassifier, TfidfLinearClassifier]:
        """``(fitted on the training part, the one that predicts)`` (waits for the thread; raises its exception)."""
        if self._future is not None:
            return self._future.result()
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> None:
        """Have a thread still fitting stop at its next label (the fit it served has ended)."""
        self._stop.set()
