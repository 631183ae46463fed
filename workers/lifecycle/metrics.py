"""Prometheus metrics of the data lifecycle (on the app's registry, /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from .retention import PurgeResult


class LifecycleMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.leader = Gauge(
            "chat_lifecycle_leader", "1 while this relay runs the lifecycle work", registry=r
        )
        self.erasures = Counter(
            "chat_erasures_followed_up",
            "User erasures whose files, sockets and webhook this relay finished",
            registry=r,
        )
        self.files_removed = Counter(
            "chat_lifecycle_files_removed",
            "Files removed from the store, by reason (erased, retention)",
            ["reason"],
            registry=r,
        )
        self.purged = Counter(
            "chat_retention_purged",
            "Rows the retention purge removed or erased, by kind (sessions, messages, audit_rows)",
            ["kind"],
            registry=r,
        )
        self.purge_runs = Counter(
            "chat_retention_runs", "Retention purge runs completed", registry=r
        )
        self.exports = Counter(
            "chat_exports",
            "Data exports finished, by outcome (ready, failed)",
            ["outcome"],
            registry=r,
        )

    def record_purge(self, result: PurgeResult) -> None:
        self.purge_runs.inc()
        self.purged.labels("sessions").inc(result.sessions)
        self.purged.labels("messages").inc(result.messages)
        self.purged.labels("audit_rows").inc(result.audit_rows_erased)
        self.files_removed.labels("retention").inc(result.files)
