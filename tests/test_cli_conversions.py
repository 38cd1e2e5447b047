"""``integration pipeline`` and ``integration conversions``: a deal pipeline chosen by name, conversions pulled and
shown by ``attribution report``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_desktop.cli.common import ExitCode
from crm_desktop.domain.models import Lead, LeadStatus
from crm_desktop.domain.social import EngagementEvent
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from tests.support.cli_runs import cli_workspace_on_sandbox, run, run_json, workspace_at


def test_pipeline_listed_chosen_by_name_and_deals_and_conversions_follow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = cli_workspace_on_sandbox(tmp_path, "pipedrive", monkeypatch)
    assert isinstance(sandbox, PipedriveSandbox)
    code, listed = run_json(tmp_path, ["integration", "pipeline", "crm"], capsys)
    assert code == ExitCode.OK and listed["dealPipeline"] is None
    assert [p["name"] for p in listed["pipelines"]] == ["Pipeline", "Social leads"]

    code, _out, err = run(tmp_path, ["integration", "pipeline", "crm", "--pipeline", "Enterprise"], capsys)
    assert code == ExitCode.USAGE
    assert "no pipeline named 'Enterprise'; the pipelines are: Pipeline, Social leads" in err
    code, _out, err = run(tmp_path, ["integration", "pipeline", "crm", "--pipeline", "Pipeline", "--stage", "Won"],
                          capsys)
    assert code == ExitCode.USAGE and "Qualified, Contact Made, Demo Scheduled" in err

    code, out, _err = run(tmp_path, ["integration", "pipeline", "crm", "--pipeline", "social LEADS"], capsys)
    assert code == ExitCode.OK
    assert "converted or qualified leads get a deal in Social leads / New social lead" in out

    async def add_person() -> int:
        async with sandbox.client() as client:
            answer = await client.post("/api/v2/persons", headers={"x-api-token": sandbox.credentials()["apiToken"]},
                                       json={"name": "Ana Ruiz", "emails": [{"value": "ana@example.com"}]})
            return int(answer.json()["data"]["id"])

    person_id = asyncio.run(add_person())
    with workspace_at(tmp_path) as workspace:
        workspace.leads.save(Lead(email="ana@example.com", first_name="Ana", status=LeadStatus.QUALIFIED))
        workspace.social.record_engagement(EngagementEvent.model_validate({
            "platform": "linkedin", "type": "comment", "campaign": "Autumn", "user": {"email": "ana@example.com"},
            "timestamp": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        }))
    code, pulled = run_json(tmp_path, ["integration", "conversions", "crm"], capsys)
    assert code == ExitCode.OK
    assert pulled["pulled"] == 0 and [d["email"] for d in pulled["dealsCreated"]] == ["ana@example.com"]
    deal_id = int(pulled["dealsCreated"][0]["dealId"])
    assert sandbox.deals[deal_id].person_id == person_id

    async def win() -> None:
        async with sandbox.client() as client:
            answer = await client.post("/__sandbox__/salesperson/win-deal",
                                       json={"dealId": deal_id, "value": 4800, "currency": "EUR"})
            assert answer.status_code == 200, answer.text

    asyncio.run(win())
    code, out, _err = run(tmp_path, ["integration", "conversions", "crm"], capsys)
    assert code == ExitCode.OK and "1 on the CRM, 1 new" in out
    code, again = run_json(tmp_path, ["integration", "conversions", "crm"], capsys)
    assert (again["created"], again["dealsCreated"]) == (0, [])
    assert len(sandbox.deals) == 1
    code, report = run_json(tmp_path, ["attribution", "report"], capsys)
    assert report["conversions"] == 1 and report["value"] == {"EUR": 4800.0}
    (autumn,) = [row for row in report["byCampaign"] if row.get("name") == "Autumn"]
    assert autumn["conversionsCredited"] == pytest.approx(1.0)
    assert autumn["valueCredited"] == {"EUR": pytest.approx(4800.0)}

    code, cleared = run_json(tmp_path, ["integration", "pipeline", "crm", "--clear"], capsys)
    assert code == ExitCode.OK and cleared["dealPipeline"] is None


def test_pipeline_of_a_crm_without_deal_pipelines_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_workspace_on_sandbox(tmp_path, "hubspot", monkeypatch)
    code, _out, err = run(tmp_path, ["integration", "pipeline", "crm", "--pipeline", "Sales"], capsys)
    assert code == ExitCode.USAGE and "deal pipelines are chosen for Pipedrive integrations" in err
