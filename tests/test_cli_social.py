"""``crm-desktop social import|score|scoring`` and ``crm-desktop attribution report|lead`` on a real SQLite store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.app.record_files import WINDOWS_1252_READ
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli import ExitCode
from crm_desktop.domain.attribution import Touch
from crm_desktop.domain.models import Lead, SocialPlatform
from crm_desktop.domain.social import Conversion
from crm_desktop.store.people_store import PeopleQuery, PeopleStore
from tests.support.cli_runs import run, run_json, workspace_at

EVENTS = [
    {"platform": "twitter", "type": "click", "timestamp": "2026-11-10T10:00:00Z", "campaign": "Launch",
     "user": {"username": "@AnaB"}},
    {"conversationId": "tw-1", "platform": "twitter", "startedAt": "2026-11-17T10:00:00Z", "campaign": "Webinar",
     "participant": {"email": "ana@example.com", "username": "anab", "firstName": "Ana"}},
    {"conversationId": "tw-1", "messageId": "m-1", "direction": "inbound", "sentAt": "2026-11-17T10:05:00Z",
     "text": "Interested!", "sentiment": "positive"},
    {"platform": "linkedin", "type": "comment", "timestamp": "2026-11-24T10:00:00Z", "campaign": "Webinar",
     "user": {"email": "ana@example.com"}},
]


def social_counts(data_dir: Path) -> dict[str, int]:
    workspace = Workspace.open(data_dir)
    try:
        return workspace.social.store.counts()
    finally:
        workspace.close()


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path



def social_imported(tmp_path: Path, name: str, content: str | bytes,
                    capsys: pytest.CaptureFixture[str]) -> tuple[Path, int, Any]:
    """``social import`` of a file ``name`` holding ``content`` (text as UTF-8) into a new data folder: the folder,
    the exit code and the ``--json`` report."""
    data, path = tmp_path / "D", tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    code, report = run_json(data, ["social", "import", str(path)], capsys)
    return data, code, report


def touches_of(data: Path, email: str) -> list[Touch]:
    """The touchpoints the store in ``data`` holds for ``email``."""
    workspace = Workspace.open(data)
    try:
        return workspace.social.store.touches(email)
    finally:
        workspace.close()

def test_social_import_records_valid_rows_and_refuses_bad_ones_by_line_field_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "D"
    bad_engagement = {"platform": "myspace", "type": "like", "timestamp": "next tuesday", "user": {}}
    path = write_jsonl(tmp_path / "feed.jsonl", [*EVENTS, bad_engagement, "{oops"])

    code, report = run_json(data, ["social", "import", str(path)], capsys)

    assert code == ExitCode.PARTIAL
    assert (report["created"], report["updated"], report["unchanged"]) == (4, 0, 0)
    assert report["byKind"] == {"conversations": 1, "messages": 1, "engagements": 2}
    assert [(r["line"], r["field"]) for r in report["refused"]] == [
        (5, "platform"), (5, "timestamp"), (5, "user"), (6, "(row)")
    ]
    assert "'next tuesday' is not a date and time" in report["refused"][1]["reason"]
    assert social_counts(data)["touchpoints"] == 3

    code, out, _ = run(data, ["social", "import", str(path)], capsys)
    assert code == ExitCode.PARTIAL
    assert "line     5  refused  (unnamed)  user: give the person's email or username" in out
    assert "0 created, 0 updated, 4 unchanged, 2 rows refused" in out


def test_social_import_says_one_of_a_kind_in_the_singular(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Said "1 earlier touchpoints joined" and "(1 conversations, 1 messages, ...)"."""
    code, out, _ = run(tmp_path / "D", ["social", "import", str(write_jsonl(tmp_path / "feed.jsonl", EVENTS))], capsys)
    assert code == ExitCode.OK
    assert "recorded social events (1 conversation, 1 message, 2 engagements): 4 created" in out
    later = write_jsonl(tmp_path / "later.jsonl", [
        {"platform": "instagram", "type": "share", "timestamp": "2026-11-20T10:00:00Z", "user": {"username": "bo"}},
        {"platform": "instagram", "type": "like", "timestamp": "2026-11-21T10:00:00Z",
         "user": {"username": "bo", "email": "bo@example.com"}},
    ])
    code, out, _ = run(tmp_path / "D", ["social", "import", str(later)], capsys)
    assert code == ExitCode.OK
    assert "1 earlier touchpoint joined the person their username belongs to" in out


def test_a_refused_file_leaves_the_store_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "D"
    run(data, ["social", "import", str(write_jsonl(tmp_path / "ok.jsonl", EVENTS))], capsys)
    before = social_counts(data)

    only_bad = write_jsonl(tmp_path / "bad.jsonl", [{**EVENTS[2], "direction": "sideways"}])
    code, report = run_json(data, ["social", "import", str(only_bad), "--kind", "messages"], capsys)
    assert code == ExitCode.PARTIAL
    assert [(r["line"], r["field"]) for r in report["refused"]] == [(1, "direction")]

    wrong = tmp_path / "feed.xlsx"
    wrong.write_text("x", encoding="utf-8")
    code, _, err = run(data, ["social", "import", str(wrong)], capsys)
    assert code == ExitCode.USAGE and ".jsonl or .csv" in err
    code, _, err = run(data, ["social", "import", str(tmp_path / "missing.jsonl")], capsys)
    assert code == ExitCode.USAGE and "no such file" in err

    assert social_counts(data) == before


def test_social_import_reads_flat_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "D"
    path = tmp_path / "engagements.csv"
    path.write_text(
        "platform,type,timestamp,campaign,username,email\n"
        "instagram,share,2026-11-20T10:00:00Z,Launch,bo_builds,\n"
        "instagram,like,2026-11-21T10:00:00Z,,bo_builds,bo@example.com\n"
        "instagram,poke,2026-11-21T10:00:00Z,,bo_builds,\n",
        encoding="utf-8",
    )

    code, report = run_json(data, ["social", "import", str(path), "--kind", "engagements"], capsys)

    assert code == ExitCode.PARTIAL
    assert report["created"] == 2 and report["linkedTouchpoints"] == 1
    assert report["conversationsSentAgainTo"] == 0, "no integration here to send conversations to"
    assert [(r["line"], r["field"]) for r in report["refused"]] == [(4, "type")]
    code, score = run_json(data, ["social", "score", "--email", "bo@example.com"], capsys)
    assert code == ExitCode.OK and score["interactions"] == 2


def test_social_import_reads_a_csvs_zoneless_times_in_the_local_zone(
    berlin: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A spreadsheet export: times as the marketer sees them, in Berlin (UTC+1 in November), with no zone.
    data, code, report = social_imported(tmp_path, "engagements.csv", (
        "platform;type;timestamp;email;campaign;postId\n"
        "twitter;click;2026-11-20 09:00;ann@example.com;spring;p1\n"
        "twitter;like;2026-11-21;ann@example.com;spring;p2\n"
        "twitter;share;2026-11-22T09:00:00Z;ann@example.com;spring;p3\n"
        "twitter;comment;20/11/2026;ann@example.com;spring;p4\n"
    ), capsys)

    # The first two rows were refused before: "needs a time zone, e.g. 2026-11-27T10:00:00Z".
    assert code == ExitCode.PARTIAL
    assert report["created"] == 3
    assert [(r["line"], r["record"], r["field"], r["reason"]) for r in report["refused"]] == [
        (5, "ann@example.com", "timestamp", "'20/11/2026' is not a date and time (YYYY-MM-DD hh:mm, a zone optional)")]
    touches = touches_of(data, "ann@example.com")
    assert [(t.type.value, t.timestamp) for t in touches] == [
        ("click", datetime(2026, 11, 20, 8, tzinfo=UTC)),    # 09:00 in Berlin
        ("like", datetime(2026, 11, 20, 23, tzinfo=UTC)),    # local midnight of 21 November
        ("share", datetime(2026, 11, 22, 9, tzinfo=UTC)),    # its zone kept
    ]


def test_social_import_reads_a_social_tools_export_its_column_titles_and_network_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Columns titled as exports title them, and the networks as they are written there: every row was refused
    # before ("Post ID: not a known field", "platform: must be 'twitter', ...").
    data, code, report = social_imported(tmp_path, "export.csv", (
        "Platform,Type,Timestamp,Post ID,Campaign,Email,Username\n"
        "Twitter,Like,2026-11-20T09:00:00Z,p1,Black Friday,ana@example.com,@anab\n"
        "X,Share,2026-11-20T10:00:00Z,p1,Black Friday,,@anab\n"
        "twitter.com,Comment,2026-11-21T08:00:00Z,p2,Black Friday,,anab\n"
        "LinkedIn,Click,2026-11-21T09:00:00Z,p3,Black Friday,ana@example.com,\n"
        "Myspace,Like,2026-11-21T09:00:00Z,p4,Black Friday,ana@example.com,\n"
    ), capsys)

    assert code == ExitCode.PARTIAL
    assert report["created"] == 4
    assert [(r["line"], r["field"]) for r in report["refused"]] == [(6, "Platform")]
    touches = touches_of(data, "ana@example.com")
    assert [(t.platform.value, t.type.value, t.campaign) for t in touches] == [
        ("twitter", "like", "Black Friday"), ("twitter", "share", "Black Friday"),
        ("twitter", "comment", "Black Friday"), ("linkedin", "click", "Black Friday")]


def test_social_import_reads_engagement_types_as_social_tools_write_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every row but the last was refused before: "type: must be 'post_view', 'view', ...".
    kinds = ["Retweet", "REPOST", "quote", "Reply", "Reaction", "Favorite", "heart", "DM", "Direct message", "Poke"]
    data, code, report = social_imported(tmp_path, "export.csv", (
        "platform,type,timestamp,postId,email\n" + "".join(
        f"twitter,{kind},2026-11-20T{9 + i:02d}:00:00Z,p{i},ana@example.com\n" for i, kind in enumerate(kinds))
    ), capsys)

    assert code == ExitCode.PARTIAL
    assert report["created"] == 9
    assert [(r["line"], r["field"]) for r in report["refused"]] == [(11, "type")]
    touches = touches_of(data, "ana@example.com")
    assert [t.type.value for t in touches] == [
        "share", "share", "share", "comment", "like", "like", "like", "dm", "dm"]


def test_social_import_leaves_out_columns_no_event_has_and_names_them_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A Sprout Social style export: every row was refused before ("Impressions: not a known field", ...).
    data, code, report = social_imported(tmp_path, "sprout.csv", (
        "Platform,Type,Timestamp,Impressions,Post ID,Reach,Email,Sentiment Score\n"
        "twitter,like,2026-11-20T09:00:00Z,1200,p1,900,ana@example.com,0.8\n"
        "twitter,share,2026-11-20T10:00:00Z,800,p2,700,ana@example.com,0.4\n"
        "twitter,poke,2026-11-20T11:00:00Z,500,p3,400,ana@example.com,0.1\n"
    ), capsys)

    assert code == ExitCode.PARTIAL, "the row with its own bad value is refused"
    assert report["created"] == 2
    assert [(r["line"], r["field"]) for r in report["refused"]] == [(4, "Type")]
    assert report["columnsNotUsed"] == ["Impressions", "Reach", "Sentiment Score"]
    code, out, _ = run(data, ["social", "import", str(tmp_path / "sprout.csv")], capsys)
    assert out.count("columns not used: Impressions, Reach, Sentiment Score") == 1
    assert "0 created, 0 updated, 2 unchanged, 1 row refused" in out


def test_social_import_reads_excels_windows_1252_csv_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Excel's "CSV (Comma delimited)" on Windows: it was refused whole ("line 2 is not UTF-8 text").
    data, code, report = social_imported(tmp_path, "excel.csv", (
        "conversationId,platform,startedAt,campaign,email,firstName\n"
        "fb-1,facebook,2026-11-20T08:00:00Z,Caf\u00e9 \u2013 Fr\u00fchling,zoe@example.com,Zo\u00eb\n"
        .encode("cp1252")
    ), capsys)

    assert code == ExitCode.OK
    assert report["created"] == 1 and report["refused"] == []
    assert report["notices"] == [f"excel.csv: {WINDOWS_1252_READ}"]
    workspace = Workspace.open(data)
    try:
        stored = workspace.social.conversation(SocialPlatform.FACEBOOK, "fb-1")
    finally:
        workspace.close()
    assert stored is not None and stored.campaign == "Caf\u00e9 \u2013 Fr\u00fchling"
    code, out, _ = run(data, ["social", "import", str(tmp_path / "excel.csv")], capsys)
    assert code == ExitCode.OK and out.count(f"warning: excel.csv: {WINDOWS_1252_READ}") == 1
    assert "0 created, 0 updated, 1 unchanged" in out


def test_social_import_reads_a_spreadsheets_date_serial_in_the_local_zone_and_epoch_milliseconds(
    berlin: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A sheet saved with its dates as numbers: 46346.375 is 20 November 2026 09:00 on the sheet's clock. It was
    # read as Unix seconds before: 1 January 1970, an engagement that counted for nothing.
    data, code, report = social_imported(tmp_path, "engagements.csv", (
        "platform;type;timestamp;email;postId\n"
        "linkedin;click;46346.375;ann@example.com;p1\n"
        "linkedin;like;46347;ann@example.com;p2\n"
        "linkedin;share;1795078800000;ann@example.com;p3\n"
    ), capsys)

    assert code == ExitCode.OK and report["created"] == 3
    touches = touches_of(data, "ann@example.com")
    assert [(t.type.value, t.timestamp) for t in touches] == [
        ("share", datetime(2026, 11, 19, 9, tzinfo=UTC)),    # Unix milliseconds, in UTC
        ("click", datetime(2026, 11, 20, 8, tzinfo=UTC)),    # 09:00 in Berlin
        ("like", datetime(2026, 11, 20, 23, tzinfo=UTC)),    # local midnight of 21 November
    ]


def test_social_import_reads_a_profile_link_given_as_the_username(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A link kept as the username made a person of its own, never joined to the same username written plainly.
    data, code, report = social_imported(tmp_path, "engagements.csv", (
        "platform,type,timestamp,postId,username,email\n"
        "instagram,like,2026-11-20T09:00:00Z,p1,https://www.instagram.com/dana_x/,\n"
        "instagram,comment,2026-11-20T10:00:00Z,p1,dana_x,dana@example.com\n"
        "instagram,like,2026-11-20T11:00:00Z,p2,https://www.instagram.com/p/Cxyz/,\n"
    ), capsys)

    assert code == ExitCode.PARTIAL
    assert report["created"] == 2 and report["linkedTouchpoints"] == 1
    assert [(r["line"], r["field"], r["reason"]) for r in report["refused"]] == [
        (4, "username", "'https://www.instagram.com/p/Cxyz/' is a link that shows no Instagram username: "
                        "give the username")]
    code, score = run_json(data, ["social", "score", "--email", "dana@example.com"], capsys)
    assert code == ExitCode.OK and score["interactions"] == 2


def test_social_import_reads_a_jsonl_files_zoneless_times_in_the_local_zone(
    berlin: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "D"
    path = write_jsonl(tmp_path / "feed.jsonl", [
        {"conversationId": "tw-7", "platform": "twitter", "startedAt": "2026-07-01T10:00",
         "participant": {"email": "ana@example.com"}},
        {"conversationId": "tw-7", "messageId": "m-1", "direction": "inbound", "sent_at": "2026-07-01 10:05",
         "text": "Hi"},
        {"conversationId": "tw-7", "messageId": "m-2", "direction": "outbound", "sentAt": "01.07.2026 10:06",
         "text": "Hello"},
    ])

    code, report = run_json(data, ["social", "import", str(path)], capsys)

    assert code == ExitCode.PARTIAL
    assert report["byKind"] == {"conversations": 1, "messages": 1, "engagements": 0}
    assert [(r["line"], r["record"], r["field"], r["reason"]) for r in report["refused"]] == [
        (3, "m-2", "sentAt", "'01.07.2026 10:06' is not a date and time (YYYY-MM-DD hh:mm, a zone optional)")]
    workspace = Workspace.open(data)
    try:
        conversation = workspace.social.conversation(SocialPlatform.TWITTER, "tw-7")
    finally:
        workspace.close()
    assert conversation is not None
    # Berlin is UTC+2 in July; the refused outbound message was not counted.
    assert conversation.started_at == datetime(2026, 7, 1, 8, tzinfo=UTC)
    assert conversation.last_message_at == datetime(2026, 7, 1, 8, 5, tzinfo=UTC)
    assert (conversation.messages_in, conversation.messages_out) == (1, 0)


def test_scoring_settings_are_shown_changed_and_refused_with_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "D"
    code, shown = run_json(data, ["social", "scoring"], capsys)
    assert code == ExitCode.OK and shown["weights"]["like"] == 2.0 and shown["halfLifeDays"] == 30.0

    code, changed = run_json(data, ["social", "scoring", "--weight", "like=4", "--half-life-days", "14"], capsys)
    assert code == ExitCode.OK and (changed["weights"]["like"], changed["halfLifeDays"]) == (4.0, 14.0)
    assert changed.pop("rescored") == 0, "a change recomputes the stored scores (nobody has any activity here)"
    assert run_json(data, ["social", "scoring"], capsys)[1] == changed

    code, _, err = run(data, ["social", "scoring", "--weight", "retweet=3"], capsys)
    assert code == ExitCode.USAGE and "weights: unknown interaction retweet" in err
    code, _, err = run(data, ["social", "scoring", "--half-life-days", "0"], capsys)
    assert code == ExitCode.USAGE and "halfLifeDays" in err
    # Every weight at 0 would score everyone 0: refused, naming the field, nothing saved.
    every_kind_at_zero = [arg for kind in shown["weights"] for arg in ("--weight", f"{kind}=0")]
    code, _, err = run(data, ["social", "scoring", *every_kind_at_zero], capsys)
    assert code == ExitCode.USAGE and "weights: every interaction weighs 0 points" in err
    assert run_json(data, ["social", "scoring"], capsys)[1] == changed

    code, reset = run_json(data, ["social", "scoring", "--reset"], capsys)
    assert reset.pop("rescored") == 0 and reset == shown


def contact_score(data_dir: Path, email: str) -> float | None:
    workspace = Workspace.open(data_dir)
    try:
        [line] = PeopleStore(workspace.database).page(PeopleQuery(text=email), None, 5)
        return line.score
    finally:
        workspace.close()


def test_a_scoring_change_and_rescore_bring_the_stored_scores_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "D"
    events = write_jsonl(tmp_path / "events.jsonl", EVENTS)
    assert run_json(data, ["social", "import", str(events)], capsys)[0] == ExitCode.OK
    first = contact_score(data, "ana@example.com")
    assert first is not None and first > 0

    code, out, _ = run(data, ["social", "scoring", "--weight", "comment=40"], capsys)
    assert code == ExitCode.OK and "scores recomputed with these settings for 1 person" in out
    raised = contact_score(data, "ana@example.com")
    code, score = run_json(data, ["social", "score", "--email", "ana@example.com"], capsys)
    assert raised is not None and raised > first and raised == score["score"], "the People list shows it at once"

    code, out, _ = run(data, ["social", "rescore"], capsys)
    assert (code, out.strip()) == (ExitCode.OK, "engagement scores recomputed for 1 person")
    assert run_json(data, ["social", "rescore"], capsys) == (ExitCode.OK, {"rescored": 1})


def test_attribution_report_and_lead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "D"
    run(data, ["social", "import", str(write_jsonl(tmp_path / "feed.jsonl", EVENTS))], capsys)
    workspace = Workspace.open(data)
    try:
        lead_id = workspace.leads.save(Lead(email="ana@example.com")).id
        workspace.social.record_conversion(
            Conversion(email="ana@example.com", timestamp="2026-11-25T00:00:00Z", value=300, currency="USD")
        )
    finally:
        workspace.close()

    # Ana's touches before her conversion: click (Launch, twitter), dm (Webinar, twitter), comment (Webinar,
    # linkedin). Position based: 0.4 / 0.2 / 0.4.
    code, report = run_json(data, ["attribution", "report", "--model", "position_based"], capsys)
    assert code == ExitCode.OK
    assert report["conversions"] == 1 and report["value"] == {"USD": 300.0}
    assert all("name" in row for row in report["byCampaign"]), "the no-campaign row says name: null"
    by_campaign = {row["name"]: row for row in report["byCampaign"]}
    assert by_campaign["Webinar"] == {"name": "Webinar", "touchpoints": 2, "leads": 1, "conversionsCredited": 0.6,
                                      "valueCredited": {"USD": 180.0}}
    assert by_campaign["Launch"]["conversionsCredited"] == 0.4
    by_platform = {row["name"]: row for row in report["byPlatform"]}
    assert (by_platform["twitter"]["conversionsCredited"], by_platform["linkedin"]["valueCredited"]) == (
        0.6, {"USD": 120.0}
    )

    code, only = run_json(data, ["attribution", "report", "--campaign", "Launch", "--since", "2026-11-01"], capsys)
    assert [row["name"] for row in only["byCampaign"]] == ["Launch"]
    assert only["byCampaign"][0]["conversionsCredited"] == pytest.approx(1 / 3, abs=1e-4)  # linear by default
    code, out, _ = run(data, ["attribution", "report", "--campaign", "Launch", "--since", "2026-11-01"], capsys)
    assert code == ExitCode.OK
    assert out.splitlines()[0] == (  # the totals are every campaign's, and said so
        "attribution report (model linear, since 2026-11-01 00:00 UTC): campaign Launch credited 0.33 conversions, "
        "value 100.00 USD, of 1 conversion (0 without touchpoints), value 300.00 USD in all campaigns"), out
    # The text names the networks as the window does; --json keeps the wire's values (above).
    code, out, _ = run(data, ["attribution", "report", "--model", "position_based"], capsys)
    assert "Twitter/X" in out and "LinkedIn" in out and "twitter" not in out, out
    code, later = run_json(data, ["attribution", "report", "--since", "2026-11-15"], capsys)
    assert sum(row["touchpoints"] for row in later["byCampaign"]) == 2
    # A closed period: the touchpoints before --until, and no conversion (Ana's is on the 25th, after it).
    code, before = run_json(data, ["attribution", "report", "--since", "2026-11-01", "--until", "2026-11-24"],
                            capsys)
    assert code == ExitCode.OK and before["conversions"] == 0 and before["until"] == "2026-11-24T00:00:00Z"
    assert sum(row["touchpoints"] for row in before["byCampaign"]) == 2
    code, out, _ = run(data, ["attribution", "report", "--until", "2026-11-24"], capsys)
    assert out.startswith("attribution report (model linear, until 2026-11-24 00:00 UTC (not included)): 0 "), out
    code, _, err = run(data, ["attribution", "report", "--since", "2026-11-24", "--until", "2026-11-01"], capsys)
    assert code == ExitCode.USAGE and "--until 2026-11-01 must be after --since 2026-11-24" in err
    code, _, err = run(data, ["attribution", "report", "--until", "soon"], capsys)
    assert code == ExitCode.USAGE and "--until soon: not a date" in err

    code, credits = run_json(data, ["attribution", "lead", str(lead_id), "--model", "first_touch"], capsys)
    assert code == ExitCode.OK
    assert credits["leadId"] == lead_id and credits["convertedAt"] == "2026-11-25T00:00:00Z"
    assert [(t["type"], t["credit"]) for t in credits["touchpoints"]] == [("click", 1.0), ("dm", 0.0),
                                                                         ("comment", 0.0)]
    code, out, _ = run(data, ["attribution", "lead", "ana@example.com", "--model", "linear"], capsys)
    assert code == ExitCode.OK and "0.3333" in out and "Twitter/X" in out and "twitter" not in out, out
    # Converted again: each conversion's credits on their own, as the report counts them.
    with workspace_at(data) as workspace:
        workspace.social.record_conversion(Conversion(email="ana@example.com", timestamp="2026-11-26T00:00:00Z"))
    code, out, _ = run(data, ["attribution", "lead", "ana@example.com", "--model", "first_touch"], capsys)
    assert code == ExitCode.OK and "converted 2 times, model first_touch" in out.splitlines()[0], out
    assert "conversion 1: 2026-11-25 00:00 UTC" in out and "conversion 2: 2026-11-26 00:00 UTC" in out, out
    code, credits = run_json(data, ["attribution", "lead", str(lead_id), "--model", "first_touch"], capsys)
    assert [sum(t["credit"] for t in c["touchpoints"]) for c in credits["conversions"]] == [1.0, 1.0]
    assert credits["touchpoints"][0]["credit"] == 2.0 and credits["convertedAt"] == "2026-11-25T00:00:00Z"

    code, _, err = run(data, ["attribution", "lead", "404", "--model", "linear"], capsys)
    assert code == ExitCode.USAGE and "no lead 404" in err
    # Digits that are not 0-9 ('²') name no lead: no traceback of int().
    code, _, err = run(data, ["attribution", "lead", "\u00b2", "--model", "linear"], capsys)
    assert code == ExitCode.USAGE and "no lead '\u00b2'" in err
    code, _, err = run(data, ["attribution", "report", "--since", "last week"], capsys)
    assert code == ExitCode.USAGE and "--since last week: not a date" in err
    code, _, err = run(data, ["attribution", "report", "--since", "0001-01-01T00:00:00+01:00"], capsys)
    assert code == ExitCode.USAGE and "out of range once in UTC" in err, err


def test_a_refused_event_is_named_by_its_persons_email_in_plain_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "feed.jsonl", [
        {"platform": "twitter", "type": "like", "timestamp": "2026-11-20T10:00:00Z",
         "user": {"email": "ana@example.com", "followers": 5}}])
    code, report = run_json(tmp_path / "D", ["social", "import", str(path)], capsys)
    # It said "(unnamed)" and pydantic's "Extra inputs are not permitted".
    assert code == ExitCode.PARTIAL
    assert [(r["record"], r["field"], r["reason"]) for r in report["refused"]] == [
        ("ana@example.com", "user.followers", "not a known field")]


@pytest.mark.parametrize("platform", ["Twitter", "TWITTER", "twitter"])
def test_social_score_reads_the_platform_in_any_case_as_files_do(
    platform: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "D"
    run(data, ["social", "import", str(write_jsonl(tmp_path / "feed.jsonl", EVENTS))], capsys)

    # It refused "Twitter" (argparse's choices), though README says platforms are read in any case.
    code, score = run_json(data, ["social", "score", "--platform", platform, "--username", "AnaB"], capsys)

    assert code == ExitCode.OK
    assert score["person"]["platform"] == "twitter" and score["interactions"] > 0


def test_a_platform_or_model_no_spelling_reads_is_refused_naming_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "D"

    def refused(argv: list[str]) -> str:
        with pytest.raises(SystemExit) as usage:
            run(data, argv, capsys)
        assert usage.value.code == ExitCode.USAGE
        return capsys.readouterr().err

    err = refused(["social", "score", "--platform", "Myspace", "--username", "x"])
    assert "argument --platform: 'Myspace' is not one of twitter, instagram, linkedin" in err, err
    err = refused(["attribution", "report", "--model", "half-and-half"])
    assert ("argument --model: 'half-and-half' is not one of first_touch, last_touch, linear, time_decay, "
            "position_based") in err, err
    assert "is not one of twitter" in refused(["leads", "list", "--platform", "Myspace"])


@pytest.mark.parametrize("model", ["Time Decay", "time-decay", "TIME_DECAY", "time_decay"])
def test_attribution_reads_the_model_in_any_case_with_spaces_or_hyphens(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "D"
    run(data, ["social", "import", str(write_jsonl(tmp_path / "feed.jsonl", EVENTS))], capsys)
    with workspace_at(data) as workspace:
        workspace.leads.save(Lead(email="ana@example.com"))

    code, report = run_json(data, ["attribution", "report", "--model", model], capsys)
    assert code == ExitCode.OK and report["model"] == "time_decay"
    code, credits = run_json(data, ["attribution", "lead", "ana@example.com", "--model", model], capsys)
    assert code == ExitCode.OK and credits["model"] == "time_decay"


def test_leads_list_reads_the_platform_in_any_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "D"
    code, listing = run_json(data, ["leads", "list", "--platform", "LinkedIn"], capsys)
    assert code == ExitCode.OK and listing["total"] == 0


def test_the_score_of_someone_the_store_never_saw_is_not_found_not_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "D"
    run(data, ["social", "import", str(write_jsonl(tmp_path / "feed.jsonl", EVENTS))], capsys)

    # It printed "engagement score of nobody@example.com: 0.0" and exit 0.
    code, out, err = run(data, ["social", "score", "--email", "nobody@example.com"], capsys)
    assert code == ExitCode.USAGE and out == ""
    assert "no person with the email nobody@example.com in the local store" in err, err
    code, out = run_json(data, ["social", "score", "--email", "Nobody@Example.com"], capsys)
    assert code == ExitCode.USAGE and out["error"]["code"] == "not_found"
    code, _, err = run(data, ["social", "score", "--platform", "twitter", "--username", "nobody"], capsys)
    assert code == ExitCode.USAGE and "no social activity of twitter user 'nobody'" in err, err

    # Someone known, by an event or as a lead with no activity yet, still has a score.
    code, score = run_json(data, ["social", "score", "--email", "ana@example.com"], capsys)
    assert code == ExitCode.OK and score["score"] > 0
    with workspace_at(data) as workspace:
        workspace.leads.save(Lead(email="quiet@example.com"))
    code, score = run_json(data, ["social", "score", "--email", "quiet@example.com"], capsys)
    assert code == ExitCode.OK and score["score"] == 0.0


def test_attribution_report_finds_a_campaign_written_in_another_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "D"
    run(data, ["social", "import", str(write_jsonl(tmp_path / "feed.jsonl", EVENTS))], capsys)
    with workspace_at(data) as workspace:
        workspace.social.record_conversion(
            Conversion(email="ana@example.com", timestamp="2026-11-25T00:00:00Z", value=300, currency="USD"))

    # It said "campaign webinar credited nothing": the campaign is stored as "Webinar".
    code, out, _ = run(data, ["attribution", "report", "--campaign", "webinar"], capsys)
    assert code == ExitCode.OK
    assert out.splitlines()[0].startswith(
        "attribution report (model linear): campaign Webinar credited 0.67 conversions, value 200.00 USD"), out
    code, report = run_json(data, ["attribution", "report", "--campaign", "WEBINAR"], capsys)
    assert report["campaign"] == "Webinar" and [row["name"] for row in report["byCampaign"]] == ["Webinar"]
    assert report["unknownCampaign"] is False

    code, out, err = run(data, ["attribution", "report", "--campaign", "Webinar 2026"], capsys)
    assert code == ExitCode.USAGE and out == ""
    assert "no campaign 'Webinar 2026' in the local store; the closest: 'Webinar'" in err, err
    code, failed = run_json(data, ["attribution", "report", "--campaign", "Nothing Like It"], capsys)
    assert code == ExitCode.USAGE and failed["error"]["code"] == "not_found"
    assert "no campaign 'Nothing Like It'" in failed["error"]["message"]


def test_a_campaign_two_stored_names_match_ignoring_case_is_not_guessed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "D"
    events = [{**EVENTS[0], "campaign": "Launch"}, {**EVENTS[3], "campaign": "LAUNCH"}]
    run(data, ["social", "import", str(write_jsonl(tmp_path / "feed.jsonl", events))], capsys)

    code, _, err = run(data, ["attribution", "report", "--campaign", "launch"], capsys)
    assert code == ExitCode.USAGE
    assert "no campaign 'launch' in the local store; the closest: 'LAUNCH', 'Launch'" in err, err
    code, report = run_json(data, ["attribution", "report", "--campaign", "LAUNCH"], capsys)
    assert code == ExitCode.OK and [row["name"] for row in report["byCampaign"]] == ["LAUNCH"]
