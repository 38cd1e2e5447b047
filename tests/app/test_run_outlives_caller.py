"""A push whose caller is cancelled goes on to its end, and how it ended is not left "never retrieved"."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.domain.models import Contact
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.errors import BudgetExhaustedError
from crm_desktop.store.models import SyncTrigger
from tests.support.cli_runs import workspace_at
from tests.support.served_crms import served_crms

pytestmark = pytest.mark.loopback


def test_a_cancelled_callers_push_fails_quietly_once_its_crm_refuses(tmp_path: Path) -> None:
    with served_crms() as crms, workspace_at(tmp_path / "workspace") as workspace:
        crms.connect(workspace)
        workspace.contacts.save(Contact(email="ada@example.com", first_name="Ada", last_name="Lovelace"))
        local_id = workspace.sync.store.local_by_emails(RecordObject.CONTACT, ["ada@example.com"])["ada@example.com"].id
        # The company's daily token budget is spent: the run's first call is refused for the rest of the day.
        crms.pipedrive.apply_config({"tokens_spent": crms.pipedrive.daily_token_budget})
        reported: list[dict[str, Any]] = []
        outcomes: list[object] = []
        workspace.sync.add_run_listener(lambda _integration, outcome: outcomes.append(outcome))

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda _loop, context: reported.append(context))
            caller = asyncio.ensure_future(
                workspace.sync.push_now("pipedrive", {RecordObject.CONTACT: [local_id]}, SyncTrigger.AUTO))
            for _ in range(1000):  # a few turns of the loop: the push takes its turn, then starts the run
                await asyncio.sleep(0)
                runs = [t for t in asyncio.all_tasks() if t is not caller and "_run" in repr(t.get_coro())]
                if runs:
                    break
            run = runs[0]
            caller.cancel()  # a delivery worker stopping while the run is in flight
            with pytest.raises(asyncio.CancelledError):
                await caller
            await asyncio.wait([run])  # (not asking the task how it ended: that is what nobody else did either)
            del run
            gc.collect()
            await asyncio.sleep(0)

        asyncio.run(scenario())
        assert len(outcomes) == 1 and isinstance(outcomes[0], BudgetExhaustedError), outcomes
        assert not [c for c in reported if "never retrieved" in str(c.get("message"))], reported
