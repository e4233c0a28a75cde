"""Prometheus metrics of one node, in a registry of its own (served at GET /metrics)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SIZES = (1, 10, 100, 500, 1000, 2500, 5000, 10000)


class Metrics:
    """Every metric the daemon exports; label values are bounded sets, never user input."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge(
            "appointease_connections", "Open WebSocket connections", registry=r
        )
        self.frames_in = Counter(
            "appointease_frames_in_total", "Client frames received", ["type"], registry=r
        )
        self.frames_out = Counter(
            "appointease_frames_out_total", "Frames sent to clients", ["type"], registry=r
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
        self._in: dict[str, Counter] = {}  # labelled children, looked up once per type
        self._out: dict[str, Counter] = {}
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
        child = self._in.get(type_)
        if child is None:
            child = self._in[type_] = self.frames_in.labels(type_)
        child.inc()

    def sent(self, type_: str, count: int = 1) -> None:
        """Count ``count`` frames of ``type_`` handed to clients."""
        if count:
            child = self._out.get(type_)
            if child is None:
                child = self._out[type_] = self.frames_out.labels(type_)
            child.inc(count)

    def observe_query(self, operation: str, seconds: float) -> None:
        """Record how long one named store operation took."""
        self.query_seconds.labels(operation).observe(seconds)
