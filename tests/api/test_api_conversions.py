"""Conversions pulled from a CRM answer in ``GET /api/attribution/report`` (credited to the touchpoints' campaigns)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_desktop.app.conversions import ConversionService
from tests.api.conftest import LocalApi, open_api


@pytest.fixture
def salesforce_api(tmp_path: Path) -> Iterator[LocalApi]:
    yield from open_api(tmp_path, "salesforce")


def test_a_converted_salesforce_lead_is_credited_in_the_api_report(salesforce_api: LocalApi) -> None:
    api, sandbox = salesforce_api, salesforce_api.sandbox

    async def scenario() -> None:
        await api.add_integration()
        lead = await api.post("/api/crm/integrations/crm/leads/sync", {
            "email": "lee@example.com", "firstName": "Lee", "lastName": "Park", "company": "Park & Co",
            "socialContext": {"platform": "instagram"},
        })
        assert lead.status_code in (200, 201), lead.text
        for days, campaign in ((4, "Reels"), (2, "Stories")):
            event = await api.post("/api/social/engagements", {
                "platform": "instagram", "type": "like", "campaign": campaign, "user": {"email": "lee@example.com"},
                "timestamp": (datetime.now(UTC) - timedelta(days=days)).isoformat(),
            })
            assert event.status_code == 201, event.text
        async with sandbox.client() as client:
            step = await client.post("/__sandbox__/salesperson/convert-lead", json={"email": "lee@example.com"})
            assert step.status_code == 200, step.text
        service = ConversionService(api.workspace.database, api.workspace.integrations, api.workspace.crm,
                                    api.workspace.social)
        assert (await service.pull("crm")).created == 1
        report = await api.get("/api/attribution/report", params={"model": "first_touch"})
        assert report.status_code == 200, report.text
        body = report.json()
        assert body["conversions"] == 1 and body["unattributedConversions"] == 0
        credited = {row.get("name"): row["conversionsCredited"] for row in body["byCampaign"]}
        assert credited["Reels"] == pytest.approx(1.0) and credited["Stories"] == pytest.approx(0.0)

    asyncio.run(scenario())
