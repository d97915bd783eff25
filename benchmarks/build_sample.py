"""Build the small debtags sample bundled with sktext.

Reads the full debtags data (``train.jsonl.gz``, ``test.jsonl.gz``; see the
README beside them) and writes ``sktext/data/debtags_sample.jsonl.gz``:

1. The kept labels are the ``N_LABELS`` most frequent labels of the full train
   file (ties broken by label name).
2. Every record's labels are restricted to the kept labels. Records left with no
   kept label are dropped (a multi-label demo wants every record to carry at
   least one target; in the full data most of the dropped ones are tagged only
   with rare facets).
3. ``N_TRAIN`` records are drawn without replacement from the remaining train
   records and ``N_TEST`` from the remaining test records, with
   ``random.Random(SEED)``. The full data is split by source package, so no test
   source (and no test text) is in the train part of the sample either.
4. Records are written in the drawn (random) order, train first, one JSON object
   per line: ``{"id", "source", "text", "labels", "split"}``, labels sorted,
   texts unchanged (about 0.7 MB compressed).

The output is deterministic: same inputs, same bytes (gzip mtime 0, no file
name in the gzip header).

Usage::

    python benchmarks/build_sample.py                 # data in ../shared/data/debtags
    python benchmarks/build_sample.py /path/to/debtags --out sktext/data/debtags_sample.jsonl.gz
"""

from __future__ import annotations

import argparse
import collections
import gzip
import io
import json
import random
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "debtags"
DEFAULT_OUT = REPO_ROOT / "sktext" / "data" / "debtags_sample.jsonl.gz"

N_LABELS = 40
N_TRAIN = 3000
N_TEST = 1000
SEED = 20261122
MAX_BYTES = 1_500_000


def read_records(path: Path) -> list[dict]:
    """Read one gzipped JSON-lines file.

    Parameters
    ----------
    path : Path
        A ``*.jsonl.gz`` file.

    Returns
    -------
    records : list of dict
        One dict per line, in file order.
    """
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def most_frequent_labels(records: list[dict], n_labels: int) -> list[str]:
    """The ``n_labels`` most frequent labels, sorted by name.

    Parameters
    ----------
    records : list of dict
        Records with a ``labels`` list.
    n_labels : int
        How many labels to keep.

    Returns
    -------
    label_names : list of str
        Sorted alphabetically. Ties in frequency are broken by label name.
    """
    counts = collections.Counter(label for record in records for label in record["labels"])
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return sorted(label for label, _ in ranked[:n_labels])


def draw(records: list[dict], kept: set[str], n_records: int, split: str, rng: random.Random) -> list[dict]:
    """Restrict labels to ``kept``, drop unlabeled records and draw ``n_records``.

    Parameters
    ----------
    records : list of dict
        Full-data records of one split, in file order (sorted by id).
    kept : set of str
        Labels to keep.
    n_records : int
        How many records to draw (all of them if fewer remain).
    split : {"train", "test"}
        Written into each output record.
    rng : random.Random
        Seeded generator; consumed once per call.

    Returns
    -------
    sample : list of dict
        Records ``{"id", "source", "text", "labels", "split"}`` in drawn order.
    """
    candidates = []
    for record in records:
        labels = sorted(label for label in record["labels"] if label in kept)
        if labels:
            candidates.append(
                {
                    "id": record["id"],
                    "source": record["source"],
                    "text": record["text"],
                    "labels": labels,
                    "split": split,
                }
            )
    return rng.sample(candidates, min(n_records, len(candidates)))


def write_jsonl_gz(records: list[dict], path: Path) -> int:
    """Write records as deterministic gzipped JSON lines; return the size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as handle:
        for record in records:
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            handle.write(line.encode("utf-8") + b"\n")
    path.write_bytes(buffer.getvalue())
    return len(buffer.getvalue())


def build_sample(
    data_dir: Path,
    out: Path,
    *,
    n_labels: int = N_LABELS,
    n_train: int = N_TRAIN,
    n_test: int = N_TEST,
    seed: int = SEED,
) -> dict:
    """Build the sample file and return a summary.

    Parameters
    ----------
    data_dir : Path
        Folder holding the full ``train.jsonl.gz`` and ``test.jsonl.gz``.
    out : Path
        Output ``.jsonl.gz`` file.
    n_labels, n_train, n_test, seed : int
        See the module docstring.

    Returns
    -------
    summary : dict
        Counts and the output size.
    """
    missing = [name for name in ("train.jsonl.gz", "test.jsonl.gz") if not (data_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Expected the full debtags data in {data_dir}; missing {missing}. Pass the folder as the first argument."
        )
    train = read_records(data_dir / "train.jsonl.gz")
    test = read_records(data_dir / "test.jsonl.gz")
    label_names = most_frequent_labels(train, n_labels)
    kept = set(label_names)
    rng = random.Random(seed)
    train_sample = draw(train, kept, n_train, "train", rng)
    test_sample = draw(test, kept, n_test, "test", rng)
    size = write_jsonl_gz(train_sample + test_sample, out)
    if size > MAX_BYTES:
        raise RuntimeError(f"{out} is {size:,} bytes, over the {MAX_BYTES:,} budget; lower the sample sizes.")
    train_ids = {record["id"] for record in train_sample}
    assert not train_ids & {record["id"] for record in test_sample}
    counts = collections.Counter(label for record in train_sample for label in record["labels"])
    return {
        "out": str(out),
        "bytes": size,
        "n_labels": len(label_names),
        "n_train": len(train_sample),
        "n_test": len(test_sample),
        "train_label_cardinality": round(sum(len(r["labels"]) for r in train_sample) / len(train_sample), 3),
        "test_label_cardinality": round(sum(len(r["labels"]) for r in test_sample) / len(test_sample), 3),
        "min_label_train_count": min(counts[label] for label in label_names),
        "max_label_train_count": max(counts.values()),
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data_dir",
        nargs="?",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"folder with the full data (default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    summary = build_sample(args.data_dir, args.out)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
