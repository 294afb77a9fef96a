"""A Server can run in a background thread (no signal handlers there) and stop cleanly."""

import socket
import threading

from tokenginx.config import Config
from tokenginx.server import Server, free_port


def test_server_runs_in_a_thread_and_stops():
    port = free_port()
    cfg = Config.load(
        env={},
        overrides={
            "server.tcp_addr": f"127.0.0.1:{port}",
            "server.extra_tcp_binds": [],
            "persistence.enabled": False,
        },
    )
    server = Server(cfg)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server.ready.wait(10)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(16) == b"+PONG\r\n"
    server.stop()
    thread.join(10)
    assert not thread.is_alive()
