"""Errors of the provider layer, sorted by what happens next: retry, reconnect, ask for a permission, fix the record,
or stop."""

from __future__ import annotations

from crm_desktop.domain.outcomes import ErrorCategory


class ProviderError(Exception):
    """Base of every adapter error. Messages never hold tokens or response bodies with customer data.

    Attributes:
        category: the error category shown in the Sync Monitor.
        status: the HTTP status, when there was one.
    """

    category: ErrorCategory = ErrorCategory.SERVER

    def __init__(self, message: str, *, status: int | None = None, category: ErrorCategory | None = None) -> None:
        super().__init__(message)
        self.status = status
        if category is not None:
            self.category = category


class AuthError(ProviderError):
    """Credentials were refused and cannot be refreshed: the user must reconnect. Never retried."""

    category = ErrorCategory.AUTH


class PermissionRefusedError(ProviderError):
    """The credentials work, but their user or app lacks a permission (a scope, an object access, the API itself).

    Only a CRM admin can fix it, so it is never retried and reconnecting does not help; the message names what to
    ask for. ``code`` is the vendor's error code (``MISSING_SCOPES``, ``INSUFFICIENT_ACCESS``...).
    """

    category = ErrorCategory.PERMISSION

    def __init__(self, message: str, *, status: int | None = 403, code: str = "") -> None:
        super().__init__(message, status=status)
        self.code = code


class RateLimitError(ProviderError):
    """The CRM said to slow down and retries ran out. ``retry_after`` says how long it asked to wait."""

    category = ErrorCategory.RATE_LIMIT

    def __init__(self, message: str, *, status: int | None = 429, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class BudgetExhaustedError(RateLimitError):
    """The daily API budget is (nearly) spent: stopped early instead of burning the rest."""


class TransientError(ProviderError):
    """A network fault or a server error that outlived its retries."""


class NotFoundError(ProviderError):
    """The record or endpoint does not exist."""

    category = ErrorCategory.NOT_FOUND


class RequestRejectedError(ProviderError):
    """The CRM refused a request as invalid (validation, duplicate); not retried."""

    category = ErrorCategory.VALIDATION

    def __init__(
        self, message: str, *, status: int | None = None, category: ErrorCategory | None = None, code: str = ""
    ) -> None:
        super().__init__(message, status=status, category=category)
        self.code = code


class ConfigurationError(ProviderError):
    """The integration is set up wrongly (no credentials, an unsafe URL)."""

    category = ErrorCategory.AUTH


class MissingCredentialsError(ConfigurationError):
    """This desktop's keyring holds no credentials for the integration: a fact of this desktop, not of the
    integration (on a team database another desktop may sync it with its own copy of the key)."""


class CrmAccountChangedError(ConfigurationError):
    """The credentials reach another CRM account than the one the integration's links are in: nothing is sent, as
    the links' record ids could name other people there. Never retried."""
