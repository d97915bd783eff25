"""Reading text data files: CSV, JSON lines and plain text, gzipped or not.

One home for what the command line, ``ULMFiTClassifier(unlabeled_texts=path)``, the
bundled sample and the benchmarks read. Errors are :class:`DataFileError` (a
ValueError) with the file and line named; callers may rephrase them.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "DataFileError",
    "iter_jsonl",
    "open_text",
    "read_csv_records",
    "read_jsonl",
    "read_lines",
]

_CSV_FIELD_LIMIT = 2**31 - 1  # texts longer than csv's default 128 KiB field limit


class DataFileError(ValueError):
    """A data file that cannot be read as its name says."""


def open_text(path: str | os.PathLike, mode: str = "r") -> IO[str]:
    """Open a text file for reading or writing, gzipped when its name ends in ``.gz``.

    UTF-8, with universal newlines left to the csv module (``newline=""``); reading
    a plain file tolerates a spreadsheet's byte-order mark.
    """
    path = Path(path)
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8", newline="")
    encoding = "utf-8-sig" if mode == "r" else "utf-8"
    return open(path, mode, encoding=encoding, newline="")


def iter_jsonl(lines: Iterable[str], path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of JSON-lines text.

    Raises
    ------
    DataFileError
        For a line that is not JSON, or not a JSON object.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFileError(f"Line {number} of {path} is not valid JSON ({error.msg}).") from None
        if not isinstance(record, dict):
            raise DataFileError(
                f"Line {number} of {path} is a JSON {type(record).__name__}; each line must be an "
                'object such as {"text": "...", "labels": ["a", "b"]}.'
            )
        yield number, record


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` (or ``.jsonl.gz``) file, one per non-blank line."""
    with open_text(path) as handle:
        return [record for _, record in iter_jsonl(handle, path)]


def read_lines(path: str | os.PathLike) -> list[str]:
    """The non-blank lines of a text file, without their line ends."""
    with open_text(path) as handle:
        return [line.rstrip("\r\n") for line in handle if line.strip()]


def read_csv_records(handle: IO[str], path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """Rows (dicts of strings) and header of an open CSV file."""
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    reader = csv.DictReader(handle)
    if not reader.fieldnames:
        raise DataFileError(f"{path} is empty: a CSV file needs a header row naming its columns.")
    return list(reader), list(reader.fieldnames)
