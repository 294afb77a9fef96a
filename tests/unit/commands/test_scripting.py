"""EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT through the real gate (scripting.group
is added to the table here until it is registered in ALL_GROUPS), plus redis-py's own
scripts against a server process."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import GateHarness, free_port, stop_process, wait_for_ping
from tokenginx.commands import ALL_GROUPS, scripting
from tokenginx.replies import OK
from tokenginx.transport.resp.encoder import encode_resp2, encode_resp3

GROUPS = [*ALL_GROUPS, *(g for g in (scripting.group,) if g not in ALL_GROUPS)]

# redis-py's Lock.LUA_RELEASE_SCRIPT (redis/lock.py), verbatim.
LUA_RELEASE_SCRIPT = """
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        redis.call('del', KEYS[1])
        return 1
    """

# redis-py's Lock.LUA_EXTEND_SCRIPT, verbatim.
LUA_EXTEND_SCRIPT = """
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        local expiration = redis.call('pttl', KEYS[1])
        if not expiration then
            expiration = 0
        end
        if expiration < 0 then
            return 0
        end

        local newttl = ARGV[2]
        if ARGV[3] == "0" then
            newttl = ARGV[2] + expiration
        end
        redis.call('pexpire', KEYS[1], newttl)
        return 1
    """

# A fixed-window rate limiter: at most ARGV[2] calls per ARGV[1] seconds.
RATE_LIMITER = """
redis.call('SET', KEYS[1], 0, 'EX', ARGV[1], 'NX')
local count = redis.call('INCR', KEYS[1])
if count > tonumber(ARGV[2]) then
  return 0
end
return count
"""

# The other classic form: INCR, and EXPIRE on the first hit.
RATE_LIMITER_EXPIRE = """
local current = redis.call('INCR', KEYS[1])
if current == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return current
"""


@pytest.fixture
def gate() -> GateHarness:
    return GateHarness(groups=GROUPS)


def sha(body: str) -> bytes:
    return hashlib.sha1(body.encode()).hexdigest().encode()


# -- EVAL ----------------------------------------------------------------------------------
def test_eval_keys_and_args(gate):
    assert gate.ok("EVAL", "return {KEYS[1], KEYS[2], ARGV[1]}", 2, "k1", "k2", "a1") == [
        b"k1", b"k2", b"a1",
    ]
    assert gate.ok("EVAL", "return #ARGV", 0, "a", "b", "c") == 3
    assert gate.ok("eval", "return redis.call('set', KEYS[1], ARGV[1])", 1, "k", "v") == b"OK"
    assert gate.ok("GET", "k") == b"v"


def test_eval_numkeys_validation(gate):
    assert gate.err("EVAL", "return 1", 2, "only-one") == (
        "ERR Number of keys can't be greater than number of args"
    )
    assert gate.err("EVAL", "return 1", -1) == "ERR Number of keys can't be negative"
    assert gate.err("EVAL", "return 1", "x") == "ERR value is not an integer or out of range"
    assert gate.err("EVAL", "return 1") == "ERR wrong number of arguments for 'eval' command"


def test_eval_errors(gate):
    gate.ok("SET", "s", "text")
    body = "return redis.call('incr', KEYS[1])"
    assert gate.err("EVAL", body, 1, "s") == (
        f"ERR value is not an integer or out of range script: {sha(body).decode()}, on @user_script:1."
    )
    assert gate.err("EVAL", "return redis.pcall('incr', KEYS[1])", 1, "s") == (
        "ERR value is not an integer or out of range"
    )
    assert gate.err("EVAL", "return {err = 'MYERR custom'}", 0) == "MYERR custom"
    assert gate.err("EVAL", "return redis.error_reply('oops')", 0) == "ERR oops"
    assert gate.ok("EVAL", "return redis.status_reply('OK')", 0) == OK
    assert gate.err("EVAL", "return +", 0).startswith(
        "ERR Error compiling script (new function): user_script:1:"
    )


def test_eval_caches_the_script(gate):
    body = "return 'cached'"
    assert gate.ok("SCRIPT", "EXISTS", sha(body)) == [0]
    assert gate.ok("EVAL", body, 0) == b"cached"
    assert gate.ok("SCRIPT", "EXISTS", sha(body)) == [1]
    assert gate.ok("EVALSHA", sha(body), 0) == b"cached"


def test_eval_inside_multi(gate):
    assert gate.ok("MULTI") == OK
    assert gate.ok("EVAL", "return redis.call('incr', KEYS[1])", 1, "n") == b"QUEUED"
    assert gate.ok("EVAL", "return redis.call('incr', KEYS[1])", 1, "n") == b"QUEUED"
    assert gate.ok("EXEC") == [1, 2]


def test_scripts_cannot_run_scripts(gate):
    for inner in ("eval', 'return 1', '0", "script', 'load', 'return 1", "multi", "exec"):
        assert gate.err("EVAL", f"return redis.call('{inner}')", 0).startswith(
            "ERR This Redis command is not allowed from script"
        )


# -- EVALSHA --------------------------------------------------------------------------------
def test_evalsha_noscript(gate):
    assert gate.err("EVALSHA", "a" * 40, 0) == "NOSCRIPT No matching script. Please use EVAL."
    assert gate.err("EVALSHA", "short", 0) == "NOSCRIPT No matching script. Please use EVAL."
    assert gate.err("EVALSHA_RO", "a" * 40, 0) == "NOSCRIPT No matching script. Please use EVAL."
    # numkeys is checked first, as in Redis
    assert gate.err("EVALSHA", "a" * 40, -1) == "ERR Number of keys can't be negative"


def test_evalsha_after_load(gate):
    digest = gate.ok("SCRIPT", "LOAD", "return {KEYS[1], ARGV[1]}")
    assert digest == sha("return {KEYS[1], ARGV[1]}")
    assert gate.ok("EVALSHA", digest, 1, "k", "a") == [b"k", b"a"]
    assert gate.ok("EVALSHA", digest.upper(), 1, "k", "a") == [b"k", b"a"]


# -- EVAL_RO / EVALSHA_RO ------------------------------------------------------------------------
def test_eval_ro(gate):
    gate.ok("SET", "k", "v")
    assert gate.ok("EVAL_RO", "return redis.call('get', KEYS[1])", 1, "k") == b"v"
    assert gate.err("EVAL_RO", "return redis.call('set', KEYS[1], 'x')", 1, "k").startswith(
        "ERR Write commands are not allowed from read-only scripts. script: "
    )
    assert gate.err("EVAL_RO", "return redis.call('del', KEYS[1])", 1, "k").startswith(
        "ERR Write commands are not allowed from read-only scripts."
    )
    assert gate.ok("GET", "k") == b"v"
    digest = gate.ok("SCRIPT", "LOAD", "return redis.call('incr', KEYS[1])")
    assert gate.err("EVALSHA_RO", digest, 1, "n").startswith(
        "ERR Write commands are not allowed from read-only scripts."
    )
    assert gate.ok("EVALSHA", digest, 1, "n") == 1


def test_shebang_flags(gate):
    assert gate.ok("EVAL_RO", "#!lua flags=no-writes\nreturn 1", 0) == 1
    assert gate.err("EVAL_RO", "#!lua\nreturn 1", 0) == (
        "ERR Can not execute a script with write flag using *_ro command."
    )
    assert gate.err("EVAL", "#!lua flags=no-writes\nreturn redis.call('set', 'k', 'v')", 0).startswith(
        "ERR Write commands are not allowed from read-only scripts."
    )
    assert gate.err("EVAL", "#!python\nreturn 1", 0) == "ERR Unexpected engine in script shebang: #!python"


# -- SCRIPT ----------------------------------------------------------------------------------
def test_script_load_exists_flush(gate):
    assert gate.ok("SCRIPT", "EXISTS", "a" * 40) == [0]  # before any engine exists
    one = gate.ok("SCRIPT", "LOAD", "return 1")
    two = gate.ok("script", "load", "return 2")
    assert isinstance(one, bytes) and len(one) == 40 and one == one.lower()
    assert gate.ok("SCRIPT", "LOAD", "return 1") == one  # idempotent
    assert gate.ok("SCRIPT", "EXISTS", one, "b" * 40, two.upper()) == [1, 0, 1]
    assert gate.ok("SCRIPT", "FLUSH") == OK
    assert gate.ok("SCRIPT", "EXISTS", one, two) == [0, 0]
    assert gate.err("EVALSHA", one, 0).startswith("NOSCRIPT")
    gate.ok("SCRIPT", "LOAD", "return 1")
    assert gate.ok("SCRIPT", "FLUSH", "ASYNC") == OK
    assert gate.ok("SCRIPT", "FLUSH", "sync") == OK
    assert gate.err("SCRIPT", "FLUSH", "LATER") == "ERR SCRIPT FLUSH only support SYNC|ASYNC option"
    assert gate.err("SCRIPT", "FLUSH", "SYNC", "ASYNC") == "ERR SCRIPT FLUSH only support SYNC|ASYNC option"


def test_script_load_compile_error(gate):
    assert gate.err("SCRIPT", "LOAD", "return (").startswith(
        "ERR Error compiling script (new function): user_script:1:"
    )
    assert gate.ok("SCRIPT", "EXISTS", sha("return (")) == [0]


def test_script_kill_and_help(gate):
    assert gate.err("SCRIPT", "KILL") == "NOTBUSY No scripts in execution right now."
    help_lines = gate.ok("SCRIPT", "HELP")
    assert any(line == b"LOAD" for line in help_lines)
    assert gate.err("SCRIPT", "NOPE").startswith("ERR unknown subcommand 'NOPE'")
    assert gate.err("SCRIPT", "EXISTS") == "ERR wrong number of arguments for 'script|exists' command"


def test_scripts_are_per_server(gate):
    other = GateHarness(groups=GROUPS)
    digest = gate.ok("SCRIPT", "LOAD", "return 'mine'")
    assert other.ok("SCRIPT", "EXISTS", digest) == [0]
    assert other.err("EVALSHA", digest, 0).startswith("NOSCRIPT")


def test_command_flags(gate):
    table = gate.state.table
    for name in ("eval", "evalsha", "eval_ro", "evalsha_ro"):
        assert "noscript" in table.get(name).flags
    assert "readonly" in table.get("eval_ro").flags
    assert all("noscript" in sub.flags for sub in table.get("script").subcommands.values())


# -- replies on the wire ----------------------------------------------------------------------
def test_replies_encode_for_both_protocols(gate):
    reply = gate.ok("EVAL", "return {1, 'a', {ok = 'fine'}, false}", 0)
    assert encode_resp2(reply) == b"*4\r\n:1\r\n$1\r\na\r\n+fine\r\n$-1\r\n"
    assert encode_resp3(reply) == b"*4\r\n:1\r\n$1\r\na\r\n+fine\r\n_\r\n"
    assert encode_resp3(gate.ok("EVAL", "redis.setresp(3) return {map = {k = true}}", 0)) == (
        b"%1\r\n$1\r\nk\r\n#t\r\n"
    )
    assert encode_resp2(gate.ok("EVAL", "redis.setresp(3) return {double = 1.5}", 0)) == b"$3\r\n1.5\r\n"


# -- real scripts ------------------------------------------------------------------------------
def test_redis_py_lock_release_script(gate):
    assert gate.ok("SET", "lock:a", "token-1", "PX", 10_000, "NX") == OK
    assert gate.ok("EVAL", LUA_RELEASE_SCRIPT, 1, "lock:a", "someone-else") == 0
    assert gate.ok("GET", "lock:a") == b"token-1"
    assert gate.ok("EVAL", LUA_RELEASE_SCRIPT, 1, "lock:a", "token-1") == 1
    assert gate.ok("GET", "lock:a") is None
    assert gate.ok("EVAL", LUA_RELEASE_SCRIPT, 1, "lock:a", "token-1") == 0  # already released
    # redis-py runs it with EVALSHA once loaded
    digest = gate.ok("SCRIPT", "LOAD", LUA_RELEASE_SCRIPT)
    gate.ok("SET", "lock:b", "t")
    assert gate.ok("EVALSHA", digest, 1, "lock:b", "t") == 1


def test_redis_py_lock_extend_script(gate):
    gate.ok("SET", "lock", "tok", "PX", 5_000)
    assert gate.ok("EVAL", LUA_EXTEND_SCRIPT, 1, "lock", "tok", 10_000, "0") == 1
    assert gate.ok("PTTL", "lock") == 15_000
    assert gate.ok("EVAL", LUA_EXTEND_SCRIPT, 1, "lock", "tok", 2_000, "1") == 1
    assert gate.ok("PTTL", "lock") == 2_000
    assert gate.ok("EVAL", LUA_EXTEND_SCRIPT, 1, "lock", "other", 2_000, "1") == 0
    gate.ok("SET", "forever", "tok")
    assert gate.ok("EVAL", LUA_EXTEND_SCRIPT, 1, "forever", "tok", 2_000, "0") == 0


def test_rate_limiter(gate):
    for expected in (1, 2, 3):
        assert gate.ok("EVAL", RATE_LIMITER, 1, "rl:user", 10, 3) == expected
    assert gate.ok("EVAL", RATE_LIMITER, 1, "rl:user", 10, 3) == 0  # over the limit
    assert gate.ok("TTL", "rl:user") == 10
    gate.clock.advance(10_000)  # the window expires
    assert gate.ok("EVAL", RATE_LIMITER, 1, "rl:user", 10, 3) == 1


def test_rate_limiter_with_expire(gate):
    digest = gate.ok("SCRIPT", "LOAD", RATE_LIMITER_EXPIRE)
    assert [gate.ok("EVALSHA", digest, 1, "rl", 60) for _ in range(3)] == [1, 2, 3]
    assert gate.ok("TTL", "rl") == 60
    gate.clock.advance(60_000)
    assert gate.ok("EVALSHA", digest, 1, "rl", 60) == 1


# -- redis-py end to end ---------------------------------------------------------------------
_SERVE = """
import sys
from tokenginx.commands import ALL_GROUPS, scripting
from tokenginx.config import Config
from tokenginx.server import Server

config = Config.load(
    env={},
    overrides={"server.tcp_addr": "127.0.0.1:" + sys.argv[1], "persistence.enabled": False},
)
groups = [*ALL_GROUPS, *(g for g in (scripting.group,) if g not in ALL_GROUPS)]
Server(config, groups=groups).run()
"""


@pytest.fixture
def live_server() -> Iterator[int]:
    """A server process with the scripting commands (until they are in ALL_GROUPS)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_ping(port, proc)
        yield port
    finally:
        stop_process(proc)


def test_redis_py_lock_and_script(live_server):
    import redis

    r = redis.Redis(port=live_server, socket_timeout=10)
    try:
        lock = r.lock("resource", timeout=10)
        assert lock.acquire(blocking=False)
        assert not r.lock("resource", timeout=10).acquire(blocking=False)
        assert lock.extend(5)
        assert lock.release() is None
        assert r.get("resource") is None
        assert lock.acquire(blocking=False)
        r.set("resource", "stolen")  # someone else's token now
        with pytest.raises(redis.exceptions.LockNotOwnedError):
            lock.release()
        assert r.get("resource") == b"stolen"

        incr_by = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
        assert incr_by(keys=["counter"], args=[5]) == 5
        r.script_flush()
        assert incr_by(keys=["counter"], args=[5]) == 10  # EVALSHA -> NOSCRIPT -> EVAL
        r.set("text", "x")
        with pytest.raises(redis.exceptions.ResponseError, match="value is not an integer"):
            r.eval("return redis.call('incr', KEYS[1])", 1, "text")
        with pytest.raises(redis.exceptions.NoScriptError):
            r.evalsha("0" * 40, 0)
    finally:
        r.close()
