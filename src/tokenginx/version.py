"""Version numbers the server reports.

``REDIS_COMPAT_VERSION`` is what ``INFO``/``HELLO`` report as ``redis_version``: clients
(redis-py, ioredis, StackExchange.Redis) gate features on it, so it names the Redis
release whose semantics we follow.
"""

__version__ = "0.1.0"
REDIS_COMPAT_VERSION = "7.2.4"
