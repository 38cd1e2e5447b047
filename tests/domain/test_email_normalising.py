"""Email normalising: the quick reading of addresses at an accepted domain gives email_validator's own answer."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from crm_desktop.domain import models
from crm_desktop.domain.models import normalise_email

ADDRESSES = [
    "Ann.Lee@Example.COM", "ann+news@example.com", "o'brien@example.com", "a.b.c@sub.Example.com",
    "x@example.com", "ann..lee@example.com", ".ann@example.com", "ann.@example.com", "ann lee@example.com",
    "ann@@example.com", "ännä@example.com", "ann@exämple.com", "ann@EXÄMPLE.com", '"ann lee"@example.com',
    "a" * 64 + "@example.com", "a" * 65 + "@example.com", "ann@" + "b" * 63 + ".com", "ann@localhost",
    "ann@example.invalid", "ann@example", "ann@-example.com", "ann@example.com.", " ann@example.com ",
    "ann!#$%&*+/=?^_`{|}~-@example.com",
]


def validator_answer(address: str) -> str | None:
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def app_answer(address: str) -> str | None:
    try:
        return normalise_email(address)
    except ValueError:
        return None


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_quick_reading_agrees_with_email_validator(address: str) -> None:
    normalise_email.cache_clear()
    models._CHECKED_DOMAINS.clear()
    for warm in ("warm@example.com", "warm@sub.Example.com", "warm@exämple.com", "warm@EXÄMPLE.com",
                 "warm@" + "b" * 63 + ".com"):
        normalise_email(warm)  # the domains are known: the quick path reads the address
    assert app_answer(address) == validator_answer(address)


def test_a_domain_is_remembered_only_once_accepted() -> None:
    models._CHECKED_DOMAINS.clear()
    with pytest.raises(ValueError, match="not a valid email address"):
        normalise_email("ann@example.invalid")
    assert "example.invalid" not in models._CHECKED_DOMAINS
    assert normalise_email("Ann@Example.com") == "ann@example.com"
    assert models._CHECKED_DOMAINS == {"Example.com": "example.com"}
