"""Prometheus metrics, stats, admin and health, including 503 while loading."""

from __future__ import annotations

import threading
import time

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer


def metrics(api: httpx.Client) -> dict[tuple[str, tuple], float]:
    resp = api.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_count_commands_by_door(api: httpx.Client, r: redis.Redis) -> None:
    before = metrics(api)
    for i in range(3):
        api.post("/api/v1/sessions", json={"key": f"m:{i}", "value": i})
    r.set("m:resp", 1)
    api.get("/api/v1/sessions/m:1")
    after = metrics(api)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("tokenginx_commands_total", command="set", door="http") == 3
    assert delta("tokenginx_commands_total", command="set", door="resp") == 1
    assert delta("tokenginx_commands_total", command="get", door="http") == 1
    assert delta("tokenginx_http_requests_total", method="POST", route="/api/v1/sessions", status="201") == 3
    assert delta("tokenginx_http_request_duration_seconds_count", method="GET", route="/api/v1/sessions/{key:path}") == 1
    assert after[("tokenginx_keys", (("db", "0"),))] >= 4
    assert after[("tokenginx_memory_used_bytes", ())] > 0
    for name in ("tokenginx_expired_keys_total", "tokenginx_evicted_keys_total", "tokenginx_uptime_seconds",
                 "tokenginx_connected_clients", "tokenginx_persistence_enabled"):
        assert (name, ()) in after, name


def test_persistence_metrics_when_enabled(http_server: RunningServer) -> None:
    with httpx.Client(base_url=http_server.http_url, timeout=5) as api:
        m = metrics(api)
    assert m[("tokenginx_persistence_enabled", ())] == 1
    assert m[("tokenginx_persistence_log_failing", ())] == 0
    assert m[("tokenginx_persistence_last_snapshot_ok", ())] == 1


def test_stats_and_admin(api: httpx.Client, r: redis.Redis) -> None:
    r.mset({"s:1": 1, "s:2": 2})
    stats = api.get("/api/v1/stats").json()["data"]
    assert stats["total_keys"] == 2
    assert stats["total_commands_processed"] > 0
    assert set(stats) == {"total_keys", "memory_used_bytes", "total_commands_processed",
                          "instantaneous_ops_per_sec", "connected_clients", "uptime_seconds"}
    config = api.get("/api/v1/admin/config").json()["data"]
    assert config["max_connections"] == 10000 and config["default_ttl"] == 0
    assert config["persistence"] == {"enabled": True, "fsync": "everysec"}
    resp = api.post("/api/v1/admin/flushdb")
    assert resp.json() == {"status": "success", "message": "Database flushed"}
    assert r.dbsize() == 0


def test_health_while_loading_and_after() -> None:
    """An in-process server whose dataset is still loading answers 503 and -LOADING."""
    from tokenginx.config import Config
    from tokenginx.server import Server, free_port

    cfg = Config.load(env={}, overrides={
        "server.tcp_addr": f"127.0.0.1:{free_port()}", "server.http_addr": f"127.0.0.1:{free_port()}",
        "persistence.enabled": False, "grpc.enabled": False,
    })
    server = Server(cfg)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server.ready.wait(10)
    loop = server._loop
    assert loop is not None
    try:
        loop.call_soon_threadsafe(server.gate.set_loading, True)
        time.sleep(0.1)
        with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=5) as api:
            for path in ("/health", "/api/v1/health"):
                resp = api.get(path)
                assert resp.status_code == 503
                assert resp.json()["status"] == "loading"
            busy = api.get("/api/v1/sessions/k")
            assert busy.status_code == 503 and busy.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            with redis.Redis(port=server.port, socket_timeout=5) as r:
                try:
                    r.get("k")
                    raise AssertionError("GET ran while loading")
                except redis.BusyLoadingError:
                    pass
                assert "redis_version" in r.info("server")  # INFO is allowed while loading
            loop.call_soon_threadsafe(server.gate.set_loading, False)
            time.sleep(0.1)
            assert api.get("/health").json()["status"] == "healthy"
            assert api.get("/api/v1/sessions/k").status_code == 404
    finally:
        server.stop()
        thread.join(10)
