"""Logging to a rotating file in the data dir, with secrets scrubbed from every line."""

from __future__ import annotations

import logging
import logging.handlers
import re
from pathlib import Path

_SECRET_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:access|refresh)_?token[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"),
    re.compile(r"(?i)(api_token=)[^\s&]+"),
    re.compile(r"(?i)(x-api-token[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
    re.compile(r"(?i)(client_secret[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"),
    re.compile(r"\bpat-[a-z0-9-]{6,}\b"),
]


def scrub(text: str) -> str:
    """Replace anything that looks like a token or secret with ``***``."""
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "***", text)
        else:
            text = pattern.sub("***", text)
    return text


class ScrubbingFormatter(logging.Formatter):
    """A formatter that scrubs secrets from the final line, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure_logging(log_file: Path, level: int = logging.INFO, console: bool = False) -> None:
    """Send the app's logs to ``log_file`` (rotated at 2 MB, 5 kept), and to stderr when ``console``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("crm_desktop")
    root.setLevel(level)
    for handler in list(root.handlers):
        if getattr(handler, "_crm_desktop", False):
            root.removeHandler(handler)
            handler.close()
    formatter = ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=5, encoding="utf-8")
    file_handler.setFormatter(formatter)
    file_handler._crm_desktop = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
    if console:
        stream = logging.StreamHandler()
        stream.setFormatter(formatter)
        stream._crm_desktop = True  # type: ignore[attr-defined]
        root.addHandler(stream)
