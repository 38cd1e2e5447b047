"""A social event refused by the CRM for a missing permission waits in the outbox instead of failing for good: once
the CRM's admin grants the permission, it is delivered, once (the local API and HubSpot served on loopback)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from crm_desktop.sandbox.hubspot import DEFAULT_SCOPES
from crm_desktop.store.models import DeliveryStatus
from tests.app.test_workflows import CONVERSATION, Desk, crm_people, crm_timeline, run_desk


def test_an_event_refused_for_a_scope_goes_once_the_scope_is_granted(tmp_path: Path) -> None:
    provider = "hubspot"

    async def scenario(desk: Desk) -> None:
        desk.sandbox.apply_config({"scopes": [s for s in DEFAULT_SCOPES if s != "crm.objects.contacts.write"]})
        await desk.post("/api/social/conversations", CONVERSATION)
        deadline = asyncio.get_running_loop().time() + 20
        while not [r for r in desk.sandbox.requests if r.status == 403]:
            assert asyncio.get_running_loop().time() < deadline, "the delivery never reached the CRM"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        counts = desk.counts()
        assert counts[DeliveryStatus.FAILED] == 0 and counts[DeliveryStatus.DONE] == 0, counts
        # The admin adds the scope: the waiting event goes at its next try.
        desk.sandbox.apply_config({"scopes": list(DEFAULT_SCOPES)})
        counts = await desk.settled(within=30)
        assert counts[DeliveryStatus.DONE] == 1 and counts[DeliveryStatus.FAILED] == 0

    sandbox = run_desk(tmp_path, provider, scenario)
    assert len(crm_people(sandbox, provider)) == 1 and len(crm_timeline(sandbox, provider)) == 1
