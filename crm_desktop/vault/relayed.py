"""A keyring whose every call is answered by another process's keyring: the sync process's, asking the app's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keyring.backend import KeyringBackend

#: Sends one keyring call (``get_password``, ``set_password`` or ``delete_password`` and its arguments) to the
#: process that owns the keyring and returns its answer, raising what the call raised there.
Relay = Callable[..., Any]


class RelayedKeyring(KeyringBackend):
    """A keyring backend that passes each call through ``relay`` to the keyring of the process that answers it.

    The desktop app's sync process reads and writes credentials with it: the app's own keyring (the OS's, or a
    demo's in-memory one) stays the only place they live, and a session the child refreshes is kept there.
    """

    priority = 1

    def __init__(self, relay: Relay) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._relay = relay

    def get_password(self, service: str, username: str) -> str | None:
        value: str | None = self._relay("get_password", service, username)
        return value

    def set_password(self, service: str, username: str, password: str) -> None:
        self._relay("set_password", service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        self._relay("delete_password", service, username)


#: The calls a relayed keyring makes.
KEYRING_CALLS = frozenset({"get_password", "set_password", "delete_password"})


def relay_to(backend: KeyringBackend) -> Relay:
    """The answering side of a :class:`RelayedKeyring`: runs each relayed call on ``backend``.

    Raises (from the relay):
        ValueError: for a call that is not one of :data:`KEYRING_CALLS`.
    """

    def answer(operation: str, *arguments: str) -> Any:
        if operation not in KEYRING_CALLS:
            raise ValueError(f"not a keyring call: {operation!r}")
        return getattr(backend, operation)(*arguments)

    return answer
