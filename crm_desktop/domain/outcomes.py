"""What happens to records in a sync: outcomes, error categories and the objects that sync."""

from __future__ import annotations

from enum import StrEnum


class RecordObject(StrEnum):
    """The kinds of records that sync."""

    CONTACT = "contact"
    LEAD = "lead"


class RecordOutcome(StrEnum):
    """What happened to one record in a run."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    CONFLICT = "conflict"
    SKIPPED = "skipped"


class ErrorCategory(StrEnum):
    """Why a record or a request failed, sorted by what the user does next."""

    AUTH = "auth"
    #: The credentials work but their user (or app) may not do this: a CRM admin must grant a permission or scope;
    #: reconnecting would not help.
    PERMISSION = "permission"
    RATE_LIMIT = "rate_limit"
    VALIDATION = "validation"
    DUPLICATE = "duplicate"
    NOT_FOUND = "not_found"
    NETWORK = "network"
    SERVER = "server"
