"""Reading text data files: CSV, JSON lines and plain text, gzipped or not.

One home for what the command line, ``ULMFiTClassifier(unlabeled_texts=path)``, the
bundled sample and the benchmarks read. Errors are :class:`DataFileError` (a
ValueError) with the file and line named; callers may rephrase them.

A CSV or JSONL data file is read by one reader, :func:`iter_record_chunks`, a chunk
of rows at a time (what ``sktext predict`` streams with); :func:`read_records` is that
reader with the whole file as one chunk.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "DATA_SUFFIXES",
    "DataFileError",
    "data_format",
    "iter_csv_records",
    "iter_jsonl",
    "iter_record_chunks",
    "open_text",
    "read_csv_records",
    "read_jsonl",
    "read_lines",
    "read_records",
]

DATA_SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz")  # the data files of the command line
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


def iter_csv_records(handle: IO[str], path: str | os.PathLike) -> tuple[list[str], Iterator[dict]]:
    """The header of an open CSV file and an iterator over its rows (dicts of strings)."""
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    reader = csv.DictReader(handle)
    if not reader.fieldnames:
        raise DataFileError(f"{path} is empty: a CSV file needs a header row naming its columns.")
    return list(reader.fieldnames), iter(reader)


def read_csv_records(handle: IO[str], path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """Rows (dicts of strings) and header of an open CSV file."""
    columns, rows = iter_csv_records(handle, path)
    return list(rows), columns


def data_format(path: str | os.PathLike) -> str:
    """``"csv"`` or ``"jsonl"``, from a data file's name (one of :data:`DATA_SUFFIXES`).

    Raises
    ------
    DataFileError
        For any other name.
    """
    name = Path(path).name.lower()
    for suffix in DATA_SUFFIXES:
        if name.endswith(suffix):
            return suffix.split(".")[1]
    raise DataFileError(f"{path} is neither CSV nor JSONL: data files must end in {', '.join(DATA_SUFFIXES)}.")


def iter_record_chunks(
    path: str | os.PathLike, chunk_size: int | None = None
) -> Iterator[tuple[list[dict], list[str]]]:
    """Rows of a CSV or JSONL file (gzipped or not), ``chunk_size`` at a time.

    The file stays open, and only one chunk is in memory, while the caller iterates.

    Parameters
    ----------
    path : str or path-like
        A ``.csv``, ``.csv.gz``, ``.jsonl`` or ``.jsonl.gz`` file.
    chunk_size : int or None, default=None
        Rows per chunk (the last may be shorter); None reads the whole file as one chunk.

    Yields
    ------
    records : list of dict
        The chunk's rows; CSV values are strings.
    columns : list of str
        The CSV header, or the keys of the JSONL objects read so far, in order of
        appearance.

    Raises
    ------
    DataFileError
        If the file is missing, of another format, unreadable, or holds no rows (raised
        before the first chunk).
    """
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise DataFileError(f"The chunk size must be a positive integer or None, got {chunk_size!r}.")
    path = Path(path)
    kind = data_format(path)
    if not path.is_file():
        raise DataFileError(f"No such data file: {path}.")
    try:
        with open_text(path, "r") as handle:
            if kind == "csv":
                header, rows = iter_csv_records(handle, path)
                columns = dict.fromkeys(header)
            else:
                rows, columns = (record for _, record in iter_jsonl(handle, path)), {}
            empty = True
            while chunk := list(itertools.islice(rows, chunk_size)):
                if kind == "jsonl":
                    for record in chunk:
                        columns.update(dict.fromkeys(record))
                empty = False
                yield chunk, list(columns)
            if empty:
                raise DataFileError(f"{path} holds no rows.")
    except (UnicodeDecodeError, gzip.BadGzipFile, csv.Error, EOFError) as error:
        raise DataFileError(f"Cannot read {path}: {error}.") from None


def read_records(path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """Every row of a CSV or JSONL file (gzipped or not) and its column names.

    :func:`iter_record_chunks` with the whole file as one chunk.

    Returns
    -------
    records : list of dict
        One dict per row; CSV values are strings.
    columns : list of str
        The CSV header, or every key met in the JSONL objects, in order of appearance.
    """
    ((records, columns),) = iter_record_chunks(path)
    return records, columns
