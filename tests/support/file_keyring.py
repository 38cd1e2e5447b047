"""TEST-ONLY keyring backend that keeps secrets as plain JSON in a file, so a test and its subprocesses share them.

Never use it outside tests: it stores secrets unencrypted. Select it in a child process with
``PYTHON_KEYRING_BACKEND=tests.support.file_keyring.FileKeyring`` and name the file in ``CRM_TEST_KEYRING_FILE``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

#: The environment variable naming the JSON file the backend reads and writes.
KEYRING_FILE_ENV = "CRM_TEST_KEYRING_FILE"

#: What to put in ``PYTHON_KEYRING_BACKEND`` to select this backend.
BACKEND_NAME = "tests.support.file_keyring.FileKeyring"


class FileKeyring(KeyringBackend):
    """Secrets in a JSON file (``{"service": {"username": "password"}}``), replaced atomically on every write.

    Attributes:
        path: the file; ``CRM_TEST_KEYRING_FILE`` when not given.
    """

    priority = 1

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        chosen = path if path is not None else os.environ.get(KEYRING_FILE_ENV)
        if not chosen:
            raise RuntimeError(f"the test file keyring needs {KEYRING_FILE_ENV} to name its file")
        self.path = Path(chosen)

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, dict[str, str]]) -> None:
        # Write a sibling file and rename it over the old one: a process killed mid-write leaves the old file whole.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".keyring-", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(data, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get_password(self, service: str, username: str) -> str | None:
        return self._read().get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._read()
        data.setdefault(service, {})[username] = password
        self._write(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._read()
        if username not in data.get(service, {}):
            raise PasswordDeleteError("no such entry")
        del data[service][username]
        self._write(data)
