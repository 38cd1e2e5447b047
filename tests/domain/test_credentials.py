"""Credentials read from stdin per provider: what the keyring stores, and errors that never echo the secret."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crm_desktop.domain.credentials import CredentialsError, parse_secret, validate_credentials
from crm_desktop.domain.models import Provider

SECRET = "pat-na1-7f3c2b1a-SECRET-9e8d"
SALESFORCE = {
    "clientId": "3MVG9-connected-app",
    "clientSecret": "SF-CLIENT-SECRET-1234",
    "accessToken": "00D5g000004!AQ8AQ-ACCESS-TOKEN",
    "refreshToken": "5Aep861-REFRESH-TOKEN-xyz",
    "instanceUrl": "https://acme.my.salesforce.com/",
}


@pytest.mark.parametrize(
    ("provider", "text", "stored"),
    [
        (Provider.HUBSPOT, f"{SECRET}\n", {"token": SECRET}),
        (Provider.HUBSPOT, f'  {{"token": "{SECRET}"}}  ', {"token": SECRET}),
        (
            Provider.PIPEDRIVE,
            "0123456789abcdef0123456789abcdef01234567",
            {"apiToken": "0123456789abcdef0123456789abcdef01234567"},
        ),
        (Provider.PIPEDRIVE, '{"api_token": "0123456789abcdef"}', {"apiToken": "0123456789abcdef"}),
        (
            Provider.SALESFORCE,
            json.dumps(SALESFORCE),
            SALESFORCE | {"instanceUrl": "https://acme.my.salesforce.com"},
        ),
        (Provider.SALESFORCE, '{"clientId": "3MVG9-connected-app"}', {"clientId": "3MVG9-connected-app"}),
        (
            Provider.SALESFORCE,
            '{"clientId": "app", "accessToken": "00D-ACCESS-TOKEN", "instanceUrl": "http://127.0.0.1:8766",'
            ' "issuedAt": 1764237600000}',
            {
                "clientId": "app",
                "accessToken": "00D-ACCESS-TOKEN",
                "instanceUrl": "http://127.0.0.1:8766",
                "issuedAt": 1764237600000,
            },
        ),
    ],
    ids=[
        "hubspot-token",
        "hubspot-json",
        "pipedrive-token",
        "pipedrive-snake-json",
        "salesforce-full",
        "salesforce-client-only",
        "salesforce-sandbox",
    ],
)
def test_secrets_parse_to_what_the_keyring_stores(provider: Provider, text: str, stored: dict[str, Any]) -> None:
    assert parse_secret(provider, text) == stored


# Each row: provider, stdin text, the secret that must not show, what the message must say.
REFUSED: list[tuple[Provider, str, str, str]] = [
    (Provider.HUBSPOT, "", "", "no hubspot secret was given"),
    (Provider.HUBSPOT, "   \n", "", "no hubspot secret was given"),
    (Provider.HUBSPOT, "pat-1", "pat-1", "token: too short (at least 8 characters)"),
    (Provider.HUBSPOT, f"{SECRET} {SECRET}", SECRET, "token: contains spaces"),
    (Provider.HUBSPOT, f"{SECRET}\nsecond-line-secret", "second-line-secret", "token: contains spaces, line breaks"),
    (Provider.HUBSPOT, "x" * 5000, "x" * 100, "token: too long (at most 4096 characters)"),
    (Provider.HUBSPOT, f'{{"token": "{SECRET}"', SECRET, "looks like JSON but cannot be read"),
    (Provider.HUBSPOT, f'{{"tokn": "{SECRET}"}}', SECRET, "token: Field required"),
    (Provider.HUBSPOT, f'{{"token": "{SECRET}", "{SECRET}X": 1}}', SECRET, "unexpected field (expected token)"),
    (Provider.PIPEDRIVE, '{"apiToken": 12345678901}', "12345678901", "apiToken: Input should be a valid string"),
    (Provider.PIPEDRIVE, '{"apiToken": "abc"}', "abc", "apiToken: too short"),
    (Provider.SALESFORCE, SECRET, SECRET, "must be a JSON object with clientId"),
    (
        Provider.SALESFORCE,
        json.dumps(SALESFORCE | {"instanceUrl": "http://acme.my.salesforce.com"}),
        "SF-CLIENT-SECRET-1234",
        "instanceUrl: plain http is allowed only to loopback",
    ),
    (
        Provider.SALESFORCE,
        json.dumps({"clientSecret": "SF-CLIENT-SECRET-1234", "refreshToken": "5Aep"}),
        "SF-CLIENT-SECRET-1234",
        "clientId: Field required; refreshToken: too short",
    ),
    (
        Provider.SALESFORCE,
        json.dumps({"clientId": "app", "accessToken": ["00D-ACCESS-TOKEN-in-a-list"]}),
        "00D-ACCESS-TOKEN-in-a-list",
        "accessToken: Input should be a valid string",
    ),
]


@pytest.mark.parametrize(
    ("provider", "text", "secret", "message"),
    REFUSED,
    ids=[f"{p.value}-{i}" for i, (p, _, _, _) in enumerate(REFUSED)],
)
def test_refused_secrets_are_explained_without_echoing_them(
    provider: Provider, text: str, secret: str, message: str
) -> None:
    with pytest.raises(CredentialsError) as caught:
        parse_secret(provider, text)

    said = str(caught.value)
    assert message in said
    if secret:
        assert secret not in said
        assert secret not in repr(caught.value.args)
    # No chained pydantic error in a traceback either: its text would hold the input.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_a_short_secret_does_not_reveal_its_length() -> None:
    with pytest.raises(CredentialsError) as caught:
        parse_secret(Provider.PIPEDRIVE, "abcde")
    assert "5" not in str(caught.value)


@pytest.mark.parametrize("provider", list(Provider))
def test_validate_credentials_checks_a_dict_per_provider(provider: Provider) -> None:
    with pytest.raises(CredentialsError, match=f"^{provider.value} credentials are invalid: "):
        validate_credentials(provider, {})
