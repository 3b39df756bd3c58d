"""Prometheus metrics of one API app: requests and latency per route, analyses by label,
queue depth, model version. Each app has its own registry (tests build many apps)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["Telemetry"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Telemetry:
    """The metrics and the middleware that fills them."""

    def __init__(self, queue_depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "auscult_http_requests",
            "HTTP requests answered, by route, method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.errors = Counter(
            "auscult_http_errors",
            "HTTP requests answered with a 4xx/5xx status, by route",
            ("route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "auscult_http_request_seconds",
            "Time to answer, by route",
            ("route",),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.analyses = Counter(
            "auscult_analyses",
            "Analyses finished through the API, by label ('failed' for unusable recordings)",
            ("label",),
            registry=self.registry,
        )
        self.model = Gauge(
            "auscult_model_info", "The loaded model version", ("version",), registry=self.registry
        )
        Gauge(
            "auscult_queue_depth",
            "Recordings waiting for the analysis worker",
            registry=self.registry,
        ).set_function(queue_depth)
        Gauge(
            "auscult_analyses_in_flight",
            "API analyses running now",
            registry=self.registry,
        ).set_function(in_flight)
        self.started = time.time()

    def install(self, app: FastAPI) -> None:
        """Count and time every request (plain ASGI: errors pass through as themselves)."""
        telemetry = self

        class Measure:
            def __init__(self, inner) -> None:
                self.app = inner

            async def __call__(self, scope, receive, send) -> None:
                if scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return
                started = time.perf_counter()
                status = [500]

                async def record_status(message) -> None:
                    if message["type"] == "http.response.start":
                        status[0] = message["status"]
                    await send(message)

                try:
                    await self.app(scope, receive, record_status)
                finally:
                    route = scope.get("route")
                    path = getattr(route, "path", "unmatched")
                    code = str(status[0])
                    telemetry.requests.labels(path, scope["method"], code).inc()
                    telemetry.latency.labels(path).observe(time.perf_counter() - started)
                    if status[0] >= 400:
                        telemetry.errors.labels(path, code).inc()

        app.add_middleware(Measure)

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
