"""sktext: scikit-learn multi-label text classifiers and text regressors on torch, transformers and skorch.

The public names load on first use (PEP 562), so that ``import sktext.deploy`` — the
ONNX predictor, for services without torch — imports no torch. The registries of
:mod:`sktext.registry` fill themselves on first use, whichever submodule came first.
"""

from importlib import import_module

from ._version import __version__

# Public name -> the submodule that defines it.
_EXPORTS = {
    "FocalLoss": "losses",
    "TransformerEmbedder": "embedders",
    "TransformerMultiLabelClassifier": "transformer",
    "TransformerRegressor": "transformer",
    "ULMFiTClassifier": "ulmfit",
    "ULMFiTRegressor": "ulmfit",
    "ULMFiTEmbedder": "embedders",
    "load_model": "persistence",
    "save_model": "persistence",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        try:  # a submodule not imported yet, e.g. sktext.datasets after a bare `import sktext`
            value = import_module(f".{name}", __name__)
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
