"""The gate: lookup, arity, authentication and connection modes, for every door."""

from tests.conftest import GateHarness
from tokenginx.config import Config
from tokenginx.replies import NULL_ARRAY, OK, QUEUED, Push


def test_unknown_command_and_arity_text(gate):
    assert gate.err("NOPE", "a", "b") == (
        "ERR unknown command 'NOPE', with args beginning with: 'a' 'b' "
    )
    assert gate.err("GET") == "ERR wrong number of arguments for 'get' command"
    assert gate.err("CLIENT", "SETNAME") == (
        "ERR wrong number of arguments for 'client|setname' command"
    )
    assert gate.err("CLIENT", "BOGUS") == "ERR unknown subcommand 'BOGUS'. Try CLIENT HELP."


def test_names_are_case_insensitive(gate):
    assert gate.ok("sEt", "k", "v") == OK
    assert gate.ok("get", "k") == b"v"
    assert gate.ok("client", "ID") == gate.client.id


def test_requirepass():
    cfg = Config()
    cfg.server.requirepass = "s3cret"
    h = GateHarness(cfg)
    assert h.err("GET", "k") == "NOAUTH Authentication required."
    assert h.err("AUTH", "wrong").startswith("WRONGPASS")
    assert h.err("AUTH", "someone", "s3cret").startswith("WRONGPASS")
    assert h.ok("AUTH", "s3cret") == OK
    assert h.ok("GET", "k") is None
    other = h.new_client()
    assert h.err("HELLO", 3, client=other).startswith("NOAUTH HELLO must be called")
    reply = h.ok("HELLO", 3, "AUTH", "default", "s3cret", client=other)
    assert reply[b"proto"] == 3 and other.protocol == 3


def test_auth_without_password_configured(gate):
    assert gate.err("AUTH", "x").startswith("ERR AUTH <password> called without any password")
    assert gate.ok("AUTH", "default", "anything") == OK


def test_hello_reply(gate):
    reply = gate.ok("HELLO", 3, "SETNAME", "app")
    assert reply[b"server"] == b"redis"
    assert reply[b"version"].startswith(b"7.")
    assert reply[b"proto"] == 3 and reply[b"mode"] == b"standalone"
    assert reply[b"role"] == b"master" and reply[b"modules"] == []
    assert gate.ok("CLIENT", "GETNAME") == b"app"
    assert gate.err("HELLO", 4) == "NOPROTO unsupported protocol version"


def test_multi_exec(gate):
    assert gate.ok("MULTI") == OK
    assert gate.ok("SET", "a", 1) == QUEUED
    assert gate.ok("INCR", "a") == QUEUED
    assert gate.ok("EXEC") == [OK, 2]
    assert gate.err("EXEC") == "ERR EXEC without MULTI"
    assert gate.err("DISCARD") == "ERR DISCARD without MULTI"


def test_exec_abort_on_queue_error(gate):
    gate.ok("MULTI")
    assert gate.err("GET").startswith("ERR wrong number")
    gate.ok("SET", "a", 1)
    assert gate.err("EXEC") == "EXECABORT Transaction discarded because of previous errors."
    assert gate.ok("GET", "a") is None


def test_runtime_error_inside_exec_does_not_roll_back(gate):
    gate.ok("SET", "s", "abc")
    gate.ok("MULTI")
    gate.ok("INCR", "s")
    gate.ok("SET", "t", 1)
    replies = gate.ok("EXEC")
    assert replies[0].message == "ERR value is not an integer or out of range"
    assert replies[1] == OK


def test_watch(gate):
    other = gate.new_client()
    gate.ok("SET", "w", 1)
    gate.ok("WATCH", "w")
    gate.ok("SET", "w", 2, client=other)
    gate.ok("MULTI")
    gate.ok("SET", "w", 3)
    assert gate.ok("EXEC") is NULL_ARRAY
    assert gate.ok("GET", "w") == b"2"
    # unchanged watched key: EXEC runs
    gate.ok("WATCH", "w")
    gate.ok("MULTI")
    gate.ok("SET", "w", 4)
    assert gate.ok("EXEC") == [OK]


def test_watch_aborts_when_key_expires(gate):
    gate.ok("SET", "w", 1, "PX", 100)
    gate.ok("WATCH", "w")
    gate.clock.advance(200)
    gate.ok("MULTI")
    gate.ok("GET", "w")
    assert gate.ok("EXEC") is NULL_ARRAY


def test_watch_inside_multi_and_nested_multi(gate):
    gate.ok("MULTI")
    assert gate.err("WATCH", "x") == "ERR WATCH inside MULTI is not allowed"
    assert gate.err("MULTI") == "ERR MULTI calls can not be nested"
    assert gate.ok("DISCARD") == OK


def test_resp2_subscribed_mode_restrictions(gate):
    reply = gate.ok("SUBSCRIBE", "ch")
    assert list(reply) == [Push([b"subscribe", b"ch", 1])]
    assert gate.err("GET", "k").startswith("ERR Can't execute 'get'")
    assert gate.ok("PING") == [b"pong", b""]
    gate.ok("UNSUBSCRIBE")
    assert gate.ok("GET", "k") is None


def test_publish_reaches_subscribers_and_patterns(gate):
    sub = gate.new_client()
    gate.ok("SUBSCRIBE", "news", client=sub)
    gate.ok("PSUBSCRIBE", "n*", client=sub)
    assert gate.ok("PUBLISH", "news", "hi") == 2
    assert gate.pushed[-2:] == [
        Push([b"message", b"news", b"hi"]),
        Push([b"pmessage", b"n*", b"news", b"hi"]),
    ]
    assert gate.ok("PUBSUB", "NUMSUB", "news", "other") == [b"news", 1, b"other", 0]
    assert gate.ok("PUBSUB", "NUMPAT") == 1
    assert gate.ok("PUBSUB", "CHANNELS", "n*") == [b"news"]


def test_keyspace_notifications(gate):
    sub = gate.new_client()
    sub.set_protocol(3)
    gate.ok("CONFIG", "SET", "notify-keyspace-events", "KEA")
    gate.ok("PSUBSCRIBE", "__key*__:*", client=sub)
    gate.ok("SET", "k", "v", "PX", 10)
    gate.clock.advance(10)
    gate.ok("GET", "k")
    events = [(m[2], m[3]) for m in gate.pushed if m[0] == b"pmessage"]
    assert (b"__keyevent@0__:set", b"k") in events
    assert (b"__keyspace@0__:k", b"expired") in events
    assert (b"__keyevent@0__:expired", b"k") in events
    assert gate.ok("CONFIG", "GET", "notify-keyspace-events") == {
        b"notify-keyspace-events": b"AKE"
    }


def test_stats_and_slowlog(gate):
    gate.ok("CONFIG", "SET", "slowlog-log-slower-than", 0)
    gate.ok("SET", "k", "v")
    gate.err("INCR", "k")
    entries = gate.ok("SLOWLOG", "GET", 1)
    assert entries[0][3] == [b"INCR", b"k"]
    text = gate.ok("INFO", "commandstats").decode()
    assert "cmdstat_set:calls=1" in text
    assert "cmdstat_incr:calls=1," in text and "failed_calls=1" in text
    assert gate.ok("CONFIG", "RESETSTAT") == OK
    assert gate.ok("SLOWLOG", "LEN") == 1  # the RESETSTAT call itself
