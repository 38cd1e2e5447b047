"""The social data service: scores written to leads, attribution of a lead and its conversion, the report."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.app.people import write_report_csv
from crm_desktop.app.record_files import WINDOWS_1252_READ
from crm_desktop.app.social import SocialService
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import Lead, SocialPlatform
from crm_desktop.domain.social import (
    AttributionModel,
    ConversationEvent,
    Conversion,
    EngagementEvent,
    Message,
    PersonRef,
    ScoringSettings,
)
from crm_desktop.store.database import Database, sqlite_url
from crm_desktop.store.repositories import LeadStore, NotFoundError

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(sqlite_url(tmp_path / "crm.db"))
    database.migrate()
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def service(database: Database) -> SocialService:
    return SocialService(database, clock=lambda: NOW)


def engagement(kind: str, when: str, campaign: str | None = None, **user: Any) -> EngagementEvent:
    body = {"platform": "tiktok", "type": kind, "timestamp": when, "user": user}
    if campaign:
        body["campaign"] = campaign
    return EngagementEvent.model_validate(body)


def test_an_event_rescores_the_lead_it_belongs_to(service: SocialService, database: Database) -> None:
    leads = LeadStore(database)
    leads.save(Lead(email="lia@example.com"))
    service.record_engagement(engagement("dm", "2026-12-01T00:00:00Z", username="lia"))
    assert leads.find("lia@example.com").social_context is None  # type: ignore[union-attr]

    # The email arrives with the next event: the earlier dm joins Lia, and her lead gets the score of both.
    service.record_engagement(engagement("share", "2026-11-01T00:00:00Z", username="lia", email="lia@example.com"))

    # dm now: 10; share 30 days ago: 8 * 0.5 = 4; activity 14; 1 - 2^(-0.7) = 0.384428; * 0.8 = 30.75 -> 30.8
    lead = leads.find("lia@example.com")
    assert lead is not None and lead.social_context is not None
    assert lead.social_context.engagement_score == 30.8
    assert service.engagement_score(PersonRef(platform="tiktok", username="LIA")).score == 30.8
    with pytest.raises(NotFoundError):
        service.engagement_score(PersonRef(platform="tiktok", username="nobody"))


def test_the_workspace_weights_change_the_score(service: SocialService) -> None:
    service.record_engagement(engagement("like", "2026-12-01T00:00:00Z", email="max@example.com"))
    before = service.engagement_score(PersonRef(email="max@example.com")).score
    service.set_scoring_settings(ScoringSettings(weights={"like": 20}))

    # like now: 20 points; 1 - 2^(-1) = 0.5; * 0.8 = 40
    assert (before, service.engagement_score(PersonRef(email="max@example.com")).score) == (5.4, 40.0)
    assert service.scoring_settings().weights["like"] == 20.0


def test_a_converted_lead_is_credited_for_the_touches_before_its_conversion(
    service: SocialService, database: Database
) -> None:
    lead_id = LeadStore(database).save(Lead(email="noa@example.com")).id
    for kind, when, campaign in [
        ("click", "2026-11-10T00:00:00Z", "Launch"),
        ("comment", "2026-11-17T00:00:00Z", "Webinar"),
        ("like", "2026-11-28T00:00:00Z", "Launch"),  # after the conversion: no credit
    ]:
        service.record_engagement(engagement(kind, when, campaign, email="noa@example.com"))
    service.record_conversion(Conversion(email="noa@example.com", timestamp="2026-11-24T00:00:00Z"))

    decayed = service.attribution(lead_id, AttributionModel.TIME_DECAY)

    # ages back from the conversion: 14 and 7 days; weights 0.25 and 0.5 of 0.75
    assert decayed.converted_at == decayed.reference == datetime(2026, 11, 24, tzinfo=UTC)
    assert [(t.type.value, t.campaign) for t in decayed.touchpoints] == [("click", "Launch"), ("comment", "Webinar")]
    assert [t.credit for t in decayed.touchpoints] == pytest.approx([1 / 3, 2 / 3])
    assert service.attribution("NOA@example.com", AttributionModel.LAST_TOUCH).to_wire()["touchpoints"][-1] == {
        "timestamp": "2026-11-17T00:00:00Z", "platform": "tiktok", "type": "comment", "campaign": "Webinar",
        "credit": 1.0,
    }


def test_a_lead_converted_twice_is_credited_per_conversion_as_the_report_credits_it(
    service: SocialService, database: Database
) -> None:
    leads = LeadStore(database)
    twice = leads.save(Lead(email="uma@example.com")).id
    once = leads.save(Lead(email="ivo@example.com")).id
    for email, kind, when, campaign in [
        ("uma@example.com", "click", "2026-11-01T00:00:00Z", "Launch"),
        ("uma@example.com", "comment", "2026-11-05T00:00:00Z", "Webinar"),
        # Uma converts on Nov 10, then is reached again
        ("uma@example.com", "like", "2026-11-15T00:00:00Z", "Retarget"),
        ("uma@example.com", "share", "2026-11-20T00:00:00Z", "Retarget"),
        # Uma converts again on Nov 25
        ("uma@example.com", "like", "2026-11-28T00:00:00Z", "Launch"),  # after both: no credit
        ("ivo@example.com", "click", "2026-11-12T00:00:00Z", "Launch"),
        ("ivo@example.com", "share", "2026-11-18T00:00:00Z", "Retarget"),
    ]:
        service.record_engagement(engagement(kind, when, campaign, email=email))
    service.record_conversions([
        Conversion(email="uma@example.com", timestamp="2026-11-10T00:00:00Z", value=100, currency="EUR"),
        Conversion(email="uma@example.com", timestamp="2026-11-25T00:00:00Z", value=300, currency="EUR"),
        Conversion(email="ivo@example.com", timestamp="2026-11-19T00:00:00Z"),
    ])

    for model in AttributionModel:
        credited: dict[str | None, float] = {}
        for lead in (twice, once):
            for touch in service.attribution(lead, model).touchpoints:
                credited[touch.campaign] = credited.get(touch.campaign, 0.0) + touch.credit
        report = {row.name: row.conversions_credited for row in service.attribution_report(model).by_campaign}
        # the report rounds its credits to 4 places
        assert credited == pytest.approx({name: report[name] for name in credited}, abs=1e-4), model
        assert sum(report.values()) == pytest.approx(3.0) and sum(credited.values()) == pytest.approx(3.0), model

    # Each conversion shares 1 among the touchpoints before it, and says so on its own.
    first, second = service.attribution(twice, AttributionModel.FIRST_TOUCH).conversions
    assert (first.timestamp, first.value, first.currency) == (datetime(2026, 11, 10, tzinfo=UTC), 100, "EUR")
    assert [(t.campaign, t.credit) for t in first.touchpoints] == [("Launch", 1.0), ("Webinar", 0.0)]
    assert second.timestamp == datetime(2026, 11, 25, tzinfo=UTC)
    assert [(t.campaign, t.credit) for t in second.touchpoints] == [
        ("Launch", 1.0), ("Webinar", 0.0), ("Retarget", 0.0), ("Retarget", 0.0)]
    lead = service.attribution(twice, AttributionModel.LAST_TOUCH)
    assert [(t.campaign, t.credit) for t in lead.touchpoints] == [
        ("Launch", 0.0), ("Webinar", 1.0), ("Retarget", 0.0), ("Retarget", 1.0)]
    assert lead.converted_at == datetime(2026, 11, 10, tzinfo=UTC)  # still the first conversion, as documented
    assert lead.to_wire()["conversions"][1]["touchpoints"][-1]["credit"] == 1.0


def test_a_lead_not_converted_is_measured_from_now(service: SocialService, database: Database) -> None:
    lead_id = LeadStore(database).save(Lead(email="ola@example.com")).id
    assert service.attribution(lead_id, AttributionModel.LINEAR).touchpoints == []
    service.record_engagement(engagement("click", "2026-11-24T00:00:00Z", email="ola@example.com"))
    service.record_engagement(engagement("click", "2026-11-30T12:00:00Z", email="ola@example.com"))

    decayed = service.attribution(lead_id, AttributionModel.TIME_DECAY)

    # ages from now (Dec 1): 7 days and 0.5 day; weights 0.5 and 2^(-0.5/7) = 0.951695
    assert decayed.converted_at is None and decayed.reference == NOW
    assert [t.credit for t in decayed.touchpoints] == pytest.approx([0.5 / 1.451695, 0.951695 / 1.451695])
    with pytest.raises(NotFoundError):
        service.attribution(999, AttributionModel.LINEAR)


def test_the_report_counts_conversions_without_touchpoints_and_keeps_currencies_apart(service: SocialService) -> None:
    service.record_engagement(engagement("share", "2026-11-20T00:00:00Z", "Launch", email="pia@example.com"))
    service.record_conversions([
        Conversion(email="pia@example.com", timestamp="2026-11-21T00:00:00Z", value=100, currency="EUR"),
        Conversion(email="quinn@example.com", timestamp="2026-11-22T00:00:00Z", value=50, currency="USD"),
    ])

    report = service.attribution_report(AttributionModel.LAST_TOUCH).to_wire()

    assert (report["conversions"], report["unattributedConversions"]) == (2, 1)
    assert report["value"] == {"EUR": 100.0, "USD": 50.0}
    assert report["byCampaign"] == [
        {"name": "Launch", "touchpoints": 1, "leads": 0, "conversionsCredited": 1.0, "valueCredited": {"EUR": 100.0}}
    ]
    assert service.attribution_report(AttributionModel.LINEAR, since=datetime(2026, 11, 22, tzinfo=UTC)).to_wire()[
        "byCampaign"
    ] == []
    # Up to the 21st (not included): the share, but not its conversion; the conversion's credit still goes to a
    # touchpoint before the period when the period holds the conversion.
    up_to = service.attribution_report(AttributionModel.LAST_TOUCH, until=datetime(2026, 11, 21, tzinfo=UTC))
    assert (up_to.conversions, [row.touchpoints for row in up_to.by_campaign]) == (0, [1])
    later = service.attribution_report(AttributionModel.LAST_TOUCH, since=datetime(2026, 11, 21, tzinfo=UTC),
                                       until=datetime(2026, 11, 22, tzinfo=UTC))
    assert later.conversions == 1 and [(r.name, r.touchpoints, r.conversions_credited) for r in later.by_campaign] == [
        ("Launch", 0, 1.0)]
    with pytest.raises(ValueError, match="must be after its start"):
        service.attribution_report(AttributionModel.LINEAR, since=datetime(2026, 11, 22, tzinfo=UTC),
                                   until=datetime(2026, 11, 22, tzinfo=UTC))


@pytest.mark.parametrize("model", list(AttributionModel))
def test_the_credited_values_add_up_to_the_conversion_value(service: SocialService, model: AttributionModel) -> None:
    for day, campaign in ((20, "Spring"), (21, "Summer"), (22, "Autumn")):
        service.record_engagement(engagement("click", f"2026-11-{day}T09:00:00Z", campaign, email="ana@example.com"))
    service.record_conversions([
        Conversion(email="ana@example.com", timestamp="2026-11-25T00:00:00Z", value="100.00", currency="EUR")])
    report = service.attribution_report(model).to_wire()
    rows = report["byCampaign"]
    assert round(sum(row["valueCredited"].get("EUR", 0) for row in rows), 2) == report["value"]["EUR"] == 100.0
    assert round(sum(row["conversionsCredited"] for row in rows), 4) == 1.0


def test_the_reports_csv_keeps_a_campaign_named_like_a_formula_inert(service: SocialService, tmp_path: Path) -> None:
    hostile = "=HYPERLINK(\"http://evil.example\",\"Open\")"
    service.record_engagement(engagement("share", "2026-11-20T00:00:00Z", hostile, email="pia@example.com"))
    service.record_engagement(engagement("like", "2026-11-20T01:00:00Z", "-Black Friday", email="pia@example.com"))
    path = tmp_path / "report.csv"
    assert write_report_csv(service.attribution_report(AttributionModel.LINEAR), path) == 3
    with path.open(encoding="utf-8-sig", newline="") as handle:
        names = {row["name"] for row in csv.DictReader(handle) if row["breakdown"] == "campaign"}
    assert names == {"'" + hostile, "'-Black Friday"}, "a spreadsheet shows the names, never runs them"


def test_a_csv_of_conversations_and_messages_is_read_by_its_columns(service: SocialService, tmp_path: Path) -> None:
    conversations = tmp_path / "conversations.csv"
    conversations.write_text(
        "conversationId,platform,startedAt,campaign,email,username,firstName,followers\n"
        "fb-1,facebook,2026-11-20T08:00:00Z,Launch,rio@example.com,rio.s,Rio,3400\n"
        "fb-2,facebook,2026-11-20T09:00:00Z,,,,,\n"
        "fb-3,facebook,2026-11-20T09:00:00Z,,sam@example.com,,,lots\n",
        encoding="utf-8",
    )
    messages = tmp_path / "messages.csv"
    messages.write_text(
        "conversationId,messageId,direction,sentAt,text,sentiment\n"
        "fb-1,fm-1,inbound,2026-11-20T08:01:00Z,\"Hi, is this in stock?\",neutral\n"
        "fb-1,fm-2,outbound,2026-11-20T08:03:00Z,Yes!,\n"
        "fb-1,fm-3,inbound,2026-11-20T08:04:00Z,Great,ecstatic\n",
        encoding="utf-8",
    )

    first = service.import_file(conversations)
    second = service.import_file(messages)

    # refused rows name the file's columns, not the JSON paths (participant.followers)
    assert (first.created, [(r.line, r.field) for r in first.refused]) == (
        1, [(3, "email or username"), (4, "followers")]
    )
    assert (second.created, [(r.line, r.field) for r in second.refused]) == (2, [(4, "sentiment")])
    stored = service.conversation(SocialPlatform.FACEBOOK, "fb-1")
    assert stored is not None
    assert (stored.messages_in, stored.messages_out, stored.latest_sentiment) == (1, 1, "neutral")
    assert stored.participant.email == "rio@example.com" and stored.campaign == "Launch"
    # what counts for Rio: the dm touchpoint of the conversation and its two valid messages
    score = service.engagement_score(PersonRef(email="rio@example.com"))
    assert (score.interactions, score.followers) == (3, 3400)


@pytest.mark.parametrize(("header", "row", "followers"), [
    ("conversationId,platform,startedAt,email,username,followers",
     'x-1,twitter,2026-11-20T08:00:00Z,ana@example.com,ana,"12,400"', 12400),
    ("conversationId;platform;startedAt;email;username;followers",
     "x-1;twitter;2026-11-20T08:00:00Z;ana@example.com;ana;12.400", 12400),
    ("conversationId,platform,startedAt,email,username,followers",
     "x-1,twitter,2026-11-20T08:00:00Z,ana@example.com,ana,12 400", 12400),
])
def test_a_file_s_followers_are_read_as_a_spreadsheet_writes_them(
    service: SocialService, tmp_path: Path, header: str, row: str, followers: int
) -> None:
    """A social tool's export groups thousands as a contacts file does (``12,400``; ``12.400`` in a file separated
    by ``;``): the count is read, as a contacts import reads it, not refused as not a whole number."""
    conversations = tmp_path / "conversations.csv"
    conversations.write_text(f"{header}\n{row}\n", encoding="utf-8")

    report = service.import_file(conversations)

    assert (report.created, report.refused) == (1, [])
    assert service.engagement_score(PersonRef(email="ana@example.com")).followers == followers


def test_a_jsonl_line_nested_too_deeply_is_refused_and_the_others_recorded(
    service: SocialService, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    valid = {"platform": "tiktok", "type": "like", "timestamp": "2026-03-01T10:00:00Z",
             "user": {"email": "ada@example.com"}}
    events.write_text("[" * 100_000 + "]" * 100_000 + "\n" + json.dumps(valid) + "\n", encoding="utf-8")

    report = service.import_file(events)

    assert [(r.line, r.field) for r in report.refused] == [(1, "(row)")]
    assert "nested too deeply" in report.refused[0].reason
    assert service.store.counts()["touchpoints"] == 1
    assert report.created == 1


def conversation(conversation_id: str, platform: str, email: str) -> ConversationEvent:
    return ConversationEvent.model_validate({"conversationId": conversation_id, "platform": platform,
                                             "startedAt": "2026-11-30T10:00:00Z", "participant": {"email": email}})


def message(message_id: str, conversation_id: str) -> Message:
    return Message.model_validate({"conversationId": conversation_id, "messageId": message_id,
                                   "direction": "inbound", "sentAt": "2026-11-30T10:05:00Z", "text": "hi"})


def interactions(service: SocialService, email: str) -> int:
    return service.engagement_score(PersonRef(email=email)).interactions


def test_ids_held_by_another_conversation_or_platform_are_refused_and_nothing_moves(
    service: SocialService, tmp_path: Path
) -> None:
    service.record_conversation(conversation("42", "twitter", "tw@example.com"))
    service.record_conversation(conversation("a", "twitter", "a1@example.com"))
    service.record_message(message("1", "a"))
    # A message names its conversation by id alone: the same id on Instagram would count Twitter's messages twice.
    with pytest.raises(InvalidRecordError, match=r"conversationId: '42' is already a twitter conversation"):
        service.record_conversation(conversation("42", "instagram", "ig@example.com"))
    # The same message id in another conversation would move the first one there.
    service.record_conversation(conversation("b", "twitter", "b1@example.com"))
    with pytest.raises(InvalidRecordError, match=r"messageId: '1' is already a message of conversation 'a'"):
        service.record_message(message("1", "b"))
    assert (interactions(service, "a1@example.com"), interactions(service, "b1@example.com")) == (2, 1)
    service.record_message(message("1", "a"))  # sent again to its own conversation: unchanged, as before

    # A file: the clashing rows are refused by line, the others recorded.
    path = tmp_path / "events.jsonl"
    rows = [
        {"conversationId": "42", "platform": "instagram", "startedAt": "2026-11-30T10:00:00Z",
         "participant": {"email": "ig@example.com"}},
        {"conversationId": "b", "messageId": "1", "direction": "inbound", "sentAt": "2026-11-30T10:06:00Z",
         "text": "moved?"},
        {"conversationId": "b", "messageId": "2", "direction": "inbound", "sentAt": "2026-11-30T10:07:00Z",
         "text": "kept"},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    report = service.import_file(path)
    assert [(r.line, r.record, r.field) for r in report.refused] == [(1, "42", "conversationId"),
                                                                      (2, "1", "messageId")]
    assert report.created == 1
    assert (interactions(service, "a1@example.com"), interactions(service, "b1@example.com")) == (2, 2)
    assert interactions(service, "tw@example.com") == 1


def test_an_engagement_re_delivered_with_the_username_added_counts_once(service: SocialService) -> None:
    like = {"platform": "twitter", "type": "like", "timestamp": "2026-11-30T09:00:00Z", "postId": "p-1"}
    first = service.record_engagement(EngagementEvent.model_validate({**like, "user": {"email": "bob@example.com"}}))
    again = service.record_engagement(EngagementEvent.model_validate(
        {**like, "user": {"email": "bob@example.com", "username": "bobby"}}))
    assert (first.action.value, again.action.value) == ("created", "unchanged")
    assert interactions(service, "bob@example.com") == 1


def test_a_conversion_known_by_username_is_recorded_once_the_email_is_known(service: SocialService) -> None:
    def event(kind: str, when: str, **user: str) -> EngagementEvent:
        return EngagementEvent.model_validate({"platform": "linkedin", "type": kind, "timestamp": when,
                                               "campaign": "CT", "user": user})

    service.record_engagement(event("click", "2026-11-20T09:00:00Z", username="carla"))
    service.record_engagement(event("conversion", "2026-11-21T09:00:00Z", username="carla"))
    assert service.attribution_report(AttributionModel.LINEAR).conversions == 0  # nobody known by email yet
    linked = service.record_engagement(event("like", "2026-11-22T09:00:00Z", username="carla",
                                             email="carla@example.com"))
    assert linked.linked_touchpoints == 2
    report = service.attribution_report(AttributionModel.LINEAR)
    assert report.conversions == 1
    assert {row.name: row.conversions_credited for row in report.by_campaign}["CT"] == pytest.approx(1.0)
    # Delivered again, now with the email: still one conversion.
    service.record_engagement(event("conversion", "2026-11-21T09:00:00Z", username="carla", email="carla@example.com"))
    assert service.attribution_report(AttributionModel.LINEAR).conversions == 1


def test_social_files_are_read_as_contacts_files_are(service: SocialService, tmp_path: Path) -> None:
    # A BOM before the first JSON line, UTF-16 and semicolons from Excel, a formula kept inert by a leading '.
    events = tmp_path / "events.jsonl"
    line = {"platform": "tiktok", "type": "like", "timestamp": "2026-03-01T10:00:00Z",
            "user": {"email": "ada@example.com"}}
    events.write_text(json.dumps(line) + "\n", encoding="utf-8-sig")
    conversations = tmp_path / "conversations.csv"
    conversations.write_text("conversationId;platform;startedAt;campaign;email\n"
                             "fb-1;facebook;2026-11-20T08:00:00Z;'=Launch;rio@example.com\n", encoding="utf-16")

    assert (service.import_file(events).created, service.import_file(conversations).created) == (1, 1)

    stored = service.conversation(SocialPlatform.FACEBOOK, "fb-1")
    assert stored is not None and stored.campaign == "=Launch"
    # Excel's CSV (Windows-1252) is read so and said; a file that is not that either is refused by its line.
    latin = tmp_path / "latin.csv"
    latin.write_bytes("conversationId,platform,startedAt,campaign,email\nfb-2,facebook,2026-11-20T08:00:00Z,Café,"
                      "rio@example.com\n".encode("cp1252"))
    read = service.import_file(latin)
    assert (read.created, read.notices) == (1, [f"latin.csv: {WINDOWS_1252_READ}"])
    neither = tmp_path / "neither.csv"
    neither.write_bytes(b"conversationId,platform,startedAt,campaign\nfb-3,facebook,2026-11-20T08:00:00Z,Caf\x81\n")
    with pytest.raises(ValueError, match=r"neither.csv: line 2 is not UTF-8 text, nor Windows-1252 .*save the file"):
        service.import_file(neither)


def test_a_social_csv_row_the_header_cannot_name_is_refused(service: SocialService, tmp_path: Path) -> None:
    conversations = tmp_path / "conversations.csv"
    conversations.write_text(
        "conversationId,platform,startedAt,campaign,,email\n"
        "fb-1,facebook,2026-11-20T08:00:00Z,Spring, Summer,,rio@example.com\n"
        "fb-2,facebook,2026-11-20T08:00:00Z,Spring,lost?,sam@example.com\n"
        "fb-3,facebook,2026-11-20T08:00:00Z,Spring,,ann@example.com\n",
        encoding="utf-8",
    )

    report = service.import_file(conversations)

    assert report.created == 1
    assert [(r.line, r.record, r.field, r.reason) for r in report.refused] == [
        (2, "fb-1", "(row)", "7 cells, the header has 6 (a comma inside a value needs quotes)"),
        (3, "fb-2", "column 5", "has a value but no name in the header; name the column, or empty its cells"),
    ]
    assert service.conversation(SocialPlatform.FACEBOOK, "fb-1") is None


def test_a_file_resending_engagements_by_email_adds_nothing(service: SocialService, tmp_path: Path) -> None:
    """A feed imported by username (one row linking it to an email), then re-imported naming the people by email:
    the same engagements, kept once."""
    linking = {"username": "rio", "email": "rio@example.com"}
    rows = [{"platform": "twitter", "type": kind, "timestamp": at, "postId": "p-1", "user": user}
            for kind, at, user in (("like", "2026-03-01T10:00:00Z", {"username": "rio"}),
                                   ("comment", "2026-03-02T10:00:00Z", linking))]
    first, again = tmp_path / "feed.jsonl", tmp_path / "feed-by-email.jsonl"
    first.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    again.write_text("".join(json.dumps({**row, "user": {"email": "rio@example.com"}}) + "\n" for row in rows),
                     encoding="utf-8")

    assert service.import_file(first).created == 2
    assert service.import_file(again).created == 0
    assert interactions(service, "rio@example.com") == 2


def test_a_file_of_many_conversions_records_each_once(service: SocialService, tmp_path: Path) -> None:
    """A feed with more conversion engagements than one read of the store holds, one of them twice and one by a
    username the file links later: one conversion per person; the same file again changes nothing."""
    rows: list[dict[str, Any]] = [
        {"platform": "twitter", "type": "conversion", "timestamp": f"2026-11-{1 + n % 28:02d}T10:{n % 60:02d}:00Z",
         "postId": f"p-{n}", "campaign": f"C{n % 3}", "user": {"email": f"buyer{n}@example.com"}}
        for n in range(1200)]
    rows += [rows[600], {**rows[0], "timestamp": "2026-11-29T10:00:00Z", "user": {"username": "late"}},
             {**rows[0], "type": "click", "timestamp": "2026-11-30T10:00:00Z",
              "user": {"username": "late", "email": "late@example.com"}}]
    feed = tmp_path / "conversions.jsonl"
    feed.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

    report = service.import_file(feed)

    assert (report.created, report.unchanged, report.refused_lines) == (1202, 1, 0)
    assert report.linked_touchpoints == 1
    attribution = service.attribution_report(AttributionModel.LINEAR)
    assert attribution.conversions == 1201
    again = service.import_file(feed)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1203)
    assert service.attribution_report(AttributionModel.LINEAR).conversions == 1201


def test_a_campaigns_report_keeps_the_periods_totals(service: SocialService) -> None:
    """With a campaign, only the touchpoints and credit are the campaign's: the totals stay every conversion of the
    period (as the CLI prints them, "of N conversions ... in all campaigns"), also those the campaign never
    touched and those with no touchpoint at all."""
    service.record_engagement(engagement("click", "2026-11-20T09:00:00Z", "Launch", email="ana@example.com"))
    service.record_engagement(engagement("like", "2026-11-20T09:00:00Z", "Webinar", email="bo@example.com"))
    service.record_conversions([
        Conversion(email="ana@example.com", timestamp=datetime(2026, 11, 21, tzinfo=UTC), value=100, currency="EUR"),
        Conversion(email="bo@example.com", timestamp=datetime(2026, 11, 21, tzinfo=UTC), value=50, currency="EUR"),
        Conversion(email="cy@example.com", timestamp=datetime(2026, 11, 21, tzinfo=UTC), value=25, currency="EUR"),
    ])
    everything = service.attribution_report(AttributionModel.LINEAR)
    launch = service.attribution_report(AttributionModel.LINEAR, campaign="Launch")
    assert (everything.conversions, everything.unattributed_conversions, everything.value) == (3, 1, {"EUR": 175.0})
    assert (launch.conversions, launch.unattributed_conversions, launch.value) == (3, 1, {"EUR": 175.0})
    assert [(row.name, row.conversions_credited, row.value_credited) for row in launch.by_campaign] == [
        ("Launch", 1.0, {"EUR": 100.0})]


def test_known_only_refuses_an_email_the_store_never_saw(service: SocialService, database: Database) -> None:
    service.record_engagement(engagement("like", "2026-11-30T00:00:00Z", email="ivy@example.com"))
    LeadStore(database).save(Lead(email="quiet@example.com"))

    with pytest.raises(NotFoundError, match=r"no person with the email nobody@example\.com"):
        service.engagement_score(PersonRef(email="nobody@example.com"), known_only=True)
    assert service.engagement_score(PersonRef(email="ivy@example.com"), known_only=True).interactions == 1
    assert service.engagement_score(PersonRef(email="quiet@example.com"), known_only=True).score == 0.0
    # Without it (the app's own callers, for a person it is saving) an unknown email is simply idle.
    assert service.engagement_score(PersonRef(email="nobody@example.com")).score == 0.0


def test_the_report_takes_a_campaign_in_another_case_or_names_the_closest(service: SocialService) -> None:
    service.record_engagement(engagement("like", "2026-11-30T00:00:00Z", "Winter Sale", email="ivy@example.com"))
    service.record_engagement(engagement("like", "2026-11-29T00:00:00Z", "Spring Launch", email="ivy@example.com"))

    found = service.attribution_report(AttributionModel.LINEAR, campaign="WINTER sale")
    assert (found.campaign, found.unknown_campaign) == ("Winter Sale", False)
    assert [(row.name, row.touchpoints) for row in found.by_campaign] == [("Winter Sale", 1)]

    missing = service.attribution_report(AttributionModel.LINEAR, campaign="winter")
    assert (missing.campaign, missing.unknown_campaign, missing.closest_campaigns) == ("winter", True, ["Winter Sale"])
    assert missing.by_campaign == []
    far = service.attribution_report(AttributionModel.LINEAR, campaign="Black Friday")
    assert far.unknown_campaign and far.closest_campaigns == []


def test_an_attribution_model_is_read_in_any_case_with_spaces_or_hyphens() -> None:
    assert {AttributionModel(text) for text in ("Time Decay", "time-decay", "TIME_DECAY")} == {
        AttributionModel.TIME_DECAY}
    with pytest.raises(ValueError):
        AttributionModel("time travel")


def test_an_event_dated_in_the_future_is_refused_and_an_old_one_kept(
    service: SocialService, database: Database, tmp_path: Path
) -> None:
    """A row dated 2999 would count in full in the score for centuries: it is refused by its line and field, and
    nothing of it is written. One of 1900 (a history import) is kept; its weight has decayed to 0, and the score
    and the time-decay attribution still work."""
    far = "2999-01-01T00:00:00Z"
    rows = [
        {"platform": "twitter", "type": "like", "timestamp": far, "postId": "p-1",
         "user": {"email": "kim@example.com"}},
        {"conversationId": "c-9", "platform": "twitter", "startedAt": far, "participant": {"email": "kim@example.com"}},
        {"conversationId": "c-9", "messageId": "m-9", "direction": "inbound", "sentAt": far, "text": "hi"},
        {"platform": "twitter", "type": "like", "timestamp": "1900-01-01T00:00:00Z", "postId": "p-0",
         "user": {"email": "old@example.com"}},
    ]
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    report = service.import_file(path)
    assert [(r.line, r.field) for r in report.refused] == [(1, "timestamp"), (2, "startedAt"), (3, "sentAt")]
    assert all("in the future" in r.reason and "24 hours" in r.reason for r in report.refused), report.refused
    assert report.created == 1
    assert service.store.counts()["touchpoints"] == 1 and service.store.counts()["conversations"] == 0
    assert service.engagement_score(PersonRef(email="old@example.com")).score == 0
    LeadStore(database).save(Lead(email="old@example.com"))
    credits = service.attribution("old@example.com", AttributionModel.TIME_DECAY).touchpoints
    assert [c.credit for c in credits] == [1.0]


def test_a_conversation_sent_again_with_another_participant_email_is_refused(
    service: SocialService, tmp_path: Path
) -> None:
    """A conversation belongs to its participant: a re-send naming another email (by the API, or a file's row)
    is refused naming ``participant.email``, and the conversation, its touchpoint and the username's link stay."""
    first = ConversationEvent.model_validate({"conversationId": "c-1", "platform": "twitter",
                                              "startedAt": "2026-11-20T10:00:00Z",
                                              "participant": {"email": "ana@example.com", "username": "anab"}})
    service.record_conversation(first)
    moved = first.model_copy(update={"participant": first.participant.model_copy(update={"email": "bo@example.com"})})
    with pytest.raises(InvalidRecordError) as refused:
        service.record_conversation(moved)
    [problem] = refused.value.problems
    assert problem.field == "participant.email" and "is with ana@example.com" in problem.reason
    path = tmp_path / "again.jsonl"
    path.write_text(json.dumps(moved.to_wire()) + "\n", encoding="utf-8")
    report = service.import_file(path)
    assert [(r.line, r.field) for r in report.refused] == [(1, "participant.email")]
    # By username alone (linked to ana): still ana's.
    by_username = first.model_copy(update={"participant": first.participant.model_copy(update={"email": None})})
    service.record_conversation(by_username)
    stored = service.conversation(SocialPlatform.TWITTER, "c-1")
    assert stored is not None and stored.participant.email == "ana@example.com"
    assert interactions(service, "ana@example.com") == 1 and interactions(service, "bo@example.com") == 0
    found = service.store.find_person(PersonRef(platform=SocialPlatform.TWITTER, username="anab"))
    assert found is not None and found.email == "ana@example.com"
