"""Prometheus metrics of one app: its own registry and an ASGI middleware (``/metrics`` is in routes).

Labels are bounded: routes are templates (``/v1/models/{name}/predict``, never a raw path; an
unmatched path is ``<unmatched>``), statuses are classes (``2xx``), errors are loopml error codes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics", "MetricsMiddleware", "route_of"]

UNMATCHED = "<unmatched>"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


class Metrics:
    """The app's collectors, in a registry of its own (never the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter(
            "loopml_http_requests",
            "HTTP requests by route template, method and status class.",
            ["route", "method", "status"],
            registry=reg,
        )
        self.errors = Counter(
            "loopml_http_errors",
            "Error responses by route template and loopml error code.",
            ["route", "code"],
            registry=reg,
        )
        self.latency = Histogram(
            "loopml_http_request_duration_seconds",
            "Time from request to the end of the response, by route template and method.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.predictions = Counter(
            "loopml_predictions", "Predictions made, by model.", ["model"], registry=reg
        )
        self.scores = Histogram(
            "loopml_prediction_score",
            "Predicted scores, by model.",
            ["model"],
            buckets=_SCORE_BUCKETS,
            registry=reg,
        )
        self.model_info = Gauge(
            "loopml_model_info",
            "The model version being served (value 1).",
            ["model", "version", "alias"],
            registry=reg,
        )
        self.model_refused = Gauge(
            "loopml_model_refused",
            "1 while the served alias points at a version this server refuses (its artifact fails its "
            "SHA-256 or safe-load check); the version is in the label.",
            ["model", "version"],
            registry=reg,
        )
        self._served: tuple[str, str, str] | None = None
        self._refused: tuple[str, str] | None = None

    def serving(self, model: str, version: int, alias: str) -> None:
        """Point the info metric at the version being served (one series at a time)."""
        labels = (model, str(version), alias)
        if labels != self._served:
            self.model_info.clear()
            self.model_info.labels(*labels).set(1)
            self._served = labels

    def refusing(self, model: str, version: int | None) -> None:
        """Point the refused-version metric at ``version`` (None: nothing refused, no series)."""
        labels = (model, str(version)) if version is not None else None
        if labels != self._refused:
            self.model_refused.clear()
            if labels is not None:
                self.model_refused.labels(*labels).set(1)
            self._refused = labels

    def observe_scores(self, model: str, scores: list[float]) -> None:
        self.predictions.labels(model).inc(len(scores))
        histogram = self.scores.labels(model)
        for score in scores:
            histogram.observe(score)

    def error(self, route: str, code: str) -> None:
        self.errors.labels(route, code).inc()


def route_of(scope: Mapping[str, Any]) -> str:
    """The route template that served a request, or ``<unmatched>``."""
    return getattr(scope.get("route"), "path", None) or UNMATCHED


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (a plain ASGI middleware: no body copies)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route, method = route_of(scope), scope.get("method", "")
            method = method if method in _METHODS else "other"  # a client can send any method name
            self.metrics.requests.labels(route, method, f"{status // 100}xx").inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)
