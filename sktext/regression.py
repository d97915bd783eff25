"""The base of the sktext text regressors: several continuous targets at once.

:class:`TextRegressorBase` adds to :class:`~sktext.base.TextEstimatorBase` what a
regressor needs: checking continuous targets, standardising them, the optional
bounded output (``output_range``), the MSE / Huber loss, a plain shuffled validation
split (no stratification), ``predict`` and ``score`` (R², as every scikit-learn
regressor). The model comes from the same mixins as the classifiers'
(:class:`~sktext.transformer.TransformerModelMixin`,
:class:`~sktext.ulmfit.ULMFiTModelMixin`): the head's linear layer has one output
per target.

How targets are scaled
----------------------
Each target column is standardised internally with the training mean and standard
deviation (``target_mean_``, ``target_scale_``; a constant column gets scale 1), so
every target weighs the same in the loss, Huber's ``delta`` of 1 is one standard
deviation, and the head starts at the mean (its bias is set to it). Predictions are
mapped back to the original units. With ``output_range=(low, high)`` the prediction
is ``low + (high - low) * sigmoid(output)`` — it can never leave the range — and the
loss is still computed on the standardised scale; the head's bias starts where the
prediction is the training mean.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted

from .base import TextEstimatorBase
from .losses import REGRESSION_LOSSES, RegressionLoss, bounded_output
from .reliability import fit_transaction
from .splits import ShuffleValidSplit
from .validation import Options, Types, check_n_labels, check_regression_targets, check_sample_weight, check_texts

__all__ = ["TextRegressorBase"]

# Where the scaled sigmoid starts, at most this close to either bound.
_BIAS_MARGIN = 1e-3


class TextRegressorBase(RegressorMixin, TextEstimatorBase):
    """Base class of the sktext text regressors (not for direct use).

    Subclasses add a model mixin and an ``__init__`` with, besides the model's
    parameters, ``output_range``, ``loss``, ``validation_fraction``, ``patience``
    and the common training parameters.
    """

    def _criterion(self) -> tuple[type[torch.nn.Module], dict]:
        return RegressionLoss, {"kind": self.loss}

    def _valid_split(self, seed: int) -> ShuffleValidSplit:
        return ShuffleValidSplit(self.validation_fraction, seed)

    _parameter_constraints: dict = {
        "loss": [
            Options(
                REGRESSION_LOSSES,
                hint="'mse' is mean squared error, 'huber' the Huber loss, less swayed by outliers",
            )
        ],
        "output_range": [None, Types(tuple, list, description="a pair (low, high)")],
    }

    def _check_related_params(self) -> None:
        super()._check_related_params()
        self._output_bounds()

    def _output_bounds(self) -> tuple[float, float] | None:
        """``output_range`` checked, as ``(low, high)`` floats, or None."""
        if self.output_range is None:
            return None
        bounds = self.output_range
        valid = (
            isinstance(bounds, (tuple, list))
            and len(bounds) == 2
            and all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in bounds)
            and all(np.isfinite(bounds))
            and bounds[0] < bounds[1]
        )
        if not valid:
            raise ValueError(
                f"output_range must be None or a pair (low, high) of finite numbers with "
                f"low < high, e.g. (1.0, 7.0); got {bounds!r}."
            )
        return float(bounds[0]), float(bounds[1])

    # -- fit ------------------------------------------------------------------------
    @fit_transaction
    def fit(self, X, y, sample_weight=None):
        """Fit the regressor on texts and one or several continuous targets.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)
            The texts.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Finite numbers (a pandas Series or DataFrame works too). ``predict``
            returns the same number of dimensions.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each text: it multiplies the text's loss (a weight
            of 2 counts the text twice) and its share of the targets' mean and scale.
            With metadata routing on, request it with
            ``set_fit_request(sample_weight=True)``.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        texts = check_texts(X)
        Y, one_dimensional = check_regression_targets(y, len(texts))
        weights = check_sample_weight(sample_weight, len(texts))
        self._validate_params()
        bounds = self._output_bounds()
        if bounds is not None:
            low, high = bounds
            outside = (Y < low) | (Y > high)
            if outside.any():
                value = Y[outside][0]
                raise ValueError(
                    f"output_range=({low}, {high}) bounds the predictions, but y holds "
                    f"{value!r} outside it; widen output_range or set it to None."
                )
        mean = np.average(Y, axis=0, weights=weights)
        scale = np.sqrt(np.average((Y - mean) ** 2, axis=0, weights=weights))
        scale[scale == 0] = 1.0
        self.target_mean_ = mean
        self.target_scale_ = scale
        self.n_outputs_ = Y.shape[1]
        self.one_dimensional_ = one_dimensional
        standardised = ((Y - mean) / scale).astype(np.float32)
        criterion_kwargs = {}
        limits = self._standardised_bounds()
        if limits is not None:
            criterion_kwargs = {"low": limits[0], "high": limits[1]}
        self._fit_module(texts, standardised, criterion_kwargs, weights)
        self._release_cuda_cache()
        return self

    def _standardised_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``output_range`` in standardised units, one (low, high) per target, or None."""
        bounds = self._output_bounds()
        if bounds is None:
            return None
        low = (bounds[0] - self.target_mean_) / self.target_scale_
        high = (bounds[1] - self.target_mean_) / self.target_scale_
        return (torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32))

    def _init_output_bias(self, module: torch.nn.Module, Y: np.ndarray, sample_weight: np.ndarray | None) -> None:
        """Start the prediction at the training mean of each target."""
        bias = np.zeros(Y.shape[1])
        limits = self._standardised_bounds()
        if limits is not None:
            low, high = (limit.numpy().astype(np.float64) for limit in limits)
            share = np.clip(-low / (high - low), _BIAS_MARGIN, 1 - _BIAS_MARGIN)
            bias = np.log(share / (1 - share))
        with torch.no_grad():
            module.output_layer.bias.copy_(torch.as_tensor(bias))

    # -- predict --------------------------------------------------------------------
    def predict(self, X) -> np.ndarray:
        """Predicted targets, in their original units.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets), dtype float64
            1-D when ``y`` was 1-D in ``fit``; inside ``output_range`` when it is set.
        """
        check_is_fitted(self, "module_")
        outputs = torch.as_tensor(self._logits(self._encode(check_texts(X))))
        limits = self._standardised_bounds()
        standardised = bounded_output(outputs, *(limits or (None, None))).numpy()
        predicted = standardised.astype(np.float64) * self.target_scale_ + self.target_mean_
        bounds = self._output_bounds()
        if bounds is not None:  # float rounding only
            predicted = np.clip(predicted, *bounds)
        return predicted[:, 0] if self.one_dimensional_ else predicted

    def score(self, X, y, sample_weight=None) -> float:
        """R² of the predictions, averaged over the targets (as scikit-learn's regressors).

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        score : float
        """
        check_is_fitted(self, "module_")
        check_n_labels(y, self.n_outputs_, what="targets")
        return super().score(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
