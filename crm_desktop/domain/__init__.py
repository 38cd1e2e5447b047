"""Pure domain models and rules of CRM Desktop (no I/O, no Qt, no SQL, no HTTP)."""

from __future__ import annotations

from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import (
    PROVIDERS,
    Contact,
    Integration,
    Lead,
    Provider,
    Sentiment,
    SocialContext,
    SocialPlatform,
    SocialProfile,
    SyncConfig,
    SyncDirection,
    Touchpoint,
    TouchpointType,
)

__all__ = [
    "PROVIDERS",
    "Contact",
    "Integration",
    "InvalidRecordError",
    "Lead",
    "Provider",
    "Sentiment",
    "SocialContext",
    "SocialPlatform",
    "SocialProfile",
    "SyncConfig",
    "SyncDirection",
    "Touchpoint",
    "TouchpointType",
]
