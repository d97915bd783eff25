"""The server's Prometheus metrics, in a registry of its own (one per app).

``GET /metrics`` returns them in Prometheus' text format:

``sktext_requests_total{endpoint, status}``
    Requests answered, by endpoint and HTTP status.
``sktext_request_duration_seconds{endpoint}``
    Latency of ``POST /v1/predict`` (reading the body to the answer), a histogram.
``sktext_batch_size_texts``
    Texts in each batch the model ran, a histogram (above 1 when requests were merged).
``sktext_batch_duration_seconds``
    Time the model took per batch, a histogram.
``sktext_queue_depth_requests``, ``sktext_queue_depth_texts``
    Requests (and their texts) accepted and waiting for a batch.
``sktext_texts_predicted_total``
    Texts the model answered.
``sktext_batch_errors_total``
    Batches in which the model raised (each of their requests got a 500).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServerMetrics:
    """The metrics of one server (see the module docstring), in their own registry.

    Attributes
    ----------
    registry : prometheus_client.CollectorRegistry
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sktext_requests",
            "Requests answered, by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sktext_request_duration_seconds",
            "Latency of prediction requests.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "sktext_batch_size_texts", "Texts per model batch.", buckets=_BATCH_BUCKETS, registry=self.registry
        )
        self.batch_duration = Histogram(
            "sktext_batch_duration_seconds", "Model time per batch.", buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.queue_requests = Gauge(
            "sktext_queue_depth_requests", "Requests waiting for a batch.", registry=self.registry
        )
        self.queue_texts = Gauge("sktext_queue_depth_texts", "Texts waiting for a batch.", registry=self.registry)
        self.texts = Counter("sktext_texts_predicted", "Texts the model answered.", registry=self.registry)
        self.batch_errors = Counter("sktext_batch_errors", "Batches in which the model raised.", registry=self.registry)

    def observe_request(self, endpoint: str, status: int, seconds: float | None = None) -> None:
        """Count one answered request (and, for predictions, its latency)."""
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        if seconds is not None:
            self.latency.labels(endpoint=endpoint).observe(seconds)

    def observe_batch(self, n_texts: int, seconds: float, failed: bool) -> None:
        """Record one batch the model ran."""
        self.batch_size.observe(n_texts)
        self.batch_duration.observe(seconds)
        if failed:
            self.batch_errors.inc()
        else:
            self.texts.inc(n_texts)

    def set_queue(self, n_requests: int, n_texts: int) -> None:
        """The queue's depth now."""
        self.queue_requests.set(n_requests)
        self.queue_texts.set(n_texts)

    def render(self) -> bytes:
        """Every metric in Prometheus' text format."""
        return generate_latest(self.registry)
