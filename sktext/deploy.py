"""Predict with an exported ONNX folder: onnxruntime, tokenizers and numpy, no torch.

A leaf module: it imports nothing from sktext's core, nor torch, transformers or
scikit-learn, so a service that only predicts installs ``onnxruntime``,
``tokenizers`` and ``numpy`` (``pip install onnxruntime tokenizers numpy`` and this
package without its dependencies, or copy this one file). Export the folder with
:meth:`sktext.TransformerMultiLabelClassifier.export_onnx`.

A classifier fitted with a lexical part (``lexical_``, from ``lexical="tfidf"``)
exports it too; :class:`LexicalMargins` computes its TF-IDF features and linear
margins here, in plain Python and numpy, as scikit-learn's ``TfidfVectorizer`` with
the exported settings does (lower-casing, accent stripping, the token pattern, word
n-grams, sublinear tf, idf, the norm), and the predictor blends them with the graph's
logits by the fitted weights, as the estimator's ``decision_function`` does.

Examples
--------
>>> from sktext.deploy import OnnxPredictor
>>> predictor = OnnxPredictor("debtags-onnx")  # doctest: +SKIP
>>> predictor.predict_proba(["a text editor for the console"]).shape  # doctest: +SKIP
(1, 40)
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["LexicalMargins", "OnnxPredictor"]

# The same names sktext.export writes; kept here so that this module imports no sktext code.
_FORMAT_NAME = "sktext.onnx"
_FORMAT_VERSION = 2  # export.FORMAT_VERSION (this module imports no sktext module)
_READ_FORMAT_VERSIONS = (1, 2)
_CONFIG_FILE = "predictor.json"


def _check_texts(X) -> list[str]:
    """``X`` as a list of str, or a ValueError saying what to pass (as the estimators do)."""
    if isinstance(X, (str, bytes)):
        raise ValueError(
            "X must be a sequence of texts (a list, tuple, numpy array or pandas Series of "
            f"str), got a single {type(X).__name__}. Wrap it in a list: [text]."
        )
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas Series
        X = X.to_numpy(dtype=object)
    if isinstance(X, np.ndarray):
        if X.ndim != 1:
            raise ValueError(f"X must be 1-D: one text per sample, got an array of shape {X.shape}.")
        X = X.tolist()
    elif not isinstance(X, Sequence):
        raise ValueError(f"X must be a list, tuple, numpy array or pandas Series of str, got {type(X).__name__}.")
    texts = list(X)
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise ValueError(
            f"X must hold only str; {len(bad)} item(s) are not, the first at index {bad[0]} is "
            f"{texts[bad[0]]!r}. Replace missing texts with '' or convert them with str()."
        )
    return texts


def _decode_classes(classes: dict) -> np.ndarray:
    if classes.get("type") == "int":
        return np.asarray(classes["values"], dtype=np.int64)
    if classes.get("type") == "str":
        return np.asarray(classes["values"], dtype=object)
    raise ValueError(f"{_CONFIG_FILE} gives classes of type {classes.get('type')!r}; expected 'int' or 'str'.")


def _read_config(folder: Path) -> dict:
    path = folder / _CONFIG_FILE
    if not path.is_file():
        what = "does not exist" if not folder.exists() else f"has no {_CONFIG_FILE}"
        raise ValueError(
            f"No exported ONNX model at {str(folder)!r}: the folder {what}. Export one with "
            "TransformerMultiLabelClassifier.export_onnx(folder)."
        )
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("format") != _FORMAT_NAME:
        raise ValueError(
            f"{path} is not an sktext ONNX export (format {config.get('format')!r}, expected "
            f"{_FORMAT_NAME!r}); a folder from estimator.save() loads with sktext.load_model."
        )
    if config.get("format_version") not in _READ_FORMAT_VERSIONS:
        raise ValueError(
            f"{path} has export format {config.get('format_version')}, this sktext reads "
            f"{_FORMAT_VERSION} and older; export the model again with this sktext, or use the sktext "
            f"version that exported it ({config.get('sktext_version')})."
        )
    return config


def _strip_accents_unicode(text: str) -> str:
    """Decompose (NFKD) and drop the combining marks; ASCII text is returned as it is."""
    if text.isascii():
        return text
    return "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))


def _strip_accents_ascii(text: str) -> str:
    """Decompose (NFKD) and keep the ASCII characters only."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


_ACCENT_STRIPPERS = {None: None, "unicode": _strip_accents_unicode, "ascii": _strip_accents_ascii}


class LexicalMargins:
    """The exported lexical part: TF-IDF word n-grams and one linear model per label, in numpy.

    The weights are held by term, as a compressed sparse matrix of shape (n_terms,
    n_labels) in three plain arrays, so that many labels with sparse weights cost only
    their non-zero weights (a dense (n_terms, n_labels) array of 100,000 terms and 20,000
    labels would be 16 GiB in float64); where that saves less than half the memory (a
    few hundred labels) also as a dense array, which is faster to apply.

    Parameters
    ----------
    config : dict
        ``lexical.json``: ``vectorizer`` (the TF-IDF settings) and ``terms`` (the
        vocabulary in column order).
    idf : ndarray of shape (n_terms,)
    coef : ndarray of shape (n_labels, n_terms), or tuple of three ndarrays
        The weights: dense (exports written before the lexical model's weights were
        sparse), or the ``(data, indices, indptr)`` of their CSR matrix of shape
        (n_labels, n_terms), as ``lexical.npz`` holds them.
    intercept : ndarray of shape (n_labels,)
    """

    def __init__(self, config: dict, idf: np.ndarray, coef, intercept: np.ndarray) -> None:
        settings = config["vectorizer"]
        terms = list(config["terms"])
        n_labels, n_terms = len(intercept), len(terms)
        by_term = _weights_by_term(coef, n_labels, n_terms)
        if idf.shape != (n_terms,) or intercept.ndim != 1 or by_term is None:
            shape = np.shape(coef) if isinstance(coef, np.ndarray) else [np.shape(part) for part in coef]
            raise ValueError(
                f"The exported lexical part's arrays disagree: {n_terms} terms, idf {idf.shape}, "
                f"coef {shape}, intercept {intercept.shape}. Export the model again."
            )
        self.vocabulary = {term: column for column, term in enumerate(terms)}
        self.idf = idf.astype(np.float64)
        offsets, labels, weights = by_term
        # Dense by term where the sparse form saves less than half the memory (a few hundred
        # labels): one small matrix product per text, 7 times faster there than gathering.
        # Only one of the two forms is kept.
        self.coef_by_term = self.term_offsets = self.term_labels = self.term_weights = None
        if len(weights) * 12 > 0.5 * n_terms * n_labels * 8:
            self.coef_by_term = np.zeros((n_terms, n_labels), dtype=np.float64)
            self.coef_by_term[np.repeat(np.arange(n_terms), np.diff(offsets)), labels] = weights
        else:
            self.term_offsets, self.term_labels, self.term_weights = offsets, labels, weights
        self.intercept = intercept.astype(np.float64)
        self.lowercase = bool(settings["lowercase"])
        self.strip_accents = _ACCENT_STRIPPERS[settings["strip_accents"]]
        self.token_pattern = re.compile(settings["token_pattern"])
        self.ngram_range = tuple(int(n) for n in settings["ngram_range"])
        self.binary = bool(settings["binary"])
        self.sublinear_tf = bool(settings["sublinear_tf"])
        self.use_idf = bool(settings["use_idf"])
        self.norm = settings["norm"]

    def terms(self, text: str) -> list[str]:
        """The words and word n-grams of ``text``, before the vocabulary filters them."""
        if self.lowercase:
            text = text.lower()
        if self.strip_accents is not None:
            text = self.strip_accents(text)
        words = self.token_pattern.findall(text)
        low, high = self.ngram_range
        grams = list(words) if low == 1 else []
        for n in range(max(low, 2), min(high, len(words)) + 1):
            grams.extend(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
        return grams

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The columns and TF-IDF values of one text's non-zero features."""
        counts: dict[int, int] = {}
        for term in self.terms(text):
            column = self.vocabulary.get(term)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        if self.binary:
            values[:] = 1.0
        if self.sublinear_tf:
            values = np.log(values) + 1.0
        if self.use_idf:
            values = values * self.idf[columns]
        if self.norm is not None and len(values):
            size = np.abs(values).sum() if self.norm == "l1" else np.sqrt(np.square(values).sum())
            if size > 0:
                values = values / size
        return columns, values

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Margins of shape (n_texts, n_labels), float64."""
        n_labels = len(self.intercept)
        margins = np.tile(self.intercept, (len(texts), 1))
        for row, text in enumerate(texts):
            columns, values = self.features(text)
            if self.coef_by_term is not None:
                if len(columns):
                    margins[row] += values @ self.coef_by_term[columns]
                continue
            starts, stops = self.term_offsets[columns], self.term_offsets[columns + 1]
            counts = stops - starts
            total = int(counts.sum())
            if total:  # every weight of the text's terms, each times its term's value, summed per label
                positions = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(total)
                weights = self.term_weights[positions] * np.repeat(values, counts)
                margins[row] += np.bincount(self.term_labels[positions], weights=weights, minlength=n_labels)
        return margins

    @classmethod
    def from_folder(cls, folder: Path, files: dict) -> LexicalMargins:
        config = json.loads((folder / files["config"]).read_text(encoding="utf-8"))
        with np.load(folder / files["arrays"], allow_pickle=False) as arrays:
            if "coef" in arrays:  # exported before the weights were sparse
                coef = arrays["coef"]
            else:
                coef = (arrays["coef_data"], arrays["coef_indices"], arrays["coef_indptr"])
            return cls(config, arrays["idf"], coef, arrays["intercept"])


def _weights_by_term(coef, n_labels: int, n_terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(offsets, labels, weights)``: the non-zero weights of each term in turn, or None where ``coef`` is malformed.

    The weights of term ``t`` are ``weights[offsets[t]:offsets[t + 1]]``, those of the
    labels ``labels[offsets[t]:offsets[t + 1]]``; ``coef`` is dense of shape (n_labels,
    n_terms) or the ``(data, indices, indptr)`` of its CSR matrix.
    """
    if isinstance(coef, np.ndarray):
        if coef.shape != (n_labels, n_terms):
            return None
        terms, labels = np.nonzero(coef.T)  # term by term
        weights, counts = coef.T[terms, labels], np.bincount(terms, minlength=n_terms)
    else:
        data, indices, indptr = (np.asarray(part) for part in coef)
        if (
            indptr.shape != (n_labels + 1,)
            or data.shape != indices.shape
            or data.ndim != 1
            or indptr[0] != 0
            or indptr[-1] != len(data)
            or (np.diff(indptr) < 0).any()
            or (len(indices) and (indices.min() < 0 or indices.max() >= n_terms))
        ):
            return None
        order = np.argsort(indices, kind="stable")  # term by term, labels in order within each
        labels = np.repeat(np.arange(n_labels), np.diff(indptr))[order]
        weights, counts = data[order], np.bincount(indices, minlength=n_terms)
    offsets = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, labels.astype(np.int32), weights.astype(np.float64)


class OnnxPredictor:
    """A classifier exported by ``export_onnx``, predicting with onnxruntime alone.

    Loads the folder when constructed (it is a loaded model, not an estimator: there
    is no ``fit``). ``predict_proba`` / ``predict`` / ``decision_function`` behave as
    the exported :class:`~sktext.TransformerMultiLabelClassifier`'s: the same
    tokenizer and truncation, length-sorted batches padded to their longest text,
    one sigmoid per label, the tuned ``thresholds_``; for a classifier fitted with a
    lexical part, its TF-IDF margins blended with the logits (:class:`LexicalMargins`).

    Parameters
    ----------
    folder : str or path-like
        The exported folder (``model.onnx``, ``tokenizer.json``, ``predictor.json``).
    batch_size : int, optional
        Texts per forward pass; default: the estimator's prediction batch size.
    n_threads : int, optional
        onnxruntime's intra-op threads; default: onnxruntime's (all cores).
    providers : list of str, optional
        onnxruntime execution providers; default ``["CPUExecutionProvider"]``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_labels,)
        Label names, as the estimator's ``classes_``.
    thresholds_ : ndarray of shape (n_labels,)
        Decision threshold of each label; may be edited.
    n_outputs_ : int
        Number of labels.
    max_length_ : int
        Tokens kept per text.
    quantize_ : None or str
        ``"int8"`` for a quantized export.
    blend_weights_ : None or ndarray of shape (3,)
        ``(a, b, c)`` of ``a * (logits - blend_centre_) + b * lexical margins + c``; None
        without a lexical part.
    blend_centre_ : None or ndarray of shape (n_labels,)
    lexical_ : None or LexicalMargins
    session_ : onnxruntime.InferenceSession
    tokenizer_ : tokenizers.Tokenizer
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        batch_size: int | None = None,
        n_threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as error:
            raise ImportError(
                "OnnxPredictor needs onnxruntime and tokenizers: pip install onnxruntime tokenizers "
                '(or pip install "sktext[onnx]").'
            ) from error
        folder = Path(folder)
        config = _read_config(folder)
        self.folder = folder
        self.batch_size = int(batch_size or config.get("batch_size", 64))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        self.classes_ = _decode_classes(config["classes"])
        self.thresholds_ = np.asarray(config["thresholds"], dtype=np.float64)
        self.n_outputs_ = len(self.classes_)
        self.max_length_ = int(config["max_length"])
        self.quantize_ = config.get("quantize")
        self._pad_id = int(config["pad_id"])
        self._inputs = list(config["inputs"])
        self._output = config["output"]
        lexical = config.get("lexical")
        self.blend_weights_ = None if lexical is None else np.asarray(lexical["blend_weights"], dtype=np.float64)
        self.blend_centre_ = None if lexical is None else np.asarray(lexical["blend_centre"], dtype=np.float64)
        self.lexical_ = None if lexical is None else LexicalMargins.from_folder(folder, lexical["files"])
        self.tokenizer_ = Tokenizer.from_file(str(folder / config["files"]["tokenizer"]))
        self.tokenizer_.no_padding()
        self.tokenizer_.enable_truncation(self.max_length_, direction=config.get("truncation_side", "right"))
        options = onnxruntime.SessionOptions()
        if n_threads is not None:
            options.intra_op_num_threads = int(n_threads)
        self.session_ = onnxruntime.InferenceSession(
            str(folder / config["files"]["model"]),
            sess_options=options,
            providers=providers or ["CPUExecutionProvider"],
        )

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        """One id list per text, from one batched call into the Rust tokenizer."""
        return [encoding.ids for encoding in self.tokenizer_.encode_batch(texts)]

    def decision_function(self, X) -> np.ndarray:
        """Logits of the output layer, blended with the lexical margins where there is a lexical part.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        logits : ndarray of shape (n_samples, n_labels), dtype float32
        """
        texts = _check_texts(X)
        sequences = self._token_ids(texts)
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        order = np.argsort(-lengths, kind="stable")
        logits = np.empty((len(texts), self.n_outputs_), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(int(lengths[rows[0]]), 1)
            input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            for row, index in enumerate(rows):
                input_ids[row, : lengths[index]] = sequences[index]
            mask = (np.arange(width)[None, :] < lengths[rows][:, None]).astype(np.int64)
            feed = dict(zip(self._inputs, (input_ids, mask)))
            logits[rows] = self.session_.run([self._output], feed)[0]
        if self.lexical_ is not None:
            a, b, c = self.blend_weights_
            blended = a * (logits.astype(np.float64) - self.blend_centre_) + c
            if b:
                blended += b * self.lexical_(texts)
            logits = blended.astype(np.float32)
        return logits

    def predict_proba(self, X) -> np.ndarray:
        """Each label's probability (independent sigmoids).

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_labels), dtype float32
        """
        logits = self.decision_function(X)
        with np.errstate(over="ignore"):  # exp(-logit) = inf for a very negative logit gives 0
            return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    def predict(self, X) -> np.ndarray:
        """0/1 label indicators: ``predict_proba(X) >= thresholds_``.

        Parameters
        ----------
        X : list, tuple, ndarray or pandas Series of str of shape (n_samples,)

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_labels), dtype int64
        """
        return (self.predict_proba(X) >= self.thresholds_).astype(np.int64)

    def __repr__(self) -> str:
        return f"OnnxPredictor({str(self.folder)!r}, quantize={self.quantize_!r}, n_outputs={self.n_outputs_})"
