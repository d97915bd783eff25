"""``sktext serve``: run :func:`~sktext.serve.app.create_app` under uvicorn until a signal.

SIGTERM (and SIGINT, Ctrl-C) makes uvicorn stop listening, finish the requests it is
answering, then run the application's lifespan shutdown, which waits until the
inference thread has answered every request it accepted; the process then exits 0. A
second Ctrl-C forces the exit. uvicorn re-raises the signal it caught once it is done;
the handlers set here take it, so a clean shutdown is status 0, not death by SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from .app import DEFAULT_QUEUE_SIZE, create_app

__all__ = ["run_server"]

logger = logging.getLogger("sktext.serve")
EXIT_LOAD_FAILED = 1


def _configure_logging() -> None:
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _after_uvicorn(signum: int, frame: Any) -> None:
    """Take the signal uvicorn re-raises after its graceful shutdown: the shutdown is done."""


def run_server(
    folder: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    **options: Any,
) -> int:
    """Serve a model folder until SIGTERM or SIGINT; return the exit status.

    Parameters
    ----------
    folder : str or path-like
        As for :func:`~sktext.serve.app.create_app`.
    host : str, default="127.0.0.1"
        ``0.0.0.0`` listens on every interface.
    port : int, default=8000
    log_level : str, default="info"
        uvicorn's.
    **options
        :func:`~sktext.serve.app.create_app`'s keyword arguments (``backend``,
        ``max_batch_size``, ``max_wait_ms``, the limits, ``queue_size``).

    Returns
    -------
    status : int
        0 after a signal once every accepted request is answered; 1 when the model
        failed to load.
    """
    import uvicorn

    _configure_logging()
    app = create_app(folder, **options)
    queue_size = options.get("queue_size", DEFAULT_QUEUE_SIZE)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        # Connections (and so bodies being read) are bounded too; beyond it uvicorn answers 503.
        limit_concurrency=max(256, 4 * queue_size),
    )
    server = uvicorn.Server(config)
    service = app.state.service

    def stop_on_load_error(error: BaseException) -> None:
        server.should_exit = True

    service.on_load_error = stop_on_load_error
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, _after_uvicorn) for signum in handled}
    try:
        server.run()
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
    if service.batcher.prepare_error is not None:
        return EXIT_LOAD_FAILED
    return 0
