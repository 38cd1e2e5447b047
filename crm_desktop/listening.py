"""The listening TCP socket both local servers (the sandbox CRMs and the local API) serve on."""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket on ``host:port`` (port 0: a free port chosen by the OS; an IPv6 host when it
    holds a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio turns Nagle's algorithm off only on sockets that say they are TCP. With it on, a
    # response's body, written after its headers, waited for the client's delayed ACK: 40 ms on every answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def cannot_listen(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on now (another program has it, say), or ``None`` when it can: tried
    by binding it and letting it go at once."""
    try:
        listening_socket(host, port).close()
    except OSError as exc:
        return exc
    return None
