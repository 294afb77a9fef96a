"""Crash harness: SIGKILL the server under write load and prove no acknowledged write is lost.

Each round starts TokenginX on a fresh data directory, runs N writer threads (each
with its own redis-py connection, retries disabled) that send as fast as they can

* ``SET w{t}:{i} <unique value>``                     (most operations)
* pipelines (``transaction=False``) of 10 such SETs
* ``SETEX e{t}:{i} 3600 <unique value>``
* ``HSET h{t}:{i // 100} f{i} <unique value>``       (hashes that keep growing)
* ``INCR c{t}``                                        (one counter per thread)

and records every write whose reply came back OK. After a random delay the server
is killed with SIGKILL, restarted on the same directory and every acknowledged write
is checked:

* a SET / SETEX key or a hash field is written exactly once, so it must hold exactly
  the acknowledged value (SETEX: with a TTL in (0, 3600 s]);
* a counter must be >= its last acknowledged value and <= the number of INCRs sent
  (a thread has at most one request in flight, so at most one unacknowledged INCR);
* a write that was sent but not acknowledged may or may not have landed, but if it
  did it must hold the value that was sent (anything else is counted as wrong);
* ``DBSIZE`` must equal the number of keys found: no key that was never written.

Variants (cycled over the rounds of each policy): ``plain``; ``bgsave`` (a separate
connection sends BGSAVE shortly before the kill, so the kill lands before, during or
after the forked snapshot); ``compact`` (the server runs with
``--set persistence.snapshot_min_log_mb=1`` so automatic log compaction forks
snapshots during the load). The kill is either ``server`` (SIGKILL to the server
process only: a BGSAVE child survives as an orphan and may finish its snapshot while
the restarted server runs) or ``group`` (SIGKILL to the server's process group: a
snapshot in progress dies too and leaves its ``.tmp`` file behind). After the first
check the restarted server is SIGKILLed again and restarted once more, and the same
check must hold again (recovery is repeatable, whatever an orphan snapshot did).

Usage (from the repository root)::

    .venv/bin/python benchmarks/crash_harness.py --rounds 5
    .venv/bin/python benchmarks/crash_harness.py --policies always --rounds 20 --seed 42

Exit status: 0 when no acknowledged write was lost and no value was wrong, 1 when
one was (the round, its seed and the first problems are printed), 2 for bad
arguments, 3 when a server failed to start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

HOST = "127.0.0.1"
POLICIES = ("always", "everysec", "no")
VARIANTS = ("plain", "bgsave", "compact")
KILL_MODES = ("server", "group")
COMPACT_PAD = 1000  # value padding in the compact variant: the log passes 1 MB in ~0.2 s
SETEX_TTL = 3600
HASH_FIELDS = 100  # fields per hash key before a thread starts the next one
MAX_PROBLEMS = 20  # problem descriptions kept per round


class ServerFailed(RuntimeError):
    """The server did not start, or died when it should not have."""


# -- the server process -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class ServerProcess:
    """TokenginX on an explicit data directory, in its own process group."""

    def __init__(self, data_dir: str, policy: str, extra: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.policy = policy
        self.extra = list(extra or [])
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self, timeout: float = 30.0) -> float:
        """Start the server and wait for PING; returns the seconds it took."""
        self.port = free_port()
        argv = [
            sys.executable,
            "-m",
            "tokenginx.cli.server_main",
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--data-dir",
            self.data_dir,
            "--fsync",
            self.policy,
            "--log-level",
            "warn",
            *self.extra,
        ]
        if self._log is not None:
            self._log.close()
        self._log = tempfile.TemporaryFile(prefix="tokenginx-crash-log-")  # noqa: SIM115
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            cwd=os.path.dirname(self.data_dir) or None,  # no stray ./config.yaml
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,  # own process group: BGSAVE children share it
        )
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise ServerFailed(f"server exited with {code}: {self.log_tail()}")
            if _ping(self.port):
                return time.monotonic() - t0
            time.sleep(0.01)
        self.kill("group")
        raise ServerFailed(f"server did not answer PING within {timeout}s: {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    def kill(self, mode: str) -> None:
        """SIGKILL the server (``server``) or its whole process group (``group``)."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if mode == "group":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def reap_orphans(self) -> None:
        """SIGKILL what is left of the process group (an orphaned BGSAVE child).

        The group id is the dead server's PID, which Linux does not hand out again
        while the group still has members, so this cannot hit an unrelated process."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill("group")
        self.reap_orphans()
        if self._log is not None:
            self._log.close()
            self._log = None


def client(port: int, timeout: float = 5.0) -> Any:
    """A redis-py connection that never retries: an error means 'not acknowledged'."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


# -- the writers ----------------------------------------------------------------------------


@dataclass
class WriterLog:
    """Everything one writer thread sent, and which of it was acknowledged."""

    thread: int
    # key -> [value, acked, has_ttl]; every SET/SETEX key is written exactly once
    strings: dict[bytes, list[Any]] = field(default_factory=dict)
    # (hash key, field) -> [value, acked]; every field is written exactly once
    fields: dict[tuple[bytes, bytes], list[Any]] = field(default_factory=dict)
    counter: bytes = b""
    incr_sent: int = 0
    incr_acked: int = 0  # the last acknowledged INCR reply
    acked: int = 0  # acknowledged write commands
    sent: int = 0
    error_replies: int = 0  # e.g. -MISCONF: refused, so not acknowledged
    last_error: str = ""


def writer(port: int, wlog: WriterLog, seed: int, stop: threading.Event, pad: int = 0) -> None:
    """Write as fast as possible until ``stop`` is set or the connection dies. ``pad``
    adds that many bytes to every value (the ``compact`` variant: a faster-growing log)."""
    import redis

    rng = random.Random(seed)
    t = wlog.thread
    wlog.counter = f"c{t}".encode()
    r = client(port)
    i = 0
    padding = b"." * pad

    def value(n: int) -> bytes:
        return f"v{n}-{t}-{rng.getrandbits(48):012x}".encode() + padding

    try:
        while not stop.is_set():
            op = rng.random()
            try:
                if op < 0.70:  # SET
                    key, val = f"w{t}:{i}".encode(), value(i)
                    wlog.strings[key] = [val, False, False]
                    wlog.sent += 1
                    i += 1
                    if r.set(key, val) is True:
                        wlog.strings[key][1] = True
                        wlog.acked += 1
                elif op < 0.80:  # a pipeline of 10 SETs, acknowledged as a whole
                    pipe = r.pipeline(transaction=False)
                    batch = []
                    for _ in range(10):
                        key, val = f"w{t}:{i}".encode(), value(i)
                        wlog.strings[key] = [val, False, False]
                        pipe.set(key, val)
                        batch.append(key)
                        i += 1
                    wlog.sent += len(batch)
                    replies = pipe.execute(raise_on_error=False)
                    for key, reply in zip(batch, replies):
                        if reply is True:
                            wlog.strings[key][1] = True
                            wlog.acked += 1
                        else:
                            wlog.error_replies += 1
                            wlog.last_error = repr(reply)
                elif op < 0.87:  # SETEX
                    key, val = f"e{t}:{i}".encode(), value(i)
                    wlog.strings[key] = [val, False, True]
                    wlog.sent += 1
                    i += 1
                    if r.execute_command("SETEX", key, SETEX_TTL, val) is True:
                        wlog.strings[key][1] = True
                        wlog.acked += 1
                elif op < 0.94:  # HSET one new field
                    key = f"h{t}:{i // HASH_FIELDS}".encode()
                    fld, val = f"f{i}".encode(), value(i)
                    wlog.fields[(key, fld)] = [val, False]
                    wlog.sent += 1
                    i += 1
                    r.hset(key, fld, val)
                    wlog.fields[(key, fld)][1] = True
                    wlog.acked += 1
                else:  # INCR the thread's counter
                    wlog.incr_sent += 1
                    wlog.sent += 1
                    n = r.incr(wlog.counter)
                    wlog.incr_acked = max(wlog.incr_acked, int(n))
                    wlog.acked += 1
            except redis.ResponseError as e:  # refused: not acknowledged, go on
                wlog.error_replies += 1
                wlog.last_error = str(e)
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        pass  # the server was killed
    finally:
        with contextlib.suppress(Exception):
            r.close()


# -- one round ------------------------------------------------------------------------------


@dataclass
class Check:
    keys_checked: int = 0  # acknowledged keys / fields / counters looked at
    lost: int = 0
    wrong: int = 0
    unacked_landed: int = 0  # sent, not acknowledged, but present (allowed)
    extra_keys: int = 0  # DBSIZE minus the keys we found: keys nobody wrote
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def _info(r: Any, section: str = "persistence") -> dict[str, Any]:
    return {k: v for k, v in r.info(section).items()}


def verify(port: int, logs: list[WriterLog], batch: int = 2000) -> Check:
    """Compare what the restarted server holds with what the writers were told."""
    r = client(port, timeout=30)
    c = Check()
    found_keys: set[bytes] = set()
    try:
        strings = [(k, e) for w in logs for k, e in w.strings.items()]
        for start in range(0, len(strings), batch):
            chunk = strings[start : start + batch]
            pipe = r.pipeline(transaction=False)
            for key, entry in chunk:
                pipe.get(key)
                if entry[2]:
                    pipe.pttl(key)
            replies = iter(pipe.execute())
            for key, (val, acked, has_ttl) in chunk:
                got = next(replies)
                pttl = next(replies) if has_ttl else None
                if got is not None:
                    found_keys.add(key)
                if acked:
                    c.keys_checked += 1
                if got is None:
                    if acked:
                        c.lost += 1
                        c.problem(
                            f"lost: {key.decode()} acknowledged as {val.decode()}, now missing"
                        )
                    continue
                if got != val:
                    c.wrong += 1
                    c.problem(
                        f"wrong: {key.decode()} holds {got!r}, expected {val.decode()}"
                        f" ({'acknowledged' if acked else 'unacknowledged'})"
                    )
                    continue
                if not acked:
                    c.unacked_landed += 1
                if has_ttl and not (0 < pttl <= SETEX_TTL * 1000):
                    c.wrong += 1
                    c.problem(f"wrong: {key.decode()} has PTTL {pttl}, expected (0, {SETEX_TTL}s]")

        hashes: dict[bytes, list[tuple[bytes, bytes, bool]]] = {}
        for w in logs:
            for (key, fld), (val, acked) in w.fields.items():
                hashes.setdefault(key, []).append((fld, val, acked))
        hkeys = list(hashes)
        for start in range(0, len(hkeys), batch):
            chunk = hkeys[start : start + batch]
            pipe = r.pipeline(transaction=False)
            for key in chunk:
                pipe.hgetall(key)
            for key, got in zip(chunk, pipe.execute()):
                if got:
                    found_keys.add(key)
                known = {fld for fld, _, _ in hashes[key]}
                for fld in set(got) - known:
                    c.wrong += 1
                    c.problem(f"wrong: {key.decode()} has field {fld!r} that was never written")
                for fld, val, acked in hashes[key]:
                    if acked:
                        c.keys_checked += 1
                    have = got.get(fld)
                    if have is None:
                        if acked:
                            c.lost += 1
                            c.problem(
                                f"lost: HSET {key.decode()} {fld.decode()} acknowledged as"
                                f" {val.decode()}, field now missing"
                            )
                    elif have != val:
                        c.wrong += 1
                        c.problem(
                            f"wrong: {key.decode()}.{fld.decode()} holds {have!r},"
                            f" expected {val.decode()}"
                        )
                    elif not acked:
                        c.unacked_landed += 1

        for w in logs:
            if not w.incr_sent:
                continue
            got = r.get(w.counter)
            n = int(got) if got is not None else 0
            if got is not None:
                found_keys.add(w.counter)
            if w.incr_acked:
                c.keys_checked += 1
            if n < w.incr_acked:
                c.lost += 1
                c.problem(
                    f"lost: counter {w.counter.decode()} = {n}, but INCR was acknowledged"
                    f" up to {w.incr_acked}"
                )
            elif n > w.incr_sent:
                c.wrong += 1
                c.problem(
                    f"wrong: counter {w.counter.decode()} = {n}, only {w.incr_sent} INCRs were sent"
                )
            elif n > w.incr_acked:
                c.unacked_landed += 1

        c.extra_keys = int(r.dbsize()) - len(found_keys)
        if c.extra_keys:
            c.problem(
                f"DBSIZE is {len(found_keys) + c.extra_keys},"
                f" but only {len(found_keys)} of the keys written are there"
            )
    finally:
        r.close()
    return c


@dataclass
class RoundResult:
    policy: str
    round: int
    variant: str
    kill_mode: str
    seed: int
    threads: int
    kill_after_s: float = 0.0
    bgsave_before_kill_s: float | None = None  # how long before the kill BGSAVE was sent
    writes_sent: int = 0
    writes_acked: int = 0
    error_replies: int = 0
    keys_checked: int = 0
    lost: int = 0
    wrong: int = 0
    extra_keys: int = 0
    unacked_landed: int = 0
    snapshots_during_run: int = 0  # rdb_saves last seen before the kill
    saving_at_kill: bool = False  # rdb_bgsave_in_progress last seen before the kill
    tmp_files_at_restart: int = 0  # snapshot-*.tmp left in the directory by the crash
    files_at_restart: list[str] = field(default_factory=list)
    restart_s: float = 0.0
    recovery_s: float = 0.0  # INFO persistence loading_time_sec
    truncated_bytes: int = 0  # INFO persistence loading_truncated_bytes
    recovered_records: int = 0
    second_restart_ok: bool | None = None  # the same check after a second crash + restart
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.wrong == 0
            and self.extra_keys == 0
            and self.second_restart_ok is not False
        )


def run_round(
    policy: str,
    variant: str,
    seed: int,
    *,
    round_no: int = 1,
    threads: int = 4,
    min_seconds: float = 0.2,
    max_seconds: float = 1.5,
    kill_mode: str = "alternate",
    second_restart: bool = True,
    keep_dir: bool = False,
    extra_args: list[str] | None = None,
) -> RoundResult:
    """One crash round on a fresh data directory; see the module docstring."""
    if policy not in POLICIES:
        raise ValueError(f"unknown fsync policy {policy!r}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    rng = random.Random(seed)
    if kill_mode == "alternate":
        kill_mode = KILL_MODES[(round_no - 1) % 2]
    elif kill_mode == "random":
        kill_mode = KILL_MODES[rng.random() < 0.5]
    delay = rng.uniform(min_seconds, max(min_seconds, max_seconds))
    res = RoundResult(
        policy, round_no, variant, kill_mode, seed, threads, kill_after_s=round(delay, 3)
    )
    extra = list(extra_args or [])
    pad = 0
    if variant == "compact":
        extra += ["--set", "persistence.snapshot_min_log_mb=1"]
        pad = COMPACT_PAD

    root = tempfile.mkdtemp(prefix="tokenginx-crash-")
    data_dir = os.path.join(root, "data")
    server = ServerProcess(data_dir, policy, extra)
    try:
        server.start()
        logs = [WriterLog(t) for t in range(threads)]
        stop = threading.Event()
        workers = [
            threading.Thread(
                target=writer,
                args=(server.port, logs[t], rng.getrandbits(64), stop, pad),
                daemon=True,
            )
            for t in range(threads)
        ]
        monitor = client(server.port)
        for w in workers:
            w.start()
        # The delay counts from the first acknowledged write.
        deadline = time.monotonic() + 10
        while not any(w.acked for w in logs) and time.monotonic() < deadline:
            time.sleep(0.001)
        t0 = time.monotonic()
        kill_at = t0 + delay
        bgsave_at = None
        if variant == "bgsave":
            gap = rng.uniform(0.0, min(0.3, delay / 2))
            res.bgsave_before_kill_s = round(gap, 3)
            bgsave_at = kill_at - gap
        while True:
            now = time.monotonic()
            if bgsave_at is not None and now >= bgsave_at:
                bgsave_at = None
                with contextlib.suppress(Exception):  # "already in progress" is fine
                    monitor.bgsave()
            if now >= kill_at:
                break
            with contextlib.suppress(Exception):
                info = _info(monitor)
                res.snapshots_during_run = int(info.get("rdb_saves", 0))
                res.saving_at_kill = bool(int(info.get("rdb_bgsave_in_progress", 0)))
            wake = kill_at if bgsave_at is None else min(kill_at, bgsave_at)
            time.sleep(max(0.0, min(0.05, wake - time.monotonic())))
        if server.proc is not None and server.proc.poll() is not None:
            raise ServerFailed(f"server died before the kill: {server.log_tail()}")
        server.kill(kill_mode)
        stop.set()
        for w in workers:
            w.join(timeout=30)
        with contextlib.suppress(Exception):
            monitor.close()

        res.writes_sent = sum(w.sent for w in logs)
        res.writes_acked = sum(w.acked for w in logs)
        res.error_replies = sum(w.error_replies for w in logs)
        errors = {w.last_error for w in logs if w.last_error}
        if errors:
            res.problems.append(f"error replies during the load: {sorted(errors)[:3]}")

        res.files_at_restart = sorted(os.listdir(data_dir))
        res.tmp_files_at_restart = sum(1 for n in res.files_at_restart if n.endswith(".tmp"))
        res.restart_s = round(server.start(), 3)
        r = client(server.port)
        try:
            info = _info(r)
        finally:
            r.close()
        res.recovery_s = float(info.get("loading_time_sec", -1))
        res.truncated_bytes = int(info.get("loading_truncated_bytes", -1))
        res.recovered_records = int(info.get("loading_recovered_records", -1))
        check = verify(server.port, logs)
        res.keys_checked = check.keys_checked
        res.lost = check.lost
        res.wrong = check.wrong
        res.extra_keys = check.extra_keys
        res.unacked_landed = check.unacked_landed
        res.problems += check.problems

        if second_restart:
            # Crash the recovered server too and check again: a second recovery (after
            # the first one truncated a torn tail, opened a new segment, and maybe an
            # orphaned snapshot finished meanwhile) must give the same answer.
            server.kill("server")
            server.start()
            again = verify(server.port, logs)
            same = (again.lost, again.wrong, again.extra_keys) == (
                check.lost,
                check.wrong,
                check.extra_keys,
            )
            res.second_restart_ok = same and again.lost == 0 and again.wrong == 0
            if not res.second_restart_ok:
                res.problems.append(
                    f"after a second crash + restart: lost={again.lost} wrong={again.wrong}"
                    f" extra={again.extra_keys}"
                )
                res.problems += again.problems[:5]
    finally:
        server.close()
        if keep_dir or any(
            p.startswith(("lost", "wrong", "DBSIZE", "after")) for p in res.problems
        ):
            res.problems.append(f"data directory kept: {data_dir}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return res


# -- the command line ---------------------------------------------------------------------


def variant_for(round_no: int, variants: list[str]) -> str:
    return variants[(round_no - 1) % len(variants)]


COLUMNS = (
    ("policy", 8),
    ("rnd", 3),
    ("variant", 7),
    ("kill", 6),
    ("after_s", 7),
    ("sent", 7),
    ("acked", 7),
    ("checked", 7),
    ("lost", 4),
    ("wrong", 5),
    ("extra", 5),
    ("landed", 6),
    ("snaps", 5),
    ("tmp", 3),
    ("recov_s", 7),
    ("trunc_B", 7),
    ("records", 7),
    ("2nd", 3),
)


def _row(r: RoundResult) -> str:
    values = (
        r.policy,
        r.round,
        r.variant,
        r.kill_mode,
        f"{r.kill_after_s:.2f}",
        r.writes_sent,
        r.writes_acked,
        r.keys_checked,
        r.lost,
        r.wrong,
        r.extra_keys,
        r.unacked_landed,
        f"{r.snapshots_during_run}{'*' if r.saving_at_kill else ''}",
        r.tmp_files_at_restart,
        f"{r.recovery_s:.3f}",
        r.truncated_bytes,
        r.recovered_records,
        {True: "ok", False: "BAD", None: "-"}[r.second_restart_ok],
    )
    return "  ".join(str(v).rjust(w) for v, (_, w) in zip(values, COLUMNS))


def header() -> str:
    return "  ".join(name.rjust(w) for name, w in COLUMNS)


def summary(results: list[RoundResult]) -> list[dict[str, Any]]:
    out = []
    for policy in dict.fromkeys(r.policy for r in results):
        rs = [r for r in results if r.policy == policy]
        out.append(
            {
                "policy": policy,
                "rounds": len(rs),
                "writes_acked": sum(r.writes_acked for r in rs),
                "keys_checked": sum(r.keys_checked for r in rs),
                "lost": sum(r.lost for r in rs),
                "wrong": sum(r.wrong for r in rs),
                "extra_keys": sum(r.extra_keys for r in rs),
                "max_recovery_s": max(r.recovery_s for r in rs),
                "truncated_bytes": sum(r.truncated_bytes for r in rs),
                "ok": all(r.ok for r in rs),
            }
        )
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policies", default="always,everysec,no", help="fsync policies to run")
    p.add_argument("--rounds", type=int, default=5, help="rounds per policy")
    p.add_argument(
        "--seconds", type=float, default=1.5, help="longest load before the kill (random delay)"
    )
    p.add_argument("--min-seconds", type=float, default=0.2, help="shortest load before the kill")
    p.add_argument("--threads", type=int, default=4, help="writer threads")
    p.add_argument("--seed", type=int, default=None, help="RNG seed (default: random)")
    p.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="round variants, cycled over the rounds of each policy",
    )
    p.add_argument(
        "--kill",
        choices=[*KILL_MODES, "alternate", "random"],
        default="alternate",
        help="what gets SIGKILL: the server process, its process group (with a BGSAVE"
        " child), or alternate between the two from round to round (default)",
    )
    p.add_argument("--no-second-restart", action="store_true", help="skip the second crash + check")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    p.add_argument("--json", metavar="FILE", help="write every round and the summary")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [p for p in policies if p not in POLICIES] + [v for v in variants if v not in VARIANTS]
    if bad or not policies or not variants or args.rounds < 1 or args.threads < 1:
        print(f"crash_harness: bad arguments {bad or ''}", file=sys.stderr)
        return 2
    if args.min_seconds <= 0 or args.seconds < args.min_seconds:
        print("crash_harness: need 0 < --min-seconds <= --seconds", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    print(f"seed {seed}", file=sys.stderr, flush=True)
    master = random.Random(seed)
    results: list[RoundResult] = []
    print(header(), flush=True)
    try:
        for policy in policies:
            for n in range(1, args.rounds + 1):
                res = run_round(
                    policy,
                    variant_for(n, variants),
                    master.getrandbits(64),
                    round_no=n,
                    threads=args.threads,
                    min_seconds=args.min_seconds,
                    max_seconds=args.seconds,
                    kill_mode=args.kill,
                    second_restart=not args.no_second_restart,
                    keep_dir=args.keep,
                )
                results.append(res)
                print(_row(res), flush=True)
                if not res.ok:
                    print(
                        f"!! LOST/WRONG in {policy} round {n} (round seed {res.seed}):",
                        file=sys.stderr,
                    )
                    for line in res.problems:
                        print(f"   {line}", file=sys.stderr)
    except ServerFailed as e:
        print(f"crash_harness: {e}", file=sys.stderr)
        return 3
    print()
    for s in summary(results):
        verdict = "ok" if s["ok"] else "FAILED"
        print(
            f"{s['policy']:>8}: {s['rounds']} rounds, {s['writes_acked']} writes acked,"
            f" {s['keys_checked']} checked, lost {s['lost']}, wrong {s['wrong']},"
            f" extra {s['extra_keys']}, max recovery {s['max_recovery_s']:.3f}s,"
            f" truncated {s['truncated_bytes']} B: {verdict}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "seed": seed,
                    "config": vars(args),
                    "rounds": [asdict(r) | {"ok": r.ok} for r in results],
                    "summary": summary(results),
                },
                f,
                indent=2,
            )
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
