"""Add each debtags package's Debian ``Section`` and ``Priority``: categorical targets.

Reads the same Debian bookworm *main* amd64 ``Packages`` list the debtags data was built
from (``apt-get update`` leaves it in ``/var/lib/apt/lists``; the debtags README gives
the release) and writes ``benchmarks/data/debtags_fields.jsonl.gz``: one
``{"id", "section", "priority"}`` record per train and test package, for the mixed-head
benchmark (debtags as multi-label targets, section and priority as softmax targets).
The first stanza of a package wins, as in the debtags builder; a section with an area
prefix (``contrib/net``) keeps only the section. Deterministic output (sorted ids,
gzip mtime 0).

Usage: python benchmarks/build_fields.py [--lists /var/lib/apt/lists] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import io
import json
import subprocess
from pathlib import Path

from common import resolve_data_dir

PACKAGES = "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
OUT = Path(__file__).resolve().parent / "data" / "debtags_fields.jsonl.gz"


def read_fields(packages_path: Path) -> dict[str, tuple[str, str]]:
    """Package -> (section, priority), first stanza wins."""
    text = subprocess.run(
        ["/usr/lib/apt/apt-helper", "cat-file", str(packages_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields: dict[str, tuple[str, str]] = {}
    for block in text.split("\n\n"):
        values = {}
        for line in block.split("\n"):
            key, _, value = line.partition(": ")
            if key in ("Package", "Section", "Priority"):
                values[key] = value.strip()
        name = values.get("Package")
        if name and name not in fields:
            section = values.get("Section", "unknown").rsplit("/", 1)[-1]
            fields[name] = (section, values.get("Priority", "unknown"))
    return fields


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", default="/var/lib/apt/lists")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    packages = Path(args.lists) / PACKAGES
    if not packages.is_file():
        raise SystemExit(f"{packages} not found: run `apt-get update` on Debian bookworm first.")
    fields = read_fields(packages)
    ids = []
    for split in ("train", "test"):
        with gzip.open(resolve_data_dir(args.data_dir) / f"{split}.jsonl.gz", "rt") as handle:
            ids += [json.loads(line)["id"] for line in handle]
    missing = [i for i in ids if i not in fields]
    if missing:
        raise SystemExit(f"{len(missing)} debtags ids are not in {packages.name}, e.g. {missing[:3]}")
    OUT.parent.mkdir(exist_ok=True)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
        for package in sorted(ids):
            section, priority = fields[package]
            record = {"id": package, "section": section, "priority": priority}
            handle.write((json.dumps(record) + "\n").encode())
    OUT.write_bytes(buffer.getvalue())
    sections = collections.Counter(fields[i][0] for i in ids)
    priorities = collections.Counter(fields[i][1] for i in ids)
    print(f"wrote {OUT} ({len(ids)} records, {OUT.stat().st_size:,} bytes)")
    print(f"{len(sections)} sections, most common {sections.most_common(5)}")
    print(f"priorities {dict(priorities)}")


if __name__ == "__main__":
    main()
