"""sktext: scikit-learn multi-label text classifiers built on torch, transformers and skorch."""

from .embedders import TransformerEmbedder, ULMFiTEmbedder
from .losses import FocalLoss
from .persistence import load_model, save_model
from .transformer import TransformerMultiLabelClassifier
from .ulmfit import ULMFiTClassifier

__version__ = "0.1.0"
__all__ = [
    "FocalLoss",
    "TransformerEmbedder",
    "TransformerMultiLabelClassifier",
    "ULMFiTClassifier",
    "ULMFiTEmbedder",
    "load_model",
    "save_model",
    "__version__",
]
