"""Write predictions as they come, all or nothing: what ``sktext predict`` streams into.

``sktext predict`` reads its input a chunk at a time through
:func:`sktext.io.iter_record_chunks`, predicts each chunk and appends its rows
through :class:`PredictionWriter`, so what it holds at once is one chunk of texts,
their token ids and their probabilities, however long the file. The writer fills a
temporary file beside the output and renames it into place once every row is
written: a run that fails half way (an unreadable row 3,000,001) leaves no
half-written predictions file, and an earlier file of that name survives.

A leaf module, like :mod:`sktext.cli`, which is its only user inside sktext: the
estimators never import it.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from .io import data_format, open_text

__all__ = ["PredictionWriter"]


class PredictionWriter:
    """Append prediction rows to a CSV or JSONL file (gzipped or not), published on success.

    Rows go to a temporary file in the output's folder; leaving the ``with`` block
    normally renames it to ``path`` (atomic on one filesystem), leaving it through an
    exception deletes it.

    Parameters
    ----------
    path : str or path-like
        The predictions file: ``.csv``, ``.jsonl``, optionally ``.gz``.
    flatten : callable, optional
        For CSV: turns a row (a dict that may hold lists and dicts) into flat columns.
        The header is the first flattened row's keys.

    Attributes
    ----------
    n_rows : int
        Rows written so far.
    """

    def __init__(self, path: str | os.PathLike, flatten=None) -> None:
        self.path = Path(path)
        self.flatten = flatten
        self.n_rows = 0
        self._format = data_format(self.path)
        self._partial = self.path.with_name(f".partial-{os.getpid()}-{self.path.name}")
        self._handle = None
        self._csv_writer = None

    def __enter__(self) -> PredictionWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open_text(self._partial, "w")
        return self

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append ``rows`` (dicts of JSON values)."""
        if self._format == "jsonl":
            self._handle.writelines(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in rows)
        else:
            flat = [row if self.flatten is None else self.flatten(row) for row in rows]
            if not flat:
                return
            if self._csv_writer is None:
                self._csv_writer = csv.DictWriter(self._handle, fieldnames=list(flat[0]))
                self._csv_writer.writeheader()
            self._csv_writer.writerows(flat)
        self.n_rows += len(rows)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._handle.close()
        if kind is None:
            os.replace(self._partial, self.path)
        else:
            self._partial.unlink(missing_ok=True)
