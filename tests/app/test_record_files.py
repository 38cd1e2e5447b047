"""Reading contacts and leads files: delimiters, headers, profiles from links, the user's column names."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_desktop.app.csv_export import inert_cell, spreadsheet_csv
from crm_desktop.app.record_files import build_record, header_key, read_records, read_rows, username_from_url
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import Contact, Lead


@pytest.mark.parametrize(
    ("platform", "url", "username"),
    [
        ("twitter", "https://twitter.com/annlee", "annlee"),
        ("twitter", "https://x.com/annlee/", "annlee"),
        ("twitter", "https://x.com/home", None),
        ("instagram", "https://www.instagram.com/ann.lee/", "ann.lee"),
        ("linkedin", "https://www.linkedin.com/in/ann-lee-42/", "ann-lee-42"),
        ("linkedin", "https://www.linkedin.com/company/acme", None),
        ("tiktok", "https://www.tiktok.com/@annlee", "annlee"),
        ("tiktok", "https://www.tiktok.com/annlee", None),
        ("youtube", "https://www.youtube.com/@AnnLee", "AnnLee"),
        ("youtube", "https://www.youtube.com/channel/UC123", None),
        ("facebook", "https://facebook.com/ann.lee", "ann.lee"),
        ("facebook", "https://facebook.com/profile.php?id=4", None),
        ("twitter", "https://instagram.com/annlee", None),
        ("twitter", "ftp://x.com/annlee", None),
        ("reddit", "https://reddit.com/u/annlee", None),
    ],
)
def test_usernames_come_from_links_where_the_shape_allows(platform: str, url: str, username: str | None) -> None:
    assert username_from_url(platform, url) == username


def test_headers_match_without_case_spaces_underscores_or_hyphens() -> None:
    assert {header_key(h) for h in ("Email", " E-mail ", "EMAIL", "e_mail")} == {"email"}
    assert header_key("First Name") == header_key("first_name") == header_key("firstName")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_semicolon_file_with_capitalised_headers_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "Email;First Name;Company;Twitter Username\nann@example.com;Ann;Acme, Inc;annlee\n")
    result = read_records(path, Contact)
    assert result.problems == []
    [(line, ann)] = result.records
    assert (line, ann.email, ann.first_name, ann.company) == (2, "ann@example.com", "Ann", "Acme, Inc")
    assert [p.username for p in ann.social_profiles] == ["annlee"]


def test_a_tab_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "email\tcompany\nann@example.com\tAcme; Ltd\n")
    [(_, ann)] = read_records(path, Contact).records
    assert ann.company == "Acme; Ltd"


def test_doubled_quotes_in_a_quoted_cell_read_as_one_quote(tmp_path: Path) -> None:
    # What a spreadsheet (and Python's csv) writes for a cell holding quotes. On this file the sniffer guessed
    # "no doubling" and the value came back with a stray quote: only its guess of the delimiter is taken.
    path = write(tmp_path, "c.csv", 'email,segment\r\nann@example.com,"\'=HYPERLINK(""http://evil.example"")"\r\n'
                 "bob@example.com,\r\n")
    records = {c.email: c for _, c in read_records(path, Contact).records}
    # The apostrophe that kept the formula inert in a spreadsheet is not part of the value.
    assert records["ann@example.com"].custom_fields == {"segment": "=HYPERLINK(\"http://evil.example\")"}
    semicolons = write(tmp_path, "s.csv", 'email;company\nann@example.com;"Say ""hi""; Inc"\nbob@example.com;x\n')
    [(_, ann), _] = read_records(semicolons, Contact).records
    assert ann.company == 'Say "hi"; Inc'


def test_no_email_column_names_the_headers_seen(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "mail;name\nann@example.com;Ann\n")
    with pytest.raises(ValueError, match=r"no email column.*headers seen are: 'mail', 'name'"):
        read_records(path, Contact)


def test_profiles_without_a_username_are_kept_from_their_link_or_named(tmp_path: Path) -> None:
    path = write(
        tmp_path, "c.csv",
        "email,linkedin_url,tiktok_followers,youtube_url\n"
        "ann@example.com,https://www.linkedin.com/in/ann-lee,300,https://www.youtube.com/channel/UC1\n",
    )
    result = read_records(path, Contact)
    [(_, ann)] = result.records
    assert [(p.platform.value, p.username, p.url) for p in ann.social_profiles] == [
        ("linkedin", "ann-lee", "https://www.linkedin.com/in/ann-lee")
    ]
    assert sorted(w.columns for w in result.warnings) == [("tiktok_followers",), ("youtube_url",)]
    assert all(w.line == 2 and w.record == "ann@example.com" for w in result.warnings)
    assert "tiktok_username" in next(w.reason for w in result.warnings if w.columns == ("tiktok_followers",))


def test_messages_name_the_users_columns_in_plain_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_DESKTOP_PHONE_REGION", "GB")
    path = write(
        tmp_path, "c.csv",
        "email,twitter_username,Twitter Followers,phone\n"
        "ann@example.com,annlee,-5,\n"
        "bob@example.com,,,415 555 0132\n",
    )
    result = read_records(path, Contact)
    assert result.records == []
    first, second = result.problems
    assert (first.line, first.field, first.reason) == (2, "Twitter Followers", "must be 0 or more")
    assert second.field == "phone"
    assert "region GB" in second.reason and "CRM_DESKTOP_PHONE_REGION" in second.reason


def test_a_key_of_only_spaces_or_line_breaks_is_named_visibly(tmp_path: Path) -> None:
    path = write(tmp_path, "c.jsonl", '{"email": "ann@example.com", "\\n": 1, " ": 2}\n')
    result = read_records(path, Contact)
    assert result.records == []
    (problem,) = result.problems
    assert [(p.field, p.reason) for p in problem.problems] == [
        ("'\\n'", "not a known field"), ("' '", "not a known field")
    ]


def test_leads_take_the_social_columns_and_a_bad_row_is_reported_once(tmp_path: Path) -> None:
    path = write(
        tmp_path, "l.csv",
        "email,twitter_username,twitter_followers,source,favorite_color\n"
        "lee@example.com,leeo,12,twitter_dm,blue\n"
        "max@example.com,maxo,-1,Bad Source,\n",
    )
    result = read_records(path, Lead)
    [(_, lee)] = result.records
    assert [(p.username, p.followers) for p in lee.social_profiles] == [("leeo", 12)]
    assert lee.custom_fields == {"favorite_color": "blue"}
    [bad] = result.problems
    assert bad.line == 3 and {p.field for p in bad.problems} == {"source", "twitter_followers"}


@pytest.mark.parametrize("text", ["", "email,company\n", "email,company\n\n , \n"])
def test_an_empty_file_says_so(tmp_path: Path, text: str) -> None:
    result = read_records(write(tmp_path, "c.csv", text), Contact)
    assert result.records == [] and result.problems == []
    [notice] = result.notices
    assert "nothing to import" in notice


def test_an_empty_jsonl_file_says_so(tmp_path: Path) -> None:
    result = read_records(write(tmp_path, "c.jsonl", "\n"), Contact)
    assert [n for n in result.notices if "empty" in n]


def test_a_row_spread_over_lines_is_numbered_by_its_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", 'email,notes\nann@example.com,"two\nlines"\n"not an email","three\nmore\nlines"\n'
                 "bob@example.com,x\n")
    result = read_records(path, Contact)
    assert [(line, c.email) for line, c in result.records] == [(2, "ann@example.com"), (7, "bob@example.com")]
    [problem] = result.problems
    assert (problem.line, problem.field) == (4, "email")


def test_a_row_with_more_cells_than_the_header_is_refused_not_shifted(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "email,firstName,company,notes\n"
                 "ann@example.com,Ann,Acme, Inc,hello\n"
                 "bob@example.com,Bob,Bobco,hi\n"
                 "cy@example.com,Cy,Cyco, Ltd,\n")  # shifted as much, though the cell past the header is empty
    result = read_records(path, Contact)
    [(line, bob)] = result.records
    assert (line, bob.company, bob.custom_fields) == (3, "Bobco", {"notes": "hi"})
    assert [(p.line, p.record, p.field, p.reason) for p in result.problems] == [
        (2, "ann@example.com", "(row)", "5 cells, the header has 4 (a comma inside a value needs quotes)"),
        (4, "cy@example.com", "(row)",
         "5 cells, the header has 4 (a comma inside a value needs quotes, or the empty ones at the end go)"),
    ]
    semicolons = write(tmp_path, "s.csv", "email;company\nann@example.com;Acme;Ltd\n")
    [problem] = read_records(semicolons, Contact).problems
    assert problem.reason == "3 cells, the header has 2 (a semicolon inside a value needs quotes)"


def test_a_value_under_a_column_without_a_name_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "email,,company\nann@example.com,lost?,Acme\nbob@example.com,,Bobco\n")
    result = read_records(path, Contact)
    assert [c.email for _, c in result.records] == ["bob@example.com"]
    [problem] = result.problems
    assert (problem.line, problem.record, problem.field) == (2, "ann@example.com", "column 2")
    assert problem.reason == "has a value but no name in the header; name the column, or empty its cells"


def test_columns_without_a_name_are_checked_on_short_rows_and_named_first_to_last(tmp_path: Path) -> None:
    # The header's unnamed columns are found once per file: a row shorter than the header has nothing under them,
    # and of two unnamed columns holding values the first is named.
    path = write(tmp_path, "c.csv", "email,, company,\nann@example.com\nbob@example.com,,Bobco,kept?\n"
                 "cy@example.com,a,Cyco,b\ndi@example.com,  ,Dico,\n")
    result = read_records(path, Contact)
    assert [c.email for _, c in result.records] == ["ann@example.com", "di@example.com"]
    assert [(p.line, p.field) for p in result.problems] == [(3, "column 4"), (4, "column 2")]


def test_a_custom_field_that_is_not_a_finite_number_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "c.jsonl", '{"email": "ann@example.com", "customFields": {"score": NaN, "reach": -Infinity, '
                 '"ratio": 1.5}}\n{"email": "bob@example.com", "customFields": {"ratio": 1e308}}\n')
    result = read_records(path, Contact)
    assert [c.custom_fields for _, c in result.records] == [{"ratio": 1e308}]
    [problem] = result.problems
    assert problem.line == 1
    assert [(p.field, p.reason) for p in problem.problems] == [
        ("custom.score", "must be a finite number"), ("custom.reach", "must be a finite number")
    ]


STORED_LEAD = Lead.model_validate({"email": "lee@example.com", "socialContext": {
    "platform": "twitter", "conversationId": "c-1", "sentiment": "positive", "engagementScore": 10}})


def built_lead(tmp_path: Path, line: str, *, blank_clears: bool = False) -> Lead:
    [row] = read_rows(write(tmp_path, "l.jsonl", line + "\n"), Lead).rows
    return build_record(Lead, row, STORED_LEAD, blank_clears=blank_clears).record


def test_a_jsonl_social_context_is_laid_over_the_stored_one_key_by_key(tmp_path: Path) -> None:
    score_only = built_lead(tmp_path, '{"email": "lee@example.com", "socialContext": {"engagementScore": 55}}')
    assert score_only.social_context == STORED_LEAD.social_context.model_copy(update={"engagement_score": 55})
    snake = built_lead(tmp_path, '{"email": "lee@example.com", "social_context": {"conversation_id": "c-2"}}')
    assert snake.social_context is not None and snake.social_context.conversation_id == "c-2"
    # a null is a blank: it clears only with --blank-clears, as an empty cell does
    null = '{"email": "lee@example.com", "socialContext": {"sentiment": null}}'
    assert built_lead(tmp_path, null).social_context == STORED_LEAD.social_context
    cleared = built_lead(tmp_path, null, blank_clears=True).social_context
    assert cleared is not None and (cleared.sentiment, cleared.conversation_id) == (None, "c-1")


def test_a_social_context_that_is_not_an_object_is_refused_not_emptied(tmp_path: Path) -> None:
    with pytest.raises(InvalidRecordError) as refused:
        built_lead(tmp_path, '{"email": "lee@example.com", "socialContext": "twitter"}')
    assert refused.value.fields == ["socialContext"]


def test_two_profiles_on_one_network_in_a_row_are_refused_not_one_dropped(tmp_path: Path) -> None:
    # The app keeps one profile per network (the CRMs' twitter_username and the file's twitter_* columns hold one).
    path = write(tmp_path, "c.jsonl", '{"email": "ann@example.com", "phone": "12", "socialProfiles": ['
                 '{"platform": "twitter", "username": "a1"}, {"platform": "instagram", "username": "a1"}, '
                 '{"platform": "twitter", "username": "a2", "followers": 5}]}\n')
    result = read_records(path, Contact)
    assert result.records == []
    [problem] = result.problems
    assert [p.field for p in problem.problems] == ["socialProfiles", "phone"]  # with the row's other problems
    assert problem.problems[0].reason == "2 twitter profiles (a1, a2); a person has one profile per network: keep one"


def test_a_phone_with_its_extension_comes_back_unchanged_from_an_export(tmp_path: Path) -> None:
    stored = Contact(email="ann@example.com", phone="(415) 555-0102 x123")
    assert stored.phone == "+14155550102 ext. 123"
    path = tmp_path / "people.csv"
    with spreadsheet_csv(path) as writer:  # as the People list's Export… writes it
        writer.writerows([["email", "phone"], [stored.email, inert_cell(stored.phone)]])
    [row] = read_rows(path, Contact).rows
    assert build_record(Contact, row, stored).record == stored
