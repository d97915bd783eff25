"""``sktext serve`` under load: a closed-loop generator against a direct ``predict_proba``.

N clients (asyncio + httpx), each sending its next request as soon as its last one is
answered, for ``--duration`` seconds per setting, at each ``--concurrency`` (1, 8, 32),
against ``sktext serve`` in a subprocess run three ways:

- ``batch_1``: ``--max-batch-size 1``, one ``predict_proba`` per request (what a
  hand-written service does);
- ``dynamic``: dynamic batching (``--max-batch-size`` 64, ``--max-wait-ms`` 5);
- ``onnx``: dynamic batching on the ONNX export (``--backend onnx``, no torch), exported
  from the same model folder.

Beside them, ``direct``: ``predict_proba`` on the same texts in batches of
``--max-batch-size``, in this process, for the same duration (no HTTP, no queue).
Per row: texts/s, latency p50 / p95 / p99 (ms; per request), errors (non-200 answers
and transport errors), and the ratio of texts/s to ``direct`` and to ``batch_1`` at the
same concurrency. Requests hold ``--texts-per-request`` texts (1) of the bundled
debtags sample, in turn. The load generator shares the machine's cores with the
server (on 2 cores it costs the server some of its CPU).

Needs ``pip install -e ".[serve,onnx]" httpx``. A model folder comes from ``sktext fit``
or ``estimator.save``; ``--fit-model-on N`` makes one in ``--model-dir`` if it is missing:
the default model (the bundled all-MiniLM-L6-v2, ``max_length=128``) fitted for one epoch
on the sample's first N training texts. Its speed is the default model's; its F1 is not
the point.

Examples
--------
The full run (three settings x three concurrencies x 60 s, and ``direct``)::

    python benchmarks/serve.py --model-dir /tmp/debtags-model --fit-model-on 600

A short one::

    python benchmarks/serve.py --model-dir /tmp/debtags-model --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCHMARKS), str(BENCHMARKS.parent)]

from common import format_table, machine_info, write_results  # noqa: E402

COLUMNS = ["setting", "concurrency", "texts_per_s", "vs_direct", "vs_batch_1", "p50_ms", "p95_ms", "p99_ms", "errors"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="a model folder (sktext fit / estimator.save)")
    parser.add_argument("--onnx-dir", default=None, help="its export_onnx folder (default: exported to a temp folder)")
    parser.add_argument(
        "--fit-model-on", type=int, default=None, metavar="N", help="fit the default model on N texts if missing"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per setting and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--settings", nargs="+", default=["batch_1", "dynamic", "onnx"])
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--warm-up", type=float, default=2.0, help="seconds of load before each measurement")
    parser.add_argument(
        "--sigterm-after",
        type=float,
        default=10.0,
        help="then SIGTERM the dynamic-batching server this many seconds into a load at the top concurrency (0: skip)",
    )
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/serve.json)")
    return parser.parse_args(argv)


def sample_texts() -> list[str]:
    from sktext.datasets import load_debtags_sample

    return list(load_debtags_sample(subset="test").texts)


def fit_model(folder: Path, n_texts: int) -> None:
    from sklearn.preprocessing import MultiLabelBinarizer

    from sktext import TransformerMultiLabelClassifier
    from sktext.datasets import load_debtags_sample

    train = load_debtags_sample(subset="train")
    Y = MultiLabelBinarizer().fit_transform(train.labels[:n_texts])
    clf = TransformerMultiLabelClassifier(max_epochs=1, max_length=128, random_state=0, verbose=0)
    print(f"fitting the default model on {n_texts} texts into {folder} ...", file=sys.stderr, flush=True)
    clf.fit(train.texts[:n_texts], Y).save(folder)


def export(model_dir: Path, folder: Path) -> None:
    from sktext import load_model

    load_model(model_dir).export_onnx(folder)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(folder: Path, options: list[str]) -> tuple[subprocess.Popen, str]:
    """``sktext serve`` in a subprocess, once ``/ready`` answers 200."""
    import httpx

    port = _free_port()
    command = [sys.executable, "-m", "sktext", "serve", str(folder), "--port", str(port), *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sktext serve exited with status {process.returncode}: {process.stderr.read()}")
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    process.kill()
    raise RuntimeError("sktext serve did not get ready in 300 s")


def stop_server(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


async def closed_loop(url: str, texts: list[str], concurrency: int, duration: float, per_request: int) -> dict:
    """N clients sending requests back to back for ``duration`` seconds: texts/s, latency, errors."""
    import httpx

    latencies: list[float] = []
    counts = {"texts": 0, "errors": 0}
    cursor = iter(range(10**12))
    stop_at = time.perf_counter() + duration

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop_at:
            start = next(cursor) * per_request
            batch = [texts[(start + i) % len(texts)] for i in range(per_request)]
            began = time.perf_counter()
            try:
                response = await client.post(f"{url}/v1/predict", json={"texts": batch, "return_scores": True})
                ok = response.status_code == 200
            except httpx.TransportError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - began)
                counts["texts"] += per_request
            else:
                counts["errors"] += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        began = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    milliseconds = np.asarray(latencies) * 1000 if latencies else np.asarray([np.nan])
    return {
        "texts_per_s": counts["texts"] / elapsed,
        "requests": len(latencies),
        "p50_ms": float(np.percentile(milliseconds, 50)),
        "p95_ms": float(np.percentile(milliseconds, 95)),
        "p99_ms": float(np.percentile(milliseconds, 99)),
        "errors": counts["errors"],
        "seconds": elapsed,
    }


async def _load_until_stopped(url: str, texts: list[str], concurrency: int, signal_after: float, process) -> dict:
    """Closed-loop load; SIGTERM to the server ``signal_after`` s in; each client runs until refused."""
    import httpx

    outcomes: list[str] = []
    cursor = iter(range(10**12))

    async def client_loop(client: httpx.AsyncClient) -> None:
        while True:
            text = texts[next(cursor) % len(texts)]
            try:
                response = await client.post(f"{url}/v1/predict", json={"texts": [text]})
            except httpx.ConnectError:  # the server no longer listens: this request was never accepted
                return
            except httpx.TransportError as error:  # a kept-alive connection closed under a request not yet read
                outcomes.append(type(error).__name__)
                return
            outcomes.append(str(response.status_code))

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        clients = [asyncio.create_task(client_loop(client)) for _ in range(concurrency)]
        await asyncio.sleep(signal_after)
        answered_before = outcomes.count("200")
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*clients), timeout=300)
    return {"answered_before_signal": answered_before, "outcomes": {o: outcomes.count(o) for o in set(outcomes)}}


def sigterm_under_load(folder: Path, options: list[str], texts: list[str], concurrency: int, after: float) -> dict:
    """SIGTERM in the middle of a load: does every request the server accepted get its answer, and exit 0?

    The server logs how many prediction requests it accepted and answered; the clients count
    their 200s. Requests the server never read (refused connections, or a request sent on a
    kept-alive connection the server was closing) are not accepted ones.
    """
    import re

    process, url = start_server(folder, [*options, "--log-level", "warning"])
    result = asyncio.run(_load_until_stopped(url, texts, concurrency, after, process))
    try:
        status = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        status = process.wait()
    log = process.stderr.read()
    found = re.search(r"stopped; (\d+) of (\d+) accepted prediction requests answered", log)
    answered, accepted = (int(found[1]), int(found[2])) if found else (None, None)
    ok_200 = result["outcomes"].get("200", 0)
    return {
        "concurrency": concurrency,
        "signal_after_s": after,
        **result,
        "server_accepted": accepted,
        "server_answered": answered,
        "clients_got_200": ok_200,
        "exit_status": status,
        "nothing_lost": status == 0 and accepted is not None and answered == accepted == ok_200,
    }


def direct(model_dir: Path, texts: list[str], batch_size: int, duration: float) -> dict:
    """``predict_proba`` on the same texts in batches of ``batch_size``, in this process, for ``duration`` s."""
    from sktext import load_model

    model = load_model(model_dir)
    model.predict_proba(texts[:batch_size])  # warm-up
    done, start, batch_times = 0, time.perf_counter(), []
    while time.perf_counter() - start < duration:
        first = done % len(texts)
        batch = [texts[(first + i) % len(texts)] for i in range(batch_size)]
        began = time.perf_counter()
        model.predict_proba(batch)
        batch_times.append(time.perf_counter() - began)
        done += batch_size
    elapsed = time.perf_counter() - start
    milliseconds = np.asarray(batch_times) * 1000
    return {
        "setting": "direct",
        "concurrency": None,
        "texts_per_s": done / elapsed,
        "p50_ms": float(np.percentile(milliseconds, 50)),  # per batch, not per request
        "p95_ms": float(np.percentile(milliseconds, 95)),
        "p99_ms": float(np.percentile(milliseconds, 99)),
        "errors": 0,
        "seconds": elapsed,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    model_dir = Path(args.model_dir)
    if not (model_dir / "sktext.json").is_file():
        if args.fit_model_on is None:
            raise SystemExit(
                f"{model_dir} holds no model folder; make one with `sktext fit ... --out {model_dir}`, or pass "
                "--fit-model-on N to fit the default model on N sample texts."
            )
        fit_model(model_dir, args.fit_model_on)
    texts = sample_texts()
    scratch = tempfile.TemporaryDirectory()
    onnx_dir = Path(args.onnx_dir) if args.onnx_dir else Path(scratch.name) / "onnx"
    if "onnx" in args.settings and not (onnx_dir / "predictor.json").is_file():
        export(model_dir, onnx_dir)
    settings = {
        "batch_1": (model_dir, ["--max-batch-size", "1", "--max-wait-ms", "0"]),
        "dynamic": (model_dir, ["--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)]),
        "onnx": (
            onnx_dir,
            ["--backend", "onnx", "--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)],
        ),
    }
    rows = []
    for name in args.settings:
        folder, options = settings[name]
        process, url = start_server(folder, [*options, "--log-level", "warning"])
        try:
            for concurrency in args.concurrency:
                asyncio.run(closed_loop(url, texts, concurrency, args.warm_up, args.texts_per_request))
                result = asyncio.run(closed_loop(url, texts, concurrency, args.duration, args.texts_per_request))
                rows.append({"setting": name, "concurrency": concurrency, **result})
                print(format_table([rows[-1]], COLUMNS[:3] + COLUMNS[5:]), file=sys.stderr, flush=True)
        finally:
            status = stop_server(process)
        rows[-1]["exit_status"] = status
    shutdown = None
    if args.sigterm_after > 0 and "dynamic" in args.settings:
        shutdown = sigterm_under_load(*settings["dynamic"], texts, max(args.concurrency), args.sigterm_after)
        print(f"SIGTERM under load: {shutdown}", file=sys.stderr, flush=True)
    baseline = direct(model_dir, texts, args.max_batch_size, args.duration)
    by_key = {(row["setting"], row["concurrency"]): row for row in rows}
    for row in rows:
        row["vs_direct"] = row["texts_per_s"] / baseline["texts_per_s"]
        single = by_key.get(("batch_1", row["concurrency"]))
        row["vs_batch_1"] = row["texts_per_s"] / single["texts_per_s"] if single else None
    rows.append(baseline)
    print(format_table(rows, COLUMNS))
    if shutdown:
        print(
            f"SIGTERM {shutdown['signal_after_s']:g} s into a load of {shutdown['concurrency']} clients: the server "
            f"accepted {shutdown['server_accepted']} prediction requests and answered {shutdown['server_answered']}; "
            f"clients got {shutdown['clients_got_200']} answers (200); outcomes {shutdown['outcomes']}; "
            f"exit status {shutdown['exit_status']}"
        )
    payload = {
        "machine": machine_info("cpu"),
        "model_dir": str(model_dir),
        "settings": {name: settings[name][1] for name in args.settings},
        "duration_s": args.duration,
        "texts_per_request": args.texts_per_request,
        "torch_threads_server": os.cpu_count(),
        "rows": rows,
        "sigterm_under_load": shutdown,
    }
    print(f"wrote {write_results('serve', payload, args.out)}")
    scratch.cleanup()
    return payload


if __name__ == "__main__":
    main()
