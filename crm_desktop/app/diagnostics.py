"""A support bundle (a zip) for whoever helps the user: versions, platform, settings, integrations, recent runs and
logs, with every secret and every personal value redacted before a byte is written."""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import sys
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from crm_desktop import __version__
from crm_desktop.app.output_path import output_file
from crm_desktop.app.workspace import Workspace
from crm_desktop.store.privacy import personal_values
from crm_desktop.vault import VaultError

logger = logging.getLogger(__name__)

#: Runs the bundle describes, newest first.
RECENT_RUNS = 20
#: The most of each log file the bundle keeps (its end: the newest lines).
LOG_TAIL_BYTES = 1_000_000
#: Libraries whose versions matter when something goes wrong.
LIBRARIES = ("PySide6", "httpx", "httpcore", "truststore", "certifi", "SQLAlchemy", "alembic", "psycopg", "pydantic",
             "keyring", "SecretStorage", "qasync", "orjson", "phonenumbers", "uvicorn", "starlette")

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")
# Numbers written for people: E.164 or grouped international numbers (timestamps and ids have no leading +).
_PHONE = re.compile(r"\+\d[\d ().-]{5,}\d")
# Credentials recognisable by their shape, whoever's they are: bearer headers, key=value pairs, vendor prefixes.
# The part named "keep" (a header or key name) stays; the rest of the match is the secret.
_TOKEN_SHAPES = (
    # A URL's user and password (a proxy's): the host after them stays, it is what a supporter needs.
    re.compile(r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@(?=[^\s@/]+)"),
    re.compile(r"(?P<keep>(?i:bearer)\s+)[^\s\"',;]+"),
    re.compile(r"(?P<keep>(?i:(?:access|refresh)_?token|client_?secret|api_?token|password|token)[\"']?\s*[:=]\s*"
               r"[\"']?)[^\s\"',;&}]+"),
    re.compile(r"\bpat-[a-z0-9]{2,4}-[\w-]{6,}"),
    re.compile(r"\b00D\w{5,}![\w.]+"),
)
_WORD = re.compile(r"@?[^\W_][\w.'-]*[^\W_]|@?[^\W_]", re.UNICODE)


def _marked(match: re.Match[str]) -> str:
    """A token shape's match with its secret part replaced (a URL's userinfo keeps its ``@``)."""
    keep = match.groupdict().get("keep") or ""
    return keep + ("[secret]@" if match.group().endswith("@") else "[secret]")


def _variants(value: str) -> set[str]:
    """A value as it may appear in text: itself, URL-encoded, JSON-escaped."""
    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}


@dataclass
class Redactor:
    """Removes known secrets and personal values from text, then anything shaped like an email, phone or token.

    Attributes:
        secrets: exact secret strings (tokens, client secrets, passwords) from the keyring.
        personal: exact personal values (names, emails, phones, usernames) from the store.
    """

    secrets: set[str] = field(default_factory=set)
    personal: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        exact = {v for s in self.secrets if len(s) >= 4 for v in _variants(s)}
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted(exact, key=len, reverse=True)
        words = {p.strip().casefold().removeprefix("@") for p in self.personal}
        # A phone number also shows up without its "+" (a CRM's own format, a log line).
        words |= {p.strip().lstrip("+") for p in self.personal if _PHONE.fullmatch(p.strip())}
        self._words = {w for w in words if len(w) >= 2}
        # Values that are neither one word nor caught by the email and phone shapes (a name with a space) are
        # replaced as whole strings; there are few, so one pass each stays cheap.
        self._phrases = sorted(
            {v for p in self.personal for v in _variants(p.strip())
             if len(v) >= 2 and not _WORD.fullmatch(v) and not _EMAIL.fullmatch(v) and not _PHONE.fullmatch(v)},
            key=len, reverse=True,
        )

    def redact(self, text: str) -> str:
        """``text`` with every known and recognisable secret or personal value replaced by a marker."""
        for secret in self._secrets:
            text = text.replace(secret, "[secret]")
        for pattern in _TOKEN_SHAPES:
            text = pattern.sub(_marked, text)
        text = _EMAIL.sub("[email]", text)
        text = _PHONE.sub("[phone]", text)
        for phrase in self._phrases:
            text = re.sub(re.escape(phrase), "[personal]", text, flags=re.IGNORECASE)
        if self._words:
            text = _WORD.sub(lambda m: "[personal]" if m.group().casefold().removeprefix("@") in self._words
                             else m.group(), text)
        return text

    def redact_data(self, data: Any) -> Any:
        """A JSON-like value with every string redacted (keys included)."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, Mapping):
            return {self.redact(str(k)): self.redact_data(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.redact_data(v) for v in data]
        return data


def _vault_secrets(workspace: Workspace) -> set[str]:
    """Every secret value the keyring holds for this workspace: integrations, the local API, the proxy."""
    found: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    try:
        for integration in workspace.integrations.list():
            collect(workspace.integrations.credentials(integration))
        collect(workspace.vault.load_api_token())
        for stored in workspace.network.store.all().values():
            account = stored.get("passwordAccount")
            if account:
                collect(workspace.vault.load_secret(str(account)))
    except VaultError as exc:
        # Without the keyring its secrets cannot be named; the shapes-based pass still runs over everything.
        logger.warning("diagnostics: the keyring could not be read (%s); redacting by shape only", exc)
    return found


def _library_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _home_hidden(path: Path | str) -> str:
    text = str(path)
    home = str(Path.home())
    return "~" + text[len(home):] if home and text.startswith(home) else text


def _about(workspace: Workspace, qt_platform: str | None, environ: Mapping[str, str]) -> dict[str, Any]:
    ok, keyring_text = workspace.vault.availability()
    return {
        "app": {"name": "crm-desktop", "version": __version__},
        "python": sys.version.split()[0],
        "os": {"system": platform.system(), "release": platform.release(), "version": platform.version(),
               "machine": platform.machine(), "platform": platform.platform()},
        "qt": {"platform": qt_platform or environ.get("QT_QPA_PLATFORM") or "(not started)",
               "display": bool(environ.get("DISPLAY")), "waylandDisplay": bool(environ.get("WAYLAND_DISPLAY"))},
        "libraries": _library_versions(),
        "keyring": {"usable": ok, "detail": keyring_text},
        "database": {"url": workspace.database.describe(), "revision": workspace.migration.to_revision},
        "dataDir": _home_hidden(workspace.paths.data_dir),
        "exportedAt": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _settings(workspace: Workspace, environ: Mapping[str, str]) -> dict[str, Any]:
    env = {k: v for k, v in sorted(environ.items()) if k.startswith(("CRM_DESKTOP_", "QT_", "PYTHON_KEYRING"))
           or k in {"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy"}}
    env = {k: _home_hidden(v) for k, v in env.items()}
    if "CRM_DESKTOP_DB_URL" in env:
        env["CRM_DESKTOP_DB_URL"] = workspace.database.describe()
    return {
        "network": [value.as_json() for value in workspace.network.list()],
        "rotateKeysAfterDays": workspace.integrations.rotate_after_days,
        "environment": env,
    }


def _integrations(workspace: Workspace) -> list[dict[str, Any]]:
    items = []
    for integration in workspace.integrations.list():
        data = integration.to_wire()
        try:
            stored = workspace.integrations.credentials(integration)
            # Which parts are stored (never their values): enough to see a missing refresh token.
            data["credentials"] = sorted(stored) if stored else "missing"
        except VaultError:
            data["credentials"] = "keyring unavailable"
        age = workspace.integrations.key_age(integration)
        data["keyAgeDays"] = age.days if age else None
        items.append(data)
    return items


def _runs(workspace: Workspace) -> list[dict[str, Any]]:
    names = {i.id: i.name for i in workspace.integrations.list()}
    items = []
    for run in workspace.sync.store.list_runs(None, RECENT_RUNS):
        log = workspace.sync.store.record_log(run.id)
        categories = Counter(r.error_category.value for r in log if r.error_category is not None)
        outcomes = Counter(r.outcome.value for r in log)
        items.append({
            "id": run.id,
            "integration": names.get(run.integration_id) if run.integration_id is not None else None,
            "trigger": run.trigger.value,
            "direction": run.direction,
            "status": run.status.value,
            "counts": {"created": run.created, "updated": run.updated, "unchanged": run.unchanged,
                       "failed": run.failed, "conflicts": run.conflicts},
            "apiCalls": run.api_calls,
            "startedAt": run.started_at,
            "finishedAt": run.finished_at,
            "message": run.message,
            "errorCategories": dict(categories),
            "recordOutcomes": dict(outcomes),
        })
    return items


def _log_files(log_file: Path) -> list[Path]:
    folder = log_file.parent
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and p.name.startswith(log_file.name)),
                  key=lambda p: p.name)


def _tail(path: Path, limit: int) -> str:
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(size - limit, 0))
        data = handle.read()
    text = data.decode("utf-8", errors="replace")
    if size > limit:
        text = text.split("\n", 1)[-1]  # the first line is cut: drop it
    return text


@dataclass(frozen=True)
class DiagnosticsReport:
    """What went into a bundle.

    Attributes:
        path: the zip written.
        files: its members.
        runs: how many runs it describes.
        logs: how many log files it carries.
    """

    path: Path
    files: list[str]
    runs: int
    logs: int


_README = """CRM Desktop diagnostics

about.json         app and library versions, OS, Qt platform, keyring and database (no password)
settings.json      workspace settings and relevant environment variables
integrations.json  each integration's settings and which credential parts are stored (never their values)
runs.json          the last {runs} sync runs with their error categories
logs/              the newest part of each log file

Every secret the keyring holds for this workspace (tokens, client secrets, API tokens, the proxy password, the
local API token) and every personal value in the local store (names, emails, phone numbers, social usernames) was
replaced by a marker such as [secret], [email] or [personal] before this file was written, and so was anything shaped
like a token, an email address or a phone number.
"""


def export_diagnostics(
    workspace: Workspace, destination: Path, *, qt_platform: str | None = None,
    environ: Mapping[str, str] | None = None, extra_secrets: Iterable[str] = (),
) -> DiagnosticsReport:
    """Write the support bundle to ``destination`` (a ``.zip``), redacted.

    Args:
        workspace: the workspace described.
        destination: the zip file to write (replaced if it exists).
        qt_platform: the Qt platform plugin in use, when the app is running.
        environ: the environment (``os.environ`` by default).
        extra_secrets: secrets known to the caller but not to the keyring.

    Raises:
        OSError: when the file cannot be written: among others a folder that does not exist (never created, as no
            export creates one: see :func:`~crm_desktop.app.output_path.output_file`).
    """
    destination = output_file(destination)
    environ = os.environ if environ is None else environ
    redactor = Redactor(_vault_secrets(workspace) | set(extra_secrets), personal_values(workspace.database))
    runs = _runs(workspace)
    members: dict[str, str] = {
        "README.txt": _README.format(runs=RECENT_RUNS),
        "about.json": json.dumps(_about(workspace, qt_platform, environ), indent=2, default=str),
        "settings.json": json.dumps(_settings(workspace, environ), indent=2, default=str),
        "integrations.json": json.dumps(_integrations(workspace), indent=2, default=str),
        "runs.json": json.dumps(runs, indent=2, default=str),
    }
    logs = _log_files(workspace.paths.log_file)
    for log in logs:
        members[f"logs/{log.name}"] = _tail(log, LOG_TAIL_BYTES)
    partial = destination.with_name(destination.name + ".part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, text in members.items():
            bundle.writestr(name, redactor.redact(text))
    partial.replace(destination)
    logger.info("diagnostics exported (%d files)", len(members))
    return DiagnosticsReport(destination, list(members), len(runs), len(logs))
