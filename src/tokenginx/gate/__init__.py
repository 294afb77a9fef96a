"""The single entry point for every command: authentication, modes, limits, metrics."""

from tokenginx.gate.gate import Gate

__all__ = ["Gate"]
