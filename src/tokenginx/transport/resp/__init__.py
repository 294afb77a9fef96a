"""Redis serialization protocol: sans-IO parser and encoder, plus the asyncio server.

Nothing in ``parser``/``encoder`` does I/O, so tests and fuzzers drive them with bytes.
"""
