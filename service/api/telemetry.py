"""Prometheus metrics: jobs by state and steps trained (read from the store at scrape time),
request counts and latencies (measured by an ASGI middleware)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.events import EventHub
from ..store import Store


class _StoreCollector(Collector):
    def __init__(self, store: Store, running_workers: Any, events: EventHub) -> None:
        self.store = store
        self.running_workers = running_workers
        self.events = events

    def collect(self) -> Iterable[Any]:
        jobs = GaugeMetricFamily("curvegan_jobs", "Jobs by state", labels=["state"])
        for state, n in self.store.counts_by_state().items():
            jobs.add_metric([state], n)
        yield jobs
        yield CounterMetricFamily(
            "curvegan_steps_trained",
            "Training steps done by the jobs on record",
            self.store.total_steps(),
        )
        yield GaugeMetricFamily(
            "curvegan_workers_busy",
            "Worker processes of this server training a job",
            self.running_workers(),
        )
        yield GaugeMetricFamily(
            "curvegan_event_watches",
            "Jobs and sweeps whose event streams this server follows (one poll each, however "
            "many streams)",
            self.events.watched,
        )
        yield GaugeMetricFamily(
            "curvegan_event_streams",
            "Event streams open on this server (at most CURVEGAN_MAX_EVENT_STREAMS)",
            self.events.slots.open,
        )
        yield CounterMetricFamily(
            "curvegan_event_store_polls", "Store polls made for event streams", self.events.polls
        )


class Telemetry:
    def __init__(self, store: Store, running_workers: Any, events: EventHub) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "curvegan_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "curvegan_http_request_duration_seconds",
            "HTTP request latency by method and route",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(store, running_workers, events))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class TelemetryMiddleware:
    """Counts and times every HTTP request by route template."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The route template, not the path: ids would make every job its own series.
            name = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.telemetry.requests.labels(method, name, str(status)).inc()
            self.telemetry.latency.labels(method, name).observe(time.perf_counter() - start)
