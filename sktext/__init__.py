"""sktext: scikit-learn multi-label text classifiers and text regressors on torch, transformers and skorch."""

from ._version import __version__
from .embedders import TransformerEmbedder, ULMFiTEmbedder
from .losses import FocalLoss
from .persistence import load_model, save_model
from .transformer import TransformerMultiLabelClassifier, TransformerRegressor
from .ulmfit import ULMFiTClassifier, ULMFiTRegressor

__all__ = [
    "FocalLoss",
    "TransformerEmbedder",
    "TransformerMultiLabelClassifier",
    "TransformerRegressor",
    "ULMFiTClassifier",
    "ULMFiTRegressor",
    "ULMFiTEmbedder",
    "load_model",
    "save_model",
    "__version__",
]
