"""``sktext serve``: the real server in a subprocess, on a free port, with a tiny model, over HTTP.

Round trip against ``predict`` / ``predict_proba``, concurrent requests merged into
batches, every bad input refused with its 4xx (and the next good request answered), 503
under a full queue, SIGTERM during a burst (every accepted request answered, exit 0) and
SIGINT (exit 0), a model that raises (500 for that batch only), the ONNX backend without torch.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from sktext import TransformerMultiLabelClassifier

from conftest import make_toy_data

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

TEXTS = [
    "a game to play with strategy",
    "vim text editor for the console",
    "music player and sound library",
    "the small free tool",
    "naïve café 東京 emoji 🎮",
    "",
]
# The child sets Python's SIGINT handler itself: it may inherit SIGINT ignored (nohup).
SERVE = [
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('sktext', run_name='__main__', alter_sys=True)",
    "serve",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``sktext serve`` in a subprocess; ``url``, ``stop(signum)`` -> (exit status, stderr)."""

    def __init__(self, folder: Path, *options: str, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*SERVE, str(folder), "--port", str(self.port), *options],
            stdout=subprocess.DEVNULL,  # uvicorn's access log
            stderr=self._log_file,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{self.url}/ready", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"the server did not get ready:\n{log.read_text()}")

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            status = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()  # this test's own child, by its id
            status = self.process.wait()
        self._log_file.close()
        return status, self.log.read_text()


@pytest.fixture(scope="module")
def fitted(tiny_bert, tmp_path_factory):
    """A tiny classifier (with its lexical part), its model folder and its ONNX export."""
    texts, Y = make_toy_data(160)
    clf = TransformerMultiLabelClassifier(
        tiny_bert, max_epochs=1, batch_size=16, lr=3e-3, precision="fp32", random_state=0
    ).fit(texts, Y)
    root = tmp_path_factory.mktemp("serve")
    clf.save(root / "model")
    clf.export_onnx(root / "onnx")
    return clf, root


@pytest.fixture(scope="module")
def server(fitted):
    """One server for the requests that leave it as it was: a generous wait, so concurrent requests merge."""
    _, root = fitted
    running = Server(
        root / "model",
        "--max-wait-ms", "300",
        "--max-texts-per-request", "20",
        "--max-text-chars", "200",
        "--max-body-bytes", "20000",
        log=root / "server.log",
    )  # fmt: skip
    yield running
    status, log = running.stop()
    assert status == 0, log


def _predict(url: str, body, **kwargs) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return httpx.post(f"{url}/v1/predict", content=body, timeout=30, **kwargs)
    return httpx.post(f"{url}/v1/predict", json=body, timeout=30, **kwargs)


def _metric(text: str, name: str) -> float:
    """The value of one sample of the Prometheus text (0 when absent)."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_round_trip_equals_predict_and_predict_proba(server, fitted):
    clf, _ = fitted
    response = _predict(server.url, {"texts": TEXTS})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    proba, labels = clf.predict_proba(TEXTS), clf.predict(TEXTS)
    names = [str(name) for name in clf.classes_]
    assert len(predictions) == len(TEXTS)
    for row, answer in enumerate(predictions):
        assert list(answer["scores"]) == names
        np.testing.assert_allclose([answer["scores"][name] for name in names], proba[row], atol=1e-5)
        assert sorted(answer["labels"]) == sorted(np.asarray(names)[labels[row] == 1])
        assert answer["labels"] == sorted(answer["labels"], key=lambda name: -answer["scores"][name])

    top = _predict(server.url, {"texts": TEXTS[:2], "top_k": 1, "return_scores": False}).json()["predictions"]
    for row, answer in enumerate(top):
        assert "scores" not in answer and len(answer["labels"]) <= 1
        if answer["labels"]:
            assert answer["labels"][0] == names[int(np.argmax(proba[row]))]


def test_model_health_ready_and_openapi(server, fitted):
    clf, _ = fitted
    model = httpx.get(f"{server.url}/v1/model").json()
    assert model["task"] == "multilabel" and model["estimator"] == "TransformerMultiLabelClassifier"
    assert model["labels"] == [str(name) for name in clf.classes_]
    np.testing.assert_allclose(model["thresholds"], clf.thresholds_)
    assert model["sktext_version"] == "0.1.0" and model["base_encoder"]
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    assert httpx.get(f"{server.url}/ready").status_code == 200
    assert "/v1/predict" in httpx.get(f"{server.url}/openapi.json").json()["paths"]


def test_concurrent_requests_are_merged_into_batches(server):
    before = httpx.get(f"{server.url}/metrics").text

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(client.post(f"{server.url}/v1/predict", json={"texts": [text]}) for text in TEXTS * 3)
            )

    responses = asyncio.run(burst())
    assert [response.status_code for response in responses] == [200] * len(TEXTS) * 3
    assert all(len(response.json()["predictions"]) == 1 for response in responses)
    after = httpx.get(f"{server.url}/metrics").text
    batches = _metric(after, "sktext_batch_size_texts_count") - _metric(before, "sktext_batch_size_texts_count")
    single = _metric(after, 'sktext_batch_size_texts_bucket{le="1.0"}') - _metric(
        before, 'sktext_batch_size_texts_bucket{le="1.0"}'
    )
    texts = _metric(after, "sktext_texts_predicted_total") - _metric(before, "sktext_texts_predicted_total")
    assert texts == len(TEXTS) * 3
    assert batches < len(TEXTS) * 3 and single < batches, after  # some batch held several requests' texts
    for name in ("sktext_requests_total", "sktext_request_duration_seconds_bucket", "sktext_queue_depth_requests"):
        assert name in after


BAD_INPUTS = {
    "malformed JSON": (b'{"texts": ["a"', 400, "malformed_json"),
    "not UTF-8": (b'{"texts": ["\xff"]}', 400, "malformed_json"),
    "not an object": (b'["a text"]', 422, "not_an_object"),
    "missing texts": ({"top_k": 1}, 422, "missing_texts"),
    "texts not a list": ({"texts": "a text"}, 422, "texts_not_a_list"),
    "non-string item": ({"texts": ["a", 5]}, 422, "text_not_a_string"),
    "null item": ({"texts": [None]}, 422, "text_not_a_string"),
    "empty list": ({"texts": []}, 422, "empty_texts"),
    "too many texts": ({"texts": ["a"] * 21}, 422, "too_many_texts"),
    "too long a text": ({"texts": ["a" * 201]}, 422, "text_too_long"),
    "lone surrogate": (b'{"texts": ["ok \\ud800 then"]}', 422, "lone_surrogate"),
    "unknown field": ({"texts": ["a"], "topk": 3}, 422, "unknown_fields"),
    "bad top_k": ({"texts": ["a"], "top_k": 0}, 422, "bad_top_k"),
    "bad return_scores": ({"texts": ["a"], "return_scores": "yes"}, 422, "bad_return_scores"),
    "body too large": (json.dumps({"texts": ["a" * 150] * 200}), 413, "body_too_large"),
}

# The limits the server fixture sets, as the errors name them.
LIMITS = {"empty_texts": 20, "too_many_texts": 20, "text_too_long": 200, "body_too_large": 20000}


def test_every_bad_input_gets_its_4xx_and_the_next_good_request_is_answered(server):
    for case, (body, status, code) in BAD_INPUTS.items():
        response = _predict(server.url, body)
        assert response.status_code == status, (case, response.text)
        error = response.json()["error"]
        assert error["code"] == code and error["message"], case
        if code in LIMITS:
            assert error["limit"] == LIMITS[code] and str(LIMITS[code]) in error["message"], case
        good = _predict(server.url, {"texts": ["a game"]})
        assert good.status_code == 200 and len(good.json()["predictions"]) == 1, case
    chunked = httpx.post(  # no Content-Length: refused while it streams in
        f"{server.url}/v1/predict", content=iter([b'{"texts": ["' + b"a" * 15000, b"a" * 15000 + b'"]}']), timeout=30
    )
    assert chunked.status_code == 413
    assert httpx.get(f"{server.url}/nowhere").json()["error"]["code"] == "not_found"


async def _burst(url: str, n: int, texts: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=n)) as client:
        return await asyncio.gather(*(client.post(f"{url}/v1/predict", json={"texts": texts}) for _ in range(n)))


def test_a_full_queue_is_503_with_retry_after_and_sigint_stops_cleanly(fitted):
    _, root = fitted
    server = Server(root / "model", "--queue-size", "1", "--max-batch-size", "1", log=root / "queue.log")
    try:
        responses = asyncio.run(_burst(server.url, 40, TEXTS[:5] * 4))
        statuses = [response.status_code for response in responses]
        assert set(statuses) <= {200, 503} and 503 in statuses and 200 in statuses, statuses
        refused = next(response for response in responses if response.status_code == 503)
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["code"] == "queue_full"
        assert _predict(server.url, {"texts": ["a game"]}).status_code == 200
    finally:
        status, log = server.stop(signal.SIGINT)  # Ctrl-C: uvicorn's same graceful path as SIGTERM
    assert status == 0, log
    assert re.search(r"stopped; (\d+) of \1 accepted prediction requests answered", log), log


def test_sigterm_during_a_burst_answers_every_accepted_request_and_exits_0(fitted):
    _, root = fitted
    server = Server(root / "model", "--max-batch-size", "4", "--max-wait-ms", "20", log=root / "signal.log")
    outcomes: list[str] = []

    async def client_loop(client: httpx.AsyncClient) -> None:
        while True:  # until the server stops listening
            try:
                response = await client.post(f"{server.url}/v1/predict", json={"texts": TEXTS[:4]})
            except httpx.ConnectError:
                return
            except httpx.TransportError as error:  # a connection the server had not accepted yet, or a loss
                outcomes.append(type(error).__name__)
                return
            if response.status_code == 200:
                assert len(response.json()["predictions"]) == 4
            outcomes.append(str(response.status_code))

    async def load_then_signal() -> None:
        # A fresh connection per request: once the server stops listening, new ones are refused.
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            clients = [asyncio.create_task(client_loop(client)) for _ in range(12)]
            while outcomes.count("200") < 10:
                await asyncio.sleep(0.05)
            server.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(asyncio.gather(*clients), timeout=60)

    asyncio.run(load_then_signal())
    status, log = server.stop()
    assert status == 0, log
    answered, accepted = map(int, re.search(r"stopped; (\d+) of (\d+) accepted", log).groups())
    assert answered == accepted == outcomes.count("200"), (outcomes, log)
    assert set(outcomes) <= {"200", "503", "ReadError", "RemoteProtocolError"}, outcomes


def test_an_exception_in_the_model_fails_its_batch_only(fitted, monkeypatch):
    from starlette.testclient import TestClient

    from sktext.serve import create_app

    _, root = fitted
    real = TransformerMultiLabelClassifier.predict_proba

    def predict_proba(self, X):
        if "boom" in X:
            raise RuntimeError("the model broke")
        return real(self, X)

    monkeypatch.setattr(TransformerMultiLabelClassifier, "predict_proba", predict_proba)
    with TestClient(create_app(root / "model", max_wait_ms=0)) as client:
        _wait_ready(client)
        failed = client.post("/v1/predict", json={"texts": ["boom"]})
        assert failed.status_code == 500 and failed.json()["error"]["code"] == "model_error"
        assert "the model broke" in failed.json()["error"]["message"]
        assert client.post("/v1/predict", json={"texts": ["a game"]}).status_code == 200
        assert _metric(client.get("/metrics").text, "sktext_batch_errors_total") == 1


def _wait_ready(client) -> None:
    deadline = time.monotonic() + 60
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").text
        time.sleep(0.1)


def test_the_onnx_backend_serves_without_torch(fitted):
    clf, root = fitted
    script = f"""
import json, sys, time
from starlette.testclient import TestClient
from sktext.serve import create_app
with TestClient(create_app({str(root / "onnx")!r}, backend="onnx")) as client:
    while client.get("/ready").status_code != 200:
        time.sleep(0.05)
    answer = client.post("/v1/predict", json={{"texts": {TEXTS!r}}}).json()
    model = client.get("/v1/model").json()
print(json.dumps({{"torch": "torch" in sys.modules, "answer": answer, "model": model}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["torch"] is False
    assert result["model"]["backend"] == "onnx" and result["model"]["task"] == "multilabel"
    names = [str(name) for name in clf.classes_]
    proba = clf.predict_proba(TEXTS)
    for row, answer in enumerate(result["answer"]["predictions"]):
        np.testing.assert_allclose([answer["scores"][name] for name in names], proba[row], atol=1e-4)


def test_a_wrong_folder_is_refused_before_serving(fitted, tmp_path):
    from sktext.cli import main

    _, root = fitted
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert main(["serve", str(root / "onnx")]) == 2  # an ONNX export needs --backend onnx


def test_the_readme_curl_example_is_answered(server):
    from test_readme import readme_block

    command = readme_block("<!-- example: serve-curl -->")
    body = re.search(r"-d '(.+?)'", command).group(1)
    assert "localhost:8000/v1/predict" in command and "Content-Type: application/json" in command
    response = _predict(server.url, body.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    (answer,) = response.json()["predictions"]
    assert len(answer["scores"]) <= 3 and len(answer["labels"]) <= 3
