"""sktext: scikit-learn multi-label text classifiers built on torch, transformers and skorch."""

from .transformer import TransformerMultiLabelClassifier
from .ulmfit import ULMFiTClassifier

__version__ = "0.1.0"
__all__ = ["TransformerMultiLabelClassifier", "ULMFiTClassifier", "__version__"]
