"""The Salesforce sandbox's Tooling API ``CustomField`` create: shape, errors, describe and field-level security."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema

from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.salesforce import API_PREFIX, SalesforceSandbox
from tests.sandbox.test_salesforce import DESCRIBE_SCHEMA, api_client, needs_describe_schema, run

TOOLING = f"{API_PREFIX}/tooling/sobjects/CustomField"
TWITTER = {"FullName": "Contact.twitter_username__c",
           "Metadata": {"label": "Twitter username", "type": "Text", "length": 255}}


def bare(**options: Any) -> SalesforceSandbox:
    sandbox = SalesforceSandbox(SandboxConfig(contacts=0), **options)
    sandbox.set_custom_fields([])
    return sandbox


def calls(sandbox: SalesforceSandbox, *requests: tuple[str, str, Any]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        async with api_client(sandbox) as client:
            return [await client.request(method, path, json=body) for method, path, body in requests]

    return run(go())


def described(sandbox: SalesforceSandbox, sobject: str = "Contact") -> dict[str, dict[str, Any]]:
    [response] = calls(sandbox, ("GET", f"{API_PREFIX}/sobjects/{sobject}/describe", None))
    return {field["name"]: field for field in response.json()["fields"]}


def test_a_created_field_answers_201_and_is_then_described_and_writable() -> None:
    sandbox = bare()
    created, again, write = calls(
        sandbox, ("POST", TOOLING, TWITTER), ("POST", TOOLING, TWITTER),
        ("POST", f"{API_PREFIX}/sobjects/Contact", {"LastName": "Lee", "twitter_username__c": "annlee"}),
    )
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True and body["errors"] == [] and body["id"].startswith("00N") and len(body["id"]) == 18
    assert again.status_code == 400
    assert again.json() == [{"message": "There is already a field named twitter_username on Contact.",
                             "errorCode": "DUPLICATE_DEVELOPER_NAME"}]
    assert write.status_code == 201
    field = described(sandbox)["twitter_username__c"]
    assert (field["type"], field["length"], field["custom"]) == ("string", 255, True)
    assert field["label"] == "Twitter username"
    assert "twitter_username__c" not in described(sandbox, "Lead")  # created on Contact only


@needs_describe_schema
def test_every_kind_of_created_field_keeps_describe_valid() -> None:
    sandbox = bare()
    fields = [
        ("twitter_url__c", {"label": "Twitter URL", "type": "Url"}),
        ("twitter_followers__c", {"label": "Twitter followers", "type": "Number", "precision": 18, "scale": 0}),
        ("social_touchpoints__c", {"label": "Social touchpoints", "type": "LongTextArea", "length": 32768,
                                   "visibleLines": 5}),
        ("social_sentiment__c", {"label": "Sentiment", "type": "Picklist", "valueSet": {"restricted": True,
            "valueSetDefinition": {"sorted": False, "value": [{"fullName": "positive", "label": "positive"},
                                                              {"fullName": "negative", "label": "negative"}]}}}),
        ("next_meeting__c", {"label": "Next meeting", "type": "DateTime"}),
    ]
    requests = [("POST", TOOLING, {"FullName": f"Lead.{name}", "Metadata": meta}) for name, meta in fields]
    answers = calls(sandbox, *requests)
    assert [a.status_code for a in answers] == [201] * len(fields)
    [response] = calls(sandbox, ("GET", f"{API_PREFIX}/sobjects/Lead/describe", None))
    jsonschema.validate(response.json(), json.loads(DESCRIBE_SCHEMA.read_text()), cls=jsonschema.Draft7Validator)
    lead = {field["name"]: field for field in response.json()["fields"]}
    assert lead["twitter_followers__c"]["type"] == "double" and lead["twitter_followers__c"]["precision"] == 18
    assert lead["social_touchpoints__c"]["type"] == "textarea" and lead["social_touchpoints__c"]["filterable"] is False
    assert [v["value"] for v in lead["social_sentiment__c"]["picklistValues"]] == ["positive", "negative"]
    assert lead["next_meeting__c"]["type"] == "datetime" and lead["next_meeting__c"]["soapType"] == "xsd:dateTime"


def test_bad_metadata_and_names_are_refused_naming_what_is_wrong() -> None:
    sandbox = bare()
    answers = calls(
        sandbox,
        ("POST", TOOLING, {"FullName": "Contact.x__c", "Metadata": {"type": "Text", "length": 10}}),
        ("POST", TOOLING, {"FullName": "Contact.x__c", "Metadata": {"label": "X", "type": "Text", "length": 300}}),
        ("POST", TOOLING, {"FullName": "Contact.x__c", "Metadata": {"label": "X", "type": "Hologram"}}),
        ("POST", TOOLING, {"FullName": "Contact.bad__name__c", "Metadata": {"label": "X", "type": "Url"}}),
        ("POST", TOOLING, {"FullName": "Opportunity.x__c", "Metadata": {"label": "X", "type": "Url"}}),
        ("POST", TOOLING, {"Metadata": {"label": "X", "type": "Url"}}),
    )
    codes = [(a.status_code, a.json()[0]["errorCode"]) for a in answers]
    assert codes == [
        (400, "FIELD_INTEGRITY_EXCEPTION"), (400, "FIELD_INTEGRITY_EXCEPTION"), (400, "FIELD_INTEGRITY_EXCEPTION"),
        (400, "INVALID_FIELD"), (400, "INVALID_CROSS_REFERENCE_KEY"), (400, "REQUIRED_FIELD_MISSING"),
    ]
    assert "Field Label" in answers[0].json()[0]["message"] and "Length" in answers[1].json()[0]["message"]
    assert sandbox.created_fields == {}


def test_without_customize_application_nothing_is_created() -> None:
    sandbox = bare(customize_application=False)
    [answer] = calls(sandbox, ("POST", TOOLING, TWITTER))
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS"
    assert "twitter_username__c" not in described(sandbox)


def test_field_level_security_hides_a_new_field_until_granted() -> None:
    sandbox = bare(field_access_on_create=False)
    created, query = calls(
        sandbox, ("POST", TOOLING, TWITTER),
        ("GET", f"{API_PREFIX}/query?q=SELECT+twitter_username__c+FROM+Contact", None),
    )
    assert created.status_code == 201
    assert "twitter_username__c" not in described(sandbox)
    assert query.status_code == 400 and query.json()[0]["errorCode"] == "INVALID_FIELD"
    [again] = calls(sandbox, ("POST", TOOLING, TWITTER))
    assert again.json()[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"  # it exists, only hidden
    assert sandbox.grant_field_access() == ["Contact.twitter_username__c"]
    assert "twitter_username__c" in described(sandbox)
