"""Model cards: the ``README.md`` of a model folder, written from its manifest.

:func:`model_card` turns the manifest that :func:`sktext.persistence.save_model` writes
(``sktext.json``: class, parameters, labels, thresholds, fitted attributes, history,
versions) into markdown: what the model is, its labels with their support and
thresholds, what it was trained on, its validation scores, its parameters and the
versions that saved it, and how to load it. Nothing is measured here and nothing is
fetched: what the manifest does not hold the card calls "not recorded".

``save_model`` writes the card into the folder with the rest of the save (atomically,
before the manifest); loading never reads it, so folders without one load as before.

A leaf, like :mod:`sktext.persistence`, its only caller: the core never imports it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .thresholds import MIN_THRESHOLD_POSITIVES

__all__ = ["CARD_FILE", "model_card"]

#: The card's file name in a model folder.
CARD_FILE = "README.md"
#: Above this many labels the label table is folded away under its summary.
MANY_LABELS = 30
#: Above this many labels the table lists only those with the most training positives
#: (a row is about 35 bytes: 20,000 labels would make a card of 700 kB).
MAX_CARD_LABELS = 500
#: Parameter values longer than this are cut in the card (the manifest has them whole).
MAX_VALUE_CHARS = 120
_NOT_RECORDED = "not recorded"
_ARRAY_TAG = "__ndarray__"
_EXAMPLE_TEXT = "an example text"
_FAMILIES = {
    "transformer": "transformer: a pretrained Hugging Face encoder with a linear head",
    "ulmfit": "ULMFiT: an AWD-LSTM encoder (from its language-model stage) with a concat-pooling head",
}
_TRANSFORMER_EMBEDDER = "transformer: a pretrained Hugging Face encoder, pooled into one vector per text"
_ULMFIT_EMBEDDER = "ULMFiT: an AWD-LSTM language model's encoder, concat-pooled (last, max and mean outputs)"


def model_card(manifest: Mapping[str, Any], *, name: str, folder: str | Path | None = None) -> str:
    """The markdown model card of a model folder, from its manifest.

    Parameters
    ----------
    manifest : mapping
        What ``save_model`` writes to ``sktext.json`` (an estimator's, an embedder's
        or a language model's).
    name : str
        The folder's name, used in the title and in the loading code (which opens
        the folder from its parent directory; the author's full path is not shared).
    folder : str or path-like, optional
        Where the folder's other files are (the transformer encoder's
        ``config.json`` is read from there, for the architecture line).

    Returns
    -------
    card : str
        Markdown with a YAML header (``library_name: sktext``), as the Hugging Face
        Hub reads model cards.
    """
    if manifest.get("kind") == "language_model":
        sections = _language_model_sections(manifest, name)
        tags = ["sktext", "language-model", "awd-lstm"]
    else:
        card = _EstimatorCard(manifest, name, None if folder is None else Path(folder))
        sections, tags = card.sections(), card.tags()
    header = ["---", "library_name: sktext", "tags:", *(f"- {tag}" for tag in tags), "---", ""]
    return "\n".join(header + [f"# {name}", ""] + [line for section in sections for line in (*section, "")])


# -- formatting -------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A manifest value with its arrays as lists."""
    if isinstance(value, Mapping):
        if _ARRAY_TAG in value:
            return _plain(value[_ARRAY_TAG])
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _cell(text: Any) -> str:
    """``text`` as markdown that stays inside its table cell (pipes escaped, no HTML)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _inline_code(text: Any) -> str:
    """``text`` as inline code that stays inside its table cell (code shows ``<`` and ``\\`` as they are)."""
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _code(value: Any) -> str:
    """A JSON value as inline code, cut at :data:`MAX_VALUE_CHARS`."""
    text = json.dumps(_plain(value), ensure_ascii=False)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    return _inline_code(text)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _number(value: Any, digits: int = 4) -> str:
    return _NOT_RECORDED if value is None else f"{value:.{digits}f}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _split_sizes(history: Sequence[Mapping]) -> tuple[int, int] | None:
    """Texts in the training and validation parts: the batch sizes of the first epoch, summed."""
    batches = history[0].get("batches") if history else None
    if not batches:
        return None
    train = sum(int(batch.get("train_batch_size", 0)) for batch in batches)
    valid = sum(int(batch.get("valid_batch_size", 0)) for batch in batches)
    return train, valid


def _best_validation_loss(history: Sequence[Mapping]) -> tuple[float, int] | None:
    losses = [
        (entry["valid_loss"], entry.get("epoch", i + 1)) for i, entry in enumerate(history) if "valid_loss" in entry
    ]
    losses = [(loss, epoch) for loss, epoch in losses if isinstance(loss, (int, float))]
    return min(losses) if losses else None


def _best_validation_f1(history: Sequence[Mapping]) -> tuple[float, int] | None:
    """The highest ``valid_f1`` (``monitor="valid_f1"``) and its epoch, the first where it ties."""
    scores = [(entry["valid_f1"], entry.get("epoch", i + 1)) for i, entry in enumerate(history) if "valid_f1" in entry]
    scores = [(score, epoch) for score, epoch in scores if isinstance(score, (int, float))]
    return max(scores, key=lambda pair: (pair[0], -pair[1])) if scores else None


# -- estimators and embedders -----------------------------------------------------------------
class _EstimatorCard:
    """The card of a classifier, regressor or embedder, one method per section."""

    def __init__(self, manifest: Mapping[str, Any], name: str, folder: Path | None) -> None:
        self.manifest = manifest
        self.name = name
        self.folder = folder
        self.estimator = str(manifest.get("estimator"))
        self.params = _plain(manifest.get("params") or {})
        self.attributes = _plain(manifest.get("attributes") or {})
        self.history = self.attributes.get("history_") or []
        self.metadata = manifest.get("metadata") or {}
        self.is_embedder = manifest.get("n_outputs") is None
        self.is_regressor = not self.is_embedder and "target_mean_" in self.attributes
        self.is_classifier = not (self.is_embedder or self.is_regressor)
        self.family = "transformer" if "model_name_or_path" in self.params else "ulmfit"
        self.layout = manifest.get("output_layout")
        self.thresholds = _plain(manifest.get("thresholds")) or []

    # -- what the model is -----------------------------------------------------------------
    def tags(self) -> list[str]:
        if self.is_embedder:
            task = ["feature-extraction"]
        elif self.is_regressor:
            task = ["text-regression"]
        else:
            task = ["text-classification", "multi-label-classification" if self.layout is None else "multi-output"]
        return ["sktext", self.family, *task]

    def sections(self) -> list[list[str]]:
        sections = [self._summary(), self._model()]
        if self.is_classifier:
            sections.append(self._labels())
        elif self.is_regressor:
            sections.append(self._targets())
        sections += [self._training(), self._validation(), self._parameters(), self._versions()]
        if self.metadata:
            sections.append(
                ["## Metadata", "", "```json", json.dumps(self.metadata, indent=2, ensure_ascii=False), "```"]
            )
        sections.append(self._how_to_load())
        return sections

    def _task(self) -> str:
        n_outputs = self.manifest.get("n_outputs")
        if self.is_embedder:
            width = self.attributes.get("n_features_out_")
            shape = f"(n_samples, {width})" if width is not None else "(n_samples, n_features)"
            return f"text embedding: `transform` returns one float vector per text, shape {shape}"
        if self.is_regressor:
            shape = "(n_samples,)" if self.attributes.get("one_dimensional_") else f"(n_samples, {n_outputs})"
            bounds = self.params.get("output_range")
            within = "" if bounds is None else f", always within `output_range` {_code(bounds)}"
            return (
                f"regression of {_plural(n_outputs, 'target')}: `predict` returns shape {shape}, "
                f"in the targets' own units{within}"
            )
        if self.layout is None:
            return (
                f"multi-label classification of {_plural(n_outputs, 'label')}, one sigmoid output each: "
                f"`predict` returns a 0/1 matrix of shape (n_samples, {n_outputs}), columns in the order of "
                "the labels below; `predict_proba` each label's probability"
            )
        kinds = [entry.get("kind") for entry in self.layout]
        return (
            f"multi-output classification of {_plural(len(kinds), 'target')} "
            f"({kinds.count('binary')} 0/1 with a sigmoid output and a threshold, "
            f"{kinds.count('categorical')} categorical with a softmax group): `predict` returns one "
            f"class per target, shape (n_samples, {len(kinds)}); `predict_proba` a list of one "
            "(n_samples, n_classes) array per target"
        )

    def _summary(self) -> list[str]:
        n_outputs = self.manifest.get("n_outputs")
        if self.is_embedder:
            what = "an embedder (texts to vectors)"
        elif self.is_regressor:
            what = f"a text regressor of {_plural(n_outputs, 'target')}"
        elif self.layout is None:
            what = f"a multi-label text classifier of {_plural(n_outputs, 'label')}"
        else:
            what = f"a multi-output text classifier of {_plural(n_outputs, 'target')}"
        return [
            f"`{self.estimator}`, {what}, saved by sktext {self.manifest.get('sktext_version', _NOT_RECORDED)}. "
            "This card was generated from the folder's `sktext.json`; what that file does not "
            "hold is marked *not recorded*."
        ]

    def _base_model(self) -> str:
        if self.family == "transformer":
            base = _inline_code(self.params.get("model_name_or_path"))
            config = self._encoder_config()
            if config:
                parts = [str(config.get("model_type", "")), *self._sizes(config)]
                base += f" ({', '.join(part for part in parts if part)})"
            return base
        source = self.params.get("language_model")
        dropped = (self.manifest.get("dropped_params") or {}).get("language_model")
        sizes = self.attributes.get("architecture_")
        shape = "" if not sizes else f" (AWD-LSTM: {', '.join(f'{key} {value}' for key, value in sizes.items())})"
        if dropped:
            return f"a language model given as an object, {_NOT_RECORDED}{shape}"
        if source is None:
            return f"none: the language model was learned from scratch in the language-model stage{shape}"
        return f"{_code(source)}{shape}"

    @staticmethod
    def _sizes(config: Mapping) -> list[str]:
        sizes = []
        if "num_hidden_layers" in config:
            sizes.append(_plural(config["num_hidden_layers"], "layer"))
        if "hidden_size" in config:
            sizes.append(f"hidden size {config['hidden_size']}")
        if "vocab_size" in config:
            sizes.append(f"vocabulary {config['vocab_size']}")
        return sizes

    def _encoder_config(self) -> dict | None:
        files = (self.manifest.get("module") or {}).get("files") or {}
        if self.folder is None or "encoder_config" not in files:
            return None
        try:
            config = json.loads((self.folder / files["encoder_config"] / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return config if isinstance(config, dict) else None

    def _model(self) -> list[str]:
        family = self._family_description()
        module = self.manifest.get("module") or {}
        rows = [
            ("class", f"`{self.estimator}`"),
            ("model family", family),
            ("base model", self._base_model()),
            ("task", self._task()),
        ]
        if self.is_classifier:
            lexical = (
                "a TF-IDF linear model per 0/1 label, blended with the network's logits"
                if self.manifest.get("lexical")
                else "none"
            )
            rows.append(("lexical part", lexical))
        rows.append(
            (
                "weights",
                f"`{module.get('class', _NOT_RECORDED)}`, {module.get('dtype', _NOT_RECORDED)}, in `model.safetensors`",
            )
        )
        return ["## Model", "", *_table(["", ""], rows)]

    def _family_description(self) -> str:
        if self.is_embedder:
            return _TRANSFORMER_EMBEDDER if self.family == "transformer" else _ULMFIT_EMBEDDER
        if self.family == "transformer" and "trainable_layers_" in self.attributes:
            return f"{_FAMILIES[self.family]} ({self._what_trained()})"
        return _FAMILIES[self.family]

    def _what_trained(self) -> str:
        """Which encoder layers the fit trained (``trainable_layers_``), and at what length."""
        layers = self.attributes.get("trainable_layers_")
        if layers == 0:
            trained = "the encoder frozen, the head alone trained"
        elif layers is None:
            trained = "every encoder layer and the embeddings trained"
        else:
            trained = f"the top {layers} encoder layer{'s' if layers != 1 else ''} trained, the rest frozen"
        length = self.attributes.get("max_length_")
        return trained + (f"; texts cut at {length} tokens" if length else "")

    # -- labels and targets ------------------------------------------------------------------
    def _labels(self) -> list[str]:
        support = self.attributes.get("label_support_")
        scores = self.attributes.get("validation_scores_") or {}
        valid_support = scores.get("support")
        rows, positives, binary_index = [], [], 0
        for index, (target, kind, classes) in enumerate(self._label_entries()):
            row = [index, _cell(target)]
            if self.layout is not None:
                row += [kind, ", ".join(_cell(value) for value in classes)]
            if kind == "binary":
                row += [
                    _at(support, binary_index),
                    _at(valid_support, binary_index),
                    _number(_at(self.thresholds, binary_index, None), 3),
                ]
                positives.append(_at(support, binary_index, None))
                binary_index += 1
            else:
                row += [_NOT_RECORDED, _NOT_RECORDED, "argmax"]
                positives.append(None)
            rows.append(row)
        header = ["#", "label" if self.layout is None else "target"]
        if self.layout is not None:
            header += ["kind", "classes"]
        header += ["training positives", "validation positives", "threshold"]
        lines = ["## Labels", "", *self._label_notes(support, valid_support), ""]
        what = "labels" if self.layout is None else "targets"
        summary = f"All {len(rows)} {what}"
        if len(rows) > MAX_CARD_LABELS:
            rows, summary, note = _most_positive_rows(rows, positives, what)
            lines += [note, ""]
        table = _table(header, rows)
        if len(rows) > MANY_LABELS:
            table = ["<details>", f"<summary>{summary}</summary>", "", *table, "", "</details>"]
        return lines + table

    def _label_entries(self) -> list[tuple[Any, str, list]]:
        if self.layout is None:
            classes = (self.manifest.get("classes") or {}).get("values") or []
            return [(label, "binary", []) for label in classes]
        entries = []
        for entry in self.layout:
            name = ((entry.get("name") or {}).get("values") or [None])[0]
            entries.append((name, entry.get("kind"), (entry.get("classes") or {}).get("values") or []))
        return entries

    def _label_notes(self, support, valid_support) -> list[str]:
        n_fit = self._n_fit()
        notes = [
            f"*Training positives*: texts with the label among the {'' if n_fit is None else f'{n_fit} '}"
            "texts given to `fit` (training and validation parts together). "
            "*Validation positives*: those in the validation split the thresholds were chosen on. "
            "`predict` marks a label where its probability is at least its threshold."
        ]
        if support is None:
            notes.append(f"Training positives: {_NOT_RECORDED} (saved by an sktext that did not keep them).")
        if self.attributes.get("soft_targets_"):
            notes.append(
                "Fitted on soft targets (each label's probability): the network learned the "
                "probabilities; the positives counted here, the validation split and the thresholds "
                "read their hard view, a probability of at least 0.5."
            )
        threshold = self.params.get("threshold")
        if threshold == "auto":
            notes.append(
                "The thresholds were tuned on the validation split: each label's F1-best threshold, "
                "pulled towards the one threshold best for micro-F1 over all labels; a label with fewer "
                f"than {MIN_THRESHOLD_POSITIVES} validation positives gets that global threshold."
            )
        elif threshold is not None:
            notes.append(f"The thresholds are fixed by the `threshold` parameter ({_code(threshold)}), not tuned.")
        counts = [value for value in (support or []) if isinstance(value, int)]
        if len(counts) > MANY_LABELS:
            values = [value for value in self.thresholds if isinstance(value, (int, float))]
            notes.append(
                f"Training positives range from {min(counts)} to {max(counts)} (median "
                f"{statistics.median(counts):g}); thresholds from {min(values):.3f} to {max(values):.3f}."
            )
        return [" ".join(notes)]

    def _targets(self) -> list[str]:
        means = self.attributes.get("target_mean_") or []
        scales = self.attributes.get("target_scale_") or []
        rows = [(index, _number(mean), _number(scale)) for index, (mean, scale) in enumerate(zip(means, scales))]
        return [
            "## Targets",
            "",
            "Each target is standardised with its training mean and standard deviation for the "
            "loss; `predict` maps back to the original units.",
            "",
            *_table(["target", "training mean", "training standard deviation"], rows),
        ]

    # -- training and validation -----------------------------------------------------------
    def _n_fit(self) -> int | None:
        sizes = _split_sizes(self.history)
        return None if sizes is None else sum(sizes)

    def _training(self) -> list[str]:
        lines = ["## Training", ""]
        if self.is_embedder and self.family == "transformer":
            return lines + ["`fit` loads the pretrained encoder as it is: nothing was trained."]
        if not self.is_embedder:
            sizes = _split_sizes(self.history)
            if sizes is None:
                lines.append(f"- Training size: {_NOT_RECORDED}.")
            else:
                held_out = f", {sizes[1]} held out for validation" if sizes[1] else ", no validation split"
                lines.append(f"- Training size: {sizes[0]} texts trained on{held_out} (from the training history).")
            lines.append(self._epochs())
            precision = self.attributes.get("precision_")
            if precision is not None:
                lines.append("- Trained with bf16 autocast." if precision == "bf16" else f"- Trained in {precision}.")
        if self.family == "ulmfit":
            lines.append(self._language_model_stage())
        if "n_samples" in (self.metadata.get("cli") or {}):
            cli = self.metadata["cli"]
            lines.append(
                f"- Fitted by `sktext fit` on {cli['n_samples']} rows of {_inline_code(cli.get('data_file'))}."
            )
        return lines

    def _epochs(self) -> str:
        if not self.history:
            return f"- Epochs: {_NOT_RECORDED}."
        planned = self.attributes.get("n_epochs_")
        line = f"- Epochs: {len(self.history)}"
        if planned is not None:
            line += f" of {planned}"
            if len(self.history) < planned:
                line += " (early stopping ended the run)"
        line += f" (`max_epochs={self.params.get('max_epochs')}`)"
        best = _best_validation_loss(self.history)
        last = self.history[-1].get("train_loss")
        if isinstance(last, (int, float)):
            line += f"; last training loss {last:.4g}"
        if best is not None:
            line += f"; best validation loss {best[0]:.4g}, at epoch {best[1]}"
        best_f1 = _best_validation_f1(self.history)
        if best_f1 is not None:
            line += f"; best validation micro-F1 (blended, early stopping's measure) {best_f1[0]:.4g}, at epoch {best_f1[1]}"
        return line + "."

    def _language_model_stage(self) -> str:
        history = self.attributes.get("language_model_history_")
        n_texts = self.attributes.get("n_language_model_texts_")
        if history is None:
            return f"- Language-model stage: {_NOT_RECORDED}."
        if not history:
            return "- Language-model stage: none (`lm_epochs=0`): the encoder starts from the given language model."
        line = f"- Language-model stage: {_plural(len(history), 'epoch')}"
        if n_texts is not None:
            line += f" on {n_texts} texts"
        loss = history[-1].get("train_cross_entropy", history[-1].get("train_loss"))
        if isinstance(loss, (int, float)):
            line += f"; last training cross-entropy {loss:.4g}"
        return line + "."

    def _validation(self) -> list[str]:
        lines = ["## Validation scores", ""]
        if self.is_embedder:
            return lines + ["None: an embedder has no task to score."]
        if self.params.get("validation_fraction") is None:
            return lines + ["None: the fit had no validation split (`validation_fraction=None`)."]
        if self.is_regressor:
            best = _best_validation_loss(self.history)
            loss = self.params.get("loss")
            text = (
                f"The only validation metric recorded is the validation loss ({loss} on the standardised "
                f"targets), per epoch in the history: best {best[0]:.4g}, at epoch {best[1]}. "
                if best is not None
                else f"Validation loss: {_NOT_RECORDED}. "
            )
            return lines + [text + f"R² on the validation split: {_NOT_RECORDED}."]
        scores = self.attributes.get("validation_scores_")
        if not scores:
            reason = (
                "the thresholds were fixed and no lexical part was blended, so the fit made no "
                "predictions on the validation split"
                if self.params.get("threshold") != "auto" and not self.manifest.get("lexical")
                else "saved by an sktext that did not keep them"
            )
            return lines + [f"Micro and macro F1: {_NOT_RECORDED} ({reason})."]
        tuned = self.params.get("threshold") == "auto"
        caveat = (
            "The thresholds were tuned on these same texts"
            if tuned
            else "The thresholds are fixed, but the lexical blend was fitted on these same texts"
        )
        return lines + [
            *_table(
                ["metric", "value"],
                [("micro F1", _number(scores.get("f1_micro"))), ("macro F1", _number(scores.get("f1_macro")))],
            ),
            "",
            f"On the {scores.get('n_samples', _NOT_RECORDED)} texts of the validation split, at the decision "
            "thresholds the fit set, over the 0/1 labels (macro F1 counts a label with neither a "
            f"positive nor a prediction as 0). {caveat}, so these scores are optimistic: score a "
            "separate test set (`sktext evaluate`) for an estimate of how the model does.",
        ]

    # -- parameters, versions, loading -----------------------------------------------------
    def _parameters(self) -> list[str]:
        rows = [(f"`{name}`", _code(value)) for name, value in sorted(self.params.items())]
        for name, reason in sorted((self.manifest.get("dropped_params") or {}).items()):
            rows.append((f"`{name}`", f"not saved: {_cell(reason)}"))
        return [
            "## Parameters",
            "",
            "As `get_params()` returned them, but a local path is kept as its last part only and "
            "settings of the fitting machine (`checkpoint_dir`) are left out.",
            "",
            *_table(["parameter", "value"], rows),
        ]

    def _versions(self) -> list[str]:
        return _versions_section(self.manifest)

    def _how_to_load(self) -> list[str]:
        folder, text = _literal(self.name), _literal(_EXAMPLE_TEXT)
        if self.is_embedder:
            call = f"vectors = model.transform([{text}])  # one row per text"
        elif self.is_regressor:
            call = f"print(model.predict([{text}]))"
        else:
            call = f"print(model.predict([{text}]))\nprint(model.predict_proba([{text}]))"
        lines = [
            "## How to load",
            "",
            f"From the folder that holds `{self.name}`:",
            "",
            "```python",
            "from sktext import load_model",
            "",
            f"# any sktext model folder; {self.estimator}.load({folder}) also checks the class",
            f"model = load_model({folder})",
            call,
            "```",
            "",
            "Loading runs no pickled code: the folder holds JSON, safetensors and tokenizer files only.",
        ]
        if not self.is_embedder:
            text_column = (self.metadata.get("cli") or {}).get("text_column") or "text"
            lines += [
                "",
                f"From the command line, for a CSV or JSONL file with a {_inline_code(text_column)} column:",
                "",
                "```bash",
                f"sktext predict {self.name} texts.jsonl --out predictions.jsonl"
                + (" --proba" if self.is_classifier else ""),
                "```",
            ]
        return lines


def _most_positive_rows(rows: list[list], positives: Sequence[Any], what: str) -> tuple[list[list], str, str]:
    """The :data:`MAX_CARD_LABELS` rows of the most training positives, the table's summary and a note.

    Most positives first, ties in the model's order (the ``#`` column keeps each
    label's index); without recorded positives, the first rows in the model's order.
    """
    counts = [value if isinstance(value, int) else -1 for value in positives]
    known = any(value >= 0 for value in counts)
    order = sorted(range(len(rows)), key=lambda index: (-counts[index], index)) if known else range(len(rows))
    kept = [rows[index] for index in list(order)[:MAX_CARD_LABELS]]
    chosen = (
        f"the {len(kept)} {what} with the most training positives"
        if known
        else f"the first {len(kept)} {what} in the model's order"
    )
    note = (
        f"The table lists {chosen}{', most first' if known else ' (training positives not recorded)'}; "
        f"the other {len(rows) - len(kept)} of the {len(rows)} {what} are left out of this card. "
        "`sktext.json` in this folder holds them all: the names (`classes`, or `output_layout`), "
        "the thresholds (`thresholds`) and the training positives (`attributes.label_support_`)."
    )
    return kept, f"{chosen[0].upper()}{chosen[1:]}, of {len(rows)}", note


def _literal(text: str) -> str:
    """``text`` as a Python string literal in double quotes."""
    return json.dumps(text, ensure_ascii=False)


def _at(values: Sequence | None, index: int, missing: Any = _NOT_RECORDED) -> Any:
    if values is None or index >= len(values):
        return missing
    return values[index]


def _versions_section(manifest: Mapping[str, Any]) -> list[str]:
    versions = manifest.get("versions")
    rows = [("sktext", manifest.get("sktext_version", _NOT_RECORDED))]
    if isinstance(versions, Mapping):
        rows += [(name, version or "not installed") for name, version in versions.items() if name != "sktext"]
    else:
        rows.append(("torch, transformers, scikit-learn, skorch", _NOT_RECORDED))
    return ["## Versions", "", "What saved the model.", "", *_table(["library", "version"], rows)]


# -- language models --------------------------------------------------------------------------
def _language_model_sections(manifest: Mapping[str, Any], name: str) -> list[list[str]]:
    config = manifest.get("config") or {}
    history = manifest.get("history") or []
    summary = [
        f"An sktext language model (`{manifest.get('class', 'LanguageModel')}`, an AWD-LSTM), saved "
        f"by sktext {manifest.get('sktext_version', _NOT_RECORDED)}. It generates text and is the "
        "starting point of a ULMFiT classifier. This card was generated from the folder's `sktext.json`."
    ]
    model = [
        "## Model",
        "",
        *_table(["setting", "value"], [(f"`{key}`", _code(value)) for key, value in config.items()]),
    ]
    training = ["## Training", ""]
    if history:
        last = history[-1]
        loss = last.get("train_cross_entropy", last.get("train_loss"))
        detail = f"; last training cross-entropy {loss:.4g}" if isinstance(loss, (int, float)) else ""
        training.append(f"{_plural(len(history), 'epoch')} recorded{detail}. Training size: {_NOT_RECORDED}.")
    else:
        training.append(f"Training history: {_NOT_RECORDED}.")
    load = [
        "## How to load",
        "",
        f"From the folder that holds `{name}`:",
        "",
        "```python",
        "from sktext.language_model import LanguageModel",
        "",
        f"language_model = LanguageModel.load({_literal(name)})",
        'print(language_model.generate("the", n_words=10, random_state=0))',
        "```",
        "",
        f"A classifier starts from it with `ULMFiTClassifier(language_model={_literal(name)})`.",
    ]
    return [summary, model, training, _versions_section(manifest), load]
