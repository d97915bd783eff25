"""Serve a model folder over HTTP: dynamic batching, limits, metrics, a clean shutdown.

``sktext serve MODEL_DIR`` (``pip install "sktext[serve]"``: Starlette, uvicorn,
prometheus-client) or, in a service of one's own, :func:`create_app`. A leaf package:
the core never imports it.

Modules
-------
:mod:`sktext.serve.app`
    The routes, the request checks and limits, :func:`create_app`.
:mod:`sktext.serve.batcher`
    :class:`~sktext.serve.batcher.DynamicBatcher`: concurrent requests merged into one
    model call, in one inference thread, behind a bounded queue.
:mod:`sktext.serve.backends`
    The model the server calls: a model folder on torch, or an ONNX export on
    onnxruntime (no torch); the shapes of the answers.
:mod:`sktext.serve.metrics`
    The Prometheus metrics.
:mod:`sktext.serve.server`
    :func:`run_server`: uvicorn, signals, exit status.
"""

from __future__ import annotations

from .app import create_app
from .server import run_server

__all__ = ["create_app", "run_server"]
