"""Create the seed's social custom fields a CRM lacks (``fields ensure``, the app's "Create missing fields")."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crm_desktop.app.crm_actions import CrmActions
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject
from crm_desktop.providers.contract import CreatesCustomFields, CrmAdapter, CrmField
from crm_desktop.providers.errors import ProviderError
from crm_desktop.sync.social_fields import SENTIMENTS, FieldKind, SocialField, social_fields

logger = logging.getLogger(__name__)


class FieldStatus(StrEnum):
    """What ``ensure`` found or did for one field."""

    PRESENT = "present"
    CREATED = "created"
    WOULD_CREATE = "would_create"
    FAILED = "failed"


@dataclass(frozen=True)
class FieldOutcome:
    """One seed field of one object, and what happened to it.

    Attributes:
        object: contacts or leads.
        name: the field's name as the marketer finds it in the CRM (Salesforce API name, HubSpot internal name,
            Pipedrive field name; never a Pipedrive hash key).
        label: its label.
        status: present, created, would be created (dry run) or failed.
        reason: why it failed, or what is left to do (a Salesforce field the integration user cannot see yet).
    """

    object: RecordObject
    name: str
    label: str
    status: FieldStatus
    reason: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"object": self.object.value, "name": self.name, "label": self.label,
                                "status": self.status.value}
        if self.reason:
            wire["reason"] = self.reason
        return wire


@dataclass
class EnsureReport:
    """What ``ensure_social_fields`` found and did on one integration.

    Attributes:
        integration: the integration's name.
        provider: its CRM.
        dry_run: nothing was created, only listed.
        fields: one outcome per seed field, contacts first.
        notes: what the marketer should know besides (where the other social data goes, field security).
    """

    integration: str
    provider: Provider
    dry_run: bool
    fields: list[FieldOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def with_status(self, status: FieldStatus) -> list[FieldOutcome]:
        return [f for f in self.fields if f.status is status]

    @property
    def ok(self) -> bool:
        """Nothing failed and no created field waits for an admin."""
        return not self.with_status(FieldStatus.FAILED) and not any(
            f.reason for f in self.with_status(FieldStatus.CREATED)
        )

    def summary(self) -> dict[str, int]:
        return {status.value: len(self.with_status(status)) for status in FieldStatus}

    def to_wire(self) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "provider": self.provider.value,
            "dryRun": self.dry_run,
            "fields": [f.to_wire() for f in self.fields],
            "summary": self.summary(),
            "notes": list(self.notes),
        }


#: The type ``create_field`` is given for each kind of field, per CRM (each adapter's own vocabulary).
_SENTIMENT_TYPE = "enumeration:" + ",".join(SENTIMENTS)
FIELD_TYPES: dict[Provider, dict[FieldKind, str]] = {
    Provider.SALESFORCE: {
        FieldKind.TEXT: "text", FieldKind.URL: "url", FieldKind.COUNT: "number", FieldKind.SCORE: "decimal",
        FieldKind.LONG_TEXT: "textarea", FieldKind.SENTIMENT: _SENTIMENT_TYPE,
    },
    Provider.HUBSPOT: {
        FieldKind.TEXT: "string", FieldKind.URL: "url", FieldKind.COUNT: "number", FieldKind.SCORE: "number",
        FieldKind.LONG_TEXT: "textarea", FieldKind.SENTIMENT: _SENTIMENT_TYPE,
    },
    Provider.PIPEDRIVE: {
        FieldKind.TEXT: "varchar", FieldKind.URL: "varchar", FieldKind.COUNT: "double", FieldKind.SCORE: "double",
        FieldKind.LONG_TEXT: "text", FieldKind.SENTIMENT: "enum",
    },
}

#: Said on every Pipedrive report: the seed keeps most social data in notes there.
PIPEDRIVE_NOTE = (
    "Pipedrive keeps the other social data (profile URLs, followers, engagement history) in a note on the person"
)
#: Said when a Salesforce field was created but the integration user cannot see it yet.
SALESFORCE_FIELD_SECURITY = (
    "created, but the integration user cannot read it yet: a Salesforce admin grants field-level security "
    "(Setup > Object Manager > {object} > Fields > {name} > Set Field-Level Security) to the user's profile or "
    "permission set"
)


def _find(crm_fields: list[CrmField], wanted: SocialField) -> CrmField | None:
    """The CRM's field for a seed field: by wire name, else (custom fields) by label, case-insensitive."""
    key = wanted.name.casefold()
    by_name = next((f for f in crm_fields if f.name.casefold() == key), None)
    return by_name or next((f for f in crm_fields if f.custom and f.label.casefold() == key), None)


def _failure_reason(exc: ProviderError, provider: Provider) -> str:
    text = str(exc)
    if exc.category is ErrorCategory.PERMISSION:
        needs = {
            Provider.SALESFORCE: "the 'Customize Application' permission",
            Provider.HUBSPOT: "the crm.schemas.contacts.write scope on the private app",
            Provider.PIPEDRIVE: "a Pipedrive admin (or the permission to add custom fields)",
        }[provider]
        return f"permission refused: the integration's user needs {needs} to create fields ({text})"
    return text


class FieldSetupService:
    """Creates the seed's social custom fields a CRM lacks; shared by ``crm-desktop fields ensure`` and the GUI.

    Attributes:
        actions: builds each integration's adapter (credentials from the vault).
    """

    def __init__(self, actions: CrmActions) -> None:
        self.actions = actions

    async def ensure_social_fields(self, integration: Integration | str, *, dry_run: bool = False) -> EnsureReport:
        """Find which seed social fields the CRM has and (unless ``dry_run``) create the missing ones.

        A dry run only reads the CRM's field lists. A field that cannot be created is reported with its reason
        (a permission refused names the permission); the others are still tried.

        Raises:
            NotFoundError: for an unknown integration name.
            AuthError: when the CRM refuses the credentials while listing fields.
        """
        if isinstance(integration, str):
            integration = self.actions.integrations.get(integration)
        report = EnsureReport(integration.name, integration.provider, dry_run)
        adapter = self.actions.adapter_for(integration)
        try:
            for obj in RecordObject:
                wanted = social_fields(integration.provider, obj)
                if wanted:
                    report.fields.extend(await self._ensure_object(adapter, integration.provider, obj, wanted,
                                                                   dry_run=dry_run))
        finally:
            await adapter.aclose()
        if integration.provider is Provider.PIPEDRIVE:
            report.notes.append(PIPEDRIVE_NOTE)
        return report

    async def _ensure_object(
        self, adapter: CrmAdapter, provider: Provider, obj: RecordObject, wanted: tuple[SocialField, ...], *,
        dry_run: bool,
    ) -> list[FieldOutcome]:
        crm_fields = await adapter.list_fields(obj)
        outcomes: list[FieldOutcome] = []
        created: list[SocialField] = []
        for seed in wanted:
            found = _find(crm_fields, seed)
            if found is not None:
                outcomes.append(FieldOutcome(obj, seed.name, found.label, FieldStatus.PRESENT))
            elif dry_run:
                outcomes.append(FieldOutcome(obj, seed.name, seed.label, FieldStatus.WOULD_CREATE))
            elif not isinstance(adapter, CreatesCustomFields):
                outcomes.append(FieldOutcome(obj, seed.name, seed.label, FieldStatus.FAILED,
                                             f"{provider.value} fields cannot be created from here"))
            else:
                try:
                    await adapter.create_field(obj, seed.name, seed.label, FIELD_TYPES[provider][seed.kind])
                except ProviderError as exc:
                    logger.warning("creating %s field %s failed: %s", provider.value, seed.name, exc)
                    outcomes.append(FieldOutcome(obj, seed.name, seed.label, FieldStatus.FAILED,
                                                 _failure_reason(exc, provider)))
                    continue
                created.append(seed)
                outcomes.append(FieldOutcome(obj, seed.name, seed.label, FieldStatus.CREATED))
        if not created:
            return outcomes
        # A created field is only of use once the integration user can read it (Salesforce grants it to no one).
        visible = await adapter.list_fields(obj)
        hidden = {seed.name for seed in created if _find(visible, seed) is None}
        return [
            FieldOutcome(o.object, o.name, o.label, o.status,
                         SALESFORCE_FIELD_SECURITY.format(object=_object_label(provider, obj), name=o.label)
                         if provider is Provider.SALESFORCE
                         else "created, but the CRM does not list it yet; run the command again in a minute")
            if o.status is FieldStatus.CREATED and o.name in hidden else o
            for o in outcomes
        ]


def _object_label(provider: Provider, obj: RecordObject) -> str:
    if provider is Provider.SALESFORCE:
        return "Contact" if obj is RecordObject.CONTACT else "Lead"
    return obj.value


__all__ = ["EnsureReport", "FieldOutcome", "FieldSetupService", "FieldStatus"]
