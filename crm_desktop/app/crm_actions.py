"""One-shot CRM actions the GUI and CLI share: test a connection, push a file, fetch a contact, sign in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crm_desktop.app.integrations import IntegrationService
from crm_desktop.app.push_fields import CrmFieldNames, outbound_record
from crm_desktop.app.record_files import ReadResult, RowProblem, RowWarning, read_records
from crm_desktop.domain.credentials import needs_sign_in
from crm_desktop.domain.models import Contact, Integration, Lead, Provider
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.domain.wording import forgotten_reason
from crm_desktop.providers.contract import (
    AdapterOptions,
    ConnectionInfo,
    CrmAdapter,
    CrmRecord,
    KeepsNotes,
    KnowsItsAccount,
    OutboundRecord,
    ReadsMappedFields,
    RecordResult,
)
from crm_desktop.providers.errors import (
    ConfigurationError,
    CrmAccountChangedError,
    ProviderError,
    RateLimitError,
    TransientError,
)
from crm_desktop.providers.factory import build_adapter, default_record_mappers
from crm_desktop.providers.network import NetworkSettings, NetworkSetupError
from crm_desktop.providers.signin import BrowserOpener, salesforce_sign_in
from crm_desktop.store.process_owner import CONTACTS_PUSH, LEADS_PUSH, lock_owner
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.sync.lock_refusal import take_lock

if TYPE_CHECKING:
    from crm_desktop.providers.factory import Transport

logger = logging.getLogger(__name__)

#: How often a push renews its hold on the integration's sync lock, well inside the time after which another
#: desktop takes a lock over as left by a crash (``LOCK_STALE_AFTER``).
PUSH_HEARTBEAT_SECONDS = 60.0

__all__ = [
    "ConnectionInfo", "CrmActions", "CrmRecord", "IntegrationUpdate", "PushReport", "RecordResult", "crm_unreachable",
]


@dataclass
class PushReport:
    """The outcome of pushing a file: refused rows, one result per pushed record, and the calls it took.

    Attributes:
        problems: rows refused before sending (line, record, field, reason).
        results: per-record outcomes from the CRM, in file order.
        lines: the file line of each result.
        not_sent: per result, the other columns not sent because the CRM has no field for them.
        warnings: values of valid rows that were not kept (social columns without a username).
        notices: about the whole file (empty, header only).
        api_calls: requests sent.
        skipped: rows of people forgotten at their request, not sent: (line, email, reason).
    """

    problems: list[RowProblem] = field(default_factory=list)
    results: list[RecordResult] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    not_sent: list[list[str]] = field(default_factory=list)
    warnings: list[RowWarning] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    api_calls: int = 0
    skipped: list[tuple[int, str, str]] = field(default_factory=list)

    def count(self, outcome: RecordOutcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def failed(self) -> int:
        return self.count(RecordOutcome.FAILED) + len(self.problems)

    def summary(self) -> dict[str, int]:
        return {
            "created": self.count(RecordOutcome.CREATED),
            "updated": self.count(RecordOutcome.UPDATED),
            "unchanged": self.count(RecordOutcome.UNCHANGED),
            "failed": self.count(RecordOutcome.FAILED),
            "invalidRows": len(self.problems),
            "skipped": len(self.skipped),
            "apiCalls": self.api_calls,
        }


@dataclass(frozen=True)
class IntegrationUpdate:
    """What ``update_integration`` did.

    Attributes:
        integration: the integration as saved.
        connection: what the CRM said when the credentials were tested (``None``: not tested).
        credentials_replaced: whether new credentials went to the keyring.
        needs_sign_in: the new credentials carry no tokens yet (Salesforce signs in next).
    """

    integration: Integration
    connection: ConnectionInfo | None
    credentials_replaced: bool
    needs_sign_in: bool


def crm_unreachable(error: BaseException) -> bool:
    """Whether a connection test failed for want of an answer (network, proxy or certificate, server errors, rate
    limits) rather than by a refusal of the credentials: they were then not tested, neither good nor bad."""
    return isinstance(error, TransientError | RateLimitError | NetworkSetupError)


AdapterFactory = Callable[[Integration, dict[str, Any] | None], CrmAdapter]

#: Notes written at once after a push.
NOTES_IN_FLIGHT = 8


async def keep_notes(
    adapter: KeepsNotes, obj: RecordObject, records: list[OutboundRecord], results: list[RecordResult]
) -> list[RecordResult]:
    """Write the note each pushed record carries (what no CRM field takes), once: an unchanged note is not added
    again. A record whose note the CRM refused is reported failed, naming the note (the record itself is saved).
    """
    turns = asyncio.Semaphore(NOTES_IN_FLIGHT)

    async def keep(record: OutboundRecord, result: RecordResult) -> RecordResult:
        if not record.note or not record.note.strip() or not result.ok or not result.crm_id:
            return result
        async with turns:
            try:
                added = await adapter.keep_note(obj, result.crm_id, record.note)
            except ProviderError as exc:
                return replace(result, outcome=RecordOutcome.FAILED, category=exc.category,
                               message=f"{record.email}: saved, but its social note was not written: {exc}")
        if added and result.outcome is RecordOutcome.UNCHANGED:
            return replace(result, outcome=RecordOutcome.UPDATED)
        return result

    return list(await asyncio.gather(*(keep(r, res) for r, res in zip(records, results, strict=True))))


class CrmActions:
    """Actions on one integration's CRM through its adapter, with credentials from the vault.

    Attributes:
        integrations: the integration service (store + vault).
        transport: an HTTP transport for the adapters (in-process sandboxes in tests; ``None`` for real sockets).
        options: adapter tuning.
        network: reads the workspace's proxy and trust settings afresh for each adapter and sign-in.
        locks: the store of the integrations' sync locks, held while a file is pushed (``None``: not taken).
    """

    def __init__(
        self,
        integrations: IntegrationService,
        *,
        transport: Transport | None = None,
        options: AdapterOptions | None = None,
        network: Callable[[], NetworkSettings] = NetworkSettings,
        locks: SyncStore | None = None,
    ) -> None:
        self.integrations = integrations
        self.transport = transport
        self.options = options
        self.network = network
        self.locks = locks

    def adapter_for(self, integration: Integration) -> CrmAdapter:
        """A new adapter for ``integration``; refreshed tokens are written back to the vault."""

        def save_tokens(credentials: dict[str, Any]) -> None:
            self.integrations.save_credentials(integration, credentials)

        return build_adapter(
            integration,
            self.integrations.credentials(integration),
            transport=self.transport,
            save_tokens=save_tokens,
            options=replace(self.options or AdapterOptions(), network=self.network()),
        )

    async def check_crm_account(self, integration: Integration, adapter: CrmAdapter) -> None:
        """Refuse credentials that reach another CRM account than the one the integration's links are in.

        The account is read (one call; two on Salesforce) only when it never was or a person set the credentials
        since; what is read is remembered. An integration with no links yet takes the account it finds.

        Raises:
            CrmAccountChangedError: when the credentials reach another account and records are linked; nothing was
                sent.
        """
        if not isinstance(adapter, KnowsItsAccount) or integration.id is None:
            return
        seen = self.integrations.crm_account(integration)
        if not seen.needs_reading:
            return
        found = await adapter.account_id()
        if not found:
            return
        if seen.account_id is not None and found != seen.account_id and seen.links:
            crm = {Provider.SALESFORCE: "Salesforce org", Provider.HUBSPOT: "HubSpot account",
                   Provider.PIPEDRIVE: "Pipedrive company"}[integration.provider]
            raise CrmAccountChangedError(
                f"the credentials of {integration.name!r} reach {crm} {found}, not {crm} {seen.account_id} where its "
                f"{seen.links:,} linked records are; nothing was sent (their record ids could be other people in "
                f"{found}). Put back credentials of {seen.account_id}; or, to sync with {found} instead, remove "
                f"{integration.name!r} and add it again (its links, field mappings and run history go; the people stay)"
            )
        self.integrations.record_crm_account(integration, found)

    async def checked_adapter(self, integration: Integration) -> CrmAdapter:
        """A new adapter for ``integration`` once its credentials are known to reach the account its links are in
        (:meth:`check_crm_account`): for everything that writes to the CRM by a link's record id or email.

        Raises:
            CrmAccountChangedError: see :meth:`check_crm_account` (the adapter is closed again).
        """
        adapter = self.adapter_for(integration)
        try:
            await self.check_crm_account(integration, adapter)
        except BaseException:
            await adapter.aclose()
            raise
        return adapter

    async def test_connection(self, name: str) -> ConnectionInfo:
        """Who the credentials are, their scopes and the quota left (raises AuthError when refused).

        The scopes the CRM reports are kept with the integration, so listing it shows what it may do.
        """
        integration = self.integrations.get(name)
        adapter = self.adapter_for(integration)
        try:
            await self.check_crm_account(integration, adapter)
            info = await adapter.test_connection()
        finally:
            await adapter.aclose()
        self.integrations.record_scopes(integration, info.scopes)
        return info

    async def push_file(self, name: str, path: Path, obj: RecordObject) -> PushReport:
        """Validate every row of a contacts or leads file, then push the valid ones.

        Other columns go to the CRM field of that name, or are listed as not sent (see :mod:`push_fields`). The
        push holds the integration's sync lock: a CRM without an upsert by email (Pipedrive, Salesforce) is
        searched and then written to, so a sync or another push of the same records at the same time (another
        desktop on a team database, a cron ``sync``) would create each person a second time.

        Raises:
            SyncAlreadyRunning: when a sync, undo or push of the integration holds the lock (nothing was sent).
        """
        integration = self.integrations.get(name)
        report = PushReport()
        read: ReadResult[Any] = (
            read_records(path, Contact) if obj is RecordObject.CONTACT else read_records(path, Lead)
        )
        report.problems, report.warnings, report.notices = read.problems, read.warnings, read.notices
        forgotten = self.locks.forgotten_among([r.email for _, r in read.records]) if self.locks else {}
        if forgotten:
            report.skipped = [(line, r.email, forgotten_reason(forgotten[r.email], "not pushed"))
                              for line, r in read.records if r.email in forgotten]
            read.records = [(line, r) for line, r in read.records if r.email not in forgotten]
        if not read.records:
            return report
        if self.locks is None or integration.id is None:
            await self._push_read(integration, obj, read, report)
            return report
        locks, integration_id = self.locks, integration.id
        # Named: a refusal elsewhere says a push holds the lock, and this process's sync is another owner.
        pusher = lock_owner(CONTACTS_PUSH if obj is RecordObject.CONTACT else LEADS_PUSH)
        take_lock(locks, integration_id, integration.name, pusher)

        async def keep_holding() -> None:
            while True:
                await asyncio.sleep(PUSH_HEARTBEAT_SECONDS)
                locks.heartbeat(integration_id, owner=pusher)

        holding = asyncio.create_task(keep_holding())
        try:
            await self._push_read(integration, obj, read, report)
        finally:
            holding.cancel()
            locks.release_lock(integration_id, pusher)
        return report

    async def _push_read(
        self, integration: Integration, obj: RecordObject, read: ReadResult[Any], report: PushReport
    ) -> None:
        """Push the valid records of ``read`` into ``report``."""
        mappers = default_record_mappers(integration.provider)
        adapter = await self.checked_adapter(integration)
        try:
            crm_fields = CrmFieldNames.of(await adapter.list_fields(obj))
            build = mappers.default_contact_record if obj is RecordObject.CONTACT else mappers.default_lead_record
            outbound = []
            for line, record in read.records:
                made, not_sent = outbound_record(
                    record, build, crm_fields, mappers.default_contact_record, integration.provider
                )
                report.lines.append(line)
                report.not_sent.append(not_sent)
                outbound.append(made)
            report.results = await adapter.upsert(obj, outbound)
            if isinstance(adapter, KeepsNotes):
                report.results = await keep_notes(adapter, obj, outbound, report.results)
        finally:
            report.api_calls = adapter.api_calls
            await adapter.aclose()

    async def get_record(
        self, name: str, obj: RecordObject, email: str, *, mapped: Sequence[str] = ()
    ) -> CrmRecord | None:
        """One record by email from the CRM; ``mapped`` names the CRM fields the field mapping reads too."""
        adapter = self.adapter_for(self.integrations.get(name))
        if mapped and isinstance(adapter, ReadsMappedFields):
            adapter.read_mapped_fields(obj, mapped)
        try:
            return await adapter.get_record(obj, email=email)
        finally:
            await adapter.aclose()

    async def sign_in(
        self, name: str, *, open_browser: BrowserOpener | None = None, port: int = 1717, client_id: str | None = None,
        client_secret: str | None = None,
    ) -> Integration:
        """Sign in to Salesforce in the system browser and store the new tokens in the vault.

        The connected app's client id (and secret, if any) come from the stored credentials unless given.

        Raises:
            ConfigurationError: for a non-Salesforce integration or when no client id is known.
            AuthError: when the sign-in fails.
        """
        integration = self.integrations.get(name)
        if integration.provider is not Provider.SALESFORCE:
            raise ConfigurationError(
                f"{integration.name!r} is a {integration.provider.value} integration; only Salesforce uses the "
                f"browser sign-in (replace its token with `crm-desktop integration update {integration.name} "
                "--secret-stdin`)"
            )
        stored = self.integrations.credentials(integration) or {}
        client_id = client_id or stored.get("clientId")
        client_secret = client_secret or stored.get("clientSecret")
        if not client_id:
            raise ConfigurationError(
                f"no Salesforce client id (consumer key) is known for {integration.name!r}: type the connected app's "
                "consumer key in Client ID with Edit… in the app, or give it with `crm-desktop integration login "
                f"{integration.name} --client-id KEY`"
            )
        login_url = integration.base_url or "https://login.salesforce.com"
        credentials = await salesforce_sign_in(
            login_url, client_id, client_secret, open_browser=open_browser, port=port, transport=self.transport,
            network=self.network(),
        )
        self.integrations.save_credentials(integration, credentials, set_by_person=True)
        return integration

    async def update_integration(
        self, name: str, changes: dict[str, Any], credentials: dict[str, Any] | None = None
    ) -> IntegrationUpdate:
        """Change an integration in place, keeping its links, runs, mappings and cursors (its id stays).

        New credentials, or the stored ones at a new address, are tested against the CRM first; refused ones are
        not saved and the old ones stay. Salesforce credentials without tokens cannot be tested: they are saved and
        the integration signs in next.

        Args:
            name: the integration's current name.
            changes: new values of ``name``, ``description``, ``base_url``, ``domain`` (others are refused).
            credentials: new credentials, replacing the stored ones.

        Raises:
            InvalidRecordError: a changed field is invalid.
            CredentialsError: the new credentials do not fit the CRM.
            DuplicateNameError: the new name is taken.
            AuthError, ProviderError: the CRM refused the credentials or could not be reached (nothing saved).
        """
        current = self.integrations.get(name)
        unknown = set(changes) - {"name", "description", "base_url", "domain"}
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))} of an integration here")
        edited = Integration(**(current.model_dump(by_alias=False) | changes))
        return await self.save_edit(current, edited, credentials)

    async def save_edit(
        self, current: Integration, edited: Integration, credentials: dict[str, Any] | None = None, *,
        untested: bool = False,
    ) -> IntegrationUpdate:
        """Save ``edited`` over ``current`` (same id), testing new credentials, or the stored ones at a new address,
        against the CRM first: what the CRM refuses is not saved, and the stored credentials stay.

        This is what ``integration update`` and the Integrations panel's Edit… both do.

        Args:
            current: the integration as stored.
            edited: the same integration with the person's changes (its id kept).
            credentials: new credentials, replacing the stored ones (``None``: keep them).
            untested: save without asking the CRM; only after the person chose to, the CRM being out of reach
                (:func:`crm_unreachable`).

        Raises:
            CredentialsError: the new credentials do not fit the CRM.
            DuplicateNameError: the new name is taken.
            AuthError: the CRM refused the credentials (nothing saved).
            ProviderError: the CRM could not be reached or answered otherwise (nothing saved).
        """
        checked = self.integrations.check_credentials(edited, credentials) if credentials is not None else None
        moved = edited.base_url != current.base_url or edited.domain != current.domain
        to_test = checked if checked is not None else (self.integrations.credentials(current) if moved else None)
        info: ConnectionInfo | None = None
        if not untested and to_test is not None and not needs_sign_in(edited.provider, to_test):
            tested: dict[str, Any] = dict(to_test)

            def keep_refreshed(refreshed: dict[str, Any]) -> None:
                tested.update(refreshed)  # a refresh during the test: the newest tokens are the ones to keep

            adapter = build_adapter(edited, to_test, transport=self.transport, save_tokens=keep_refreshed,
                                    options=replace(self.options or AdapterOptions(), network=self.network()))
            try:
                info = await adapter.test_connection()
            finally:
                await adapter.aclose()
            if checked is not None:
                checked = self.integrations.check_credentials(edited, tested)
        saved = self.integrations.update(edited, checked)
        if info is not None:
            saved = self.integrations.record_scopes(saved, info.scopes)
        return IntegrationUpdate(
            saved, info, checked is not None, checked is not None and needs_sign_in(edited.provider, checked)
        )
