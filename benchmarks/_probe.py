"""The latency probe the benchmarks run while something heavy happens on the server.

A separate process (so the benchmark's GIL cannot delay its round trips) opens its own
connection (TCP_NODELAY, raw RESP) and sends a fixed cycle of requests back to back,
recording the send time (CLOCK_MONOTONIC ns, comparable across processes) and the round
trip of each. Used by ``expiry_storm.py`` (PING / GET) and ``persistence_bench.py``
(SET / GET); stdlib only.
"""

from __future__ import annotations

import bisect
import math
import multiprocessing as mp
import socket
import time
from array import array
from collections.abc import Sequence
from typing import Any

from _servers import HOST, Server

SLOWEST = 5  # slowest round trips per window kept in the results


class ProbeError(RuntimeError):
    """The probe did not start, did not report, or got an unexpected reply."""


def resp_command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        out.append(b"$%d\r\n%b\r\n" % (len(p), p))
    return b"".join(out)


def bulk_reply(value: bytes) -> bytes:
    """The RESP bulk string reply carrying ``value`` (what a GET of it answers)."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


def _probe_main(
    port: int,
    requests: list[tuple[bytes, bytes]],
    timeout: float,
    ready: Any,
    go: Any,
    stop: Any,
    conn: Any,
) -> None:
    """Cycle through ``requests`` ((request, expected reply) pairs) on one connection,
    back to back; sample ``i`` is ``requests[i % len(requests)]``. Sends (error, sends,
    rtts) through ``conn``."""
    err: str | None = None
    sends, rtts = array("q"), array("q")
    try:
        sock = socket.create_connection((HOST, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ready.set()
        go.wait()
        clock = time.monotonic_ns
        recv, send = sock.recv, sock.sendall
        n = len(requests)
        i = 0
        while not (i & 63 == 0 and stop.is_set()):
            req, expected = requests[i % n]
            want = len(expected)
            t0 = clock()
            send(req)
            buf = recv(65536)
            while len(buf) < want:
                if not buf or (buf[:1] == b"-" and buf.endswith(b"\r\n")):
                    break
                more = recv(65536)
                if not more:
                    break
                buf += more
            t1 = clock()
            if buf != expected:
                err = f"probe: unexpected reply {buf[:200]!r} to {req[:40]!r}"
                break
            sends.append(t0)
            rtts.append(t1 - t0)
            i += 1
        sock.close()
    except Exception as e:  # reported by the parent, with the server's output
        err = f"probe: {type(e).__name__}: {e}"
        ready.set()
    conn.send((err, sends.tobytes(), rtts.tobytes()))
    conn.close()


class Probe:
    """The latency probe process: the constructor connects, go() starts probing, stop()
    collects. ``requests`` are (request bytes, expected reply bytes) pairs sent in turn;
    ``names`` name them in the results (e.g. ``["PING", "GET"]``)."""

    def __init__(
        self,
        server: Server,
        requests: Sequence[tuple[bytes, bytes]],
        names: Sequence[str],
        timeout: float,
    ) -> None:
        if len(names) != len(requests) or not requests:
            raise ValueError("one name per request, at least one request")
        ctx = mp.get_context("spawn")  # no fork of a process that may run threads
        self.server = server
        self.names = list(names)
        self._ready, self._go, self._stop = ctx.Event(), ctx.Event(), ctx.Event()
        self._conn, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(
            target=_probe_main,
            args=(server.port, list(requests), timeout, self._ready, self._go, self._stop, child),
            daemon=True,
        )
        self.proc.start()
        child.close()
        self.sends = array("q")
        self.rtts = array("q")
        if not self._ready.wait(30):
            raise ProbeError("latency probe did not start within 30 s")

    def go(self) -> None:
        self._go.set()

    def stop(self, timeout: float) -> None:
        self._go.set()
        self._stop.set()
        if not self._conn.poll(timeout):
            raise ProbeError(f"latency probe did not report within {timeout:g} s")
        err, sends, rtts = self._conn.recv()
        self.proc.join(5)
        if err:
            self.server.check_alive()
            raise ProbeError(f"{self.server.name}: {err}\n{self.server.details()}")
        self.sends.frombytes(sends)
        self.rtts.frombytes(rtts)

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)

    def window(
        self, start_ns: int, end_ns: int, anchor_ns: int, per_command_max: bool = False
    ) -> dict[str, Any]:
        """Latency stats (ms) of the round trips overlapping [start_ns, end_ns], and the
        slowest ones with their send time in ms relative to ``anchor_ns``. With
        ``per_command_max`` also ``max_{name}_ms`` for each request name (lower case)."""
        sends, rtts = self.sends, self.rtts
        lo = bisect.bisect_left(sends, start_ns)
        if lo > 0 and sends[lo - 1] + rtts[lo - 1] >= start_ns:
            lo -= 1  # sent before the window, answered inside it
        hi = bisect.bisect_right(sends, end_ns)
        both = sorted(rtts[lo:hi])
        n = len(self.names)
        out: dict[str, Any] = {
            "round_trips": len(both),
            "p50_ms": pct(both, 0.50),
            "p99_ms": pct(both, 0.99),
            "p999_ms": pct(both, 0.999),
            "max_ms": pct(both, 1.0),
        }
        if per_command_max:
            for k, name in enumerate(self.names):
                mine = [rtts[i] for i in range(lo, hi) if i % n == k]
                out[f"max_{name.lower()}_ms"] = max(mine) / 1e6 if mine else None
        slowest = sorted(range(lo, hi), key=lambda i: rtts[i], reverse=True)[:SLOWEST]
        out["slowest"] = [
            {
                "sent_ms": round((sends[i] - anchor_ns) / 1e6, 3),
                "rtt_ms": rtts[i] / 1e6,
                "command": self.names[i % n],
            }
            for i in slowest
        ]
        return out


def pct(sorted_ns: Sequence[int], q: float) -> float | None:
    """Nearest-rank percentile of sorted nanoseconds, in ms."""
    if not sorted_ns:
        return None
    k = max(0, math.ceil(q * len(sorted_ns)) - 1)
    return sorted_ns[k] / 1e6
