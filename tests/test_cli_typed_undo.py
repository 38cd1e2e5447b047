"""``runs undo`` of an import puts custom values back with their type: a number, a yes/no, text, or nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.cli import ExitCode
from tests.support.cli_runs import run, run_json, workspace_at

TYPED = {"visits": 42, "vip": True, "ratio": 1.5, "score": 7, "code": "42", "since": "2024-05-01"}


def custom_fields(data_dir: Path) -> dict[str, Any]:
    with workspace_at(data_dir) as workspace:
        contact = workspace.contacts.find("ann@example.com")
        assert contact is not None
        return dict(contact.custom_fields)


def typed(values: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    """Values with their types, so that 42 and "42" (or True and 1) are told apart."""
    return {name: (type(value), value) for name, value in values.items()}


@pytest.fixture
def data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    directory = tmp_path / "D"
    seed = tmp_path / "seed.jsonl"
    seed.write_text(json.dumps({"email": "ann@example.com", "firstName": "Ann", "company": "Acme",
                                "customFields": TYPED}) + "\n", encoding="utf-8")
    code, _, err = run(directory, ["contacts", "import", str(seed)], capsys)
    assert code == ExitCode.OK, err
    assert typed(custom_fields(directory)) == typed(TYPED)
    return directory


def test_undo_of_a_csv_import_puts_back_numbers_yes_no_and_absent_values(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "over.csv"
    path.write_text("email,firstName,company,custom.visits,custom.vip,custom.ratio,custom.score,custom.since,"
                    "custom.segment\n"
                    "ann@example.com,Annie,Globex,forty-two,maybe,n/a,8,2025-01-31,gold\n", encoding="utf-8")
    code, report = run_json(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK and report["updated"] == 1, report
    assert typed(custom_fields(data_dir)) == typed({**TYPED, "visits": "forty-two", "vip": "maybe", "ratio": "n/a",
                                                    "score": 8, "since": "2025-01-31", "segment": "gold"})

    code, undo = run_json(data_dir, ["runs", "undo", str(report["runId"])], capsys)
    assert code == ExitCode.OK, undo
    assert typed(custom_fields(data_dir)) == typed(TYPED), "the undo put the values back as text"
    with workspace_at(data_dir) as workspace:
        contact = workspace.contacts.find("ann@example.com")
        assert contact is not None and (contact.first_name, contact.company) == ("Ann", "Acme")


def test_undo_of_a_json_import_puts_back_text_that_reads_as_a_number(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "over.jsonl"
    path.write_text(json.dumps({"email": "ann@example.com", "customFields": {"code": 43, "visits": "42 visits",
                                                                             "fresh": False}}) + "\n",
                    encoding="utf-8")
    code, report = run_json(data_dir, ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK and report["updated"] == 1, report
    assert typed(custom_fields(data_dir)) == typed({**TYPED, "code": 43, "visits": "42 visits", "fresh": False})

    code, undo = run_json(data_dir, ["runs", "undo", str(report["runId"])], capsys)
    assert code == ExitCode.OK, undo
    assert typed(custom_fields(data_dir)) == typed(TYPED)
