"""Requests the fuzz drill (bench/fuzz_drill.py) answered with a 500 before: now a 422 naming the field, or a 404."""

from __future__ import annotations

import asyncio

from tests.api.conftest import LocalApi


def test_a_follower_count_beyond_what_is_kept_is_refused_by_name(hubspot_api: LocalApi) -> None:
    async def scenario() -> None:
        answer = await hubspot_api.post("/api/social/conversations", {
            "conversationId": "c-1", "platform": "twitter", "startedAt": "2026-11-01T10:00:00Z",
            "participant": {"username": "ann", "followers": 13_882_060_721_779_863_552},
        })
        assert answer.status_code == 422, answer.text
        assert "participant.followers" in answer.text and "2147483647" in answer.text
        fine = await hubspot_api.post("/api/social/conversations", {
            "conversationId": "c-1", "platform": "twitter", "startedAt": "2026-11-01T10:00:00Z",
            "participant": {"username": "ann", "followers": 650_000_000},
        })
        assert fine.status_code == 201, fine.text

    asyncio.run(scenario())


def test_a_lead_id_of_more_digits_than_an_id_holds_is_not_found(hubspot_api: LocalApi) -> None:
    async def scenario() -> None:
        await hubspot_api.add_integration()
        answer = await hubspot_api.get(f"/api/crm/integrations/crm/leads/{'9' * 40}/attribution")
        assert answer.status_code == 404, answer.text

    asyncio.run(scenario())
