"""The credential shapes of each CRM, read from stdin or the sign-in flow and kept only in the keyring."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from crm_desktop.domain.errors import FieldProblem
from crm_desktop.domain.models import Provider, check_base_url


def _single_token(value: SecretStr) -> SecretStr:
    # A pasted token never holds spaces or line breaks; one that does would fail later in an HTTP header.
    if any(character.isspace() or not character.isprintable() for character in value.get_secret_value()):
        raise ValueError("contains spaces, line breaks or control characters; paste the token alone")
    return value


Token = Annotated[SecretStr, Field(min_length=8, max_length=4096), AfterValidator(_single_token)]


class CredentialsError(ValueError):
    """Credentials given for an integration are unusable; the message names the field, never its value.

    Attributes:
        problems: one entry per bad field (wire name and reason), for forms that show errors next to fields.
    """

    def __init__(self, message: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class _Credentials(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def to_vault(self) -> dict[str, Any]:
        """The plain dict stored in the keyring entry (secrets revealed only here)."""
        data: dict[str, Any] = {}
        for name, value in self:
            key = to_camel(name)
            if isinstance(value, SecretStr):
                data[key] = value.get_secret_value()
            elif value is not None:
                data[key] = value
        return data


class HubSpotCredentials(_Credentials):
    """A HubSpot private-app token (``pat-...``)."""

    token: Token


class PipedriveCredentials(_Credentials):
    """A Pipedrive personal API token."""

    api_token: Token


class SalesforceCredentials(_Credentials):
    """A Salesforce connected app's client and the tokens of the signed-in user."""

    client_id: Annotated[str, Field(min_length=1, max_length=512)]
    client_secret: SecretStr | None = None
    access_token: Token | None = None
    refresh_token: Token | None = None
    instance_url: str | None = None
    issued_at: int | None = None

    @field_validator("instance_url")
    @classmethod
    def _check_instance(cls, value: str | None) -> str | None:
        return check_base_url(value) if value else None


CREDENTIAL_MODELS: dict[Provider, type[_Credentials]] = {
    Provider.HUBSPOT: HubSpotCredentials,
    Provider.PIPEDRIVE: PipedriveCredentials,
    Provider.SALESFORCE: SalesforceCredentials,
}


def _explain(exc: ValidationError, provider: Provider) -> CredentialsError:
    parts = []
    problems: list[FieldProblem] = []
    expected = ", ".join(sorted(to_camel(name) for name in CREDENTIAL_MODELS[provider].model_fields))
    for error in exc.errors(include_url=False, include_input=False):
        kind = error["type"]
        context = error.get("ctx", {})
        if kind == "extra_forbidden":
            # The unknown key itself is not named: a pasted secret may have landed in a key.
            parts.append(f"unexpected field (expected {expected})")
            problems.append(FieldProblem("(secret)", f"unexpected field (expected {expected})"))
            continue
        field = ".".join(to_camel(p) if isinstance(p, str) else str(p) for p in error["loc"]) or "(secret)"
        if kind == "too_short":
            # Pydantic's own message tells the secret's length.
            message = f"too short (at least {context.get('min_length')} characters)"
        elif kind == "too_long":
            message = f"too long (at most {context.get('max_length')} characters)"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
        problems.append(FieldProblem(field, message))
    return CredentialsError(f"{provider.value} credentials are invalid: " + "; ".join(parts), problems)


def parse_secret(provider: Provider, text: str) -> dict[str, Any]:
    """Read the secret given on stdin for ``provider`` and return what the keyring stores.

    HubSpot takes a private-app token, Pipedrive an API token (either may also come as a JSON object), and
    Salesforce a JSON object ``{"clientId", "clientSecret", "accessToken", "refreshToken", "instanceUrl"}``.

    Raises:
        CredentialsError: naming what is missing or wrong, never echoing the secret.
    """
    raw = text.strip()
    if not raw:
        raise CredentialsError(f"no {provider.value} secret was given on stdin")
    data: Any
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError:
            raise CredentialsError(f"the {provider.value} secret looks like JSON but cannot be read") from None
    elif provider is Provider.HUBSPOT:
        data = {"token": raw}
    elif provider is Provider.PIPEDRIVE:
        data = {"apiToken": raw}
    else:
        raise CredentialsError(
            "salesforce credentials must be a JSON object with clientId, clientSecret, accessToken, "
            "refreshToken and instanceUrl (or use `crm-desktop integration login` to sign in)"
        )
    return validate_credentials(provider, data)


def validate_credentials(provider: Provider, data: dict[str, Any]) -> dict[str, Any]:
    """Check a credentials dict for ``provider`` and return its normalised form.

    Raises:
        CredentialsError: naming the bad field.
    """
    model = CREDENTIAL_MODELS[provider]
    try:
        return model.model_validate(data).to_vault()
    except ValidationError as exc:
        raise _explain(exc, provider) from None


def needs_sign_in(provider: Provider, credentials: dict[str, Any] | None) -> bool:
    """Whether the integration still has to sign in (Salesforce with only its connected app, or nothing at all)."""
    if not credentials:
        return True
    if provider is Provider.SALESFORCE:
        return not credentials.get("accessToken") and not credentials.get("refreshToken")
    return False


def check_lasting_session(provider: Provider, credentials: dict[str, Any], integration_name: str) -> None:
    """Refuse Salesforce tokens that cannot outlive their session: an access token with no refresh token.

    Such a secret works for about two hours, then every sync fails until someone signs in again; the user is told at
    once instead. Only the connected app (``clientId``, ``clientSecret``) without tokens is fine: the integration then
    signs in with ``crm-desktop integration login``.

    Raises:
        CredentialsError: naming ``refreshToken`` and what to do.
    """
    if provider is not Provider.SALESFORCE or not credentials.get("accessToken") or credentials.get("refreshToken"):
        return
    reason = (
        "missing: an access token alone stops working when its session ends (about 2 hours) and cannot be renewed. "
        "Include the refresh token, or give only clientId and clientSecret and sign in with "
        f"`crm-desktop integration login {integration_name}`"
    )
    raise CredentialsError(
        f"{provider.value} credentials are invalid: refreshToken: {reason}", [FieldProblem("refreshToken", reason)]
    )
