"""HubSpot's conversions and won deals: lifecycle stages a contact reached, and the value of its won deals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from crm_desktop.providers.conversions import CrmConversion
from crm_desktop.providers.toolkit import email_key, parse_crm_time

#: Lifecycle stages that count as a conversion (opportunity or customer reached; evangelist is past both).
CONVERTED_LIFECYCLE_STAGES = ("opportunity", "customer", "evangelist")
#: The dates HubSpot stamps the first time a contact enters each of those stages.
CONVERSION_DATES = tuple(f"hs_lifecyclestage_{stage}_date" for stage in CONVERTED_LIFECYCLE_STAGES)
#: The properties a conversion search reads, and its filter: contacts in one of those stages.
CONVERSION_PROPERTIES = ("email", "lifecyclestage", "lastmodifieddate", *CONVERSION_DATES)
CONVERTED_FILTER: dict[str, Any] = {
    "propertyName": "lifecyclestage",
    "operator": "IN",
    "values": list(CONVERTED_LIFECYCLE_STAGES),
}


def conversion_of(item: dict[str, Any]) -> CrmConversion | None:
    """A converted contact's conversion, dated by the earliest of its stage dates (its ``lastmodifieddate`` when
    none is set, as on a portal that renamed its stages); ``None`` without an email or any date."""
    properties = item.get("properties") or {}
    email = email_key(properties.get("email"))
    if not email:
        return None
    modified = parse_crm_time(properties.get("lastmodifieddate") or item.get("updatedAt"))
    reached = [moment for name in CONVERSION_DATES if (moment := parse_crm_time(properties.get(name))) is not None]
    converted_at = min(reached) if reached else modified
    if converted_at is None:
        return None
    return CrmConversion(
        external_id=f"contact:{item.get('id')}",
        email=email,
        converted_at=converted_at,
        what=f"lifecycle stage {properties.get('lifecyclestage')}",
        modified_at=modified,
    )


def contact_id_of(conversion: CrmConversion) -> str:
    """The HubSpot contact id of a conversion (its ``contact:<id>``)."""
    return conversion.external_id.partition(":")[2]


def priced(found: Sequence[CrmConversion], values: Mapping[str, tuple[Decimal, str]]) -> list[CrmConversion]:
    """The conversions with the value of their contact's won deals, where it has some."""
    result = []
    for conversion in found:
        value = values.get(contact_id_of(conversion))
        result.append(replace(conversion, value=value[0], currency=value[1]) if value else conversion)
    return result


def probability(stage: dict[str, Any]) -> float | None:
    """A pipeline stage's win probability (HubSpot sends it as a string)."""
    try:
        return float(str((stage.get("metadata") or {}).get("probability")))
    except (TypeError, ValueError):
        return None


def won_stages(pipelines: dict[str, Any]) -> set[str]:
    """The ids of the won stages in ``GET /crm/v3/pipelines/deals``'s answer: closed, with probability 1."""
    return {
        str(stage.get("id"))
        for pipeline in pipelines.get("results") or [] if isinstance(pipeline, dict)
        for stage in pipeline.get("stages") or [] if isinstance(stage, dict)
        if str((stage.get("metadata") or {}).get("isClosed")).lower() == "true" and probability(stage) == 1.0
    }


async def won_deal_values(
    deal_ids: Mapping[str, Sequence[str]],
    deals: Mapping[str, dict[str, Any]],
    won: set[str],
    portal_currency: Callable[[], Awaitable[str]],
) -> dict[str, tuple[Decimal, str]]:
    """Per contact, the summed ``amount`` of its deals in a won stage, in the currency most of it is in (the deal's
    ``deal_currency_code``, else the portal's, asked for once when first needed)."""
    portal: str | None = None
    values: dict[str, tuple[Decimal, str]] = {}
    for contact_id, ids in deal_ids.items():
        sums: dict[str, Decimal] = {}
        for deal_id in ids:
            deal = deals.get(deal_id) or {}
            if str(deal.get("dealstage")) not in won or deal.get("amount") in (None, ""):
                continue
            currency = str(deal.get("deal_currency_code") or "")
            if not currency:
                portal = portal or await portal_currency()
                currency = portal
            try:
                amount = Decimal(str(deal["amount"]))
            except ArithmeticError:
                continue
            sums[currency] = sums.get(currency, Decimal(0)) + amount
        if sums:
            currency, amount = max(sums.items(), key=lambda item: item[1])
            values[contact_id] = (amount.quantize(Decimal("0.01")), currency.upper())
    return values
