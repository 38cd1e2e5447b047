"""What each known error means to a script: its exit code and a stable error code, in one table."""

from __future__ import annotations

from crm_desktop.app.errors import (
    AuthError,
    ConfigurationError,
    CredentialsError,
    CrmAccountChangedError,
    DuplicateNameError,
    InvalidRecordError,
    NotFoundError,
    PermissionRefusedError,
    ProviderError,
    StoreConfigError,
    StoreUnavailableError,
    VaultError,
)
from crm_desktop.cli.common import CommandError, ExitCode
from crm_desktop.sync.actions import ConflictResolutionError, ConflictResolvedElsewhere
from crm_desktop.sync.engine import SyncAlreadyRunning

#: What each known error means to a script: its exit code and a stable error code (``--json``). An error's class is
#: looked up along its hierarchy, so a subclass not listed takes its parent's row; anything else is a bug and raises.
ERROR_EXITS: dict[type[BaseException], tuple[ExitCode, str]] = {
    InvalidRecordError: (ExitCode.USAGE, "invalid_input"),
    CredentialsError: (ExitCode.USAGE, "invalid_credentials"),
    DuplicateNameError: (ExitCode.USAGE, "duplicate_name"),
    NotFoundError: (ExitCode.USAGE, "not_found"),
    StoreConfigError: (ExitCode.USAGE, "store_unusable"),
    # Locked by another program past the wait, or the server unreachable: nothing written, try again.
    StoreUnavailableError: (ExitCode.PARTIAL, "store_busy"),
    # Another window, desktop or script resolved it first (or is resolving it): nothing written, no usage error.
    ConflictResolvedElsewhere: (ExitCode.PARTIAL, "already_resolved"),
    ConflictResolutionError: (ExitCode.USAGE, "conflict_not_resolved"),
    VaultError: (ExitCode.USAGE, "keyring_unusable"),
    # Credentials of another CRM account than the links': nothing was sent (put the right key back).
    CrmAccountChangedError: (ExitCode.USAGE, "crm_account_changed"),
    ConfigurationError: (ExitCode.USAGE, "configuration"),
    AuthError: (ExitCode.AUTH, "auth_refused"),
    # The credentials work; the CRM's admin must grant a permission or scope (the message names it).
    PermissionRefusedError: (ExitCode.USAGE, "permission_refused"),
    SyncAlreadyRunning: (ExitCode.PARTIAL, "sync_running"),
    ProviderError: (ExitCode.PARTIAL, "crm_error"),
    KeyboardInterrupt: (ExitCode.PARTIAL, "interrupted"),
    # Last, as the widest: a file or folder the command was given cannot be used (too long a name, no permission,
    # disk full). Commands that read a file say so themselves; this keeps any other from ending in a traceback.
    OSError: (ExitCode.USAGE, "file_unusable"),
}


def error_exit(exc: BaseException) -> tuple[ExitCode, str] | None:
    """The exit code and error code of a known error, or ``None`` for one no row covers."""
    if isinstance(exc, CommandError):
        return exc.code, exc.error_code
    for cls in type(exc).__mro__:
        if cls in ERROR_EXITS:
            return ERROR_EXITS[cls]
    return None
