"""Gauges read from the store when Prometheus scrapes: monitoring results and the action outbox.

Two sources, both cheap, so ``/metrics`` stays fast:

- **the last monitoring pass recorded** (``loopml monitor``, and each policy check of ``loopml
  worker``, every ``retrain.interval_s``): drift per feature, realized and estimated performance,
  label coverage, predictions waiting for labels. A pass reads the whole prediction log, far too slow
  for a scrape; its summary is one row per model (:func:`loopml.store.latest_monitor_pass`).
  ``loopml_monitor_last_pass_timestamp_seconds`` says how old it is: alert when it stops moving.
- **the outbox, counted at scrape time** (one indexed query): actions not delivered yet, dead ones,
  and the age of the oldest undelivered one, so a stuck dispatcher shows within one scrape.

Results are kept for ``ttl`` seconds (several Prometheus servers, or a dashboard refreshing, cost one
query per ``ttl``). A store that cannot be read gives ``loopml_store_up 0`` instead of the gauges.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from loopml.actions import OutboxBacklog, outbox_backlog
from loopml.store import MonitorPass, Store, latest_monitor_pass

__all__ = ["StoreGauges"]

log = logging.getLogger(__name__)

_DRIFT = (
    ("psi", "loopml_drift_psi", "Population stability index of each feature in the last monitoring pass."),
    ("js", "loopml_drift_js", "Jensen-Shannon distance of each feature in the last monitoring pass."),
    ("statistic", "loopml_drift_statistic", "Drift test statistic of each feature (KS or chi-square)."),
    ("p_value", "loopml_drift_p_value", "p-value of each feature's drift test in the last monitoring pass."),
)


class StoreGauges(Collector):
    """The gauges of the models named by ``models()`` and of the outbox (see the module docstring)."""

    def __init__(self, store: Store, models: Callable[[], Sequence[str]], ttl: float = 5.0) -> None:
        self.store, self.models, self.ttl = store, models, ttl
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._cached: tuple[list[MonitorPass], OutboxBacklog] | None = None

    def describe(self) -> list[Any]:
        return []  # names are known only once read; registering must not query the store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("loopml_store_up", "1 when the store answered the last read for these gauges.")
        read = self._read()
        up.add_metric([], 1.0 if read is not None else 0.0)
        yield up
        if read is None:
            return
        passes, backlog = read
        yield from _outbox(backlog)
        yield from _monitoring(passes)

    def _read(self) -> tuple[list[MonitorPass], OutboxBacklog] | None:
        with self._lock:
            if time.monotonic() - self._read_at < self.ttl:
                return self._cached
            engine = self.store.engine
            try:
                passes = [p for name in self.models() if (p := latest_monitor_pass(engine, name))]
                self._cached = (passes, outbox_backlog(engine))
            except Exception as exc:  # a scrape never fails over the store: it says so instead
                log.warning("metrics: the store could not be read: %s", exc)
                self._cached = None
            self._read_at = time.monotonic()
            return self._cached


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _outbox(backlog: OutboxBacklog) -> Iterator[GaugeMetricFamily]:
    pending = _gauge("loopml_outbox_pending", "Actions not delivered yet (first tries and retries).")
    pending.add_metric([], backlog.pending)
    dead = _gauge("loopml_outbox_dead", "Actions that gave up, waiting for `loopml actions replay`.")
    dead.add_metric([], backlog.dead)
    age = _gauge(
        "loopml_outbox_oldest_pending_age_seconds", "Age of the oldest undelivered action (0: none pending)."
    )
    oldest = backlog.oldest_pending_at
    age.add_metric([], max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest else 0.0)
    yield from (pending, dead, age)


def _monitoring(passes: Sequence[MonitorPass]) -> Iterator[GaugeMetricFamily]:
    mv = ("model", "version")
    drift = {key: _gauge(name, doc, (*mv, "feature")) for key, name, doc in _DRIFT}
    drifted = _gauge("loopml_drift_detected", "1 when a feature drifted in the last pass.", (*mv, "feature"))
    realized = _gauge("loopml_performance_realized", "Realized metric of the last pass.", (*mv, "metric"))
    estimated = _gauge("loopml_performance_estimated", "Label-free estimate (binary).", (*mv, "metric"))
    coverage = _gauge("loopml_label_coverage", "Share of the judged window's predictions with a label.", mv)
    waiting = _gauge("loopml_predictions_waiting_for_labels", "Logged predictions without a label yet.", mv)
    last = _gauge("loopml_monitor_last_pass_timestamp_seconds", "When the last monitoring pass ran.", mv)
    for found in passes:
        labels, summary = [found.model_name, str(found.model_version)], found.summary
        for feature, stats in (summary.get("drift") or {}).items():
            for key, family in drift.items():
                _add(family, [*labels, feature], stats.get(key))
            _add(drifted, [*labels, feature], float(bool(stats.get("drifted"))))
        for family, values in ((realized, summary.get("realized")), (estimated, summary.get("estimated"))):
            for metric, value in (values or {}).items():
                _add(family, [*labels, metric], value)
        _add(coverage, labels, summary.get("label_coverage"))
        _add(waiting, labels, summary.get("waiting_labels"))
        _add(last, labels, found.created_at.timestamp())
    yield from (*drift.values(), drifted, realized, estimated, coverage, waiting, last)


def _add(family: GaugeMetricFamily, labels: list[str], value: Any) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        family.add_metric(labels, float(value))
