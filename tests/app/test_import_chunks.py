"""An import reads its file a chunk of rows at a time: rows across chunks keep their order, refusals and undo."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_desktop.app import imports
from crm_desktop.app.imports import FieldChange
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import normalise_phone
from crm_desktop.domain.outcomes import RecordObject
from tests.app.conftest import write


def test_rows_across_chunks_keep_file_order_refusals_and_undo(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "IMPORT_CHUNK", 3)
    seed = write(tmp_path / "seed.csv", "email,company\na@example.com,Acme\nb@example.com,Acme\n")
    assert workspace.sync.import_file(seed, RecordObject.CONTACT).created == 2

    path = write(tmp_path / "people.csv", "Email,Company,Phone,TikTok_Followers\n"
                 "a@example.com,Acme,,\n"            # line 2: unchanged
                 "c@example.com,Initech,,\n"         # line 3: created
                 "b@example.com,Globex,,\n"          # line 4: updated (second chunk starts at line 5)
                 "d@example.com,Hooli,12,\n"         # line 5: refused, a phone no region reads
                 "e@example.com,,+1 415 555 0132,\n"  # line 6: created
                 "C@Example.com,Umbrella,,\n"        # line 7: refused, the email of line 3 (in another chunk)
                 "f@example.com,,,300\n"             # line 8: created, its TikTok column not kept
                 "g@example.com,Stark,,\n")          # line 9: created
    report = workspace.sync.import_file(path, RecordObject.CONTACT)

    assert (report.created, report.updated, report.unchanged) == (4, 1, 1)
    assert "records" not in vars(report)  # the per-record report is made when first read
    assert [(r.line, r.email, r.outcome) for r in report.records] == [
        (2, "a@example.com", "unchanged"), (3, "c@example.com", "created"), (4, "b@example.com", "updated"),
        (6, "e@example.com", "created"), (8, "f@example.com", "created"), (9, "g@example.com", "created")]
    assert report.records[2].changes == [FieldChange("company", "Acme", "Globex")]
    assert report.records[3].changes == [FieldChange("phone", None, "+14155550132")]
    assert [(p.line, p.field) for p in report.problems] == [(5, "Phone"), (7, "Email")]
    assert "region US" in report.problems[0].reason and "same email as line 3" in report.problems[1].reason
    assert [(w.line, w.columns) for w in report.warnings] == [(8, ("TikTok_Followers",))]
    assert workspace.contacts.count() == 6

    assert report.run_id is not None
    undo = workspace.sync.imports.undo(report.run_id)
    assert undo.restored_local == 1
    found = workspace.contacts.find("b@example.com")
    assert found is not None and found.company == "Acme"
    assert sorted(kept.split(":")[0] for kept in undo.kept) == [
        "c@example.com", "e@example.com", "f@example.com", "g@example.com"]


def test_a_phone_is_read_in_the_region_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Phone answers are remembered per (text, region): a region set later must still be the one a number is read in.
    monkeypatch.setenv("CRM_DESKTOP_PHONE_REGION", "US")
    with pytest.raises(ValueError, match="region US"):
        normalise_phone("020 7946 0018")
    monkeypatch.setenv("CRM_DESKTOP_PHONE_REGION", "GB")
    assert normalise_phone("020 7946 0018") == "+442079460018"
    assert normalise_phone("020 7946 0018", "GB") == "+442079460018"
    with pytest.raises(ValueError, match="region US"):
        normalise_phone("020 7946 0018", "US")


def test_an_import_tells_its_progress_in_rows_read_up_to_the_total_then_the_save(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "IMPORT_CHUNK", 3)
    path = write(tmp_path / "people.csv", "Email,Company\n"
                 + "".join(f"p{n}@example.com,Acme\n" for n in range(7))
                 + "\n"                         # a blank line: no row
                 + "not an email,Acme\n"         # refused as it is read
                 + "p0@example.com,Again\n")     # refused, the email of line 2
    told: list[imports.ImportProgress] = []
    report = workspace.sync.import_file(path, RecordObject.CONTACT, progress=told.append)

    assert (report.created, len(report.problems)) == (7, 2)
    reading = [(step.rows_read, step.total) for step in told if not step.saving]
    assert reading == [(3, 9), (6, 9), (9, 9)]  # the last chunk comes once the file ends
    assert told[-1] == imports.ImportProgress(9, 9, saving=True)
    assert [step.in_words() for step in told[:1] + told[-1:]] == ["3 of 9 rows read…", "all 9 rows read; saving them…"]


def test_the_total_of_a_file_with_a_cell_over_lines_ends_at_the_rows_read(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = write(tmp_path / "people.csv", 'email,company\na@example.com,"Acme\nEurope"\nb@example.com,Globex\n')
    told: list[imports.ImportProgress] = []
    workspace.sync.import_file(path, RecordObject.CONTACT, progress=told.append)
    assert [(step.rows_read, step.total, step.saving) for step in told] == [(2, 3, False), (2, 2, False),
                                                                            (2, 2, True)]


def test_a_json_array_is_told_without_a_total(workspace: Workspace, tmp_path: Path) -> None:
    path = write(tmp_path / "people.json", '[{"email": "a@example.com"},\n {"email": "b@example.com"}]\n')
    told: list[imports.ImportProgress] = []
    workspace.sync.import_file(path, RecordObject.CONTACT, progress=told.append)
    assert [(step.rows_read, step.total, step.saving) for step in told] == [(2, None, False), (2, 2, False),
                                                                            (2, 2, True)]
    assert told[0].in_words() == "2 rows read…"
