"""The command table: every command declared once, with the metadata Redis publishes.

A family module creates a :class:`CommandGroup` and declares its handlers::

    strings = CommandGroup("string")

    @strings.command("get", arity=2, flags="readonly fast", keys=(1, 1, 1),
                     acl="read string fast", summary="Returns the string value of a key.")
    def get(client, argv): ...

Arity is checked once, by the gate, from ``arity`` (Redis's convention: ``N`` exactly
N arguments including the name, ``-N`` at least N). ``COMMAND``, ``COMMAND INFO``,
``COMMAND DOCS`` and ``COMMAND COUNT`` are generated from these declarations. Groups
are static declarations; each server builds its own :class:`CommandTable` from them,
so statistics never leak between two servers in one process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[Any, list[bytes]], Any]

# Flags that change what the gate does, precomputed as booleans for the hot path.
_NOAUTH = "no_auth"
_PUBSUB_OK = "pubsub_ok"  # allowed in RESP2 subscribed mode
_TX_CONTROL = "tx_control"  # executed at once inside MULTI (EXEC, DISCARD, WATCH…)


@dataclass(slots=True)
class Command:
    name: str
    arity: int
    flags: tuple[str, ...]
    first_key: int
    last_key: int
    step: int
    acl_categories: tuple[str, ...]
    handler: Handler | None
    group: str
    summary: str
    since: str
    complexity: str
    container: str | None = None  # "client" for the "client|id" subcommand
    subcommands: dict[bytes, Command] | None = None
    # derived flags
    no_auth: bool = False
    pubsub_ok: bool = False
    tx_control: bool = False
    denyoom: bool = False
    write: bool = False
    # statistics (per server: tables copy these objects)
    calls: int = 0
    usec_ns: int = 0
    failed_calls: int = 0
    rejected_calls: int = 0

    @property
    def full_name(self) -> str:
        return f"{self.container}|{self.name}" if self.container else self.name

    def info(self) -> list[Any]:
        """The COMMAND INFO entry (Redis 7 layout: ten fields)."""
        subs = [s.info() for s in (self.subcommands or {}).values()]
        return [
            self.full_name,
            self.arity,
            [_status(f) for f in self.flags if not f.startswith(("no_auth", "pubsub_ok", "tx_"))]
            + ([_status("no_auth")] if self.no_auth else []),
            self.first_key,
            self.last_key,
            self.step,
            ["@" + c for c in self.acl_categories],
            [],
            self.key_specs(),
            subs,
        ]

    def key_specs(self) -> list[dict[str, Any]]:
        if not self.first_key:
            return []
        last = self.last_key - self.first_key if self.last_key >= 0 else self.last_key
        return [
            {
                "flags": ["RW"] if self.write else ["RO"],
                "begin_search": {"type": "index", "spec": {"index": self.first_key}},
                "find_keys": {
                    "type": "range",
                    "spec": {"lastkey": last, "keystep": self.step, "limit": 0},
                },
            }
        ]

    def docs(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "summary": self.summary,
            "since": self.since,
            "group": self.group,
            "complexity": self.complexity,
        }
        if self.subcommands:
            doc["subcommands"] = {s.full_name: s.docs() for s in self.subcommands.values()}
        return doc

    def key_positions(self, argv: list[bytes]) -> list[int]:
        if not self.first_key or len(argv) <= self.first_key:
            return []
        last = self.last_key if self.last_key >= 0 else len(argv) + self.last_key
        return list(range(self.first_key, min(last, len(argv) - 1) + 1, self.step or 1))


def _status(s: str) -> Any:
    from tokenginx.replies import Status

    return Status(s.encode())


def _parse_flags(flags: str | Iterable[str]) -> tuple[str, ...]:
    return tuple(flags.split()) if isinstance(flags, str) else tuple(flags)


@dataclass
class CommandGroup:
    """The commands of one family (``string``, ``hash``, ``server``…)."""

    group: str
    commands: list[Command] = field(default_factory=list)

    def command(
        self,
        name: str,
        arity: int,
        flags: str = "",
        keys: tuple[int, int, int] = (0, 0, 0),
        acl: str = "",
        summary: str = "",
        since: str = "1.0.0",
        complexity: str = "O(1)",
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.commands.append(
                _make(name, arity, flags, keys, acl, handler, self.group, summary, since, complexity)
            )
            return handler

        return register

    def container(
        self,
        name: str,
        flags: str = "",
        acl: str = "",
        summary: str = "",
        since: str = "1.0.0",
    ) -> None:
        """Declare a command made of subcommands (``CLIENT``, ``CONFIG``…)."""
        cmd = _make(name, -2, flags, (0, 0, 0), acl, None, self.group, summary, since, "Depends on subcommand.")
        cmd.subcommands = {}
        self.commands.append(cmd)

    def subcommand(
        self,
        container: str,
        name: str,
        arity: int,
        flags: str = "",
        keys: tuple[int, int, int] = (0, 0, 0),
        acl: str = "",
        summary: str = "",
        since: str = "1.0.0",
        complexity: str = "O(1)",
    ) -> Callable[[Handler], Handler]:
        parent = next((c for c in self.commands if c.name == container), None)
        if parent is None or parent.subcommands is None:
            raise ValueError(f"declare container {container!r} before its subcommands")

        def register(handler: Handler) -> Handler:
            sub = _make(name, arity, flags, keys, acl, handler, self.group, summary, since, complexity)
            sub.container = container
            assert parent.subcommands is not None
            parent.subcommands[name.encode()] = sub
            return handler

        return register


def _make(
    name: str,
    arity: int,
    flags: str,
    keys: tuple[int, int, int],
    acl: str,
    handler: Handler | None,
    group: str,
    summary: str,
    since: str,
    complexity: str,
) -> Command:
    fl = _parse_flags(flags)
    cats = _parse_flags(acl)
    cmd = Command(
        name=name.lower(),
        arity=arity,
        flags=fl,
        first_key=keys[0],
        last_key=keys[1],
        step=keys[2],
        acl_categories=cats,
        handler=handler,
        group=group,
        summary=summary,
        since=since,
        complexity=complexity,
    )
    cmd.no_auth = _NOAUTH in fl
    cmd.pubsub_ok = _PUBSUB_OK in fl
    cmd.tx_control = _TX_CONTROL in fl
    cmd.denyoom = "denyoom" in fl
    cmd.write = "write" in fl
    return cmd


class CommandTable:
    """One server's commands, looked up by name bytes in any letter case."""

    def __init__(self, groups: Iterable[CommandGroup]) -> None:
        self.commands: dict[str, Command] = {}
        for g in groups:
            for spec in g.commands:
                if spec.name in self.commands:
                    raise ValueError(f"command {spec.name!r} declared twice")
                self.commands[spec.name] = _copy(spec)
        self._by_bytes: dict[bytes, Command] = {}
        for name, cmd in self.commands.items():
            self._by_bytes[name.encode()] = cmd
            self._by_bytes[name.upper().encode()] = cmd

    def lookup(self, name: bytes) -> Command | None:
        cmd = self._by_bytes.get(name)
        if cmd is None:
            try:
                cmd = self._by_bytes.get(name.lower())
            except AttributeError:
                return None
        return cmd

    def get(self, name: str) -> Command | None:
        return self.commands.get(name.lower())

    def add(self, spec: Command) -> Command:
        """Register a command at run time (application commands of a later release)."""
        if spec.name in self.commands:
            raise ValueError(f"command {spec.name!r} already exists")
        cmd = _copy(spec)
        self.commands[cmd.name] = cmd
        self._by_bytes[cmd.name.encode()] = cmd
        self._by_bytes[cmd.name.upper().encode()] = cmd
        return cmd

    def __iter__(self):
        return iter(self.commands.values())

    def __len__(self) -> int:
        return len(self.commands)

    def all_with_subcommands(self) -> Iterable[Command]:
        for cmd in self.commands.values():
            yield cmd
            if cmd.subcommands:
                yield from cmd.subcommands.values()

    def reset_stats(self) -> None:
        for cmd in self.all_with_subcommands():
            cmd.calls = cmd.usec_ns = cmd.failed_calls = cmd.rejected_calls = 0


def _copy(spec: Command) -> Command:
    cmd = dataclasses.replace(spec)
    if spec.subcommands is not None:
        cmd.subcommands = {k: dataclasses.replace(v) for k, v in spec.subcommands.items()}
    return cmd
