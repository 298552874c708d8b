"""Prometheus metrics of one app: its own registry, an ASGI middleware, and what ``/metrics`` answers.

Labels are bounded: routes are templates (``/v1/models/{name}/predict``, never a raw path; an
unmatched path is ``<unmatched>``), statuses are classes (``2xx``), errors are loopml error codes,
and ``model``/``version`` name only models this app has served (a request for any other name is
counted with empty ones). A request's ``version`` is the version serving its model when it finished.

What is exposed (``loopml_`` metrics; histograms also give ``_bucket``, ``_count`` and ``_sum``):

- ``http_requests_total{route,method,status,model,version}``, ``http_errors_total{route,code,model,
  version}``, ``http_request_duration_seconds{route,method}`` (buckets from 100 µs to 10 s),
  ``http_requests_in_flight``;
- ``grpc_requests_total{rpc,code,model,version}`` and ``grpc_request_duration_seconds{rpc}``: the calls
  of the gRPC endpoint (``loopml serve --grpc-port``) by RPC and status code (``OK``, ``NOT_FOUND``);
- ``predictions_total{model,version}`` and ``prediction_score{model,version}``: buckets dense at both
  ends for probabilities (rare positives put most scores under 0.01), 1-2.5-5 steps over nine decades
  otherwise, so ``histogram_quantile`` has resolution where the scores are;
- ``model_info{model,version,alias}`` (1) and ``model_refused{model,version}``;
- the monitoring and outbox gauges of :mod:`loopml.serve.gauges`;
- the standard ``process_*`` (CPU, memory, open files) and ``python_*`` (GC, version) collectors.

**Several worker processes**: when ``PROMETHEUS_MULTIPROC_DIR`` names a folder before the process
starts (prometheus_client's multiprocess mode), every worker writes its values there and a scrape of
any worker answers the sum over all of them (in-flight requests: over the live ones); the process
collectors are then left out, as prometheus_client cannot add them up across processes.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = [
    "LATENCY_BUCKETS",
    "PROBABILITY_BUCKETS",
    "VALUE_BUCKETS",
    "Metrics",
    "MetricsMiddleware",
    "multiprocess_mode",
    "replica_id",
    "route_of",
    "score_buckets",
]

UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
    *(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PROBABILITY_BUCKETS = (
    *(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5),
    *(0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 1.0),
)
VALUE_BUCKETS = (0.0, *(round(m * 10.0**e, 4) for e in range(-2, 7) for m in (1.0, 2.5, 5.0)))


def score_buckets(bounds: tuple[float, float] | None) -> tuple[float, ...]:
    """The score histogram's buckets for a task whose scores lie in ``bounds`` (None: unbounded)."""
    return PROBABILITY_BUCKETS if bounds == (0.0, 1.0) else VALUE_BUCKETS


def multiprocess_mode() -> bool:
    """Whether prometheus_client writes values to ``PROMETHEUS_MULTIPROC_DIR`` (chosen when it was
    first imported, so the variable must be set before the process starts)."""
    return values.ValueClass is not values.MutexValue and bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The app's collectors, in a registry of its own (never the process-global one)."""

    def __init__(
        self, score_buckets: Iterable[float] = PROBABILITY_BUCKETS, replica: str | None = None
    ) -> None:
        self.replica = replica  # labels every sample ``replica=...`` (one API among several; see replica_id)
        self.multiprocess = multiprocess_mode()
        self.registry = CollectorRegistry(auto_describe=True)
        self._extra: list[Collector] = []  # scrape-time collectors, also exposed in multiprocess mode
        reg = self.registry
        self.requests = Counter(
            "loopml_http_requests",
            "HTTP requests by route template, method, status class, and the model and version served.",
            ["route", "method", "status", "model", "version"],
            registry=reg,
        )
        self.errors = Counter(
            "loopml_http_errors",
            "Error responses by route template, loopml error code, model and version.",
            ["route", "code", "model", "version"],
            registry=reg,
        )
        self.latency = Histogram(
            "loopml_http_request_duration_seconds",
            "Time from request to the end of the response, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "loopml_http_requests_in_flight",
            "HTTP requests being served now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.grpc_requests = Counter(
            "loopml_grpc_requests",
            "gRPC calls of the v2 inference service by RPC, status code, and the model and version served.",
            ["rpc", "code", "model", "version"],
            registry=reg,
        )
        self.grpc_latency = Histogram(
            "loopml_grpc_request_duration_seconds",
            "Time from a gRPC call to its answer, by RPC.",
            ["rpc"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.predictions = Counter(
            "loopml_predictions",
            "Predictions made, by model and version.",
            ["model", "version"],
            registry=reg,
        )
        self.scores = Histogram(
            "loopml_prediction_score",
            "Predicted scores, by model and version.",
            ["model", "version"],
            buckets=tuple(score_buckets),
            registry=reg,
        )
        self.model_info = Gauge(
            "loopml_model_info",
            "The model version being served (value 1).",
            ["model", "version", "alias"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.model_refused = Gauge(
            "loopml_model_refused",
            "1 while the served alias points at a version this server refuses (its artifact fails its "
            "SHA-256 or safe-load check); the version is in the label.",
            ["model", "version"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        if not self.multiprocess:
            for standard in (ProcessCollector, PlatformCollector, GCCollector):
                standard(registry=reg)
        self._served: dict[str, tuple[str, str]] = {}  # model -> (version, alias) of its info series
        self._refused: dict[str, str] = {}
        self._versions: dict[str, str] = {}  # model -> the version serving it now (a label value)
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def add_collector(self, collector: Collector) -> None:
        """Expose ``collector`` (computed at scrape time) with the rest."""
        self.registry.register(collector)
        self._extra.append(collector)

    def exposition(self) -> bytes:
        """Everything, in the Prometheus text format (summed over the workers in multiprocess mode)."""
        if not self.multiprocess:
            return generate_latest(_Replica(self.registry, self.replica))
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry(auto_describe=True)
        MultiProcessCollector(registry)
        PlatformCollector(registry=registry)
        for collector in self._extra:
            registry.register(collector)
        return generate_latest(_Replica(registry, self.replica))

    def close(self) -> None:
        """At shutdown: in multiprocess mode, this worker's live gauges stop counting."""
        if self.multiprocess:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(os.getpid())

    def serving(self, model: str, version: int, alias: str) -> None:
        """Point ``model``'s info series at the version being served (one series per model)."""
        labels = (str(version), alias)
        before = self._served.get(model)
        if labels != before:
            if before is not None:
                self.model_info.labels(model, *before).set(0)  # a worker's file keeps it, at 0
                self.model_info.remove(model, *before)
            self.model_info.labels(model, *labels).set(1)
            self._served[model] = labels
        self._versions[model] = labels[0]

    def refusing(self, model: str, version: int | None) -> None:
        """Point ``model``'s refused-version series at ``version`` (None: nothing refused, no series)."""
        before, now = self._refused.get(model), None if version is None else str(version)
        if now == before:
            return
        if before is not None:
            self.model_refused.labels(model, before).set(0)
            self.model_refused.remove(model, before)
            del self._refused[model]
        if now is not None:
            self.model_refused.labels(model, now).set(1)
            self._refused[model] = now

    def observe_scores(self, model: str, scores: list[float], version: int | str | None = None) -> None:
        """Count ``scores`` and add them to the score histogram of ``model`` at ``version`` (default:
        the version :meth:`serving` last named)."""
        key = (model, self._versions.get(model, "") if version is None else str(version))
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.predictions.labels(*key), self.scores.labels(*key))
        counter, histogram = children
        counter.inc(len(scores))
        for score in scores:
            histogram.observe(score)

    def model_of(self, scope: Mapping[str, Any]) -> tuple[str, str]:
        """The ``(model, version)`` labels of a request: its ``{name}``, if this app serves it."""
        name = (scope.get("path_params") or {}).get("name")
        version = self._versions.get(name) if isinstance(name, str) else None
        return (name, version) if version is not None and isinstance(name, str) else ("", "")

    def grpc_call(self, rpc: str, code: str, model: str, seconds: float) -> None:
        """Count and time one gRPC call (``code``: its status code's name); ``model`` labels it, with
        the version serving it, only if this app serves it (as :meth:`model_of`)."""
        version = self._versions.get(model)
        labels = (model, version) if version is not None else ("", "")
        self.grpc_requests.labels(rpc, code, *labels).inc()
        self.grpc_latency.labels(rpc).observe(seconds)

    def error(self, route: str, code: str, scope: Mapping[str, Any] | None = None) -> None:
        model, version = self.model_of(scope) if scope is not None else ("", "")
        self.errors.labels(route, code, model, version).inc()


def replica_id() -> str:
    """This API process among its replicas: ``<host>:<pid>`` (in Kubernetes the host is the pod)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Replica(CollectorRegistry):
    """What ``registry`` collects, each sample labelled ``replica`` (nothing added for None)."""

    def __init__(self, registry: CollectorRegistry, replica: str | None) -> None:
        super().__init__(auto_describe=False)
        self._inner, self._replica = registry, replica

    def collect(self) -> Iterator[Metric]:
        for family in self._inner.collect():
            if self._replica is not None:
                family.samples = [
                    sample._replace(labels={**sample.labels, "replica": self._replica})
                    for sample in family.samples
                ]
            yield family


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

        metrics = self.metrics
        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            metrics.in_flight.dec()
            route, method = route_of(scope), scope.get("method", "")
            method = method if method in _METHODS else "other"  # a client can send any method name
            metrics.requests.labels(route, method, f"{status // 100}xx", *metrics.model_of(scope)).inc()
            metrics.latency.labels(route, method).observe(time.perf_counter() - started)
