"""Files that broke the import before the fuzzing found them: other encodings, runaway quotes, absurd nesting."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from crm_desktop.cli import ExitCode
from crm_desktop.domain.models import MAX_CUSTOM_TEXT
from tests.support.cli_runs import run, run_json

ROWS = "email,firstName\nann@example.com,Ann\nbéa@example.com,Béatrice\n"


def test_a_utf16_file_from_excel_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "unicode.csv"
    path.write_bytes(ROWS.replace(",", "\t").encode("utf-16"))  # Excel's "Unicode Text": UTF-16 with a BOM, tabs
    code, report = run_json(tmp_path / "D", ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK, report
    assert report["created"] == 2
    assert [c["new"] for c in report["records"][1]["changes"].values()] == ["Béatrice"]


def test_a_jsonl_file_that_is_not_utf8_is_refused_naming_the_line_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes('{"email": "ann@example.com"}\n{"email": "béa@example.com"}\n'.encode("latin-1"))
    code, report = run_json(tmp_path / "D", ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.USAGE
    message = report["error"]["message"]
    assert "latin.jsonl: line 2 is not UTF-8 text (byte 0xe9" in message and "save the file as UTF-8" in message
    code, report = run_json(tmp_path / "D", ["contacts", "list"], capsys)
    assert report["total"] == 0  # nothing half-written


#: Excel's "CSV (semicolon)" on Windows: Windows-1252 without a BOM.
EXCEL_1252 = "email;firstName;lastName;company\r\nzoe@example.com;Zoë;Müller;Café € GmbH\r\n".encode("cp1252")


def test_an_excel_csv_in_windows_1252_is_imported_saying_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kunden.csv"
    path.write_bytes(EXCEL_1252)
    code, out, err = run(tmp_path / "D", ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK, (out, err)
    said = [line for line in out.splitlines() if "Windows-1252" in line]
    assert said == ["warning: kunden.csv: read as Windows-1252, as Excel's CSV format saves; names like “Zoë” are "
                    "kept"]
    code, report = run_json(tmp_path / "D", ["contacts", "list"], capsys)
    [zoe] = report["people"]
    assert (zoe["firstName"], zoe["lastName"], zoe["company"]) == ("Zoë", "Müller", "Café € GmbH")


def test_a_csv_with_a_byte_windows_1252_leaves_undefined_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kunden.csv"
    path.write_bytes(EXCEL_1252 + b"bob@example.com;B\x81b;;\r\n")
    code, report = run_json(tmp_path / "D", ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.USAGE
    assert report["error"]["message"] == (
        f"kunden.csv: line 3 is not UTF-8 text, nor Windows-1252 (byte 0x81 at byte {len(EXCEL_1252) + 18}); save "
        "the file as UTF-8 (in Excel: CSV UTF-8) and import it again")
    code, report = run_json(tmp_path / "D", ["contacts", "list"], capsys)
    assert report["total"] == 0  # nothing half-written


def test_a_quote_never_closed_is_named_instead_of_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "quote.csv"
    path.write_text('email,firstName\nann@example.com,"Ann\n' + "x" * 200_000 + "\n", encoding="utf-8")
    code, out, err = run(tmp_path / "D", ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.USAGE, (out, err)
    assert "quote.csv: line" in err and 'or a quote (") opened and never closed' in err


def test_no_stored_value_is_too_long_to_import_back() -> None:
    # csv refuses a cell over its limit; a custom field is refused over the same length when it is saved.
    assert csv.field_size_limit() == MAX_CUSTOM_TEXT


@pytest.mark.parametrize("header, row, delimiter", [
    ("email;company;firstName", "ann@example.com;Smith, 'A', B;Ann", ";"),
    ("email,company,firstName", "ann@example.com,\"O'Neil; 'Jr'; x\",Ann", ","),
    ("E-mail|company|firstName", "ann@example.com|'a'|Ann", "|"),
])
def test_the_delimiter_is_the_headers_whatever_the_apostrophes_in_the_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str, row: str, delimiter: str
) -> None:
    # csv.Sniffer took the apostrophes in these rows for quotes and guessed the wrong delimiter: no email column.
    path = tmp_path / "people.csv"
    path.write_text(f"{header}\r\n{row}\r\nbob@example.com{delimiter}{delimiter}Bob\r\n", encoding="utf-8-sig")
    code, report = run_json(tmp_path / "D", ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.OK, report
    company = row.split(delimiter)[1] if delimiter != "," else "O'Neil; 'Jr'; x"
    assert report["created"] == 2
    assert report["records"][0]["changes"]["company"]["new"] == company


def test_absurd_nesting_refuses_that_line_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text(f'{{"email": "deep@example.com", "customFields": {{"x": {deep}}}}}\n'
                    '{"email": "ann@example.com", "firstName": "Ann"}\n', encoding="utf-8")
    code, report = run_json(tmp_path / "D", ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.PARTIAL
    assert report["created"] == 1
    assert [(r["line"], r["problems"][0]["reason"]) for r in report["refused"]] == [
        (1, "nested too deeply to read (lists or objects inside each other hundreds of times)")]


def test_a_bom_on_a_jsonl_file_keeps_its_first_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_text('\ufeff{"email": "ann@example.com"}\n', encoding="utf-8")
    code, report = run_json(tmp_path / "D", ["contacts", "import", str(path)], capsys)
    assert (code, report["created"], report["refused"]) == (ExitCode.OK, 1, [])


def test_a_file_name_too_long_for_the_system_is_a_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(tmp_path / "D", ["leads", "import", "x" * 5000], capsys)
    assert code == ExitCode.USAGE, (out, err)
    assert "File name too long: xxxx" in err and "Traceback" not in err and len(err) < 300


def test_a_folder_given_as_the_file_is_named_as_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "people.csv").mkdir()
    code, _, err = run(tmp_path / "D", ["contacts", "import", str(tmp_path / "people.csv")], capsys)
    assert code == ExitCode.USAGE and "people.csv: cannot be read: it is a folder; give a .csv or .jsonl file" in err


def test_a_nested_custom_value_is_one_plain_sentence_in_text_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "people.jsonl"
    path.write_text('{"email": "ann@example.com", "customFields": {"x": {"a": 1}}}\n', encoding="utf-8")
    reason = "must be text, a number, true/false or a date; not an object"

    code, out, _ = run(tmp_path / "D", ["contacts", "import", str(path)], capsys)
    assert code == ExitCode.PARTIAL
    assert f"line     1  refused  ann@example.com  custom.x: {reason}\n" in out, out
    code, report = run_json(tmp_path / "D", ["leads", "import", str(path)], capsys)
    assert code == ExitCode.PARTIAL
    assert [(r["field"], r["reason"], r["problems"]) for r in report["refused"]] == [
        ("custom.x", reason, [{"field": "custom.x", "reason": reason}])]


def test_profiles_or_custom_fields_of_the_wrong_type_are_refused_not_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "people.jsonl"
    path.write_text('{"email": "ann@example.com", "socialProfiles": "nope"}\n'
                    '{"email": "bob@example.com", "customFields": [1, 2]}\n'
                    '{"email": "cy@example.com", "customFields": {"tier": 1}}\n', encoding="utf-8")
    code, report = run_json(tmp_path / "D", ["contacts", "import", str(path)], capsys)
    # The first two were created without their profiles and custom fields, and nothing was said.
    assert code == ExitCode.PARTIAL and report["created"] == 1
    assert [(r["line"], [p["field"] for p in r["problems"]]) for r in report["refused"]] == [
        (1, ["socialProfiles"]), (2, ["customFields"])]
    # The run's record log lists them, as a sync's failed records (`runs show` said "record log: empty").
    code, shown = run_json(tmp_path / "D", ["runs", "show", str(report["runId"])], capsys)
    assert [(r["record"], r["outcome"], r["category"], r["message"]) for r in shown["records"]] == [
        ("ann@example.com", "failed", "validation", "line 1: socialProfiles: must be a list; not text"),
        ("bob@example.com", "failed", "validation",
         'line 2: customFields: must be an object of custom field names and their values, such as {"tier": "gold"}; '
         "not a list")]
    code, errors = run_json(tmp_path / "D", ["runs", "errors", str(report["runId"])], capsys)
    assert [(g["category"], g["count"]) for g in errors["groups"]] == [("validation", 2)]
