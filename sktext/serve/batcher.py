"""Dynamic batching: concurrent requests merged into one model call, in one inference thread.

The event loop hands each request's texts to :meth:`DynamicBatcher.submit`, which puts
them in a bounded queue and awaits their rows. One thread, the only one that calls the
model, takes the oldest request and, until the batch holds ``max_batch_size`` texts or
that request has waited ``max_wait_ms``, adds the requests behind it; it runs the batch
as one call (``run(texts)``, one row per text), and hands each request its own rows,
in order, back on the event loop. Requests are never split: one of more than
``max_batch_size`` texts is a batch of its own (``predict_proba`` batches it inside).

The queue holds at most ``queue_size`` requests; :meth:`~DynamicBatcher.submit`
raises :class:`QueueFull` beyond that (the server answers 503), so memory stays
bounded however many clients wait. An exception in the model fails that batch's
requests only (:class:`ModelError`) and is logged; the thread goes on with the next.
:meth:`~DynamicBatcher.close` stops accepting and lets the thread finish every request
already accepted before it exits.

The thread also loads the model (``prepare``) before its first batch, so the server
answers ``/health`` while a large model loads; requests accepted meanwhile wait.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .metrics import ServerMetrics

__all__ = ["DynamicBatcher", "ModelError", "NotServing", "QueueFull"]

logger = logging.getLogger("sktext.serve")


class QueueFull(Exception):
    """The queue holds ``queue_size`` requests: try again later (503)."""


class NotServing(Exception):
    """The batcher is closing, or its model failed to load (503)."""


class ModelError(Exception):
    """The model raised on the batch this request was part of (500)."""


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.monotonic)


def _resolve(future: asyncio.Future, value: object, failed: bool) -> None:
    if future.done():  # the request went away (its task was cancelled)
        return
    if failed:
        future.set_exception(value)  # type: ignore[arg-type]
    else:
        future.set_result(value)


class DynamicBatcher:
    """Merge concurrent requests into batches run by one inference thread.

    Parameters
    ----------
    run : callable
        ``run(texts) -> ndarray of shape (len(texts), n_columns)``: one model call.
    max_batch_size : int, default=64
        Texts per batch, at most (a larger request runs alone).
    max_wait_ms : float, default=5.0
        How long the oldest request waits for others to join its batch.
    queue_size : int, default=64
        Requests waiting for a batch, at most.
    metrics : ServerMetrics, optional
    prepare : callable, optional
        Called once in the thread before the first batch (load the model, warm it up).
    on_prepare_error : callable, optional
        Called with the exception if ``prepare`` raises (the batcher then refuses
        every request).

    Attributes
    ----------
    ready : threading.Event
        Set once ``prepare`` has returned.
    prepare_error : BaseException or None
    n_accepted, n_answered : int
        Requests accepted by :meth:`submit`, and those given their rows or their error.
    """

    def __init__(
        self,
        run: Callable[[list[str]], np.ndarray],
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 5.0,
        queue_size: int = 64,
        metrics: ServerMetrics | None = None,
        prepare: Callable[[], None] | None = None,
        on_prepare_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self.metrics = metrics or ServerMetrics()
        self.prepare = prepare
        self.on_prepare_error = on_prepare_error
        self.ready = threading.Event()
        self.prepare_error: BaseException | None = None
        self.n_accepted = 0
        self.n_answered = 0
        self._queue: deque[_Request] = deque()
        self._queued_texts = 0
        self._condition = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="sktext-inference", daemon=True)

    # -- the event loop's side --------------------------------------------------------
    def start(self) -> None:
        """Start the inference thread (it runs ``prepare`` first)."""
        self._thread.start()

    @property
    def accepting(self) -> bool:
        """Whether :meth:`submit` takes requests (not closing, the model not failed)."""
        return not self._closing and self.prepare_error is None

    @property
    def full(self) -> bool:
        """Whether the queue has no room (read without the lock: a hint for early refusals)."""
        return len(self._queue) >= self.queue_size

    async def submit(self, texts: list[str]) -> np.ndarray:
        """The rows of ``texts``, once the batch they joined has run.

        Parameters
        ----------
        texts : list of str

        Returns
        -------
        rows : ndarray of shape (len(texts), n_columns)

        Raises
        ------
        QueueFull
            The queue holds ``queue_size`` requests.
        NotServing
            The batcher is closing or its model failed to load.
        ModelError
            The model raised on this batch.
        """
        loop = asyncio.get_running_loop()
        request = _Request(list(texts), loop.create_future(), loop)
        with self._condition:
            if not self.accepting:
                raise NotServing("the server is shutting down" if self._closing else "the model failed to load")
            if len(self._queue) >= self.queue_size:
                raise QueueFull(f"{len(self._queue)} requests are waiting (the queue holds {self.queue_size})")
            self._queue.append(request)
            self._queued_texts += len(request.texts)
            self.n_accepted += 1
            self.metrics.set_queue(len(self._queue), self._queued_texts)
            self._condition.notify()
        return await request.future

    def close(self) -> None:
        """Accept no more requests; the thread finishes those already accepted, then ends."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()

    async def wait_closed(self) -> None:
        """Wait (without blocking the event loop) until the thread has answered everything and ended."""
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)

    # -- the inference thread ---------------------------------------------------------
    def _work(self) -> None:
        if self.prepare is not None:
            try:
                self.prepare()
            except BaseException as error:  # noqa: BLE001 - reported to every waiting request and the server
                logger.exception("sktext serve: the model failed to load")
                self._fail_prepare(error)
                return
        self.ready.set()
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run_batch(batch)

    def _fail_prepare(self, error: BaseException) -> None:
        with self._condition:
            self.prepare_error = error
            waiting, self._queue = list(self._queue), deque()
            self._queued_texts = 0
            self.metrics.set_queue(0, 0)
        for request in waiting:
            self._deliver(request, NotServing(f"the model failed to load: {error}"), failed=True)
        if self.on_prepare_error is not None:
            self.on_prepare_error(error)

    def _next_batch(self) -> list[_Request] | None:
        """The next batch: the oldest request and those that join it in time (None: closed and empty)."""
        with self._condition:
            while not self._queue:
                if self._closing:
                    return None
                self._condition.wait()
            batch = [self._queue.popleft()]
            size = len(batch[0].texts)
            deadline = batch[0].arrived + self.max_wait
            while size < self.max_batch_size:
                if self._queue:
                    if size + len(self._queue[0].texts) > self.max_batch_size:
                        break
                    batch.append(self._queue.popleft())
                    size += len(batch[-1].texts)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing:
                    break
                self._condition.wait(remaining)
            self._queued_texts -= size
            self.metrics.set_queue(len(self._queue), self._queued_texts)
        return batch

    def _run_batch(self, batch: list[_Request]) -> None:
        live = [request for request in batch if not request.future.done()]
        texts = [text for request in live for text in request.texts]
        start = time.perf_counter()
        try:
            rows = self.run(texts) if texts else None
        except Exception as error:  # noqa: BLE001 - one batch fails, the server goes on
            logger.exception(
                "sktext serve: the model raised on a batch of %d texts (%d requests)", len(texts), len(live)
            )
            self.metrics.observe_batch(len(texts), time.perf_counter() - start, failed=True)
            for request in batch:
                self._deliver(request, ModelError(f"{type(error).__name__}: {error}"), failed=True)
            return
        self.metrics.observe_batch(len(texts), time.perf_counter() - start, failed=False)
        offset = 0
        for request in live:
            self._deliver(request, rows[offset : offset + len(request.texts)], failed=False)
            offset += len(request.texts)
        self.n_answered += len(batch) - len(live)  # gone before their batch ran: nobody to answer

    def _deliver(self, request: _Request, value: object, *, failed: bool) -> None:
        self.n_answered += 1
        try:
            request.loop.call_soon_threadsafe(_resolve, request.future, value, failed)
        except RuntimeError:  # the event loop is closed: nobody waits any more
            pass
