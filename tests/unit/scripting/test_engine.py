"""The Lua engine: conversions both ways, the redis.* API, the sandbox, cjson, bit, the
time limit and isolation between servers."""

from __future__ import annotations

import gc
import hashlib
import logging
import weakref

import pytest
from lupa.lua51 import lua_type

from tests.conftest import GateHarness
from tokenginx.commands import ALL_GROUPS, hashes, scripting, sets
from tokenginx.errors import CommandError
from tokenginx.replies import NULL_ARRAY, Status, Verbatim
from tokenginx.scripting.engine import ScriptEngine, engine_for, parse_shebang

GROUPS = [*ALL_GROUPS, *(g for g in (scripting.group, hashes.group, sets.group) if g not in ALL_GROUPS)]


@pytest.fixture
def gate() -> GateHarness:
    return GateHarness(groups=GROUPS)


def run(gate: GateHarness, body: str, keys=(), args=(), read_only=False, client=None):
    """Load and run ``body`` directly on the engine (no EVAL parsing)."""
    engine = engine_for(gate.state)
    script = engine.load(body.encode())
    as_bytes = [a if isinstance(a, bytes) else str(a).encode() for a in (*keys, *args)]
    return engine.run(
        client or gate.client, script, as_bytes[: len(keys)], as_bytes[len(keys) :], read_only
    )


def error(reply) -> str:
    assert isinstance(reply, CommandError), f"expected an error, got {reply!r}"
    return reply.message


def sha(body: str) -> str:
    return hashlib.sha1(body.encode()).hexdigest()


# -- the engine's life --------------------------------------------------------------------
def test_engine_is_created_lazily_per_server(gate):
    assert gate.state.scripts is None
    other = GateHarness(groups=GROUPS)
    assert run(gate, "return 1") == 1
    assert isinstance(gate.state.scripts, ScriptEngine)
    assert other.state.scripts is None  # nothing shared between servers
    assert engine_for(gate.state) is gate.state.scripts
    assert run(other, "return 2") == 2
    assert other.state.scripts is not gate.state.scripts
    assert engine_for(gate.state).get(sha("return 2").encode()) is None


def test_load_caches_by_sha(gate):
    engine = engine_for(gate.state)
    script = engine.load(b"return 'x'")
    assert script.sha == sha("return 'x'")
    assert engine.load(b"return 'x'") is script
    assert engine.get(script.sha.upper().encode()) is script
    assert engine.exists(script.sha.encode())
    assert len(engine) == 1
    engine.flush()
    assert len(engine) == 0 and not engine.exists(script.sha.encode())
    assert run(gate, "return 'x'") == b"x"  # a fresh runtime after a flush


def test_engine_is_released_with_its_server():
    harness = GateHarness(groups=GROUPS)
    assert run(harness, "return redis.call('ping')") == b"PONG"
    ref = weakref.ref(harness.state.scripts)
    del harness
    gc.collect()
    assert ref() is None


def test_compile_error(gate):
    with pytest.raises(CommandError) as e:
        engine_for(gate.state).load(b"return +")
    assert e.value.message.startswith("ERR Error compiling script (new function): user_script:1:")


def test_bytecode_is_refused(gate):
    with pytest.raises(CommandError, match="binary chunks are not allowed"):
        engine_for(gate.state).load(b"\x1bLua\x51\x00")
    assert run(gate, "return loadstring(string.dump(function() return 1 end))") is None
    assert run(gate, "return select(2, loadstring('\\27Lua'))") == b"binary chunks are not allowed"


# -- KEYS and ARGV -------------------------------------------------------------------------
def test_keys_and_argv(gate):
    assert run(gate, "return {KEYS[1], KEYS[2], ARGV[1], #KEYS, #ARGV}", ["a", "b"], ["c"]) == [
        b"a", b"b", b"c", 2, 1,
    ]
    assert run(gate, "return {#KEYS, #ARGV}") == [0, 0]
    # each run sees its own arguments
    assert run(gate, "return ARGV[1]", [], ["second"]) == b"second"
    assert run(gate, "return ARGV[1]", [], []) is None


def test_binary_arguments_round_trip(gate):
    blob = bytes(range(256))
    assert run(gate, "redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])", [b"k"], [blob]) == blob


# -- Lua -> reply --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("return 42", 42),
        ("return 3.99", 3),
        ("return -3.99", -3),
        ("return 'text'", b"text"),
        ("return true", 1),
        ("return false", None),
        ("return nil", None),
        ("return {1, 'two', {3, 'four'}}", [1, b"two", [3, b"four"]]),
        ("return {1, 2, nil, 4}", [1, 2]),  # an array stops at the first nil
        ("return {1, false, 3}", [1, None, 3]),
        ("return {}", []),
        ("return {a = 1}", []),  # not an array, not a status or an error
        ("return {ok = 'FINE'}", Status(b"FINE")),
        ("return {double = 2.5}", 2.5),
        ("return {map = {a = 1}}", {b"a": 1}),
        ("return {1, 2, 3}, 'ignored'", [1, 2, 3]),
        ("return 2^63", -(2**63)),
        ("return function() end", None),
    ],
)
def test_lua_to_redis(gate, body, expected):
    reply = run(gate, body)
    assert reply == expected
    assert type(reply) is type(expected)


def test_lua_set_and_error_tables(gate):
    assert run(gate, "return {set = {a = true, b = true}}") == {b"a", b"b"}
    reply = run(gate, "return {err = 'CUSTOM went wrong'}")
    assert error(reply) == "CUSTOM went wrong"
    nested = run(gate, "return {1, {err = 'ERR inner'}}")
    assert nested[0] == 1 and error(nested[1]) == "ERR inner"


def test_self_referencing_table_is_an_error(gate):
    assert error(run(gate, "local t = {} t[1] = t return t")) == "ERR reached lua stack limit"


def test_metatables_do_not_run_after_the_script(gate):
    body = "return setmetatable({}, {__index = function() while true do end end})"
    assert run(gate, body) == []


# -- reply -> Lua --------------------------------------------------------------------------
def test_redis_to_lua_resp2(gate):
    gate.ok("SET", "s", "v")
    gate.ok("HSET", "h", "f", "x")
    body = """
    return {
      type(redis.call('get', 's')), redis.call('get', 's'),
      tostring(redis.call('get', 'missing')),
      type(redis.call('incr', 'n')), redis.call('incr', 'n'),
      type(redis.call('set', 'k', 'v')), redis.call('set', 'k', 'v').ok,
      type(redis.call('hgetall', 'h')), #redis.call('hgetall', 'h'),
      redis.pcall('incr', 's').err,
    }
    """
    assert run(gate, body) == [
        b"string", b"v", b"false", b"number", 2, b"table", b"OK", b"table", 2,
        b"ERR value is not an integer or out of range",
    ]


def test_redis_to_lua_resp3(gate):
    gate.ok("HSET", "h", "f", "x")
    gate.ok("SADD", "members", "m")
    body = """
    redis.setresp(3)
    local h = redis.call('hgetall', 'h')
    local s = redis.call('smembers', 'members')
    return {h.map.f, tostring(s.set.m), tostring(redis.call('get', 'missing') == nil),
            redis.call('ping').ok}
    """
    assert run(gate, body) == [b"x", b"true", b"true", b"PONG"]


def test_resp3_returns(gate):
    assert run(gate, "redis.setresp(3) return true") is True
    assert run(gate, "redis.setresp(3) return false") is False
    assert run(gate, "redis.setresp(2) return false") is None  # each run starts in RESP2


def test_engine_conversion_table():
    """Every reply type a handler can return has a Lua form (RESP2 rules)."""
    harness = GateHarness(groups=GROUPS)
    engine = engine_for(harness.state)
    engine._runtime()
    assert engine._to_lua(b"x") == b"x"
    assert engine._to_lua(7) == 7
    assert engine._to_lua(None) is False
    assert engine._to_lua(NULL_ARRAY) is False
    assert engine._to_lua(True) == 1
    assert engine._to_lua(1.5) == b"1.5"
    assert engine._to_lua(Verbatim(b"txt")) == b"txt"
    assert engine._to_lua(2**70) == float(2**70)
    status = engine._to_lua(Status(b"OK"))
    assert lua_type(status) == "table" and status[b"ok"] == b"OK"
    err = engine._to_lua(CommandError("WRONGTYPE Operation against a key"))
    assert err[b"err"] == b"WRONGTYPE Operation against a key"
    assert engine._to_lua(CommandError("NOSPACE"))[b"err"] == b"ERR NOSPACE"
    flat = engine._to_lua({b"a": 1})
    assert [flat[1], flat[2]] == [b"a", 1]


# -- errors ----------------------------------------------------------------------------------
def test_call_error_aborts_with_location(gate):
    gate.ok("SET", "s", "text")
    body = "redis.call('set', 'before', '1')\nreturn redis.call('incr', 's')"
    message = error(run(gate, body))
    assert message == (
        f"ERR value is not an integer or out of range script: {sha(body)}, on @user_script:2."
    )
    assert gate.ok("GET", "before") == b"1"  # no rollback, as in Redis


def test_pcall_returns_error_table(gate):
    gate.ok("SET", "s", "text")
    body = """
    local r = redis.pcall('incr', 's')
    return {type(r), r.err, redis.call('get', 's')}
    """
    assert run(gate, body) == [b"table", b"ERR value is not an integer or out of range", b"text"]
    assert error(run(gate, "return redis.pcall('incr', 's')")).startswith("ERR value is not")


def test_lua_pcall_gets_the_message(gate):
    gate.ok("SET", "s", "text")
    assert run(gate, "local ok, e = pcall(redis.call, 'incr', 's') return {tostring(ok), e}") == [
        b"false", b"ERR value is not an integer or out of range",
    ]
    body = "local ok, e = xpcall(function() redis.call('incr', 's') end, function(e) return e end) return e.err"
    assert run(gate, body) == b"ERR value is not an integer or out of range"


def test_runtime_errors(gate):
    body = "error('boom')"
    assert error(run(gate, body)) == f"ERR user_script:1: boom script: {sha(body)}, on @user_script:1."
    assert error(run(gate, "error({err = 'MINE custom'})")).startswith("MINE custom script: ")
    assert error(run(gate, "local x = nil\nreturn x.y")).startswith(
        "ERR user_script:2: attempt to index local 'x' (a nil value) script: "
    )


def test_command_checks_inside_scripts(gate):
    assert error(run(gate, "return redis.call('nosuch')")).startswith(
        "ERR Unknown Redis command called from script script: "
    )
    assert error(run(gate, "return redis.call('get')")).startswith(
        "ERR Wrong number of args calling Redis command from script script: "
    )
    assert error(run(gate, "return redis.call()")).startswith(
        "ERR Please specify at least one argument for this redis lib call script: "
    )
    assert error(run(gate, "return redis.call('set', 'k', {})")).startswith(
        "ERR Lua redis lib command arguments must be strings or integers script: "
    )
    assert run(gate, "return redis.pcall('nosuch').err") == b"ERR Unknown Redis command called from script"


@pytest.mark.parametrize(
    "command",
    ["eval', 'return 1', '0", "evalsha', 'x', '0", "script', 'flush", "multi", "exec", "watch', 'k",
     "subscribe', 'ch", "auth', 'pw", "hello", "quit", "reset", "monitor", "client', 'id"],
)
def test_commands_refused_in_scripts(gate, command):
    assert error(run(gate, f"return redis.call('{command}')")).startswith(
        "ERR This Redis command is not allowed from script script: "
    )


def test_read_only_runs_refuse_writes(gate):
    assert error(run(gate, "return redis.call('set', 'k', 'v')", read_only=True)).startswith(
        "ERR Write commands are not allowed from read-only scripts. script: "
    )
    gate.ok("SET", "k", "v")
    assert run(gate, "return redis.call('get', 'k')", read_only=True) == b"v"
    assert run(gate, "return redis.pcall('del', 'k').err", read_only=True) == (
        b"ERR Write commands are not allowed from read-only scripts."
    )
    assert gate.ok("GET", "k") == b"v"


# -- the script client -------------------------------------------------------------------------
def test_script_client_uses_the_callers_database(gate):
    gate.ok("SELECT", "3")
    run(gate, "redis.call('set', 'in3', 'x')")
    assert gate.ok("GET", "in3") == b"x"
    gate.ok("SELECT", "0")
    assert gate.ok("GET", "in3") is None
    # SELECT inside the script only moves the script's client
    run(gate, "redis.call('select', '5') redis.call('set', 'in5', 'y')")
    assert gate.ok("GET", "in5") is None
    gate.ok("SELECT", "5")
    assert gate.ok("GET", "in5") == b"y"
    engine = gate.state.scripts
    assert engine._client.in_script and engine._client is not gate.client


def test_script_commands_pass_the_gate(gate):
    calls = gate.state.table.get("incr").calls
    run(gate, "redis.call('incr', 'n') redis.call('incr', 'n')")
    assert gate.state.table.get("incr").calls == calls + 2


def test_numbers_are_sent_as_redis_does(gate):
    run(gate, "redis.call('set', 'a', 10) redis.call('set', 'b', 0.1) redis.call('set', 'c', 1e20)")
    assert gate.ok("MGET", "a", "b", "c") == [b"10", b"0.10000000000000001", b"1e+20"]


# -- redis.* helpers -------------------------------------------------------------------------
def test_reply_helpers(gate):
    assert run(gate, "return redis.status_reply('DONE')") == Status(b"DONE")
    assert error(run(gate, "return redis.error_reply('MY_CODE failed')")) == "MY_CODE failed"
    assert error(run(gate, "return redis.error_reply('failed')")) == "ERR failed"
    assert error(run(gate, "return redis.error_reply('-WRONGTYPE bad')")) == "WRONGTYPE bad"
    assert run(gate, "return redis.error_reply('x y').err") == b"x y"
    assert error(run(gate, "return redis.error_reply(1)")) == "ERR wrong number or type of arguments"
    assert error(run(gate, "return redis.status_reply()")) == "ERR wrong number or type of arguments"


def test_sha1hex_and_version(gate):
    assert run(gate, "return redis.sha1hex('')") == b"da39a3ee5e6b4b0d3255bfef95601890afd80709"
    assert run(gate, "return redis.sha1hex('abc')") == hashlib.sha1(b"abc").hexdigest().encode()
    assert run(gate, "return redis.REDIS_VERSION") == b"7.2.4"
    assert run(gate, "return redis.REDIS_VERSION_NUM") == 0x070204


def test_log(gate, caplog):
    with caplog.at_level(logging.DEBUG, logger="tokenginx.script"):
        run(gate, "redis.log(redis.LOG_WARNING, 'disk', 'is', 99, 'full')")
        run(gate, "redis.log(redis.LOG_NOTICE, 'notice')")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "disk is 99 full"),
        (logging.INFO, "notice"),
    ]
    assert "requires two arguments" in error(run(gate, "redis.log(redis.LOG_WARNING)"))
    assert "Invalid debug level" in error(run(gate, "redis.log(9, 'x')"))


def test_setresp_and_replication_helpers(gate):
    assert "RESP version must be 2 or 3" in error(run(gate, "redis.setresp(4)"))
    assert run(gate, "return redis.replicate_commands()") == 1
    assert run(gate, "return redis.set_repl(redis.REPL_ALL)") is None
    assert "Invalid replication flags" in error(run(gate, "redis.set_repl(8)"))
    assert run(gate, "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_REPLICA, redis.REPL_ALL}") == [0, 1, 2, 3]
    assert run(gate, "return redis.acl_check_cmd('get', 'k')") == 1


# -- the sandbox ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["os", "io", "require", "loadfile", "dofile", "package", "module", "print", "python",
     "getfenv", "setfenv", "newproxy"],
)
def test_dangerous_globals_are_absent(gate, name):
    assert error(run(gate, f"return {name}")).startswith(
        f"ERR user_script:1: Script attempted to access nonexistent global variable '{name}'"
    )


def test_sandbox_escapes_fail(gate):
    assert "nonexistent global variable 'os'" in error(run(gate, "os.execute('true')"))
    assert "nonexistent global variable 'io'" in error(run(gate, "io.open('/etc/passwd')"))
    assert "nonexistent global variable 'loadfile'" in error(run(gate, "loadfile('/etc/passwd')"))
    assert "nonexistent global variable 'require'" in error(run(gate, "require('os')"))
    assert run(gate, "return debug") is None  # lupa needs the name to resolve; it is not the library
    assert run(gate, "return rawget(_G, 'os')") is None
    assert run(gate, "return getmetatable('').__index.upper('a')") == b"A"  # a read-only stand-in
    # Python objects behind the API expose nothing
    assert "not available to scripts" in error(run(gate, "return redis.call.__class__"))


def test_globals_and_libraries_are_read_only(gate):
    assert "Attempt to modify a readonly table" in error(run(gate, "x = 1"))
    assert "Attempt to modify a readonly table" in error(run(gate, "string.rep = nil"))
    assert "Attempt to modify a readonly table" in error(run(gate, "redis.call = nil"))
    assert "Attempt to modify a readonly table" in error(run(gate, "rawset(_G, 'x', 1)"))
    assert "Attempt to modify a readonly table" in error(run(gate, "setmetatable(_G, nil)"))
    assert "Attempt to modify a readonly table" in error(run(gate, "setmetatable(string, {})"))
    assert "Attempt to modify a readonly table" in error(run(gate, "getmetatable('').__index = nil"))
    assert "Attempt to modify" in error(run(gate, "getmetatable('').__index.upper = nil"))
    # ...and nothing leaked into the next script
    assert run(gate, "return type(string.rep)") == b"function"
    assert run(gate, "local x = 1 return x") == 1


def test_standard_libraries_work(gate):
    body = """
    local t = {}
    for k in pairs(string) do t[#t + 1] = k end
    table.sort(t)
    return {string.format('%05.1f', 3.14159), table.concat({1, 2, 3}, '-'), math.floor(2.7),
            ('abc'):upper(), rawget(string, 'len') ~= nil and 1 or 0, #t > 10 and 1 or 0,
            select('#', unpack({1, 2, 3})), tostring(tonumber('0x10'))}
    """
    assert run(gate, body) == [b"003.1", b"1-2-3", 2, b"ABC", 1, 1, 3, b"16"]


def test_local_functions_and_loadstring(gate):
    assert run(gate, "local f = loadstring('return 6 * 7') return f()") == 42
    assert run(gate, "local function fib(n) if n < 2 then return n end return fib(n-1) + fib(n-2) end return fib(15)") == 610


def test_coroutines(gate):
    body = """
    local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
    return {co(1), co(10)}
    """
    assert run(gate, body) == [2, 20]


# -- cjson ------------------------------------------------------------------------------------
def test_cjson_encode(gate):
    assert run(gate, "return cjson.encode({1, 2, 3})") == b"[1,2,3]"
    assert run(gate, "return cjson.encode({})") == b"{}"
    assert run(gate, "return cjson.encode({a = 'x/y'})") == b'{"a":"x\\/y"}'
    assert run(gate, "return cjson.encode({1, nil, 3})") == b"[1,null,3]"
    assert run(gate, "return cjson.encode('a\"b\\n\\127')") == b'"a\\"b\\n\\u007f"'
    assert run(gate, "return cjson.encode({3.14159265358979, 1e20, 0.5, true, false})") == (
        b"[3.1415926535898,1e+20,0.5,true,false]"
    )
    assert run(gate, "return cjson.encode(cjson.null)") == b"null"
    assert run(gate, "return cjson.encode({[1] = 'a', x = 'b'})") in (
        b'{"1":"a","x":"b"}', b'{"x":"b","1":"a"}',
    )
    assert "excessively sparse array" in error(run(gate, "return cjson.encode({[1] = 1, [50] = 2})"))
    assert "must not be NaN or Inf" in error(run(gate, "return cjson.encode(1/0)"))
    assert "type not supported" in error(run(gate, "return cjson.encode(function() end)"))
    assert "excessive nesting" in error(run(gate, "local t = {} t[1] = t return cjson.encode(t)"))


def test_cjson_decode(gate):
    body = """
    local v = cjson.decode(ARGV[1])
    return {v.name, v.list[2], tostring(v.flag), tostring(v.missing == cjson.null), #v.list,
            type(v.n), v.n * 2}
    """
    doc = '{"name":"tok","list":[1,"two",3],"flag":true,"missing":null,"n":1.5}'
    assert run(gate, body, [], [doc]) == [b"tok", b"two", b"true", b"true", 3, b"number", 3]
    assert run(gate, "return cjson.decode('\"\\\\u00e9\"')") == "é".encode()
    assert error(run(gate, "local v = cjson.decode('{bad') return v")).startswith(
        "ERR user_script:1: Expected object key string but found invalid token at character 2 script: "
    )
    assert "Expected comma or array end but found T_END at character 5" in error(
        run(gate, "return cjson.decode('[1,2')")
    )
    round_trip = '{"a":[1,2.5,"x",true,null]}'
    assert run(gate, "return cjson.encode(cjson.decode(ARGV[1]))", [], [round_trip]) == round_trip.encode()


# -- bit ---------------------------------------------------------------------------------------
def test_bit(gate):
    body = """
    return {bit.band(0xff, 0x0f), bit.bor(1, 2, 4), bit.bxor(5, 1), bit.bnot(0),
            bit.lshift(1, 4), bit.rshift(-1, 28), bit.arshift(-16, 2), bit.tobit(2^32 + 5),
            bit.tohex(255), bit.tohex(-1, -4), bit.rol(0x80000000, 1), bit.bswap(0x12345678)}
    """
    assert run(gate, body) == [15, 7, 4, -1, 16, 15, -4, 5, b"000000ff", b"FFFF", 1, 0x78563412]
    assert "number expected" in error(run(gate, "return bit.band('x')"))


# -- busy scripts: -BUSY to others, SCRIPT KILL ------------------------------------------------
class KillingPoller:
    """Stands in for the RESP door's busy poller: on its n-th poll another client
    tries a command (it must get -BUSY) and then sends SCRIPT KILL."""

    def __init__(self, gate: GateHarness, kill_after: int = 3) -> None:
        self.gate = gate
        self.other = gate.new_client()
        self.polls = 0
        self.kill_after = kill_after
        self.replies: list = []
        self.started = self.stopped = 0

    def start(self) -> None:
        self.started += 1

    def stop(self) -> None:
        self.stopped += 1

    def poll(self, caller) -> None:
        self.polls += 1
        if self.polls == self.kill_after:
            self.replies.append(self.gate.call("GET", "k", client=self.other))
            self.replies.append(self.gate.call("PING", client=self.other))
            self.replies.append(self.gate.call("SCRIPT", "KILL", client=self.other))


@pytest.mark.parametrize(
    "body",
    [
        "while true do end",
        "while true do pcall(function() while true do end end) end",
        "local co = coroutine.wrap(function() while true do end end) co()",
        "while true do redis.call('ping') end",
    ],
)
def test_a_busy_script_answers_busy_to_others_and_dies_by_script_kill(gate, body):
    gate.state.config.scripting.busy_reply_threshold_ms = 20
    poller = gate.state.busy_poller = KillingPoller(gate)
    reply = run(gate, body)
    assert error(reply).startswith("ERR Script killed by user with SCRIPT KILL...")
    busy = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    assert [error(r) for r in poller.replies[:2]] == [busy, busy]
    assert poller.replies[2] == b"OK"
    assert (poller.started, poller.stopped) == (1, 1)
    # Not busy any more: the server and the runtime are fine.
    assert gate.state.busy is False
    assert run(gate, "local n = 0 for i = 1, 1000 do n = n + i end return n") == 500500
    assert gate.ok("PING", client=poller.other) == b"PONG"
    assert error(gate.call("SCRIPT", "KILL")) == "NOTBUSY No scripts in execution right now."


def test_a_script_that_wrote_cannot_be_killed(gate):
    gate.state.config.scripting.busy_reply_threshold_ms = 20
    poller = gate.state.busy_poller = KillingPoller(gate)
    body = "redis.call('set', 'k', 'v') local i = 0 while i < 3e7 do i = i + 1 end return i"
    assert run(gate, body) == 30_000_000
    assert error(poller.replies[2]).startswith("UNKILLABLE Sorry the script already executed")
    assert gate.ok("GET", "k") == b"v"


def test_a_script_under_the_threshold_is_not_busy(gate):
    poller = gate.state.busy_poller = KillingPoller(gate, kill_after=1)
    assert run(gate, "local i = 0 while i < 1e6 do i = i + 1 end return i") == 1_000_000
    assert (poller.started, poller.polls) == (0, 0)


def test_the_runtime_memory_is_capped(gate):
    gate.state.config.scripting.max_memory_mb = 16
    engine_for(gate.state).flush()  # a new runtime takes the new ceiling
    reply = run(gate, "local t = {} for i = 1, 64 do t[i] = string.rep('x', 1024 * 1024) .. i end")
    assert "not enough memory" in error(reply)
    assert run(gate, "return string.rep('x', 1024):len()") == 1024
    pcall_reply = run(gate, "return pcall(string.rep, 'x', 64 * 1024 * 1024)")
    assert pcall_reply is None  # false: the allocation failed inside the script


def test_unpack_refuses_what_the_c_stack_cannot_hold(gate):
    # Lua 5.1's unpack crashed the process on this (CVE class Redis patches).
    assert "too many results to unpack" in error(run(gate, "return {unpack({1, 2, 3}, 0, 2147483647)}"))
    assert "too many results to unpack" in error(run(gate, "return {unpack({}, -2^31, 2^31 - 1)}"))
    # Bounds convert as C's (int)(ptrdiff_t): 2^31 wraps to -2^31, one element, as in Redis.
    assert run(gate, "return #{unpack({}, -2^31, 2^31)}") == 0
    assert run(gate, "return #{unpack({}, 0/0, 1)}") == 0  # NaN converts to 0, as in C
    assert run(gate, "return #{unpack(ARGV)}", args=[b"a"] * 7999) == 7999
    assert "too many results" in error(run(gate, "return #{unpack(ARGV)}", args=[b"a"] * 8000))
    assert run(gate, "return {unpack({1, 2, 3}, 2)}") == [2, 3]
    assert run(gate, "return {unpack({1, 2, 3}, 3, 1)}") == []


# -- shebang ------------------------------------------------------------------------------------
def test_shebang():
    assert parse_shebang(b"return 1") == (None, 0)
    assert parse_shebang(b"#!lua\nreturn 1") == (frozenset(), 5)
    assert parse_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1") == (
        frozenset({b"no-writes", b"allow-oom"}), 31,
    )
    with pytest.raises(CommandError, match="Unexpected engine in script shebang: #!python"):
        parse_shebang(b"#!python\n")
    with pytest.raises(CommandError, match="Unexpected flag in script shebang: bogus"):
        parse_shebang(b"#!lua flags=bogus\n")
    with pytest.raises(CommandError, match="Unknown lua shebang option: x=1"):
        parse_shebang(b"#!lua x=1\n")


def test_shebang_no_writes(gate):
    body = "#!lua flags=no-writes\nreturn redis.call('set', 'k', 'v')"
    assert error(run(gate, body)).startswith(
        "ERR Write commands are not allowed from read-only scripts. script: "
    )
    assert error(run(gate, body)).endswith("on @user_script:2.")  # the shebang keeps its line
    assert run(gate, "#!lua flags=no-writes\nreturn 1", read_only=True) == 1
    with pytest.raises(CommandError, match=r"Can not execute a script with write flag using \*_ro"):
        run(gate, "#!lua\nreturn 1", read_only=True)


# -- Redis 7 details the TCL suite checks --------------------------------------------------------
def test_a_shebang_script_that_may_write_does_not_start_over_maxmemory(gate):
    gate.ok("CONFIG", "SET", "maxmemory", "1")
    oom = "OOM command not allowed when used memory > 'maxmemory'."
    assert gate.err("EVAL", "#!lua\nreturn 1", "0") == oom
    assert gate.ok("EVAL", "#!lua flags=no-writes\nreturn 1", "0") == 1
    assert gate.ok("EVAL", "#!lua flags=allow-oom\nreturn 1", "0") == 1
    assert gate.ok("EVAL", "return 1", "0") == 1  # no shebang: checked per command


@pytest.mark.parametrize(
    "body",
    [
        "setmetatable(_G, {})",
        "local g = getmetatable(_G) g.__index = {}",
        "setmetatable(string, {})",
        "getmetatable('').__index = {}",
        "rawset(getmetatable(_G), '__index', {})",
    ],
)
def test_global_protection_tricks_fail_as_in_redis(gate, body):
    assert "Attempt to modify a readonly table" in error(run(gate, body))
    assert run(gate, "return type(getmetatable(_G))") == b"table"
    assert run(gate, "local t = setmetatable({}, {__index = function() return 5 end}) return t.x") == 5


def test_info_memory_counts_cached_scripts(gate):
    gate.ok("SCRIPT", "FLUSH")
    gate.ok("EVAL", "return 1", "0")
    gate.ok("SCRIPT", "LOAD", "return 2")
    info = dict(
        line.split(":", 1) for line in gate.ok("INFO", "memory").decode().splitlines() if ":" in line
    )
    assert info["number_of_cached_scripts"] == "2"
    assert int(info["used_memory_lua"]) > 0
    assert int(info["used_memory_scripts_eval"]) == len("return 1") + len("return 2")


def test_cjson_encode_keep_buffer_and_wait(gate):
    assert run(gate, "return cjson.encode_keep_buffer()") == 1
    assert run(gate, "cjson.encode_keep_buffer(false) return cjson.encode_keep_buffer()") is None
    assert "invalid option 'x'" in error(run(gate, "return cjson.encode_keep_buffer('x')"))
    assert run(gate, "return cjson.decode(cjson.encode({1, 2}))[2]") == 2
    assert run(gate, "return redis.pcall('wait', '1', '0')") == 0


def test_a_script_error_is_counted_once_in_the_error_statistics(gate):
    gate.ok("CONFIG", "RESETSTAT")
    gate.ok("SET", "s", "x")
    gate.err("EVAL", "return redis.call('incr', 's')", "0")  # counted when INCR failed
    gate.err("EVAL", "return redis.error_reply('MY_ERR_CODE custom msg')", "0")
    gate.err("EVAL", "local x = nil; return x.y", "0")
    stats = dict(
        line.split(":", 1) for line in gate.ok("INFO", "errorstats").decode().splitlines()
        if ":" in line
    )
    assert stats == {"errorstat_ERR": "count=2", "errorstat_MY_ERR_CODE": "count=1"}
    cmdstats = gate.ok("INFO", "commandstats").decode()
    assert "cmdstat_eval:calls=3," in cmdstats and "failed_calls=3" in cmdstats


def test_a_returned_pcall_error_is_counted_once(gate):
    gate.ok("CONFIG", "RESETSTAT")
    gate.ok("SET", "s", "x")
    gate.err("EVAL", "return redis.pcall('incr', 's')", "0")
    gate.err("EVAL", "local t = redis.pcall('incr', 's') return redis.error_reply(t.err)", "0")
    stats = gate.ok("INFO", "errorstats").decode()
    # once for the first INCR; the second INCR once, and the error_reply made anew once
    assert "errorstat_ERR:count=3" in stats
