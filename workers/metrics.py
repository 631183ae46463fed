"""Prometheus metrics of one app (its own CollectorRegistry: tests build many apps), served
at GET /metrics in the text exposition format."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Callable, Iterator, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

# Send (the message's created_at) to delivery (emitted to the room), in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# How late the event loop ran a timer, in seconds: every socket event, emit and request
# waited as long behind the work in front of it.
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LOOP_LAG_EVERY = 0.1  # seconds between the timers measured
# The stages of a group commit, in seconds (one observation per group).
SEND_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "chat_socket_connections", "Open Socket.IO connections on this relay", registry=r
        )
        self.connects = Counter(
            "chat_socket_connects", "Socket.IO connections accepted", registry=r
        )
        self.refused = Counter(
            "chat_socket_refused", "Socket.IO connections refused, by reason", ["code"], registry=r
        )
        self.events = Counter(
            "chat_socket_events",
            "Socket.IO events received, by name and outcome (ok, error)",
            ["event", "outcome"],
            registry=r,
        )
        self.messages = Counter(
            "chat_messages_sent",
            "Messages sent through this service, by path",
            ["path"],
            registry=r,
        )
        self.delivered = Counter(
            "chat_messages_delivered", "new_message events emitted to session rooms", registry=r
        )
        self.latency = Histogram(
            "chat_message_delivery_seconds",
            "From a message's created_at to its new_message emission",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "chat_errors",
            "Errors answered to clients, by code and source (socket, http)",
            ["code", "source"],
            registry=r,
        )
        self.uploads = Counter(
            "chat_uploads", "Uploads, by result (stored, refused)", ["result"], registry=r
        )
        self.upload_bytes = Counter("chat_upload_bytes", "Bytes of stored uploads", registry=r)
        self.anonymous_refusals = Counter(
            "chat_anonymous_refusals",
            "Refusals of callers without a valid token (HTTP 401, refused socket connects), "
            "by source and code: every one is counted here, only samples are audited",
            ["source", "code"],
            registry=r,
        )
        # Resident memory also keeps the high-water mark of bursts (the allocator holds on to
        # what a backlog took); live objects' blocks go back down. A leak raises both.
        self.heap_blocks = Gauge(
            "chat_python_heap_blocks",
            "Memory blocks held by live Python objects (sys.getallocatedblocks()): flat under "
            "steady load unless objects leak",
            registry=r,
        )
        self.heap_blocks.set_function(sys.getallocatedblocks)
        self.loop_lag = Histogram(
            "chat_event_loop_lag_seconds",
            "How late the event loop ran a timer due every 0.1 s: the time every socket "
            "event, emit and request waited behind other work",
            buckets=LOOP_LAG_BUCKETS,
            registry=r,
        )

        # Where a sent message's time goes before it is emitted, one observation per group
        # commit: these three and the delivery latency above.
        self.send_wait = Histogram(
            "chat_send_wait_seconds",
            "How long the oldest send of a group commit waited for the group to start (behind "
            "the group in flight, at most SEND_OVERLAP_AFTER_MS, or for a free connection)",
            buckets=SEND_STAGE_BUCKETS,
            registry=r,
        )
        self.send_commit = Histogram(
            "chat_send_commit_seconds",
            "From a group commit's start to its commit's end: the database's work for every "
            "message of the group, its WAL flush included",
            buckets=SEND_STAGE_BUCKETS,
            registry=r,
        )
        self.send_held = Histogram(
            "chat_send_held_seconds",
            "From a group's commit to its emission: the wait for earlier groups that hold a "
            "message of the same sessions (a session's messages are emitted in order)",
            buckets=SEND_STAGE_BUCKETS,
            registry=r,
        )

    async def watch_loop(self, every: float = LOOP_LAG_EVERY) -> None:
        """Observe, forever, how late a timer due every ``every`` seconds runs."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + every
            await asyncio.sleep(every)
            self.loop_lag.observe(max(0.0, loop.time() - due))

    def observe_delivery(self, created_at: object) -> None:
        """Record a delivery of a message created at ``created_at`` (ISO 8601)."""
        self.delivered.inc()
        if not isinstance(created_at, str):
            return
        try:
            sent = dt.datetime.fromisoformat(created_at)
        except ValueError:
            return
        if sent.tzinfo is None:
            return
        self.latency.observe(max(0.0, (dt.datetime.now(dt.UTC) - sent).total_seconds()))

    def watch(self, collector: Collector) -> None:
        self.registry.register(collector)

    async def handle(self, request: web.Request) -> web.Response:
        """The text format (0.0.4), or OpenMetrics when the scraper asks for it."""
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(self.registry), headers={"Content-Type": content_type})


class StateCollector(Collector):
    """Values read at scrape time: relay state and the event writers' counters."""

    def __init__(
        self,
        *,
        relay_stats: Callable[[], Mapping[str, int]],
        writers: Callable[[], Mapping[str, Mapping[str, int]]],
    ) -> None:
        self._relay_stats = relay_stats
        self._writers = writers

    def collect(self) -> Iterator[Metric]:
        stats = self._relay_stats()
        sessions = GaugeMetricFamily(
            "chat_active_sessions", "Sessions with a joined socket on this relay"
        )
        sessions.add_metric([], stats.get("active_sessions", 0))
        typing = GaugeMetricFamily("chat_typing_sessions", "Sessions where someone is typing")
        typing.add_metric([], stats.get("typing_sessions", 0))
        pending = GaugeMetricFamily(
            "chat_event_writer_pending", "Rows waiting to be written", labels=["writer"]
        )
        written = CounterMetricFamily(
            "chat_event_writer_written", "Rows written", labels=["writer"]
        )
        dropped = CounterMetricFamily(
            "chat_event_writer_dropped",
            "Rows dropped (queue full while the database was away, or refused)",
            labels=["writer"],
        )
        for name, values in self._writers().items():
            pending.add_metric([name], values.get("pending", 0))
            written.add_metric([name], values.get("written", 0))
            dropped.add_metric([name], values.get("dropped", 0))
        pending_sockets = GaugeMetricFamily(
            "chat_pending_connections",
            "Sockets that have not completed the Socket.IO connect (closed after CONNECT_TIMEOUT)",
        )
        pending_sockets.add_metric([], stats.get("pending_connections", 0))
        yield from (sessions, typing, pending, written, dropped, pending_sockets)

    def describe(self) -> Iterator[Metric]:
        return iter(())


class MessagePathCollector(Collector):
    """The group commit, the changefeed's replays and the audit linker, read at scrape time."""

    def __init__(self, stats: Callable[[], Mapping[str, float]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        for name, kind, help_text in _MESSAGE_PATH:
            family: Metric = (
                CounterMetricFamily(name, help_text)
                if kind == "counter"
                else GaugeMetricFamily(name, help_text)
            )
            family.add_metric([], float(stats.get(name, 0)))  # type: ignore[attr-defined]
            yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())


_MESSAGE_PATH = (
    ("chat_send_groups", "counter", "Group commits of sent messages"),
    ("chat_send_group_messages", "counter", "Messages sent through group commits"),
    ("chat_send_isolated_groups", "counter", "Groups retried message by message (a bad one)"),
    ("chat_changefeed_replayed", "counter", "Messages delivered by the changefeed's replay"),
    ("chat_changefeed_polls", "counter", "Polls for messages written outside the relay"),
    ("chat_changefeed_polled_messages", "counter", "Messages those polls found"),
    ("chat_relay_publish_dropped", "counter", "Message groups not published to other relays"),
    ("chat_audit_linker_leader", "gauge", "1 when this relay's audit linker leads"),
    ("chat_audit_linked", "counter", "Audit rows this relay's linker has chained"),
    ("chat_audit_link_delay_ms", "gauge", "Longest wait of the last linked audit rows (ms)"),
)
