"""A pulled page's social profile changes are written with a few batched statements, in the page's transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from crm_desktop.domain.models import SocialPlatform, SyncDirection
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from tests.sync.conftest import SyncBench, person, scenario


def new_profiles(n: int) -> dict[str, Any]:
    """A salesperson's edit that replaces a person's Twitter handle and adds Instagram and LinkedIn profiles."""
    return {
        "twitter_username": f"newada{n}",
        "instagram_username": f"ada_insta{n}",
        "linkedin_url": f"https://www.linkedin.com/in/ada{n}",
    }


def moved_linkedin(n: int) -> dict[str, Any]:
    """A salesperson's edit of a LinkedIn profile's URL only (the profile is updated in place)."""
    return {"linkedin_url": f"https://www.linkedin.com/in/ada-lovelace-{n}"}


async def statements_to_pull_profiles(
    bench: SyncBench, numbers: range, edit: Callable[[int], dict[str, Any]]
) -> list[str]:
    """SQL statements the store runs to apply a pulled page in which salespeople changed each person's social
    profiles with ``edit``."""
    assert isinstance(bench.sandbox, HubSpotSandbox)
    for n in numbers:
        await bench.edit(bench.link(f"person{n}@example.com").crm_id, edit(n))
    engine = bench.workspace.database.engine
    executed: list[str] = []
    store_type = type(bench.store)
    apply = store_type.apply_record_writes

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            executed.append(" ".join(statement.split())[:70])

        event.listen(engine, "before_cursor_execute", count)
        try:
            apply(self, *args, **kwargs)
        finally:
            event.remove(engine, "before_cursor_execute", count)

    store_type.apply_record_writes = counting  # type: ignore[method-assign]
    try:
        result = await bench.sync(SyncDirection.PULL)
    finally:
        store_type.apply_record_writes = apply  # type: ignore[method-assign]
    assert result.counts["updated"] == len(numbers)
    return executed


@scenario
async def test_pulled_social_profiles_cost_no_query_per_record(hubspot: SyncBench) -> None:
    hubspot.save(*(person(n) for n in range(60)))
    await hubspot.sync()
    for edit in (new_profiles, moved_linkedin):
        few = await statements_to_pull_profiles(hubspot, range(5), edit)
        many = await statements_to_pull_profiles(hubspot, range(5, 55), edit)
        assert len(many) == len(few), f"{len(few)} statements for 5 records: {few}\n{len(many)} for 50: {many}"
    for n in (0, 54):
        profiles = {p.platform: p for p in hubspot.contact(f"person{n}@example.com").social_profiles}
        assert sorted(profiles) == [SocialPlatform.INSTAGRAM, SocialPlatform.LINKEDIN, SocialPlatform.TWITTER]
        assert profiles[SocialPlatform.TWITTER].username == f"newada{n}"
        assert profiles[SocialPlatform.INSTAGRAM].username == f"ada_insta{n}"
        assert profiles[SocialPlatform.LINKEDIN].username == f"ada{n}"
        assert profiles[SocialPlatform.LINKEDIN].url == f"https://www.linkedin.com/in/ada-lovelace-{n}"
    assert hubspot.contact("person57@example.com").social_profiles[0].username == "ada57"
