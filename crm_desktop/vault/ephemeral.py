"""A keyring that lives only in this process, for demo mode's throwaway sandbox tokens."""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class EphemeralKeyring(KeyringBackend):
    """Holds secrets in memory for the life of the process; never written anywhere.

    Only demo mode uses it: the sandbox CRMs issue fresh tokens at every start, so there is nothing worth keeping.
    """

    priority = 0.1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self._entries:
            raise PasswordDeleteError("no such entry")
        del self._entries[(service, username)]
