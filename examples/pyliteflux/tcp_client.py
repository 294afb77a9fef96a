"""A TCP client for the chat example (chat.py): it subscribes with a JSON line, then
prints every line the server sends — command replies and ``{"push": …}`` messages.

    python examples/pyliteflux/chat.py                 # terminal 1
    python examples/pyliteflux/tcp_client.py           # terminal 2: prints its client id
    curl 'http://127.0.0.1:8080/hello?client_id=<id>'  # terminal 3: a push arrives 5 s later

Only the standard library is used, as a PyLiteFlux client would. Each request is one
line; the first byte picks the format (``{`` JSON, ``<`` XML), so both can be mixed.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys


def request_line(command: str, data: object = None, xml: bool = False) -> bytes:
    if xml:
        return f'<request command="{command}"/>\n'.encode()
    return json.dumps({"command": command, "data": data}).encode() + b"\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6380, help="the RESP port (default 6380)")
    parser.add_argument("--xml", action="store_true", help="send XML lines instead of JSON")
    parser.add_argument("--once", action="store_true", help="exit after the first push")
    parser.add_argument("commands", nargs="*", default=["subscribe", "clients"],
                        help="TCP commands to send first (default: subscribe clients)")
    args = parser.parse_args(argv)

    with socket.create_connection((args.host, args.port)) as sock:
        sock.sendall(b"".join(request_line(c, xml=args.xml) for c in args.commands))
        reader = sock.makefile("rb")
        replies = 0
        for raw in reader:  # one reply or push per line
            line = raw.decode("utf-8").rstrip("\n")
            if line.startswith("{") and '"push"' in line:
                message = json.loads(line)
                if isinstance(message, dict) and set(message) == {"push"}:
                    print("push:", message["push"], flush=True)
                    if args.once:
                        return 0
                    continue
            replies += 1
            label = args.commands[replies - 1] if replies <= len(args.commands) else "reply"
            print(f"{label}:", line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
