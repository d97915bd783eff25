"""Export a fitted transformer classifier as an ONNX folder that deploys without torch.

A leaf module, like :mod:`sktext.persistence`: it uses the core, the core never
imports it (``TransformerMultiLabelClassifier.export_onnx`` reaches it through
:func:`sktext.registry.exporter`); ``onnx`` and ``onnxruntime`` are imported inside
the functions that need them (``pip install "sktext[onnx]"``).

:func:`export_onnx` writes a folder holding

``model.onnx``
    The encoder, the pooling and the linear head as one graph, mapping
    ``input_ids`` and ``attention_mask`` (int64, shape ``(batch, sequence)``, both
    axes dynamic) to ``logits`` (float32, shape ``(batch, n_labels)``). With
    ``quantize="int8"`` its linear layers' weights are int8 (dynamic quantization:
    activations are quantized per batch at run time, which VNNI CPUs run fast).
``tokenizer.json``
    The fitted fast tokenizer (the ``tokenizers`` library's own format).
``predictor.json``
    Labels (``classes``), decision ``thresholds``, the truncation length, the
    padding id, the lexical part's blend weights (or null), and what the folder was
    exported from.
``lexical.json``, ``lexical.npz``
    Only for a classifier fitted with a lexical part (``lexical_``, the default
    ``lexical="tfidf"``): the TF-IDF settings and vocabulary (the terms in column
    order) as JSON; ``idf``, ``intercept`` and the weights (``coef_data``,
    ``coef_indices``, ``coef_indptr``: the lexical model's ``coef_`` in CSR form,
    labels by terms) as numpy arrays (no pickle).
    The predictor computes the TF-IDF margins in numpy and blends them with the
    graph's logits as :meth:`~sktext.TransformerMultiLabelClassifier.decision_function`
    does (``a * logits + b * margins + c``), so probabilities match the estimator's.

:class:`sktext.deploy.OnnxPredictor` loads the folder and predicts with
onnxruntime, tokenizers and numpy alone.

Why ULMFiT has no exporter: its classifier reads a text in ``bptt``-token chunks,
carrying the LSTM state from one chunk to the next in a Python loop whose length
depends on the text, and its tokenizer is sktext's own Python rules. A traced graph
would freeze the number of chunks, and the tokenization would have to be rewritten
outside sktext; :func:`export_onnx` refuses it with that reason.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .registry import register_exporter
from .transformer import TransformerMultiLabelClassifier, effective_max_length, position_limit

__all__ = [
    "CONFIG_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LEXICAL_ARRAYS_FILE",
    "LEXICAL_CONFIG_FILE",
    "MODEL_FILE",
    "QUANTIZATIONS",
    "TOKENIZER_FILE",
    "export_onnx",
]

FORMAT_NAME = "sktext.onnx"
#: 2: ``lexical.npz`` holds the weights as CSR arrays (format 1: one dense ``coef``, still read).
FORMAT_VERSION = 2
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "predictor.json"
LEXICAL_CONFIG_FILE = "lexical.json"
LEXICAL_ARRAYS_FILE = "lexical.npz"
QUANTIZATIONS = (None, "int8")
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"export_onnx needs the {module!r} package, which is not installed; "
            'pip install "sktext[onnx]" (or: pip install onnx onnxruntime).'
        ) from error


def _check_exportable(estimator, quantize) -> None:
    from sklearn.utils.validation import check_is_fitted

    if type(estimator).__name__.startswith("ULMFiT"):
        raise ValueError(
            f"{type(estimator).__name__} cannot be exported to ONNX: its encoder reads each "
            "text in bptt-token chunks in a loop whose length depends on the text, and its "
            "tokenizer is sktext's Python rules, neither of which an ONNX graph captures. "
            "Pickle it, or save it with estimator.save(folder), and predict with sktext."
        )
    if not isinstance(estimator, TransformerMultiLabelClassifier):
        raise ValueError(
            f"export_onnx exports a fitted TransformerMultiLabelClassifier; got {type(estimator).__name__}."
        )
    check_is_fitted(estimator, "module_")
    layout = vars(estimator).get("output_layout_")
    if layout is not None and not layout.is_multilabel:
        raise ValueError(
            "export_onnx exports multi-label classifiers (one sigmoid per label); this one was "
            "fitted on categorical targets (output_layout_ has softmax groups), which the "
            "ONNX predictor does not decode. Save it with estimator.save(folder) instead."
        )
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"quantize must be None (float32 weights) or 'int8' (dynamic quantization of the "
            f"linear layers); got {quantize!r}."
        )


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"export_onnx needs a folder path; {str(folder)!r} is a file.")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise ValueError(
                f"The folder {str(folder)!r} is not empty; choose a new folder or pass "
                "overwrite=True to replace an exported model."
            )
        if not (folder / CONFIG_FILE).is_file():
            raise ValueError(
                f"overwrite=True replaces an exported model, but {str(folder)!r} holds other "
                f"files and no {CONFIG_FILE}; choose a new or empty folder."
            )
    folder.mkdir(parents=True, exist_ok=True)


def _example_inputs(pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two texts of different lengths, the second padded, so the traced graph keeps the mask."""
    input_ids = torch.tensor([[2, 10, 11, 12, 13, 14, 15, 3], [2, 10, 11, 3] + [pad_id] * 4])
    attention_mask = (torch.arange(8)[None, :] < torch.tensor([[8], [4]])).long()
    return input_ids, attention_mask


def _export_graph(module: torch.nn.Module, path: Path, pad_id: int, opset: int) -> None:
    """Trace ``module`` (float32, CPU, eval mode) into an ONNX file with dynamic batch and sequence."""
    dynamic_axes = {
        INPUT_NAMES[0]: {0: "batch", 1: "sequence"},
        INPUT_NAMES[1]: {0: "batch", 1: "sequence"},
        OUTPUT_NAME: {0: "batch"},
    }
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The TorchScript exporter: seconds, not a minute, and no onnxscript; its
        # deprecation notice and the tracer's notes on Python control flow are noise here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            _example_inputs(pad_id),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def _quantize_int8(source: Path, target: Path) -> None:
    _require("onnx")
    quantization = _require("onnxruntime.quantization")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantization.quantize_dynamic(str(source), str(target), weight_type=quantization.QuantType.QInt8)


def _encode_classes(classes) -> dict:
    values = list(classes)
    if all(isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) for value in values):
        return {"type": "int", "values": [int(value) for value in values]}
    if all(isinstance(value, str) for value in values):
        return {"type": "str", "values": [str(value) for value in values]}
    raise ValueError(
        "classes_ must all be int or all be str to be exported; rename the labels first, "
        "e.g. estimator.classes_ = estimator.classes_.astype(str)."
    )


#: The TfidfVectorizer settings the predictor reproduces, and the values it supports.
_LEXICAL_FIXED = {
    "analyzer": "word",
    "input": "content",
    "preprocessor": None,
    "tokenizer": None,
    "stop_words": None,
}
_LEXICAL_SETTINGS = (
    "lowercase",
    "strip_accents",
    "token_pattern",
    "ngram_range",
    "binary",
    "sublinear_tf",
    "use_idf",
    "norm",
)


def _lexical_files(estimator) -> tuple[dict, dict[str, np.ndarray]] | None:
    """The lexical part as (JSON settings and terms, arrays), or None for a classifier without one.

    Refuses, naming the setting, a vectorizer the numpy predictor would not reproduce
    (sktext's own ``TfidfLinearClassifier`` never builds one).
    """
    lexical = vars(estimator).get("lexical_")
    if lexical is None:
        return None
    state, arrays = lexical.to_state()
    options = state["vectorizer"]
    unsupported = {
        name: options.get(name) for name, value in _LEXICAL_FIXED.items() if options.get(name, value) != value
    }
    if options.get("strip_accents") not in (None, "unicode", "ascii"):
        unsupported["strip_accents"] = options.get("strip_accents")
    if options.get("norm") not in (None, "l1", "l2"):
        unsupported["norm"] = options.get("norm")
    if unsupported:
        raise ValueError(
            "export_onnx computes the lexical part's TF-IDF features in numpy and supports the "
            f"vectorizer sktext.lexical.TfidfLinearClassifier builds; this one sets {unsupported}. "
            "Refit with lexical='tfidf' (or lexical=None), or predict with sktext."
        )
    columns = {int(column): term for term, column in state["vocabulary"].items()}
    config = {
        "vectorizer": {name: options[name] for name in _LEXICAL_SETTINGS},
        "terms": [columns[column] for column in range(len(columns))],
    }
    files = {  # the weights as CSR arrays: never the dense (n_labels, n_terms) matrix
        "idf": np.asarray(arrays["idf"], dtype=np.float32),
        "coef_data": np.asarray(arrays["coef_data"], dtype=np.float32),
        "coef_indices": np.asarray(arrays["coef_indices"], dtype=np.int32),
        "coef_indptr": np.asarray(arrays["coef_indptr"], dtype=np.int64),
        "intercept": np.asarray(arrays["intercept"], dtype=np.float64),
    }
    return config, files


def export_onnx(
    estimator,
    folder: str | os.PathLike,
    *,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
) -> Path:
    """Write a fitted :class:`~sktext.TransformerMultiLabelClassifier` as an ONNX folder.

    See the module docstring for the files; load the folder with
    :class:`sktext.deploy.OnnxPredictor`, which needs neither torch nor sktext's core.

    Parameters
    ----------
    estimator : TransformerMultiLabelClassifier
        Fitted on a multi-label matrix.
    folder : str or path-like
        Created if missing; it must be empty unless ``overwrite``.
    quantize : {None, "int8"}, default=None
        None keeps float32 weights (probabilities equal the estimator's at
        ``precision="fp32"`` to about 1e-6); ``"int8"`` quantizes the linear layers'
        weights (dynamic quantization, ``onnxruntime.quantization.quantize_dynamic``):
        a file four times smaller and faster on CPUs with VNNI, at some accuracy
        (``benchmarks/inference.py`` measures it).
    opset : int, default=17
        ONNX operator set of the graph.
    overwrite : bool, default=False
        Replace a model exported to ``folder`` before.

    Returns
    -------
    folder : pathlib.Path

    Examples
    --------
    >>> clf.export_onnx("debtags-onnx", quantize="int8")  # doctest: +SKIP
    >>> from sktext.deploy import OnnxPredictor
    >>> OnnxPredictor("debtags-onnx").predict(["a text editor for the console"])  # doctest: +SKIP
    """
    _check_exportable(estimator, quantize)
    lexical = _lexical_files(estimator)
    _require("onnx")
    folder = Path(folder)
    _prepare_folder(folder, overwrite)
    tokenizer = estimator.tokenizer_
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    module = copy.deepcopy(estimator.module_).to("cpu", torch.float32).eval()
    for name in (CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, LEXICAL_CONFIG_FILE, LEXICAL_ARRAYS_FILE):
        (folder / name).unlink(missing_ok=True)
    if quantize is None:
        _export_graph(module, folder / MODEL_FILE, pad_id, opset)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            float_model = Path(scratch) / MODEL_FILE
            _export_graph(module, float_model, pad_id, opset)
            _quantize_int8(float_model, folder / MODEL_FILE)

    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.no_padding()
    backend.no_truncation()
    backend.save(str(folder / TOKENIZER_FILE))
    lexical_entry = None
    if lexical is not None:
        lexical_config, arrays = lexical
        (folder / LEXICAL_CONFIG_FILE).write_text(json.dumps(lexical_config, ensure_ascii=False), encoding="utf-8")
        np.savez(folder / LEXICAL_ARRAYS_FILE, **arrays)
        lexical_entry = {
            "blend_weights": [float(w) for w in np.asarray(estimator.blend_weights_)],
            "blend_centre": [float(c) for c in np.asarray(estimator.blend_centre_)],
            "files": {"config": LEXICAL_CONFIG_FILE, "arrays": LEXICAL_ARRAYS_FILE},
        }
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sktext_version": __version__,
        "estimator": type(estimator).__name__,
        "model_name_or_path": str(estimator.model_name_or_path),
        "classes": _encode_classes(estimator.classes_),
        "thresholds": [float(value) for value in np.asarray(estimator.thresholds_)],
        "max_length": effective_max_length(
            tokenizer,
            estimator._kept_length(),
            position_limit(estimator.module_.encoder.config),
        ),
        "truncation_side": getattr(tokenizer, "truncation_side", "right"),
        "pad_id": int(pad_id),
        "batch_size": 2 * int(estimator.batch_size),
        "quantize": quantize,
        "opset": int(opset),
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
        "files": {"model": MODEL_FILE, "tokenizer": TOKENIZER_FILE},
        "lexical": lexical_entry,
    }
    # Written last: a folder without it is an unfinished export.
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    return folder


register_exporter("onnx", export_onnx)
