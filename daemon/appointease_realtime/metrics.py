"""Prometheus metrics of one node, in a registry of its own (served at GET /metrics)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily

FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SIZES = (1, 10, 100, 500, 1000, 2500, 5000, 10000)


class FrameCounter:
    """A counter with one label, kept as plain integers and exported when scraped.

    Frames are counted on every message, the hottest path of the daemon: a dict update here,
    where a ``prometheus_client`` child takes a mutex and checks its arguments on each
    ``inc``. The daemon counts from its one event-loop thread, and the scrape runs on it too.
    """

    def __init__(
        self, name: str, documentation: str, label: str, registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.counts: dict[str, int] = {}
        registry.register(self)

    def inc(self, value: str, count: int = 1) -> None:
        """Count ``count`` more for the label ``value``."""
        counts = self.counts
        counts[value] = counts.get(value, 0) + count

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=[self.label])

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in list(self.counts.items()):
            family.add_metric([value], count)
        yield family


class Metrics:
    """Every metric the daemon exports; label values are bounded sets, never user input."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge(
            "appointease_connections", "Open WebSocket connections", registry=r
        )
        self.frames_in = FrameCounter(
            "appointease_frames_in_total", "Client frames received", "type", r
        )
        self.frames_out = FrameCounter(
            "appointease_frames_out_total", "Frames sent to clients", "type", r
        )
        self.locks = Counter(
            "appointease_lock_outcomes_total",
            "Lock outcomes: acquired, refused_<reason>, released, expired, booked, unlock_refused",
            ["outcome"],
            registry=r,
        )
        self.holds_ended = Counter(
            "appointease_holds_ended_total",
            "Holds that ended: booked (a booking consumed it), expired, released",
            ["how"],
            registry=r,
        )
        self.hooks = Counter(
            "appointease_hook_outcomes_total", "Booking hooks by outcome", ["outcome"], registry=r
        )
        self.reconcile_seconds = Histogram(
            "appointease_reconcile_seconds",
            "Duration of one reconciliation tick",
            buckets=FAST,
            registry=r,
        )
        self.reconcile_lag = Gauge(
            "appointease_reconcile_lag_seconds",
            "Seconds since the last reconciliation tick that completed",
            registry=r,
        )
        self.fanout = Histogram(
            "appointease_fanout_recipients",
            "Local recipients of one room event",
            buckets=SIZES,
            registry=r,
        )
        self._in = self.frames_in.counts  # type -> frames, updated on every frame
        self._out = self.frames_out.counts
        self._queries: dict[str, Histogram] = {}  # labelled children, looked up once each
        self.last_reconcile = 0.0
        self.reconcile_lag.set_function(
            lambda: time.time() - self.last_reconcile if self.last_reconcile else 0.0
        )
        self.query_seconds = Histogram(
            "appointease_db_query_seconds",
            "Database operation latency",
            ["operation"],
            buckets=FAST,
            registry=r,
        )

    def received(self, type_: str) -> None:
        """Count one client frame of ``type_`` (a known message type, or "unknown")."""
        counts = self._in
        counts[type_] = counts.get(type_, 0) + 1

    def sent(self, type_: str, count: int = 1) -> None:
        """Count ``count`` frames of ``type_`` handed to clients."""
        if count:
            counts = self._out
            counts[type_] = counts.get(type_, 0) + count

    def observe_query(self, operation: str, seconds: float) -> None:
        """Record how long one named store operation took."""
        child = self._queries.get(operation)
        if child is None:
            child = self._queries[operation] = self.query_seconds.labels(operation)
        child.observe(seconds)
