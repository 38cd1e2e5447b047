"""CSV files for spreadsheets: formulas kept inert, a BOM for Excel, and no half file after a failed export."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from crm_desktop.app.csv_export import cell_value, inert_cell, spreadsheet_csv


def test_a_written_file_starts_with_a_bom_and_replaces_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("old", encoding="utf-8")
    with spreadsheet_csv(path) as writer:
        writer.writerow(["email", "lastName"])
        writer.writerow(["wei@example.com", "Lefèvre"])
    assert path.read_bytes().startswith(b"\xef\xbb\xbfemail,lastName\r\n")
    assert path.read_text(encoding="utf-8-sig").splitlines()[1] == "wei@example.com,Lefèvre"
    assert [p.name for p in tmp_path.iterdir()] == ["people.csv"]


def test_a_failed_export_leaves_the_old_file_and_no_part_file(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), spreadsheet_csv(path) as writer:
        writer.writerow(["email"])
        raise RuntimeError("the store went away")
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["people.csv"]


def test_inert_cells_and_plain_numbers() -> None:
    assert inert_cell("=SUM(A1)") == "'=SUM(A1)"
    assert [inert_cell(v) for v in ("+14155550101", "-3.5", "-1")] == ["+14155550101", "-3.5", "-1"]
    # A spreadsheet works these out as arithmetic (-10-5 becomes -15), so they are kept as text.
    assert [inert_cell(v) for v in ("-10-5", "+1-1", "-(3)", "--1", "+1 (415) 555-0101")] == [
        "'-10-5", "'+1-1", "'-(3)", "'--1", "'+1 (415) 555-0101"]


VALUES = ("=SUM(A1)", "@x", "-2+3+cmd|x", "'quoted'", "+1415", "'=literal", "'+1", "'-jo@example.com", "''=x",
          "'\tx", "-10-5", "plain", "")


def test_a_cells_inert_apostrophe_is_dropped_when_read_back() -> None:
    # Values that start with an apostrophe of their own come back whole too (they had lost it).
    assert [cell_value(inert_cell(v)) for v in VALUES] == list(VALUES)


def test_a_folder_or_a_missing_folder_is_named_not_the_part_file(tmp_path: Path) -> None:
    # "f/" made "f.part" beside the folder, then failed naming f.part.
    (tmp_path / "f").mkdir()
    with pytest.raises(IsADirectoryError) as folder, spreadsheet_csv(tmp_path / "f") as writer:
        writer.writerow(["email"])
    assert folder.value.filename == str(tmp_path / "f")
    with pytest.raises(FileNotFoundError) as missing, spreadsheet_csv(tmp_path / "nowhere" / "x.csv") as writer:
        writer.writerow(["email"])
    assert missing.value.filename == str(tmp_path / "nowhere")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"], "no .part file left anywhere"


def test_a_link_is_written_through_and_a_pipe_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "target.csv").write_text("old\n", encoding="utf-8")
    (tmp_path / "latest.csv").symlink_to(shared / "target.csv")
    with spreadsheet_csv(tmp_path / "latest.csv") as writer:
        writer.writerow(["email"])
    assert (tmp_path / "latest.csv").is_symlink(), "the link was replaced by a file"
    assert (shared / "target.csv").read_bytes() == b"\xef\xbb\xbfemail\r\n"
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match="not a regular file"), spreadsheet_csv(tmp_path / "pipe") as writer:
        writer.writerow(["email"])
    assert stat.S_ISFIFO((tmp_path / "pipe").stat().st_mode)
