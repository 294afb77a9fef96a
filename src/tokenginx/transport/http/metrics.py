"""Prometheus metrics at ``/metrics``.

Server-wide figures (commands by name and door, keys, memory, expiry, persistence)
are read from the server's own counters at scrape time by a custom collector, so the
command hot path pays nothing for them. HTTP request counts and latency histograms
are recorded per request by the HTTP door. Each server has its own registry: two
servers in one process never mix their numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from tokenginx.state import ServerState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)


class ServerCollector(Collector):
    def __init__(self, state: ServerState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        st = self.state
        ks = st.keyspace
        calls = CounterMetricFamily(
            "tokenginx_commands", "Commands run, by command and door", labels=["command", "door"]
        )
        failed = CounterMetricFamily(
            "tokenginx_command_errors", "Commands that answered an error, by command", labels=["command"]
        )
        seconds = CounterMetricFamily(
            "tokenginx_command_seconds",
            "Time spent running each command (sum of durations)",
            labels=["command"],
        )
        by_door: dict[str, dict[str, int]] = {}
        for (door, name), n in st.stats.door_calls.items():
            by_door.setdefault(name, {})[door] = n
        for cmd in st.table.all_with_subcommands():
            if not cmd.calls and not cmd.failed_calls and not cmd.rejected_calls:
                continue
            doors = by_door.get(cmd.full_name, {})
            resp = cmd.calls - sum(doors.values())
            if resp > 0:
                calls.add_metric([cmd.full_name, "resp"], resp)
            for door, n in doors.items():
                calls.add_metric([cmd.full_name, door], n)
            failed.add_metric([cmd.full_name], cmd.failed_calls + cmd.rejected_calls)
            seconds.add_metric([cmd.full_name], cmd.usec_ns / 1e9)
        yield calls
        yield failed
        yield seconds

        clients = GaugeMetricFamily("tokenginx_connected_clients", "Open RESP connections")
        clients.add_metric([], len(st.clients))
        yield clients
        yield CounterMetricFamily(
            "tokenginx_connections_received", "RESP connections accepted", value=st.stats.connections_received
        )
        yield CounterMetricFamily(
            "tokenginx_rejected_connections", "RESP connections refused (maxclients)",
            value=st.stats.rejected_connections,
        )
        keys = GaugeMetricFamily("tokenginx_keys", "Keys per database", labels=["db"])
        expiring = GaugeMetricFamily("tokenginx_keys_with_expiry", "Keys with a TTL, per database", labels=["db"])
        for db in ks.databases:
            n = db.size()
            if n or db.id == 0:
                keys.add_metric([str(db.id)], n)
                expiring.add_metric([str(db.id)], len(db.expires))
        yield keys
        yield expiring
        yield GaugeMetricFamily("tokenginx_memory_used_bytes", "Estimated dataset size", value=ks.used_memory())
        yield GaugeMetricFamily(
            "tokenginx_memory_max_bytes", "Memory limit (0 = none)", value=ks.max_memory or 0
        )
        yield CounterMetricFamily("tokenginx_expired_keys", "Keys removed by expiry", value=ks.expired_keys)
        yield CounterMetricFamily("tokenginx_evicted_keys", "Keys evicted by maxmemory", value=ks.evicted_keys)
        yield CounterMetricFamily("tokenginx_error_replies", "Error replies of every door", value=st.stats.error_replies)
        yield GaugeMetricFamily("tokenginx_uptime_seconds", "Seconds since start", value=st.uptime_seconds())
        yield GaugeMetricFamily("tokenginx_loading", "1 while the dataset is loading", value=int(st.loading))

        persistence = st.persistence
        enabled = GaugeMetricFamily("tokenginx_persistence_enabled", "1 when the write-ahead log is on")
        enabled.add_metric([], int(persistence is not None))
        yield enabled
        if persistence is not None:
            journal = persistence.journal
            failing = int(journal is not None and journal.error is not None)
            yield GaugeMetricFamily(
                "tokenginx_persistence_log_failing", "1 while writes to the log fail (MISCONF)", value=failing
            )
            status = persistence.status
            yield GaugeMetricFamily(
                "tokenginx_persistence_last_snapshot_timestamp_seconds",
                "Unix time of the last successful snapshot", value=status.last_save,
            )
            yield GaugeMetricFamily(
                "tokenginx_persistence_last_snapshot_ok", "1 if the last snapshot succeeded",
                value=int(status.last_status == "ok"),
            )
            yield GaugeMetricFamily(
                "tokenginx_persistence_snapshot_in_progress", "1 while a snapshot child runs",
                value=int(bool(status.child_pid)),
            )


class Metrics:
    """The registry of one server, plus the HTTP door's own request metrics."""

    def __init__(self, state: ServerState) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServerCollector(state))
        self.http_requests = Counter(
            "tokenginx_http_requests",
            "HTTP requests, by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "tokenginx_http_request_duration_seconds",
            "HTTP request latency, by method and route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        # Contract §7.3: the built-in CAS server's figures (transport/http/cas_server.py).
        self.cas_logins = Counter(
            "cas_logins", "CAS logins with a presentation of credentials", registry=self.registry
        )
        self.cas_tickets = Counter(
            "cas_tickets_issued", "CAS tickets issued, by type (ST, TGT, PT, PGT)", ["type"],
            registry=self.registry,
        )
        self.cas_validation = Histogram(
            "cas_validation_duration_seconds", "CAS ticket validation latency",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        # Contract §5.11: the built-in authorization server.
        self.oauth_tokens_issued = Counter(
            "oauth_tokens_issued",
            "Tokens issued by POST /oauth/token, by grant type and client",
            ["grant_type", "client_id"],
            registry=self.registry,
        )
        self.oauth_introspection = Histogram(
            "oauth_introspection_duration_seconds",
            "Time to answer POST /oauth/introspect",
            buckets=tuple(0.001 * 2**i for i in range(10)),
            registry=self.registry,
        )

        # (method, route, status) -> (counter, histogram) children: labels() validates and
        # locks on every call, which is most of what a request's metrics used to cost.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        children = self._children.get((method, route, status))
        if children is None:
            children = self._children[method, route, status] = (
                self.http_requests.labels(method, route, str(status)),
                self.http_latency.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
