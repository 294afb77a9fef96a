"""``Logger``: the seed's logging helper, on the standard ``logging`` module.

``Logger.info("...")`` logs to the ``tokenginx.app`` logger, so application messages
go wherever the server's logging goes (``logging.*`` settings; ``config.info=False``
raises the level to warnings).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("tokenginx.app")


class Logger:
    @staticmethod
    def debug(message: Any, *args: Any, **kwargs: Any) -> None:
        log.debug(message, *args, **kwargs)

    @staticmethod
    def info(message: Any, *args: Any, **kwargs: Any) -> None:
        log.info(message, *args, **kwargs)

    @staticmethod
    def warning(message: Any, *args: Any, **kwargs: Any) -> None:
        log.warning(message, *args, **kwargs)

    warn = warning

    @staticmethod
    def error(message: Any, *args: Any, **kwargs: Any) -> None:
        log.error(message, *args, **kwargs)

    @staticmethod
    def exception(message: Any, *args: Any, **kwargs: Any) -> None:
        log.exception(message, *args, **kwargs)


def ensure_logging(config: Any) -> None:
    """Configure the ``tokenginx`` loggers from ``config.logging`` unless someone already
    has (the CLI, the embedding application, or a test harness on the root logger)."""
    if logging.getLogger("tokenginx").handlers or logging.getLogger().handlers:
        return
    from tokenginx.logs import setup_logging

    setup_logging(config.logging)
