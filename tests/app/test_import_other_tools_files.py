"""Files other tools write, imported as they come: Excel's Unicode Text and European CSV, grouped numbers from
audience exports, Pipedrive's people export."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from crm_desktop.app.people import PeopleService
from crm_desktop.app.record_files import read_records, read_rows
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Lead
from crm_desktop.domain.outcomes import RecordObject


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def people_of(workspace: Workspace) -> PeopleService:
    return PeopleService(workspace.database, workspace.social, workspace.sync)


@pytest.mark.parametrize("name", ["people.txt", "people.tsv"])
def test_excel_unicode_text_saved_as_txt_is_imported(tmp_path: Path, workspace: Workspace, name: str) -> None:
    # Excel's "Unicode Text" (and "Text (Tab delimited)") save a .txt: UTF-16 LE with a BOM, tabs, CRLF.
    path = tmp_path / name
    path.write_bytes(codecs.BOM_UTF16_LE + "email\tfirstName\tlastName\r\nkai@example.com\tKai\tŌta\r\n"
                     .encode("utf-16-le"))
    report = workspace.sync.import_file(path, RecordObject.CONTACT)
    assert (report.created, report.problems) == (1, [])
    stored = workspace.contacts.find("kai@example.com")
    assert stored is not None and stored.last_name == "Ōta"


def test_an_unknown_file_type_names_the_ones_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"people\.xlsx: use a \.csv or \.jsonl file \(or the \.txt or \.tsv"):
        read_rows(write(tmp_path / "people.xlsx", "x"), Contact)


def test_european_excel_numbers_are_read_with_their_decimal_comma(tmp_path: Path) -> None:
    # Excel's CSV where the comma is the decimal mark: semicolons between cells, 3,5 and 1.234.
    path = write(tmp_path / "eu.csv", "\ufeffemail;firstName;twitter_username;twitter_followers;twitter_engagement\r\n"
                                      "rene@example.fr;René;rene;1.234;3,5\r\n"
                                      "jose@example.es;José;jose;900;0,75\r\n")
    result = read_records(path, Contact)
    assert result.problems == []
    profiles = {c.email: c.social_profiles[0] for _, c in result.records}
    assert (profiles["rene@example.fr"].followers, profiles["rene@example.fr"].engagement) == (1234, 3.5)
    assert (profiles["jose@example.es"].followers, profiles["jose@example.es"].engagement) == (900, 0.75)


def test_a_leads_engagement_score_with_a_decimal_comma_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "leads.csv", "email;platform;engagementScore\nann@example.com;twitter;72,5\n")
    [(_, lead)] = read_records(path, Lead).records
    assert lead.social_context is not None and lead.social_context.engagement_score == 72.5


@pytest.mark.parametrize("followers, engagement, expected", [
    ("12,400", "2.5%", (12400, 2.5)),          # US grouping; an engagement rate as a spreadsheet shows a percentage
    ("12\u00a0400", "2,5 %", (12400, 2.5)),     # French: a no-break space groups, a comma is the decimal mark
    ("1,234,567", "0,8", (1234567, 0.8)),       # a comma followed by other than three digits is a decimal mark
    ("1'500", "3", (1500, 3.0)),                # Swiss grouping
])
def test_audience_export_numbers_are_read_as_they_show(
    tmp_path: Path, followers: str, engagement: str, expected: tuple[int, float]
) -> None:
    path = write(tmp_path / "audience.csv", "Email,Twitter Handle,Twitter Followers,Twitter Engagement\n"
                                            f'ann@example.com,@annlee,"{followers}","{engagement}"\n')
    result = read_records(path, Contact)
    assert result.problems == []
    [(_, ann)] = result.records
    [profile] = ann.social_profiles
    assert (profile.username, profile.followers, profile.engagement) == ("annlee", *expected)


@pytest.mark.parametrize("followers", ["1.2K", "1.234", "12,40"])
def test_a_count_that_is_not_a_whole_number_is_still_refused_by_its_column(tmp_path: Path, followers: str) -> None:
    path = write(tmp_path / "audience.csv", "Email,Twitter Handle,Twitter Followers\n"
                                            f'ann@example.com,annlee,"{followers}"\nbo@example.com,bo,7\n')
    result = read_records(path, Contact)
    [problem] = result.problems
    assert (problem.line, problem.field, problem.reason) == (2, "Twitter Followers", "must be a whole number")
    assert [c.email for _, c in result.records] == ["bo@example.com"]


PIPEDRIVE = ("Person - Name,Person - First name,Person - Last name,Person - Email - Work,Person - Email - Home,"
             "Person - Phone - Work,Person - Phone - Mobile,Person - Organization,Person - Label\n"
             "Fay Wong,Fay,Wong,fay@wong.io,fay@home.net,+44 20 7946 0958,,Wong Ltd,Hot lead\n"
             "Gus Park,Gus,Park,,gus@home.net,,+44 7700 900123,,\n")


def test_a_pipedrive_people_export_is_read_by_its_labelled_columns(tmp_path: Path) -> None:
    rows = read_rows(write(tmp_path / "people.csv", PIPEDRIVE), Contact)
    assert rows.problems == []
    assert rows.custom_columns == ["Person - Name", "Person - Email - Home", "Person - Phone - Mobile",
                                   "Person - Label"]
    result = read_records(tmp_path / "people.csv", Contact)
    by_email = {c.email: c for _, c in result.records}
    fay, gus = by_email["fay@wong.io"], by_email["gus@home.net"]  # Gus has only a home email
    assert (fay.first_name, fay.last_name, fay.company) == ("Fay", "Wong", "Wong Ltd")
    assert fay.phone is not None and fay.phone.replace(" ", "").endswith("2079460958")
    assert fay.custom_fields["Person - Email - Home"] == "fay@home.net"
    assert (gus.first_name, gus.company, gus.phone) == ("Gus", None, None)
    assert gus.custom_fields["Person - Phone - Mobile"] == "+44 7700 900123"


def test_the_import_preview_reads_a_pipedrive_export_as_the_import_does(tmp_path: Path, workspace: Workspace) -> None:
    path = write(tmp_path / "people.csv", PIPEDRIVE)
    preview = people_of(workspace).preview_import(path, RecordObject.CONTACT)
    assert (preview.new, preview.problems) == (2, [])
    report = workspace.sync.import_file(path, RecordObject.CONTACT)
    assert (report.created, report.problems) == (2, [])


def test_a_file_without_an_email_column_says_how_to_name_it(tmp_path: Path) -> None:
    path = write(tmp_path / "people.csv", "Name,Mail Address\nAnn,ann@example.com\n")
    with pytest.raises(ValueError, match=r"headers seen are: 'Name', 'Mail Address'\. Name the column of email "
                                         r"addresses Email"):
        read_rows(path, Contact)


SALESFORCE_REPORT = (
    '"First Name","Last Name","Account Name","Email","Contact ID"\r\n'
    '"Dana","Smith","Initech","dana@initech.com","0035e00000AbCdE"\r\n'
    '"Eli","Stone","Initech","eli@initech.com","0035e00000AbCdF"\r\n'
    '\r\n'
    '"Grand Totals (2 records)"\r\n'
    '\r\n'
    '"Confidential Information - Do Not Distribute"\r\n'
    '"Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved."\r\n'
    '"Generated By:  Sam Sales  12/6/2026 9:14 AM"\r\n'
)


def test_a_salesforce_reports_footer_is_named_not_refused_as_people(tmp_path: Path, workspace: Workspace) -> None:
    path = write(tmp_path / "report.csv", SALESFORCE_REPORT)
    preview = people_of(workspace).preview_import(path, RecordObject.CONTACT)
    assert (preview.new, preview.problems) == (2, [])
    assert preview.notices == ["report.csv: lines 5-9 under the table (one cell, after a blank line) read as a "
                               "report's footer ('Grand Totals (2 records)'), not as people: not imported"]
    report = workspace.sync.import_file(path, RecordObject.CONTACT)
    assert (report.created, report.problems, report.notices) == (2, [], preview.notices)


def test_a_salesforce_reports_footer_saved_again_by_excel_is_still_a_footer(tmp_path: Path,
                                                                           workspace: Workspace) -> None:
    # Excel pads every row to the table's width when it saves the report again: the footer's lines get empty cells
    # after their one (and the blank lines commas). They were refused as people without an email, exit 1.
    lines = SALESFORCE_REPORT.split("\r\n")
    padded = [lines[0], *lines[1:3], *(f"{line}{',' * 4}" for line in lines[3:-1])]
    path = write(tmp_path / "report.csv", "\r\n".join(padded) + "\r\n")
    assert path.read_text().splitlines()[4] == '"Grand Totals (2 records)",,,,'
    report = workspace.sync.import_file(path, RecordObject.CONTACT)
    assert (report.created, report.problems) == (2, [])
    assert report.notices == ["report.csv: lines 5-9 under the table (one cell, after a blank line) read as a "
                              "report's footer ('Grand Totals (2 records)'), not as people: not imported"]


def test_a_one_cell_row_with_rows_after_it_is_still_a_row(tmp_path: Path) -> None:
    path = write(tmp_path / "people.csv", "email,firstName\nann@example.com,Ann\n\nNot a person\n\n"
                                          "bo@example.com,Bo\nCarl\n\nThe end\n")
    rows = read_rows(path, Contact)
    # Rows follow line 4, and line 7 follows a row, not a blank line: both are refused rows, named.
    assert [(p.line, p.field) for p in rows.problems] == [(4, "email"), (7, "email")]
    assert all(p.reason.startswith("not a valid email address") for p in rows.problems)
    assert [row.email for row in rows.rows] == ["ann@example.com", "bo@example.com"]
    assert rows.notices == ["people.csv: line 9 under the table (one cell, after a blank line) read as a report's "
                            "footer ('The end'), not as people: not imported"]


def test_an_audience_exports_profile_columns_are_read_by_the_names_social_tools_give_them(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv",
                 "Email,X Handle,X Follower Count,X Engagement Rate,Instagram Profile URL,Instagram Followers Count,"
                 "LinkedIn Profile Link,Threads Screen Name\n"
                 "ann@example.com,@annlee,\"12,400\",2.5%,https://www.instagram.com/ann.lee/,3400,"
                 "https://www.linkedin.com/in/ann-lee-123/,ann.threads\n")
    rows = read_rows(path, Contact)
    assert rows.custom_columns == []
    [(_, ann)] = read_records(path, Contact).records
    profiles = {p.platform.value: (p.username, p.followers, p.engagement) for p in ann.social_profiles}
    assert profiles == {"twitter": ("annlee", 12400, 2.5), "instagram": ("ann.lee", 3400, 0.0),
                        "linkedin": ("ann-lee-123", 0, 0.0), "threads": ("ann.threads", 0, 0.0)}


@pytest.mark.parametrize("header, places", [
    ("email,firstName,Tag,Tag", "column 3 (C) ('Tag') and column 4 (D) ('Tag') both mean Tag"),
    ("email," + ",".join(f"c{n}" for n in range(25)) + ",Email Address",
     "column 1 (A) ('email') and column 27 (AA) ('Email Address') both mean email"),
])
def test_two_columns_of_one_name_are_refused_by_where_they_are(tmp_path: Path, header: str, places: str) -> None:
    # A report of two objects repeats a label (Salesforce's "Created Date"): which two columns must be found.
    path = write(tmp_path / "report.csv", f"{header}\nann@example.com,Ann,a,b\n")
    with pytest.raises(ValueError) as refused:
        read_rows(path, Contact)
    assert str(refused.value) == f"report.csv: {places}; rename or delete one of them"


LINKEDIN_CONNECTIONS = (
    "Notes:\r\n"
    '"When exporting your connection data, you may notice that some of the email addresses are missing. You will '
    'only see email addresses for connections who have allowed their connections to see or download it."\r\n'
    "\r\n"
    "First Name,Last Name,URL,Email Address,Company,Position,Connected On\r\n"
    "Ann,Lee,https://www.linkedin.com/in/annlee,ann@example.com,Acme,CMO,03 Dec 2026\r\n"
    "Bo,Ray,https://www.linkedin.com/in/boray,,Beta,CTO,01 Dec 2026\r\n"
)


def test_linkedins_connections_export_is_read_past_its_note(tmp_path: Path, workspace: Workspace) -> None:
    path = write(tmp_path / "Connections.csv", LINKEDIN_CONNECTIONS)
    preview = people_of(workspace).preview_import(path, RecordObject.CONTACT)
    assert preview.new == 1
    assert [(p.line, p.field, p.reason) for p in preview.problems] == [(6, "Email Address", "required")]
    assert preview.notices == ["Connections.csv: the header is line 4, the first with an email column; lines 1-3 "
                               "above it (a note of the tool that wrote the file) not read"]
    report = workspace.sync.import_file(path, RecordObject.CONTACT)
    assert (report.created, [p.line for p in report.problems]) == (1, [6])
    ann = workspace.contacts.find("ann@example.com")
    assert ann is not None and (ann.first_name, ann.company) == ("Ann", "Acme")


def test_a_first_line_of_several_cells_is_the_header_even_without_an_email_column(tmp_path: Path) -> None:
    path = write(tmp_path / "people.csv", "Name,Contact\nAnn,Email\nBo,Email Address\n")
    with pytest.raises(ValueError, match=r"no email column .* headers seen are: 'Name', 'Contact'\."):
        read_rows(path, Contact)


def test_a_json_array_export_is_read_item_by_item_by_its_lines(tmp_path: Path, workspace: Workspace) -> None:
    # Tools export JSON as one array over many lines; read a line at a time, it was half imported: the items
    # followed by a comma refused as "not valid JSON", the last one saved.
    path = write(tmp_path / "people.json", '[\n  {"email": "a@example.com", "firstName": "A"},\n'
                                           '  {"email": "b@example.com"},\n  3,\n'
                                           '  {"email": "c@example.com",\n   "lastName": ""}\n]\n')
    preview = people_of(workspace).preview_import(path, RecordObject.CONTACT)
    assert preview.new == 3
    assert [(p.line, p.reason) for p in preview.problems] == [(4, "each item of the array must be one JSON object")]
    report = workspace.sync.import_file(path, RecordObject.CONTACT)
    assert [(line, email) for line, email, *_ in report.outcomes] == [
        (2, "a@example.com"), (3, "b@example.com"), (5, "c@example.com")]
    stored = workspace.contacts.find("a@example.com")
    assert stored is not None and stored.first_name == "A"


def test_a_json_array_cut_short_is_refused_whole(tmp_path: Path, workspace: Workspace) -> None:
    path = write(tmp_path / "people.json", '[{"email": "a@example.com"},\n {"email": "b@example.com"}\n')
    with pytest.raises(ValueError, match=r"people\.json: line 3 cannot be read as JSON \(expected , or \] between "
                                         r"items\); the file holds a JSON array, which must be whole"):
        workspace.sync.import_file(path, RecordObject.CONTACT)
    assert workspace.contacts.find("a@example.com") is None


def test_a_json_lines_file_opening_with_an_array_is_still_read_a_line_at_a_time(tmp_path: Path) -> None:
    path = write(tmp_path / "people.jsonl", '[1, 2]\n{"email": "a@example.com"}\n')
    rows = read_rows(path, Contact)
    assert [(p.line, p.reason) for p in rows.problems] == [(1, "each line must be one JSON object")]
    assert [row.email for row in rows.rows] == ["a@example.com"]


def test_a_nested_custom_value_is_refused_in_one_sentence_by_preview_and_import(
    tmp_path: Path, workspace: Workspace
) -> None:
    # A JSON export with an object or a list as a custom value: refused by every member of the value's union, it
    # read "must be a valid string, or input should be a valid integer, or input should be a valid number, ...".
    path = write(tmp_path / "people.jsonl",
                 '{"email": "ann@example.com", "customFields": {"x": {"a": 1}, "tier": "gold"}}\n'
                 '{"email": "bob@example.com", "customFields": {"tags": ["vip", "eu"]}}\n'
                 '{"email": "cy@example.com", "customFields": {"visits": 3}}\n')
    expected = [(1, "ann@example.com", [("custom.x", "must be text, a number, true/false or a date; not an object")]),
                (2, "bob@example.com", [("custom.tags", "must be text, a number, true/false or a date; not a list")])]

    preview = people_of(workspace).preview_import(path, RecordObject.CONTACT)
    report = workspace.sync.import_file(path, RecordObject.CONTACT)

    for problems in (preview.problems, report.problems):
        assert [(p.line, p.record, [(f.field, f.reason) for f in p.problems] or [(p.field, p.reason)])
                for p in problems] == expected
    assert report.created == 1 and workspace.contacts.count() == 1


#: Excel's "CSV (semicolon)" on a German Windows: Windows-1252, no BOM, semicolons, CRLF.
EXCEL_1252 = ("Email;Vorname;Nachname;Firma\r\n"
              "zoe@example.com;Zoë;Müller;Café € GmbH\r\n"
              "jurgen@example.com;Jürgen;Groß;Bäckerei\r\n")


def test_excel_csv_in_windows_1252_is_imported_and_said_so(tmp_path: Path, workspace: Workspace) -> None:
    path = write(tmp_path / "kunden.csv", EXCEL_1252.replace("Vorname;Nachname;Firma", "firstName;lastName;company"),
                 "cp1252")
    report = workspace.sync.import_file(path, RecordObject.CONTACT)

    assert (report.created, report.problems) == (2, [])
    assert report.notices == ["kunden.csv: read as Windows-1252, as Excel's CSV format saves; names like “Zoë” are "
                              "kept"]
    zoe = workspace.contacts.find("zoe@example.com")
    assert zoe is not None and (zoe.first_name, zoe.last_name, zoe.company) == ("Zoë", "Müller", "Café € GmbH")


def test_the_preview_of_a_windows_1252_file_says_how_it_is_read(tmp_path: Path, workspace: Workspace) -> None:
    path = write(tmp_path / "kunden.csv", EXCEL_1252, "cp1252")
    preview = people_of(workspace).preview_import(path, RecordObject.CONTACT)

    assert (preview.new, preview.problems) == (2, [])
    assert preview.notices == ["kunden.csv: read as Windows-1252, as Excel's CSV format saves; names like “Zoë” are "
                               "kept"]
    rows = read_rows(path, Contact).rows
    assert rows[0].values["custom.Vorname"] == "Zoë" and rows[1].values["custom.Nachname"] == "Groß"


@pytest.mark.parametrize("text, encoding", [
    (EXCEL_1252, "utf-8"), (EXCEL_1252, "utf-8-sig"), (EXCEL_1252.replace(";", "\t"), "utf-16"),
])
def test_unicode_files_are_read_as_before_without_a_notice(tmp_path: Path, text: str, encoding: str) -> None:
    rows = read_rows(write(tmp_path / "kunden.csv", text, encoding), Contact)
    assert rows.notices == [] and rows.rows[0].values["custom.Vorname"] == "Zoë"


@pytest.mark.parametrize("undefined", [0x81, 0x8D, 0x8F, 0x90, 0x9D])
def test_a_byte_windows_1252_leaves_undefined_is_refused_naming_line_and_byte(
    tmp_path: Path, workspace: Workspace, undefined: int
) -> None:
    body = EXCEL_1252.encode("cp1252") + b"x@example.com;A" + bytes([undefined]) + b";B;C\r\n"
    path = tmp_path / "kunden.csv"
    path.write_bytes(body)
    with pytest.raises(ValueError) as refused:
        workspace.sync.import_file(path, RecordObject.CONTACT)
    at = body.index(bytes([undefined])) + 1
    assert str(refused.value) == (
        f"kunden.csv: line 4 is not UTF-8 text, nor Windows-1252 (byte 0x{undefined:02x} at byte {at}); save the "
        "file as UTF-8 (in Excel: CSV UTF-8) and import it again")
    assert workspace.contacts.count() == 0
