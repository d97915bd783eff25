"""Build a multi-label tag dataset from npm package metadata.

The dataset maps a package description (text) to the package's normalised
``keywords`` (labels). It has thousands of labels with a long Zipf tail, which
makes it a benchmark for "many labels" classifiers.

Two steps:

``crawl``
    Discover package names with a best-first crawl over the dependency graph
    of *latest* manifests (``https://registry.npmjs.org/<name>/latest``),
    starting from a fixed seed list of widely used packages. Each round
    fetches the not-yet-fetched names that the most crawled packages depend
    on. The crawl stops after ``--target`` manifests and writes the top
    ``--top`` packages, ranked by their depended-upon count inside the crawl
    (then by name), to ``packages.tsv`` with the pinned version. This is the
    only step that depends on the live registry; its output is committed.

``build``
    Fetch every pinned ``<name>/<version>`` manifest (immutable once
    published), cache the raw responses, normalise keywords, prune rare tags,
    split by a stable hash of the package group and write ``train.jsonl.gz``,
    ``test.jsonl.gz``, ``labels.txt`` and ``stats.json``. Rebuilding from the
    same ``packages.tsv`` gives byte-identical files.

Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import datetime
import gzip
import hashlib
import http.client
import json
import random
import re
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

REGISTRY = "https://registry.npmjs.org"
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "npm_tags"
USER_AGENT = "sktext-npm-tags-dataset/1.0 (+metadata crawl for a benchmark)"

#: Seeds: widely used packages across domains, so that the crawl is not only
#: build tooling (web servers, UI, data, databases, CLI, graphics, games,
#: hardware, cloud SDKs, chat bots, home automation, ...).
SEEDS: tuple[str, ...] = (
    # web servers and APIs
    "express", "koa", "fastify", "@nestjs/core", "@hapi/hapi", "socket.io",
    "ws", "axios", "node-fetch", "graphql", "@apollo/server", "passport",
    "jsonwebtoken", "bcrypt", "nodemailer", "cors", "helmet",
    # front end
    "react", "react-dom", "vue", "@angular/core", "svelte", "preact", "next",
    "nuxt", "gatsby", "redux", "@reduxjs/toolkit", "mobx", "rxjs",
    "styled-components", "@mui/material", "antd", "bootstrap", "tailwindcss",
    "jquery", "react-native", "electron",
    # databases
    "mongoose", "sequelize", "pg", "mysql2", "redis", "ioredis", "sqlite3",
    "typeorm", "prisma", "knex",
    # general utilities, validation, dates
    "lodash", "underscore", "ramda", "immutable", "moment", "dayjs",
    "date-fns", "uuid", "zod", "joi", "ajv", "dotenv", "debug",
    # command line and logging
    "chalk", "commander", "yargs", "inquirer", "ora", "winston", "pino",
    # build and test tooling
    "webpack", "vite", "rollup", "esbuild", "@babel/core", "typescript",
    "eslint", "prettier", "jest", "mocha", "chai", "cypress", "puppeteer",
    "playwright", "postcss", "sass", "gulp", "grunt", "yeoman-generator",
    # documents, parsing, templating, static sites
    "marked", "markdown-it", "remark", "unified", "highlight.js",
    "handlebars", "ejs", "pug", "cheerio", "jsdom", "xml2js", "papaparse",
    "xlsx", "pdfkit", "hexo", "@11ty/eleventy", "vuepress",
    # graphics, charts, maps, media
    "d3", "chart.js", "three", "leaflet", "mapbox-gl", "sharp", "jimp",
    "canvas", "pixi.js", "phaser", "howler", "tone", "fluent-ffmpeg",
    # science, numbers, machine learning, crypto
    "mathjs", "bignumber.js", "@tensorflow/tfjs", "brain.js", "natural",
    "crypto-js", "ethers", "web3",
    # cloud, payments, messaging, bots, hardware, home automation
    "aws-sdk", "@aws-sdk/client-s3", "firebase", "stripe", "discord.js",
    "telegraf", "hubot", "node-red", "homebridge", "johnny-five",
    "serialport", "mqtt",
)  # fmt: skip

NAME_RE = re.compile(r"^(?:@[A-Za-z0-9~-][A-Za-z0-9._~-]*/)?[A-Za-z0-9~-][A-Za-z0-9._~-]*$")
NON_REGISTRY_SPEC = re.compile(
    r"^(?:file:|link:|workspace:|portal:|patch:|git[+:]|git@|https?:|github:|gitlab:|bitbucket:)"
    r"|^[^@/\s]+/[^\s]+$"  # "owner/repo" GitHub shorthand
)
DEP_KINDS = ("dependencies", "peerDependencies", "devDependencies", "optionalDependencies")


# --------------------------------------------------------------------------
# HTTP


class FetchError(RuntimeError):
    """A request that still failed after all retries (not a definitive 404)."""


def package_url(name: str, version: str = "latest") -> str:
    """Return the registry URL of one manifest; scoped names get ``%2f``."""
    return f"{REGISTRY}/{name.replace('/', '%2f')}/{version}"


_SSL_CONTEXT = ssl.create_default_context()
_LOCAL = threading.local()


def _connection(host: str, timeout: float) -> http.client.HTTPSConnection:
    """A keep-alive connection per thread and host (saves TLS handshakes)."""
    connections: dict[str, http.client.HTTPSConnection] = _LOCAL.__dict__.setdefault("connections", {})
    if host not in connections:
        connections[host] = http.client.HTTPSConnection(host, timeout=timeout, context=_SSL_CONTEXT)
    return connections[host]


def _drop_connection(host: str) -> None:
    """Close and forget this thread's connection to ``host``."""
    connection = _LOCAL.__dict__.get("connections", {}).pop(host, None)
    if connection is not None:
        connection.close()


def http_get(url: str, timeout: float = 30.0, retries: int = 5) -> tuple[int, bytes]:
    """GET ``url`` and return ``(status, body)``.

    404 and 405 are definitive answers and returned as such; 429, 5xx and
    network errors are retried with exponential backoff and jitter, then
    raise :class:`FetchError`.
    """
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "gzip"}
    delay = 1.0
    last_error = ""
    for attempt in range(retries):
        try:
            connection = _connection(parts.netloc, timeout)
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.getheader("Connection", "").lower() == "close":
                _drop_connection(parts.netloc)
            if response.status == 200:
                if response.getheader("Content-Encoding", "") == "gzip":
                    body = gzip.decompress(body)
                return 200, body
            if response.status in (404, 405):
                return response.status, b""
            last_error = f"HTTP {response.status}"
            if response.status != 429 and response.status < 500:
                break
        except (http.client.HTTPException, OSError) as error:
            _drop_connection(parts.netloc)
            last_error = repr(error)
        if attempt + 1 < retries:
            time.sleep(delay + random.uniform(0, delay / 2))
            delay *= 2
    raise FetchError(f"{url}: {last_error}")


def fetch_many(
    items: list[str], fetch: Callable[[str], Any], workers: int, label: str = ""
) -> Iterator[tuple[str, Any]]:
    """Yield ``(item, fetch(item))`` for all items with at most ``workers`` threads.

    Exceptions are yielded as the result value instead of being raised.
    """
    done = 0
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fetch, item): item for item in items}
        for future in concurrent.futures.as_completed(futures):
            item = futures[future]
            try:
                result: Any = future.result()
            except Exception as error:  # noqa: BLE001 - reported by the caller
                result = error
            done += 1
            if label and (done % 2000 == 0 or done == len(items)):
                rate = done / max(time.monotonic() - start, 1e-9)
                log(f"{label}: {done}/{len(items)} ({rate:.0f}/s)")
            yield item, result


def log(message: str) -> None:
    """Print a time-stamped progress line to stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# crawl


def dependency_names(manifest: dict[str, Any], kinds: Iterable[str]) -> set[str]:
    """Registry package names a manifest depends on (aliases resolved).

    Specs that do not point at the registry (git, file, workspace, URLs,
    GitHub shorthands) are skipped; ``npm:other@1`` aliases count as ``other``.
    """
    names: set[str] = set()
    for kind in kinds:
        deps = manifest.get(kind)
        if not isinstance(deps, dict):
            continue
        for name, spec in deps.items():
            if not isinstance(name, str):
                continue
            spec = spec.strip() if isinstance(spec, str) else ""
            if spec.startswith("npm:"):
                target = spec[4:]
                at = target.find("@", 1)
                name = target if at < 0 else target[:at]
            elif NON_REGISTRY_SPEC.search(spec):
                continue
            if NAME_RE.match(name) and len(name) <= 214:
                names.add(name)
    return names


def crawl(args: argparse.Namespace) -> None:
    """Best-first dependency crawl from the seeds; write ``packages.tsv``."""
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    kinds = [k.strip() for k in args.dep_kinds.split(",") if k.strip()]
    seeds = sorted(set(SEEDS))
    versions: dict[str, str] = {}
    depended = collections.Counter[str]()
    failed: dict[str, str] = {}
    lock = threading.Lock()
    start = time.monotonic()

    def fetch_latest(name: str) -> tuple[str, set[str]] | None:
        status, body = http_get(package_url(name), timeout=args.timeout)
        if status != 200:
            return None
        manifest = json.loads(body)
        version = manifest.get("version")
        if not isinstance(version, str):
            return None
        return version, dependency_names(manifest, kinds)

    frontier = seeds
    rounds = 0
    while frontier and len(versions) < args.target:
        rounds += 1
        for name, result in fetch_many(frontier, fetch_latest, args.workers):
            with lock:
                if isinstance(result, BaseException):
                    failed[name] = repr(result)
                elif result is None:
                    failed[name] = "not found"
                else:
                    versions[name] = result[0]
                    depended.update(result[1])
        # Next round: the most depended-upon names not yet tried.
        tried = versions.keys() | failed.keys()
        candidates = sorted((n for n in depended if n not in tried), key=lambda n: (-depended[n], n))
        frontier = candidates[: min(args.round_size, args.target - len(versions))]
        log(
            f"round {rounds}: fetched {len(versions)}, failed {len(failed)}, "
            f"known {len(depended)}, next {len(frontier)}"
        )

    ranked = sorted(versions, key=lambda n: (-depended[n], n))[: args.top]
    with (out / "packages.tsv").open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("name\tversion\tdepended_upon\n")
        for name in ranked:
            handle.write(f"{name}\t{versions[name]}\t{depended[name]}\n")
    info = {
        "crawled_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "registry": REGISTRY,
        "seeds": seeds,
        "dependency_kinds": kinds,
        "target": args.target,
        "round_size": args.round_size,
        "rounds": rounds,
        "manifests_fetched": len(versions),
        "names_failed": dict(sorted(failed.items())),
        "names_known": len(set(depended) | set(seeds)),
        "packages_written": len(ranked),
        "min_depended_upon_written": depended[ranked[-1]] if ranked else 0,
        "seconds": round(time.monotonic() - start, 1),
    }
    (out / "crawl.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {len(ranked)} packages to {out / 'packages.tsv'} in {info['seconds']} s")


# --------------------------------------------------------------------------
# build


def read_packages(path: Path) -> list[tuple[str, str, int]]:
    """Read ``packages.tsv`` as ``(name, version, depended_upon)`` rows."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            name, version, count = line.rstrip("\n").split("\t")
            rows.append((name, version, int(count)))
    return rows


def cached_fetch(name: str, version: str, cache: Path, timeout: float, offline: bool) -> dict[str, Any] | None:
    """Return the pinned manifest of ``name@version`` (``None`` if 404).

    Raw 200 bodies and 404 answers are cached under ``cache``; transient
    failures are raised so that a build never depends on network luck.
    """
    key = hashlib.sha1(f"{name}@{version}".encode()).hexdigest()
    path = cache / key[:2] / f"{key}.json.gz"
    missing = path.with_suffix(".404")
    if path.exists():
        return json.loads(gzip.decompress(path.read_bytes()))
    if missing.exists():
        return None
    if offline:
        raise FetchError(f"{name}@{version} is not cached (offline build)")
    status, body = http_get(package_url(name, version), timeout=timeout)
    path.parent.mkdir(parents=True, exist_ok=True)
    if status != 200:
        missing.write_text(f"{status}\n", encoding="utf-8")
        return None
    document = json.loads(body)
    tmp = path.with_suffix(f".tmp{threading.get_ident()}")
    tmp.write_bytes(gzip.compress(body, mtime=0))
    tmp.replace(path)
    return document


def split_keywords(raw: Any) -> list[str]:
    """Keywords as a list of strings.

    Lists are kept (non-strings dropped); a single string is split on commas,
    or on whitespace when it has no comma (``"modules, stdlib, util"``).
    """
    if isinstance(raw, str):
        return raw.split(",") if "," in raw else raw.split()
    if isinstance(raw, list):
        return [item for item in raw if isinstance(item, str)]
    return []


def normalise_tag(tag: str) -> str:
    """Lowercase, strip, turn whitespace/underscore runs into one hyphen."""
    tag = re.sub(r"[\s_]+", "-", tag.strip().lower())
    return tag.strip("-")


def package_tags(name: str, raw: Any) -> list[str]:
    """Sorted normalised tags, minus empty, numeric and the package's own name."""
    own = {normalise_tag(name), normalise_tag(name.rsplit("/", 1)[-1])}
    tags = {normalise_tag(tag) for tag in split_keywords(raw)}
    return sorted(t for t in tags if t and t not in own and not re.fullmatch(r"[\d.\-]+", t))


def repository_owner(repository: Any) -> str | None:
    """``host/owner`` of a manifest's ``repository`` field, if it can be parsed."""
    url = repository.get("url") if isinstance(repository, dict) else repository
    if not isinstance(url, str) or not url.strip():
        return None
    url = url.strip().lower()
    short = re.match(r"^(github|gitlab|bitbucket):([^/\s]+)/", url)
    if short:
        host = {"github": "github.com", "gitlab": "gitlab.com", "bitbucket": "bitbucket.org"}[short.group(1)]
        return f"{host}/{short.group(2)}"
    if re.match(r"^[^:/@\s]+/[^/\s]+$", url):  # "owner/repo" shorthand
        return f"github.com/{url.split('/')[0]}"
    full = re.match(r"^(?:[a-z+]+://)?(?:[^@/]+@)?([^/:]+)[/:]([^/\s]+)/", url)
    if full:
        return f"{full.group(1).removeprefix('www.')}/{full.group(2)}"
    return None


def package_group(name: str, manifest: dict[str, Any]) -> str:
    """Split group: the repository owner, else the scope, else the name.

    The owner comes first so that monorepo packages and republished forks
    (``@someone/lodash.x`` pointing at ``github.com/lodash``) share a side.
    """
    owner = repository_owner(manifest.get("repository"))
    if owner:
        return owner
    if name.startswith("@"):
        return name.split("/", 1)[0].lower()
    return f"name:{name.lower()}"


def clean_text(description: Any, max_words: int) -> str:
    """Whitespace-collapsed description, truncated to ``max_words`` words."""
    if not isinstance(description, str):
        return ""
    return " ".join(description.split()[:max_words])


def is_test(group: str, test_percent: int) -> bool:
    """Stable split: sha1 of the group, first 8 hex digits modulo 100."""
    return int(hashlib.sha1(group.encode("utf-8")).hexdigest()[:8], 16) % 100 < test_percent


def quantiles(values: list[int], points: Iterable[float]) -> dict[str, float]:
    """Nearest-rank quantiles of ``values`` at the given fractions."""
    ordered = sorted(values)
    if not ordered:
        return {}
    return {f"p{round(p * 100)}": ordered[min(len(ordered) - 1, int(p * len(ordered)))] for p in points}


def write_jsonl_gz(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records sorted by id as gzip JSON lines with a fixed header."""
    payload = "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records)
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(payload.encode("utf-8"))


def build(args: argparse.Namespace) -> None:
    """Fetch pinned manifests (cached) and write the dataset files."""
    out: Path = args.out
    cache: Path = args.cache or out / ".cache"
    packages = read_packages(out / "packages.tsv")
    start = time.monotonic()

    def fetch(row: tuple[str, str, int]) -> dict[str, Any] | None:
        return cached_fetch(row[0], row[1], cache, args.timeout, args.offline)

    keys = [f"{name}\t{version}" for name, version, _ in packages]
    by_key = {f"{name}\t{version}": (name, version, count) for name, version, count in packages}
    manifests: dict[str, dict[str, Any] | None] = {}
    errors: list[str] = []
    for key, result in fetch_many(keys, lambda k: fetch(by_key[k]), args.workers, label="fetch"):
        if isinstance(result, BaseException):
            errors.append(f"{key.replace(chr(9), '@')}: {result}")
        else:
            manifests[key.split("\t")[0]] = result
    if errors:
        for line in errors[:20]:
            log(line)
        sys.exit(f"{len(errors)} manifests could not be fetched; run build again (cached ones are kept)")
    fetch_seconds = time.monotonic() - start

    drops = collections.Counter[str]()
    records: list[dict[str, Any]] = []
    with_readme = 0
    for name, _version, _count in packages:
        manifest = manifests[name]
        if manifest is None:
            drops["version_not_found"] += 1
            continue
        if isinstance(manifest.get("readme"), str) and manifest["readme"].strip():
            with_readme += 1
        text = clean_text(manifest.get("description"), args.max_words)
        if len(text.split()) < args.min_words:
            drops["description_under_min_words"] += 1
            continue
        labels = package_tags(name, manifest.get("keywords"))
        if not labels:
            drops["no_keywords"] += 1
            continue
        records.append({"id": name, "group": package_group(name, manifest), "text": text, "labels": labels})

    train = [r for r in records if not is_test(r["group"], args.test_percent)]
    test = [r for r in records if is_test(r["group"], args.test_percent)]

    # Keep tags used by >= min_count train packages; dropping tags can empty
    # packages, which lowers other counts, so repeat until nothing changes.
    iterations = 0
    while True:
        iterations += 1
        counts = collections.Counter(t for r in train for t in r["labels"])
        kept = {t for t, c in counts.items() if c >= args.min_count}
        pruned = []
        for r in train:
            labels = [t for t in r["labels"] if t in kept]
            if labels:
                pruned.append({**r, "labels": labels})
        stable = len(pruned) == len(train) and all(len(a["labels"]) == len(b["labels"]) for a, b in zip(pruned, train))
        drops["train_no_kept_tag"] += len(train) - len(pruned)
        train = pruned
        if stable:
            break
    counts = collections.Counter(t for r in train for t in r["labels"])
    test_pruned = []
    for r in test:
        labels = [t for t in r["labels"] if t in counts]
        if labels:
            test_pruned.append({**r, "labels": labels})
    drops["test_no_kept_tag"] = len(test) - len(test_pruned)
    test = test_pruned

    train.sort(key=lambda r: r["id"])
    test.sort(key=lambda r: r["id"])
    labels_ranked = sorted(counts, key=lambda t: (-counts[t], t))
    write_jsonl_gz(out / "train.jsonl.gz", train)
    write_jsonl_gz(out / "test.jsonl.gz", test)
    (out / "labels.txt").write_text("".join(t + "\n" for t in labels_ranked), encoding="utf-8")

    every = train + test
    frequencies = [counts[t] for t in labels_ranked]
    words = [len(r["text"].split()) for r in every]
    n_labels = [len(r["labels"]) for r in every]
    test_counts = collections.Counter(t for r in test for t in r["labels"])
    stats = {
        "packages_listed": len(packages),
        "records": {"train": len(train), "test": len(test), "total": len(every)},
        "groups": {"train": len({r["group"] for r in train}), "test": len({r["group"] for r in test})},
        "labels": len(labels_ranked),
        "labels_unseen_in_test": sum(1 for t in labels_ranked if not test_counts[t]),
        "label_train_frequency": {
            "min": min(frequencies, default=0),
            **quantiles(frequencies, (0.25, 0.5, 0.75, 0.9, 0.99)),
            "max": max(frequencies, default=0),
            "share_under_20": round(sum(f < 20 for f in frequencies) / max(len(frequencies), 1), 4),
            "top_10": [[t, counts[t]] for t in labels_ranked[:10]],
        },
        "labels_per_record": {
            "mean": round(sum(n_labels) / max(len(n_labels), 1), 3),
            **quantiles(n_labels, (0.5, 0.9, 0.99)),
            "max": max(n_labels, default=0),
        },
        "words_per_text": {
            "mean": round(sum(words) / max(len(words), 1), 2),
            **quantiles(words, (0.1, 0.5, 0.9, 0.99)),
            "max": max(words, default=0),
        },
        "dropped": dict(sorted(drops.items())),
        "pruning_iterations": iterations,
        "version_manifests_with_readme": with_readme,
        "parameters": {
            "min_count": args.min_count,
            "min_words": args.min_words,
            "max_words": args.max_words,
            "test_percent": args.test_percent,
        },
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log(
        f"train {len(train)}, test {len(test)}, labels {len(labels_ranked)}; "
        f"fetch {fetch_seconds:.0f} s, total {time.monotonic() - start:.0f} s"
    )


# --------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run ``crawl`` or ``build``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="dataset folder (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=16, help="concurrent requests (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default: %(default)s)")
    steps = parser.add_subparsers(dest="step", required=True)

    p_crawl = steps.add_parser("crawl", help="discover packages on the live registry, write packages.tsv")
    p_crawl.add_argument("--target", type=int, default=40_000, help="manifests to fetch (default: %(default)s)")
    p_crawl.add_argument("--top", type=int, default=30_000, help="packages to write (default: %(default)s)")
    p_crawl.add_argument("--round-size", type=int, default=1000, help="names fetched per round (default: %(default)s)")
    p_crawl.add_argument(
        "--dep-kinds",
        default="dependencies,peerDependencies,devDependencies",
        help=f"comma-separated manifest fields to follow, from {', '.join(DEP_KINDS)} (default: %(default)s)",
    )
    p_crawl.set_defaults(func=crawl)

    p_build = steps.add_parser("build", help="fetch pinned manifests (cached), write the dataset files")
    p_build.add_argument("--cache", type=Path, default=None, help="raw response cache (default: OUT/.cache)")
    p_build.add_argument("--offline", action="store_true", help="use only the cache, never the network")
    p_build.add_argument("--min-count", type=int, default=5, help="min train packages per tag (default: %(default)s)")
    p_build.add_argument("--min-words", type=int, default=3, help="min description words (default: %(default)s)")
    p_build.add_argument("--max-words", type=int, default=200, help="truncate descriptions (default: %(default)s)")
    p_build.add_argument("--test-percent", type=int, default=20, help="test share of groups (default: %(default)s)")
    p_build.set_defaults(func=build)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
