"""Where the local API listens: ``CRM_DESKTOP_API_PORT`` when set (it wins over Settings), read without the API."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from crm_desktop.app.preferences import DEFAULT_API_PORT

logger = logging.getLogger(__name__)

#: The port the local API listens on unless told otherwise.
DEFAULT_PORT = DEFAULT_API_PORT
#: The environment variable that moves the app's API to another port, or turns it off (``off``).
PORT_ENV = "CRM_DESKTOP_API_PORT"
#: Values of :data:`PORT_ENV` that turn the API off.
OFF_VALUES = frozenset({"off", "no", "false"})


def port_env_set(environ: Mapping[str, str] | None = None) -> bool:
    """Whether :data:`PORT_ENV` is set (not blank): then it, not Settings, says where the app's API listens."""
    return bool((os.environ if environ is None else environ).get(PORT_ENV, "").strip())


def port_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """The port the app serves the API on: ``CRM_DESKTOP_API_PORT`` (``off``: none), else the default."""
    value = (os.environ if environ is None else environ).get(PORT_ENV, "").strip().lower()
    if value in OFF_VALUES:
        return None
    if value.isascii() and value.isdigit() and int(value) < 65536:
        return int(value)
    if value:
        logger.warning("%s=%r is not a port; the API uses %d", PORT_ENV, value, DEFAULT_PORT)
    return DEFAULT_PORT
