"""Prometheus metrics of one app (its own registry, so several apps can live in a process).

- ``vitalsentry_requests_total{method, route, status}``: answered requests;
- ``vitalsentry_request_seconds{route}``: latency histogram;
- ``vitalsentry_scores_total{level}``: patients scored, by risk level;
- ``vitalsentry_batch_patients``: patients per pipeline call (requests are combined).

Routes are labelled by their template (``/v1/score``), never by a raw path, so a client
cannot grow the label set.
"""

from __future__ import annotations

import time
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS: Final = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
UNMATCHED: Final = "unmatched"


class ServiceMetrics:
    """The service's collectors in a private :class:`~prometheus_client.CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "vitalsentry_requests",
            "HTTP requests answered",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "vitalsentry_request_seconds",
            "HTTP request latency",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scores = Counter(
            "vitalsentry_scores",
            "Patients scored, by risk level",
            ("level",),
            registry=self.registry,
        )
        self.batch_patients = Histogram(
            "vitalsentry_batch_patients",
            "Patients scored per pipeline call",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """Return the text exposition format of every collector."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware counting requests and timing them, by route template.

    Parameters
    ----------
    app : ASGI app
        The wrapped app.
    metrics : ServiceMetrics
        Where to record.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app and record the request's status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
