"""The HTTP application: routes, request checks and limits, over one backend and one batcher.

:func:`create_app` returns a Starlette application (ASGI), which ``sktext serve`` runs
under uvicorn and which a service may mount in its own application. Its routes:

``POST /v1/predict``
    ``{"texts": [...], "top_k": null, "return_scores": true}`` ->
    ``{"predictions": [...]}``, one answer per text in order (shapes in
    :mod:`sktext.serve.backends`).
``GET /v1/model``
    Task, estimator, base encoder, labels, thresholds, targets and the sktext version
    that saved the model, from its ``sktext.json`` (or ``predictor.json``).
``GET /health``
    200 while the process runs.
``GET /ready``
    200 once the model is loaded and has run one warm-up batch; 503 before, after a
    failed load, and while shutting down.
``GET /metrics``
    Prometheus text (:mod:`sktext.serve.metrics`).
``GET /openapi.json``
    The OpenAPI description of these routes.

Every refusal is JSON, ``{"error": {"code": ..., "message": ..., "limit": ...}}``: 400
for a body that is not UTF-8 JSON, 413 for a body over ``max_body_bytes``, 422 for a
body that is JSON but not a valid request (not an object, unknown fields, a missing or
non-list ``texts``, an empty list, more than ``max_texts_per_request`` texts, an item
that is not a string, a text over ``max_text_chars`` characters, a lone surrogate, a
bad ``top_k`` or ``return_scores``), 503 with ``Retry-After`` when the queue is full,
the model is loading or failed to load, or the server is shutting down, and 500 when
the model raised on the batch the request was part of (logged; the next batch runs).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._version import __version__
from .backends import ModelBackend, make_backend
from .batcher import DynamicBatcher, ModelError, NotServing, QueueFull
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics

__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_TEXTS_PER_REQUEST",
    "DEFAULT_MAX_TEXT_CHARS",
    "DEFAULT_MAX_WAIT_MS",
    "DEFAULT_QUEUE_SIZE",
    "Limits",
    "RequestError",
    "create_app",
    "parse_predict_request",
]

logger = logging.getLogger("sktext.serve")

DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_WAIT_MS = 5.0
DEFAULT_MAX_TEXTS_PER_REQUEST = 1000
DEFAULT_MAX_TEXT_CHARS = 100_000
DEFAULT_MAX_BODY_BYTES = 10 * 2**20
DEFAULT_QUEUE_SIZE = 64
#: Seconds a refused client is told to wait (``Retry-After``).
RETRY_AFTER_SECONDS = 1
PREDICT_FIELDS = ("texts", "top_k", "return_scores")
WARM_UP_TEXTS = ["warm-up"]


@dataclass(frozen=True)
class Limits:
    """What one request may hold.

    Attributes
    ----------
    max_texts_per_request : int
    max_text_chars : int
        Characters (code points) of one text.
    max_body_bytes : int
        Bytes of the request body.
    """

    max_texts_per_request: int = DEFAULT_MAX_TEXTS_PER_REQUEST
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


class RequestError(Exception):
    """A refused request: its HTTP status, a code, a message, and the limit it broke (if any).

    Parameters
    ----------
    status : int
    code : str
    message : str
    **details
        More fields of the JSON error (``limit``, ``index``...).
    """

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        """The JSON response ``{"error": {"code", "message", ...details}}``."""
        body = {"error": {"code": self.code, "message": self.message, **self.details}}
        return JSONResponse(body, status_code=self.status, headers=headers)


def _check_text(index: int, text: Any, limits: Limits) -> None:
    if not isinstance(text, str):
        raise RequestError(
            422,
            "text_not_a_string",
            f"texts[{index}] is {type(text).__name__} ({json.dumps(text)[:60]}), not a string; every item of "
            "'texts' must be a string (send '' for an empty text).",
            index=index,
        )
    if len(text) > limits.max_text_chars:
        raise RequestError(
            422,
            "text_too_long",
            f"texts[{index}] has {len(text)} characters; a text may have at most {limits.max_text_chars} "
            "(the server's --max-text-chars). Shorten or split it.",
            index=index,
            limit=limits.max_text_chars,
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise RequestError(
                422,
                "lone_surrogate",
                f"texts[{index}] holds a lone surrogate (U+{ord(text[error.start]):04X}) at character "
                f"{error.start}, which is not a Unicode character; send valid UTF-16 pairs or UTF-8 text.",
                index=index,
            ) from None


def parse_predict_request(body: bytes, limits: Limits) -> tuple[list[str], int | None, bool]:
    """Check a ``POST /v1/predict`` body and return ``(texts, top_k, return_scores)``.

    Parameters
    ----------
    body : bytes
        The request body, at most ``limits.max_body_bytes`` long.
    limits : Limits

    Returns
    -------
    texts : list of str
    top_k : int or None
    return_scores : bool

    Raises
    ------
    RequestError
        400 for a body that is not UTF-8 JSON, 422 for anything else wrong with it; the
        message names the problem, and the limit where one was broken.
    """
    try:
        payload = json.loads(body)
    except UnicodeDecodeError as error:
        raise RequestError(
            400, "malformed_json", f"The body is not UTF-8 text ({error.reason} at byte {error.start})."
        ) from None
    except json.JSONDecodeError as error:
        raise RequestError(
            400, "malformed_json", f'The body is not valid JSON: {error}. Send {{"texts": ["a text", ...]}}.'
        ) from None
    except RecursionError:
        raise RequestError(400, "malformed_json", "The body nests JSON too deeply.") from None
    if not isinstance(payload, dict):
        raise RequestError(
            422,
            "not_an_object",
            f'The body must be a JSON object such as {{"texts": ["a text"]}}; got a JSON {type(payload).__name__}.',
        )
    unknown = [name for name in payload if name not in PREDICT_FIELDS]
    if unknown:
        hints = {name: difflib.get_close_matches(name, PREDICT_FIELDS, n=1) for name in unknown}
        hint = "".join(f" Did you mean {close[0]!r} for {name!r}?" for name, close in hints.items() if close)
        raise RequestError(
            422,
            "unknown_fields",
            f"Unknown field(s) {', '.join(map(repr, unknown))}; a request has {', '.join(PREDICT_FIELDS)}.{hint}",
            fields=list(PREDICT_FIELDS),
        )
    if "texts" not in payload:
        raise RequestError(422, "missing_texts", 'The body has no "texts": send {"texts": ["a text", ...]}.')
    texts = payload["texts"]
    if not isinstance(texts, list):
        hint = " Wrap a single text in a list." if isinstance(texts, str) else ""
        raise RequestError(
            422, "texts_not_a_list", f"'texts' must be a list of strings; got a JSON {type(texts).__name__}.{hint}"
        )
    if not texts:
        raise RequestError(
            422,
            "empty_texts",
            f"'texts' is empty; send between 1 and {limits.max_texts_per_request} texts.",
            limit=limits.max_texts_per_request,
        )
    if len(texts) > limits.max_texts_per_request:
        raise RequestError(
            422,
            "too_many_texts",
            f"'texts' holds {len(texts)} texts; a request may hold at most {limits.max_texts_per_request} "
            "(the server's --max-texts-per-request). Split it into several requests.",
            limit=limits.max_texts_per_request,
        )
    for index, text in enumerate(texts):
        _check_text(index, text, limits)
    top_k = payload.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RequestError(422, "bad_top_k", f"'top_k' must be null or an integer >= 1; got {json.dumps(top_k)[:60]}.")
    return_scores = payload.get("return_scores", True)
    if not isinstance(return_scores, bool):
        raise RequestError(
            422, "bad_return_scores", f"'return_scores' must be true or false; got {json.dumps(return_scores)[:60]}."
        )
    return texts, top_k, return_scores


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes."""
    too_large = RequestError(
        413,
        "body_too_large",
        f"The request body exceeds {limit} bytes (the server's limit); send fewer or shorter texts per request.",
        limit=limit,
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _unavailable(code: str, message: str) -> JSONResponse:
    return RequestError(503, code, message).response(headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class _Service:
    """One backend, its batcher and its metrics: what the routes share."""

    def __init__(self, backend: ModelBackend, batcher_options: dict[str, Any], limits: Limits) -> None:
        self.backend = backend
        self.limits = limits
        self.metrics = ServerMetrics()
        self.on_load_error: Callable[[BaseException], None] | None = None
        self.batcher = DynamicBatcher(
            backend.run,
            metrics=self.metrics,
            prepare=self._load_and_warm_up,
            on_prepare_error=lambda error: self.on_load_error and self.on_load_error(error),
            **batcher_options,
        )
        self.started = False

    def _load_and_warm_up(self) -> None:
        start = time.perf_counter()
        self.backend.load()
        self.backend.run(list(WARM_UP_TEXTS))
        logger.info(
            "sktext serve: %s model loaded from %s and warmed up in %.1f s; ready",
            self.backend.name,
            self.backend.folder,
            time.perf_counter() - start,
        )

    def ensure_started(self) -> None:
        """Start the inference thread (the lifespan does; a mounted app without it starts on first use)."""
        if not self.started:
            self.started = True
            self.batcher.start()


def _routes(service: _Service) -> list[Route]:
    metrics = service.metrics

    def counted(endpoint: str, response: Response, start: float | None = None) -> Response:
        seconds = None if start is None else time.perf_counter() - start
        metrics.observe_request(endpoint, response.status_code, seconds)
        return response

    async def predict(request: Request) -> Response:
        start = time.perf_counter()
        service.ensure_started()
        batcher = service.batcher
        try:
            if not batcher.accepting:
                return counted("predict", _unavailable("not_serving", _not_serving_message(service)), start)
            if batcher.full:  # refused before its body is read
                raise QueueFull()
            body = await _read_body(request, service.limits.max_body_bytes)
            texts, top_k, return_scores = parse_predict_request(body, service.limits)
            rows = await batcher.submit(texts)
        except RequestError as error:
            return counted("predict", error.response(), start)
        except QueueFull:
            message = (
                f"The server's queue is full ({batcher.queue_size} requests waiting, its --queue-size); "
                f"retry after {RETRY_AFTER_SECONDS} s."
            )
            return counted("predict", _unavailable("queue_full", message), start)
        except NotServing as error:
            return counted("predict", _unavailable("not_serving", f"The server is not serving: {error}."), start)
        except ModelError as error:
            failure = RequestError(500, "model_error", f"The model failed on the batch holding this request: {error}")
            return counted("predict", failure.response(), start)
        answers = service.backend.answer(rows, top_k=top_k, return_scores=return_scores)
        return counted("predict", JSONResponse({"predictions": answers}), start)

    async def model(request: Request) -> Response:
        return counted("model", JSONResponse(service.backend.description))

    async def health(request: Request) -> Response:
        return counted("health", JSONResponse({"status": "ok", "sktext_version": __version__}))

    async def ready(request: Request) -> Response:
        service.ensure_started()
        if service.batcher.ready.is_set() and service.batcher.accepting:
            return counted("ready", JSONResponse({"status": "ready"}))
        return counted("ready", _unavailable("not_ready", _not_serving_message(service)))

    async def metrics_route(request: Request) -> Response:
        return counted("metrics", Response(metrics.render(), media_type=CONTENT_TYPE_LATEST))

    async def openapi(request: Request) -> Response:
        return counted("openapi", JSONResponse(OPENAPI))

    return [
        Route("/v1/predict", predict, methods=["POST"]),
        Route("/v1/model", model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]


def _not_serving_message(service: _Service) -> str:
    batcher = service.batcher
    if batcher.prepare_error is not None:
        return f"The model failed to load: {type(batcher.prepare_error).__name__}: {batcher.prepare_error}"
    if not batcher.accepting:
        return "The server is shutting down."
    return "The model is loading; retry shortly."


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's 404 / 405 as the same JSON errors."""
    assert isinstance(error, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    message = f"{request.method} {request.url.path}: {error.detail}. The routes are listed at GET /openapi.json."
    return RequestError(error.status_code, code, message).response(headers=error.headers)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}.")
    return value


def create_app(
    folder: str | os.PathLike,
    *,
    backend: str = "torch",
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
    max_texts_per_request: int = DEFAULT_MAX_TEXTS_PER_REQUEST,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    queue_size: int = DEFAULT_QUEUE_SIZE,
) -> Starlette:
    """A Starlette (ASGI) application that serves a model folder over HTTP.

    The folder's description is read now (a wrong folder raises here); the model
    itself loads in the inference thread when the application starts (its lifespan),
    after which one warm-up batch runs and ``GET /ready`` answers 200. On shutdown
    the lifespan waits until every accepted request has its answer.

    Parameters
    ----------
    folder : str or path-like
        A model folder (``estimator.save``, ``sktext fit``) for ``backend="torch"``,
        or an ``export_onnx`` folder for ``backend="onnx"``.
    backend : {"torch", "onnx"}, default="torch"
        ``"onnx"`` predicts with :class:`sktext.deploy.OnnxPredictor` and imports no torch.
    max_batch_size : int, default=64
        Texts per model call, at most (a larger request runs alone).
    max_wait_ms : float, default=5.0
        How long a request waits for others to join its batch.
    max_texts_per_request : int, default=1000
    max_text_chars : int, default=100000
        Characters of one text.
    max_body_bytes : int, default=10485760
        Bytes of one request body (10 MiB).
    queue_size : int, default=64
        Requests waiting for a batch, at most; beyond it, 503 with ``Retry-After``.

    Returns
    -------
    app : starlette.applications.Starlette
        Mounted in another application, pass its lifespan on
        (``Starlette(routes=[Mount("/sktext", app)], lifespan=app.router.lifespan_context)``)
        so that shutdown drains the queue; without it the model loads on the first request.

    Examples
    --------
    >>> import uvicorn
    >>> from sktext.serve import create_app
    >>> uvicorn.run(create_app("model", max_batch_size=32), port=8000)  # doctest: +SKIP
    """
    for name, value in [
        ("max_batch_size", max_batch_size),
        ("max_texts_per_request", max_texts_per_request),
        ("max_text_chars", max_text_chars),
        ("max_body_bytes", max_body_bytes),
        ("queue_size", queue_size),
    ]:
        _positive_int(name, value)
    if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, (int, float)) or not 0 <= max_wait_ms < 60_000:
        raise ValueError(f"max_wait_ms must be a number of milliseconds in [0, 60000); got {max_wait_ms!r}.")
    limits = Limits(max_texts_per_request, max_text_chars, max_body_bytes)
    service = _Service(
        make_backend(folder, backend),
        {"max_batch_size": max_batch_size, "max_wait_ms": float(max_wait_ms), "queue_size": queue_size},
        limits,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.ensure_started()
        try:
            yield
        finally:
            batcher = service.batcher
            batcher.close()
            await batcher.wait_closed()
            logger.info(
                "sktext serve: stopped; %d of %d accepted prediction requests answered",
                batcher.n_answered,
                batcher.n_accepted,
            )

    app = Starlette(routes=_routes(service), lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.service = service
    return app


_ERROR = {"$ref": "#/components/schemas/Error"}
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "sktext serve", "version": __version__},
    "paths": {
        "/v1/predict": {
            "post": {
                "summary": "Labels (and probabilities) of each text, or a regressor's numbers",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "One prediction per text, in order",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictResponse"}}},
                    },
                    "400": {"description": "Not UTF-8 JSON", "content": {"application/json": {"schema": _ERROR}}},
                    "413": {"description": "Body too large", "content": {"application/json": {"schema": _ERROR}}},
                    "422": {"description": "Invalid request", "content": {"application/json": {"schema": _ERROR}}},
                    "500": {"description": "The model failed", "content": {"application/json": {"schema": _ERROR}}},
                    "503": {
                        "description": "Queue full, loading, or shutting down (see Retry-After)",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                },
            }
        },
        "/v1/model": {
            "get": {
                "summary": "What the model predicts, from its manifest",
                "responses": {
                    "200": {"description": "Task, estimator, base encoder, labels, thresholds, targets, sktext version"}
                },
            }
        },
        "/health": {"get": {"summary": "Alive", "responses": {"200": {"description": "The process runs"}}}},
        "/ready": {
            "get": {
                "summary": "Model loaded and warmed up",
                "responses": {
                    "200": {"description": "Ready"},
                    "503": {"description": "Loading, failed, or shutting down"},
                },
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Prometheus text format"}}}
        },
    },
    "components": {
        "schemas": {
            "PredictRequest": {
                "type": "object",
                "additionalProperties": False,
                "required": ["texts"],
                "properties": {
                    "texts": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": DEFAULT_MAX_TEXTS_PER_REQUEST,
                        "items": {"type": "string", "maxLength": DEFAULT_MAX_TEXT_CHARS},
                    },
                    "top_k": {"type": ["integer", "null"], "minimum": 1, "default": None},
                    "return_scores": {"type": "boolean", "default": True},
                },
            },
            "PredictResponse": {
                "type": "object",
                "properties": {
                    "predictions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "labels": {"type": "array", "items": {"type": "string"}},
                                "scores": {"type": "object", "additionalProperties": {"type": "number"}},
                                "targets": {"type": "object"},
                                "values": {"type": "object", "additionalProperties": {"type": "number"}},
                            },
                        },
                    }
                },
            },
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "limit": {"type": "integer"},
                            "index": {"type": "integer"},
                        },
                    }
                },
            },
        }
    },
}
