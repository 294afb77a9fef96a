"""Lua scripting (EVAL & co.): one sandboxed Lua 5.1 runtime per server."""

from tokenginx.scripting.engine import Script, ScriptEngine, engine_for

__all__ = ["Script", "ScriptEngine", "engine_for"]
