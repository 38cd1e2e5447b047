"""Domain models: normalised emails and phones, camelCase on the wire, one typed error naming record, field, reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crm_desktop.domain.errors import FieldProblem, InvalidRecordError
from crm_desktop.domain.models import (
    Contact,
    Integration,
    Lead,
    LeadStatus,
    Provider,
    Sentiment,
    SocialPlatform,
    SocialProfile,
    SyncConfig,
    Touchpoint,
    TouchpointType,
    WireModel,
    check_base_url,
    is_loopback_host,
    normalise_email,
    normalise_phone,
    phone_region,
)
from crm_desktop.domain.social import ConversationEvent, Conversion


@pytest.fixture(autouse=True)
def default_phone_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from the built-in region (US), whatever the developer's shell says."""
    monkeypatch.delenv("CRM_DESKTOP_PHONE_REGION", raising=False)


# --- emails -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("ana@example.com", "ana@example.com"),
        ("Ana.Lopez@Example.COM", "ana.lopez@example.com"),
        ("  ANA@EXAMPLE.COM\t", "ana@example.com"),
        ("ana+social@sub.example.co.uk", "ana+social@sub.example.co.uk"),
        ("ana@BÜCHER.de", "ana@bücher.de"),
        # Deliverability is not checked: a domain without mail servers is still accepted.
        ("lead@no-mx-records.invalid-tld-for-tests.example", "lead@no-mx-records.invalid-tld-for-tests.example"),
    ],
)
def test_emails_are_normalised_and_lower_cased(given: str, stored: str) -> None:
    assert normalise_email(given) == stored
    assert Contact(email=given).email == stored
    assert Lead.model_validate({"email": given}).email == stored


@pytest.mark.parametrize(
    "given", ["", "ana", "ana@", "@example.com", "ana@@example.com", "ana lopez@example.com", "ana@exa mple.com"]
)
def test_invalid_emails_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="not a valid email address"):
        normalise_email(given)
    with pytest.raises(InvalidRecordError) as caught:
        Contact(email=given)
    assert caught.value.fields == ["email"]


# --- phones -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "region", "e164"),
    [
        ("+1 415 555 2671", None, "+14155552671"),
        ("(415) 555-2671", None, "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("07911 123456", "gb", "+447911123456"),
        ("030 123456", "DE", "+4930123456"),
    ],
)
def test_phones_become_e164(given: str, region: str | None, e164: str) -> None:
    assert normalise_phone(given, region.upper() if region else None) == e164


@pytest.mark.parametrize(("given", "reason"), [("12", "not a valid phone number"), ("call me", "not a phone number")])
def test_unreadable_phones_are_refused(given: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_phone(given)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("415-555-0102 x123", "+14155550102 ext. 123"),
        ("+1 415 555 0102 ext. 45", "+14155550102 ext. 45"),
        ("(415) 555-0102 #7", "+14155550102 ext. 7"),
        ("tel:+1-415-555-0102;ext=123", "+14155550102 ext. 123"),
        ("+44 20 7946 0958 extension 12", "+442079460958 ext. 12"),
    ],
)
def test_an_extension_is_kept_after_the_e164_number(given: str, stored: str) -> None:
    assert normalise_phone(given) == stored
    assert normalise_phone(stored) == normalise_phone(stored, "GB") == stored  # read again, it stays the same


@pytest.mark.parametrize("given", ["4155550102;4155550103", "415-555-0102 / 415-555-0103",
                                   "415-555-0102, 415-555-0103", "(415) 555-0102 ext 45 or 415-555-0199"])
def test_text_holding_two_phone_numbers_is_refused(given: str) -> None:
    with pytest.raises(ValueError, match=r"^holds 2 phone numbers \(.+, .+\); keep one"):
        normalise_phone(given)


def test_the_default_phone_region_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert phone_region() == "US"
    with pytest.raises(InvalidRecordError, match="phone"):
        Contact(email="ana@example.com", phone="020 7946 0958")

    monkeypatch.setenv("CRM_DESKTOP_PHONE_REGION", "gb")

    assert phone_region() == "GB"
    assert Contact(email="ana@example.com", phone="020 7946 0958").phone == "+442079460958"


def test_the_validation_context_chooses_the_phone_region(monkeypatch: pytest.MonkeyPatch) -> None:
    record = {"email": "ana@example.com", "phone": "020 7946 0958"}

    assert Contact.model_validate(record, context={"phone_region": "GB"}).phone == "+442079460958"

    monkeypatch.setenv("CRM_DESKTOP_PHONE_REGION", "DE")
    # The context wins over the environment.
    assert Contact.model_validate(record, context={"phone_region": "GB"}).phone == "+442079460958"
    assert Contact.model_validate({"email": "ana@example.com", "phone": "030 123456"}).phone == "+4930123456"


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_a_blank_phone_is_no_phone(blank: str | None) -> None:
    assert Contact(email="ana@example.com", phone=blank).phone is None


# --- one typed error naming record, field and reason -----------------------------------------------------------

TOO_LONG = "x" * 81

INVALID_RECORDS: list[tuple[type[WireModel], dict[str, Any], str, str, str]] = [
    (Contact, {"email": "not-an-email"}, "not-an-email", "email", "not a valid email address"),
    (Contact, {"email": "ana@example.com", "phone": "12"}, "ana@example.com", "phone", "not a valid phone number"),
    (Contact, {"email": "ana@example.com", "firstName": TOO_LONG}, "ana@example.com", "firstName", "at most 80"),
    (Contact, {"email": "ana@example.com", "company": "c" * 256}, "ana@example.com", "company", "at most 255"),
    (
        Contact,
        {"email": "ana@example.com", "socialProfiles": [{"platform": "twitter", "username": "ana", "followers": -1}]},
        "ana@example.com",
        "socialProfiles.0.followers",
        "greater than or equal to 0",
    ),
    (
        Contact,
        {
            "email": "ana@example.com",
            "socialProfiles": [{"platform": "twitter", "username": "ana"}, {"platform": "myspace", "username": "a"}],
        },
        "ana@example.com",
        "socialProfiles.1.platform",
        "'twitter', 'instagram'",
    ),
    (
        Contact,
        {"email": "ana@example.com", "socialProfiles": [{"platform": "tiktok", "username": "u" * 101}]},
        "ana@example.com",
        "socialProfiles.0.username",
        "at most 100",
    ),
    (
        Contact,
        {"email": "ana@example.com", "customFields": {"plan": ["pro"]}},
        "ana@example.com",
        "customFields.plan",
        "must be text, a number, true/false or a date; not a list",
    ),
    (Contact, {"email": "ana@example.com", "nickname": "Ana"}, "ana@example.com", "nickname", "Extra inputs"),
    (
        Lead,
        {"email": "lee@example.com", "socialContext": {"platform": "twitter", "sentiment": "angry"}},
        "lee@example.com",
        "socialContext.sentiment",
        "'positive', 'neutral', 'negative' or 'mixed'",
    ),
    (
        Lead,
        {"email": "lee@example.com", "socialContext": {"platform": "twitter", "engagementScore": 101}},
        "lee@example.com",
        "socialContext.engagementScore",
        "less than or equal to 100",
    ),
    (Lead, {"email": "lee@example.com", "status": "won"}, "lee@example.com", "status", "'new', 'contacted'"),
    (Lead, {"email": "lee@example.com", "source": "Twitter DM"}, "lee@example.com", "source", "lower-case letters"),
    (SocialProfile, {"platform": "myspace", "username": "tom"}, "tom", "platform", "'twitter'"),
    (SocialProfile, {"platform": "twitter", "username": "ana", "url": "ftp://x.com/ana"}, "ana", "url", "http(s)"),
    (
        SocialProfile,
        {"platform": "twitter", "username": "ana", "engagement": -0.5},
        "ana",
        "engagement",
        "greater than or equal to 0",
    ),
    (Integration, {"provider": "zoho", "name": "Zoho"}, "Zoho", "provider", "'salesforce', 'hubspot' or 'pipedrive'"),
    (Integration, {"provider": "hubspot", "name": "a/b"}, "a/b", "name", "must not contain / or"),
    (Integration, {"provider": "hubspot", "name": TOO_LONG}, TOO_LONG, "name", "at most 80"),
    (
        Integration,
        {"provider": "hubspot", "name": "EU", "syncConfig": {"syncInterval": 1}},
        "EU",
        "syncConfig.syncInterval",
        "greater than or equal to 5",
    ),
    (
        Integration,
        {"provider": "hubspot", "name": "EU", "baseUrl": "http://api.hubapi.com"},
        "EU",
        "baseUrl",
        "plain http is allowed only to loopback",
    ),
    (Integration, {"provider": "pipedrive", "name": "PD", "domain": "acme corp"}, "PD", "domain", "company domain"),
    (
        Touchpoint,
        {"timestamp": "2026-11-27T10:00:00", "platform": "twitter", "type": "dm", "postId": "p-1"},
        "p-1",
        "timestamp",
        "needs a time zone",
    ),
    (
        Touchpoint,
        {"timestamp": "2026-11-27T10:00:00Z", "platform": "twitter", "type": "poke"},
        "(unnamed)",
        "type",
        "'post_view'",
    ),
]


@pytest.mark.parametrize(
    ("model", "record", "label", "field", "reason"),
    INVALID_RECORDS,
    ids=[f"{m.__name__}-{f}" for m, _, _, f, _ in INVALID_RECORDS],
)
def test_invalid_records_name_record_field_and_reason(
    model: type[WireModel], record: dict[str, Any], label: str, field: str, reason: str
) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        model.model_validate(record)

    error = caught.value
    assert error.kind == model.record_kind
    assert error.record == label
    assert [problem.field for problem in error.problems] == [field]
    assert reason in error.problems[0].reason
    assert str(error).startswith(f"{model.record_kind} {label} is invalid: {field}: ")
    assert isinstance(error, ValueError)


def test_snake_case_keywords_still_report_wire_paths() -> None:
    with pytest.raises(InvalidRecordError) as caught:
        Contact(
            email="ana@example.com",
            first_name=TOO_LONG,
            social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username="ana"), {"platform": "myspace"}],
        )

    assert caught.value.fields == ["firstName", "socialProfiles.1.platform", "socialProfiles.1.username"]


def test_every_problem_of_a_record_is_listed() -> None:
    with pytest.raises(InvalidRecordError) as caught:
        Lead.model_validate(
            {"email": "bad", "firstName": TOO_LONG, "socialContext": {"platform": "myspace", "sentiment": "meh"}}
        )

    assert caught.value.record == "bad"
    assert caught.value.fields == ["email", "firstName", "socialContext.platform", "socialContext.sentiment"]


def test_assignment_is_validated_with_the_same_error() -> None:
    contact = Contact(email="ana@example.com")

    with pytest.raises(InvalidRecordError) as caught:
        contact.social_profiles = [{"platform": "twitter", "username": "ana", "followers": -5}]  # type: ignore[list-item]

    assert caught.value.record == "ana@example.com"
    assert caught.value.problems == [
        FieldProblem(field="socialProfiles.0.followers", reason="Input should be greater than or equal to 0")
    ]
    assert contact.social_profiles == []
    contact.phone = "+1 415 555 2671"
    assert contact.phone == "+14155552671"


def test_a_record_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidRecordError) as caught:
        Contact.model_validate(["ana@example.com"])
    assert caught.value.fields == ["(record)"]
    assert caught.value.record == "(unnamed)"


# --- camelCase on the wire, snake_case in Python ----------------------------------------------------------------


def test_camel_case_in_and_out_snake_case_in_python() -> None:
    wire = {
        "email": "Ana@Example.com",
        "firstName": "Ana",
        "lastName": "Lopez",
        "socialProfiles": [{"platform": "instagram", "username": "@ana", "followers": 10, "engagement": 2.5}],
        "customFields": {"favourite_colour": "teal"},
    }

    contact = Contact.model_validate(wire)

    assert contact.first_name == "Ana"
    assert contact.social_profiles[0].username == "ana"
    assert contact.to_wire() == {
        "email": "ana@example.com",
        "firstName": "Ana",
        "lastName": "Lopez",
        "socialProfiles": [{"platform": "instagram", "username": "ana", "followers": 10, "engagement": 2.5}],
        # Custom field names are the user's own: never re-cased.
        "customFields": {"favourite_colour": "teal"},
    }
    assert Contact(email="ana@example.com", first_name="Ana", last_name="Lopez").to_wire()["firstName"] == "Ana"
    assert Contact.model_validate(contact.to_wire()) == contact


def test_lead_and_touchpoint_wire_shapes() -> None:
    lead = Lead.model_validate(
        {
            "email": "lee@example.com",
            "source": "twitter_dm",
            "socialContext": {"platform": "twitter", "conversationId": "c-9", "sentiment": "mixed"},
        }
    )
    touchpoint = Touchpoint.model_validate(
        {"timestamp": "2026-11-27T12:00:00+02:00", "platform": "linkedin", "type": "form_submit", "postId": "p-7"}
    )

    assert lead.status is LeadStatus.NEW
    assert lead.social_context is not None
    assert lead.social_context.sentiment is Sentiment.MIXED
    assert lead.to_wire()["socialContext"] == {"platform": "twitter", "conversationId": "c-9", "sentiment": "mixed"}
    assert touchpoint.timestamp == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert touchpoint.timestamp.tzinfo is UTC
    assert touchpoint.to_wire() == {
        "timestamp": "2026-11-27T10:00:00Z",
        "platform": "linkedin",
        "type": "form_submit",
        "postId": "p-7",
    }


def test_integration_defaults_and_wire_shape() -> None:
    integration = Integration(provider=Provider.SALESFORCE, name="Salesforce prod", domain="Acme.My")

    wire = integration.to_wire()

    assert integration.sync_config == SyncConfig()
    assert wire["syncConfig"]["syncInterval"] == 360
    assert wire["syncConfig"]["contactFields"][:2] == ["email", "firstName"]
    assert wire["domain"] == "acme.my"
    assert "id" not in wire
    assert Integration.model_validate(wire) == integration


# --- integration base URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://acme.my.salesforce.com/", "https://acme.my.salesforce.com"),
        ("https://api.hubapi.com", "https://api.hubapi.com"),
        ("http://127.0.0.1:8765/", "http://127.0.0.1:8765"),
        ("http://localhost:8765", "http://localhost:8765"),
        ("http://[::1]:8765", "http://[::1]:8765"),
        ("http://127.5.6.7", "http://127.5.6.7"),
    ],
)
def test_base_urls_accepted(given: str, kept: str) -> None:
    assert check_base_url(given) == kept
    assert Integration(provider=Provider.HUBSPOT, name="EU", base_url=given).base_url == kept


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("http://api.hubapi.com", "only to loopback"),
        ("http://localhost.attacker.example", "only to loopback"),
        ("http://10.0.0.5:8080", "only to loopback"),
        ("http://0.0.0.0:8080", "only to loopback"),
        ("ftp://acme.my.salesforce.com", "http(s) URL with a host"),
        ("https://", "http(s) URL with a host"),
        ("acme.my.salesforce.com", "http(s) URL with a host"),
    ],
)
def test_base_urls_refused(given: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_base_url(given)
    with pytest.raises(InvalidRecordError) as caught:
        Integration(provider=Provider.HUBSPOT, name="EU", base_url=given)
    assert caught.value.fields == ["baseUrl"]


@pytest.mark.parametrize("provider", list(Provider))
def test_a_refused_base_url_gives_an_address_of_the_integrations_own_crm(provider: Provider) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        Integration(provider=provider, name="EU", base_url="api.example.com")
    example = {Provider.HUBSPOT: "https://api.hubapi.com", Provider.PIPEDRIVE: "https://acme.pipedrive.com",
               Provider.SALESFORCE: "https://acme.my.salesforce.com"}[provider]
    assert f"e.g. {example}" in str(caught.value)
    others = {"hubapi", "pipedrive", "salesforce"} - {provider.value.replace("hubspot", "hubapi")}
    assert not any(other in str(caught.value) for other in others)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("example.com", False),
        ("192.168.1.2", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize("name, reason", [
    ("a\nb", "must not contain a line break, tab or other control character"),
    ("tab\there", "must not contain a line break, tab or other control character"),
    ("sales/eu", "must not contain / or \\"),
])
def test_an_integration_name_that_would_break_a_table_or_a_keyring_key_is_refused(name: str, reason: str) -> None:
    # A line break split `integration list`'s table; the pattern's own message was a regular expression.
    with pytest.raises(InvalidRecordError) as refused:
        Integration(provider=Provider.HUBSPOT, name=name)
    assert [(p.field, p.reason) for p in refused.value.problems] == [("name", reason)]
    assert Integration(provider=Provider.HUBSPOT, name="Sales EU (HubSpot) — main").name


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_a_score_that_is_not_a_number_is_refused_as_such(number: float) -> None:
    with pytest.raises(InvalidRecordError, match="engagement: Input should be a finite number"):
        SocialProfile.model_validate({"platform": "twitter", "username": "ada", "engagement": number})


def test_fixed_values_are_read_as_people_write_them() -> None:
    # Exports of social tools and CRMs write "Twitter", "Post View", "Qualified": the same values, not refusals.
    from crm_desktop.domain.social import EngagementEvent, Message

    event = EngagementEvent.model_validate({"platform": " Twitter ", "type": "Post View",
                                            "timestamp": "2026-11-20T09:00:00Z", "user": {"username": "ann"}})
    assert (event.platform, event.type) == (SocialPlatform.TWITTER, TouchpointType.POST_VIEW)
    assert TouchpointType("form-submit") is TouchpointType.FORM_SUBMIT
    message = Message.model_validate({"conversationId": "c", "messageId": "m", "direction": "Inbound",
                                      "sentAt": "2026-11-20T09:00:00Z", "text": "hi", "sentiment": "POSITIVE"})
    assert message.direction.value == "inbound" and message.sentiment is Sentiment.POSITIVE
    assert Lead.model_validate({"email": "a@example.com", "status": "Qualified"}).status is LeadStatus.QUALIFIED
    # Anything else is still refused, naming the field and the values it takes.
    with pytest.raises(InvalidRecordError) as refused:
        EngagementEvent.model_validate({"platform": "myspace", "type": "like",
                                        "timestamp": "2026-11-20T09:00:00Z", "user": {"username": "ann"}})
    assert refused.value.fields == ["platform"] and "'twitter'" in str(refused.value)
    with pytest.raises(ValueError):
        TouchpointType("post__view!")


@pytest.mark.parametrize(
    ("model", "data", "field", "words"),
    [
        (ConversationEvent, {"conversationId": "c", "platform": "twitter", "startedAt": "2026-11-20T10:00:00Z",
                             "participant": {"username": "ann", "profileUrl": "twitter.com/ann"}},
         "participant.profileUrl", "must be a web address starting with http:// or https://"),
        (Conversion, {"email": "ann@example.com", "timestamp": "2026-11-20T10:00:00Z", "currency": "euro"},
         "currency", "must be a three-letter currency code such as USD"),
        (Lead, {"email": "ann@example.com", "source": "Twitter DM"}, "source", "only lower-case letters, digits and _"),
    ],
)
def test_a_value_of_the_wrong_form_is_refused_in_words_not_a_pattern(
    model: type[Any], data: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidRecordError) as refused:
        model.model_validate(data)
    [problem] = refused.value.problems
    assert problem.field == field and problem.reason.startswith(words)
    assert "pattern" not in str(refused.value) and "^" not in str(refused.value)
