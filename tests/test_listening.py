"""The listening socket the sandbox CRMs and the local API serve on."""

from __future__ import annotations

import socket

import pytest

from crm_desktop.listening import listening_socket


def test_listening_socket_is_tcp_with_nagle_off() -> None:
    # asyncio turns Nagle's algorithm off only on sockets that say they are TCP; with it on, an answer's body
    # (written after its headers) waited for the client's delayed ACK.
    sock = listening_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.getblocking() is False
        assert sock.getsockname()[1] != 0
    finally:
        sock.close()


def test_an_ipv6_host_gets_an_ipv6_socket() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        sock = listening_socket("::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        assert sock.family == socket.AF_INET6
    finally:
        sock.close()


def test_a_taken_port_is_refused() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(OSError):
            listening_socket("127.0.0.1", taken.getsockname()[1])
