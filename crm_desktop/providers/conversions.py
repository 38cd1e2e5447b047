"""What the adapters answer about conversions and deals: a converted person, a deal pipeline and its stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class CrmConversion:
    """A person the CRM says converted: a converted Salesforce Lead, a HubSpot contact that reached opportunity or
    customer, a won Pipedrive deal.

    Attributes:
        external_id: the CRM's own id of the conversion (``lead:00Q...``, ``contact:101:customer``, ``deal:7``),
            stable across pulls, so a re-pull records nothing new.
        email: the person's normalised email.
        converted_at: when it converted, in UTC.
        what: what happened, in the CRM's words (``lead converted``, ``lifecycle stage customer``, ``deal won``).
        value: the money it brought, when the CRM knows (a won deal's value).
        currency: the value's ISO 4217 currency.
        modified_at: the record's last change on the CRM, where the next pull starts.
    """

    external_id: str
    email: str
    converted_at: datetime
    what: str
    value: Decimal | None = None
    currency: str | None = None
    modified_at: datetime | None = None


@dataclass(frozen=True)
class DealStage:
    """One stage of a deal pipeline, as the CRM names it."""

    id: str
    name: str


@dataclass(frozen=True)
class DealPipeline:
    """A deal pipeline and its stages, in the CRM's order."""

    id: str
    name: str
    stages: tuple[DealStage, ...]


@runtime_checkable
class PullsConversions(Protocol):
    """CRMs whose conversions can be read: every adapter here."""

    async def conversions_since(self, since: datetime | None) -> list[CrmConversion]:
        """Conversions recorded or changed on the CRM after ``since`` (every one when ``None``), oldest first."""
        ...


@runtime_checkable
class KeepsDeals(Protocol):
    """CRMs where a converted or qualified lead gets a deal in a chosen pipeline (Pipedrive)."""

    async def deal_pipelines(self) -> list[DealPipeline]:
        """The live pipelines with their stages."""
        ...

    async def person_deal(self, email: str, pipeline_id: str) -> str | None:
        """The id of a deal the person (by email) already has in the pipeline, if any."""
        ...

    async def open_person_deal(
        self, email: str, title: str, pipeline_id: str, stage_id: str, value: Decimal | None, currency: str | None
    ) -> str | None:
        """Add a deal for the person in that pipeline and stage; ``None`` when the CRM has no such person."""
        ...


def stage_names(pipelines: Sequence[DealPipeline]) -> list[str]:
    """``Pipeline / Stage`` for every stage, as a refusal lists them."""
    return [f"{p.name} / {s.name}" for p in pipelines for s in p.stages]
