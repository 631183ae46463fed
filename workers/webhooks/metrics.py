"""Prometheus metrics of the webhook worker, on the app's registry (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Enqueue to delivery, in seconds: from immediate to the 24 h retry window.
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86_400.0)


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.leader = Gauge(
            "chat_webhook_leader",
            "1 while this relay holds the webhook leader lock (one per database)",
            registry=r,
        )
        self.pending = Gauge(
            "chat_webhook_pending",
            "Webhook deliveries waiting for a (next) attempt; reported by the leader",
            registry=r,
        )
        self.dead = Gauge(
            "chat_webhook_dead",
            "Webhook deliveries in the dead-letter state; reported by the leader",
            registry=r,
        )
        self.enqueued = Counter(
            "chat_webhook_events",
            "Webhook events enqueued in the outbox, by type",
            ["type"],
            registry=r,
        )
        self.outcomes = Counter(
            "chat_webhook_deliveries",
            "Webhook attempts by outcome: delivered, retry (will be tried again), failed "
            "(dead-lettered)",
            ["outcome"],
            registry=r,
        )
        self.attempts = Counter(
            "chat_webhook_attempts",
            "Webhook HTTP attempts by result: the status class (2xx, 3xx, 4xx, 5xx), 410, "
            "429, timeout or error",
            ["result"],
            registry=r,
        )
        self.latency = Histogram(
            "chat_webhook_delivery_seconds",
            "From an event's enqueue to its successful delivery",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
