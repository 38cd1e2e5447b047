"""One-shot CRM actions the GUI and CLI share: test a connection, push a file, fetch a contact, sign in."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from crm_desktop.app.integrations import IntegrationService
from crm_desktop.app.push_fields import CrmFieldNames, outbound_record
from crm_desktop.app.record_files import ReadResult, RowProblem, RowWarning, read_records
from crm_desktop.domain.models import Contact, Integration, Lead, Provider
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.providers.contract import AdapterOptions, ConnectionInfo, CrmAdapter, CrmRecord, RecordResult
from crm_desktop.providers.factory import Transport, build_adapter, default_record_mappers
from crm_desktop.providers.network import NetworkSettings
from crm_desktop.providers.signin import BrowserOpener, salesforce_sign_in

logger = logging.getLogger(__name__)

__all__ = ["ConnectionInfo", "CrmActions", "CrmRecord", "PushReport", "RecordResult"]


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
    """

    problems: list[RowProblem] = field(default_factory=list)
    results: list[RecordResult] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    not_sent: list[list[str]] = field(default_factory=list)
    warnings: list[RowWarning] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    api_calls: int = 0

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
            "apiCalls": self.api_calls,
        }


AdapterFactory = Callable[[Integration, dict[str, Any] | None], CrmAdapter]


class CrmActions:
    """Actions on one integration's CRM through its adapter, with credentials from the vault.

    Attributes:
        integrations: the integration service (store + vault).
        transport: an HTTP transport for the adapters (in-process sandboxes in tests; ``None`` for real sockets).
        options: adapter tuning.
        network: reads the workspace's proxy and trust settings afresh for each adapter and sign-in.
    """

    def __init__(
        self,
        integrations: IntegrationService,
        *,
        transport: Transport | None = None,
        options: AdapterOptions | None = None,
        network: Callable[[], NetworkSettings] = NetworkSettings,
    ) -> None:
        self.integrations = integrations
        self.transport = transport
        self.options = options
        self.network = network

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

    async def test_connection(self, name: str) -> ConnectionInfo:
        """Who the credentials are, their scopes and the quota left (raises AuthError when refused).

        The scopes the CRM reports are kept with the integration, so listing it shows what it may do.
        """
        integration = self.integrations.get(name)
        adapter = self.adapter_for(integration)
        try:
            info = await adapter.test_connection()
        finally:
            await adapter.aclose()
        self.integrations.record_scopes(integration, info.scopes)
        return info

    async def push_file(self, name: str, path: Path, obj: RecordObject) -> PushReport:
        """Validate every row of a contacts or leads file, then push the valid ones.

        Other columns go to the CRM field of that name, or are listed as not sent (see :mod:`push_fields`).
        """
        integration = self.integrations.get(name)
        report = PushReport()
        mappers = default_record_mappers(integration.provider)
        read: ReadResult[Any] = (
            read_records(path, Contact) if obj is RecordObject.CONTACT else read_records(path, Lead)
        )
        report.problems, report.warnings, report.notices = read.problems, read.warnings, read.notices
        if not read.records:
            return report
        adapter = self.adapter_for(integration)
        try:
            crm_fields = CrmFieldNames.of(await adapter.list_fields(obj))
            build = mappers.default_contact_record if obj is RecordObject.CONTACT else mappers.default_lead_record
            outbound = []
            for line, record in read.records:
                made, not_sent = outbound_record(record, build, crm_fields, mappers.default_contact_record)
                report.lines.append(line)
                report.not_sent.append(not_sent)
                outbound.append(made)
            report.results = await adapter.upsert(obj, outbound)
        finally:
            report.api_calls = adapter.api_calls
            await adapter.aclose()
        return report

    async def get_record(self, name: str, obj: RecordObject, email: str) -> CrmRecord | None:
        """One record by email from the CRM."""
        adapter = self.adapter_for(self.integrations.get(name))
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
            ValueError: for a non-Salesforce integration or when no client id is known.
            AuthError: when the sign-in fails.
        """
        integration = self.integrations.get(name)
        if integration.provider is not Provider.SALESFORCE:
            raise ValueError(f"{integration.name!r} is a {integration.provider.value} integration; "
                             "only Salesforce uses the browser sign-in")
        stored = self.integrations.credentials(integration) or {}
        client_id = client_id or stored.get("clientId")
        client_secret = client_secret or stored.get("clientSecret")
        if not client_id:
            raise ValueError("no Salesforce client id (consumer key) is known for this integration; give one")
        login_url = integration.base_url or "https://login.salesforce.com"
        credentials = await salesforce_sign_in(
            login_url, client_id, client_secret, open_browser=open_browser, port=port, transport=self.transport,
            network=self.network(),
        )
        self.integrations.save_credentials(integration, credentials)
        return integration
