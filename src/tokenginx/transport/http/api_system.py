"""Statistics, health and the admin API: contract §3.8–3.9."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tokenginx.transport.http.api_sessions import rfc3339
from tokenginx.transport.http.calls import Door
from tokenginx.transport.http.endpoints import BOOL, INT, STR, TIME, Endpoint, obj, success_of
from tokenginx.transport.http.envelope import json_response, success
from tokenginx.version import __version__


def human_bytes(n: int) -> str:
    if n <= 0:
        return "0"
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}B"


def build(door: Door) -> list[Endpoint]:
    state = door.state
    config = door.server.config

    def health_body() -> tuple[dict[str, Any], int]:
        persistence = state.persistence
        journal = getattr(persistence, "journal", None) if persistence is not None else None
        persistence_check = "disabled"
        if persistence is not None:
            persistence_check = "ok" if journal is None or journal.error is None else "failing"
        stopping = door.server.stopping
        if state.loading:
            status, code = "loading", 503
        elif stopping:
            status, code = "stopping", 503
        elif persistence_check == "failing":
            status, code = "degraded", 200  # reads still work; writes answer MISCONF
        else:
            status, code = "healthy", 200
        body = {
            "status": status,
            "version": __version__,
            "uptime_seconds": state.uptime_seconds(),
            "timestamp": rfc3339(int(time.time() * 1000)),
            "checks": {
                "storage": "loading" if state.loading else "ok",
                "persistence": persistence_check,
            },
        }
        return body, code

    async def health(request: Request) -> Response:
        body, code = health_body()
        return json_response(body, code)

    async def stats(request: Request) -> Response:
        door.client(request)  # authentication only: statistics are not keyspace data
        return success(state.stats_snapshot())

    async def admin_config(request: Request) -> Response:
        client = door.client(request)
        flat = door.call(client, b"CONFIG", b"GET", b"maxmemory", b"maxclients", b"maxmemory-policy")
        values = dict(zip(flat[::2], flat[1::2])) if isinstance(flat, list) else flat
        max_memory = int(values[b"maxmemory"])
        pcfg = config.persistence
        return success(
            {
                "max_memory": human_bytes(max_memory),
                "max_memory_bytes": max_memory,
                "eviction_policy": values[b"maxmemory-policy"].decode(),
                "default_ttl": 0,
                "max_connections": int(values[b"maxclients"]),
                "persistence": {"enabled": pcfg.enabled, "fsync": pcfg.fsync},
                "auth_required": state.auth_required(),
            }
        )

    async def flushdb(request: Request) -> Response:
        client = door.client(request)
        door.call(client, b"FLUSHDB")
        return success(message="Database flushed")

    health_schema = obj(
        {
            "status": {"enum": ["healthy", "degraded", "loading", "stopping"]},
            "version": STR,
            "uptime_seconds": INT,
            "timestamp": TIME,
            "checks": obj({"storage": STR, "persistence": STR}),
        },
        ["status", "version", "uptime_seconds"],
    )
    health_responses = {200: ("Serving", health_schema), 503: ("Loading or stopping", health_schema)}
    stats_schema = obj(
        {
            "total_keys": INT,
            "memory_used_bytes": INT,
            "total_commands_processed": INT,
            "instantaneous_ops_per_sec": INT,
            "connected_clients": INT,
            "uptime_seconds": INT,
        },
        ["total_keys", "memory_used_bytes", "total_commands_processed",
         "instantaneous_ops_per_sec", "connected_clients", "uptime_seconds"],
    )
    return [
        Endpoint("GET", "/health", health, "Liveness/readiness probe", "system", "health",
                 auth=False, responses=health_responses),
        Endpoint("GET", "/api/v1/health", health, "Health", "system", "apiHealth",
                 auth=False, responses=health_responses),
        Endpoint("GET", "/api/v1/stats", stats, "Server statistics", "system", "stats",
                 responses={200: ("Statistics", success_of(stats_schema))}),
        Endpoint("GET", "/api/v1/admin/config", admin_config, "Effective configuration", "admin",
                 "adminConfig",
                 responses={200: ("Configuration", success_of(obj(
                     {"max_memory": STR, "max_memory_bytes": INT, "eviction_policy": STR,
                      "default_ttl": INT, "max_connections": INT,
                      "persistence": obj({"enabled": BOOL, "fsync": STR}), "auth_required": BOOL},
                     ["max_memory", "default_ttl", "max_connections"],
                 )))}),
        Endpoint("POST", "/api/v1/admin/flushdb", flushdb, "Delete every key of database 0", "admin",
                 "adminFlushdb", responses={200: ("Flushed", success_of(message=True))}),
    ]
