"""sktext: scikit-learn multi-label text classifiers built on torch, transformers and skorch."""

from .transformer import TransformerMultiLabelClassifier

__version__ = "0.1.0"
__all__ = ["TransformerMultiLabelClassifier", "__version__"]
