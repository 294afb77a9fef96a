"""Hash commands (https://redis.io/docs/latest/commands/?group=hash).

A hash is a ``dict[bytes, bytes]`` in the keyspace. Redis never keeps an empty hash:
the command that removes the last field deletes the key (``db.delete_if_empty``).
Every mutation reports itself once through ``db.changed(key, event, "h", delta)``
with the memory delta from :func:`~tokenginx.storage.memory.field_size`.

Lookups made by write commands use ``db.lookup`` (no keyspace hit/miss counted, as
Redis's ``lookupKeyWrite``); read commands use ``db.get_hash``.
"""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

from tokenginx.client import Client
from tokenginx.commands import longdouble
from tokenginx.commands.args import I64_MAX, I64_MIN, parse_int
from tokenginx.commands.scan import cursor_reply, parse_cursor, parse_options, scan_batch
from tokenginx.commands.strings import _value_limit
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError, WrongTypeError, not_float, syntax_error, wrong_arity
from tokenginx.replies import OK
from tokenginx.storage.database_types import HASH_KIND as _H
from tokenginx.storage.memory import Database, field_size

group = CommandGroup("hash")
command = group.command

_WF = "write denyoom fast"
_RF = "readonly fast"
_KEY = (1, 1, 1)
