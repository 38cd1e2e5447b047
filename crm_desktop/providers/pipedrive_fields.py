"""Pipedrive's person fields: the standard ones a push writes, custom ones keyed by 40-hex hashes, and new ones."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_desktop.domain.outcomes import ErrorCategory, RecordObject
from crm_desktop.providers import errors
from crm_desktop.providers.contract import CrmField, not_an_option
from crm_desktop.providers.toolkit import read_date, read_number, read_yes_no

#: A custom field's key: 40 hex characters Pipedrive makes up.
HASH_KEY = re.compile(r"\b[0-9a-f]{40}\b")

#: Standard person fields a push may write (``name`` is also built from ``first_name`` and ``last_name``).
WRITABLE_PERSON_FIELDS = frozenset(
    {"name", "first_name", "last_name", "email", "phone", "org_id", "owner_id", "visible_to", "label_ids"}
)
#: Person attributes passed through as they are.
PERSON_PASS_THROUGH = ("org_id", "owner_id", "visible_to", "label_ids")
#: Organization names are not person fields: without an organization mapping they are left out of the person.
IGNORED_PERSON_FIELDS = frozenset({"company", "org_name", "organization"})

#: The lead's own writable fields (``POST /v1/leads``); everything else of a lead record belongs to its person.
LEAD_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("title", "Title", "varchar"),
    ("value", "Value", "monetary"),
    ("expected_close_date", "Expected close date", "date"),
    ("owner_id", "Owner", "user"),
    ("label_ids", "Labels", "set"),
    ("organization_id", "Organization", "org"),
    ("visible_to", "Visible to", "visible_to"),
    ("was_seen", "Seen", "boolean"),
    ("channel", "Channel", "enum"),
    ("channel_id", "Channel ID", "varchar"),
)
LEAD_KEYS = frozenset(key for key, _, _ in LEAD_FIELDS)
#: Record fields that are not custom person fields: they go on the wire under their own names.
STANDARD_RECORD_FIELDS = WRITABLE_PERSON_FIELDS | LEAD_KEYS | IGNORED_PERSON_FIELDS

#: Generic field types (as HubSpot and the field mapper name them) -> Pipedrive ``field_type``.
_FIELD_TYPE_ALIASES = {
    "string": "varchar",
    "text": "text",
    "textarea": "text",
    "number": "double",
    "double": "double",
    "enumeration": "enum",
    "picklist": "enum",
    "bool": "enum",
    "boolean": "enum",
    "date": "date",
    "phone_number": "phone",
    "phone": "phone",
}
PIPEDRIVE_FIELD_TYPES = (
    "address", "date", "daterange", "double", "enum", "monetary", "org", "people", "phone", "set", "text", "time",
    "timerange", "user", "varchar", "varchar_auto", "visible_to",
)  # fmt: skip


#: An amount in a money field with its currency code before or after it (``1500 EUR``, ``EUR 1500.50``).
_AMOUNT_AND_CURRENCY = re.compile(
    r"(?:(?P<before>[A-Za-z]{3})\s+)?(?P<amount>[-+]?\d+(?:\.\d+)?)(?:\s+(?P<after>[A-Za-z]{3}))?"
)


class RecordProblem(Exception):
    """A record the adapter refuses before sending it (a field Pipedrive does not have, a bad option)."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field_name = field_name
        self.reason = reason


@dataclass(frozen=True)
class PersonFieldMap:
    """Pipedrive's person fields by key and by human name: custom fields are keyed by 40-character hashes.

    Marketers see names (``Twitter username``); the wire wants keys (``9dc80c50...``). Use :meth:`key_for` to
    turn what a mapping names into a key, and :meth:`name_for` to show a key (a hash is never shown).

    Attributes:
        fields: the person fields, as :meth:`PipedriveAdapter.list_fields` lists them.
        option_ids: per enum or set field key, option label (case-folded) -> option id.
        currency: the company's default currency (``EUR``), for an amount given without one in a money field;
            ``None`` when not known.
    """

    fields: tuple[CrmField, ...] = ()
    option_ids: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    currency: str | None = None

    def get(self, key: str) -> CrmField | None:
        """The field with this key."""
        return next((f for f in self.fields if f.name == key), None)

    def key_for(self, name_or_key: str) -> str | None:
        """The key of a field given its key or its human name (case-insensitive); ``None`` when unknown."""
        if self.get(name_or_key) is not None:
            return name_or_key
        wanted = name_or_key.strip().casefold()
        return next((f.name for f in self.fields if f.label.casefold() == wanted), None)

    def name_for(self, key: str) -> str:
        """The human name of a key; an unknown hash reads as 'a custom field', never as the hash."""
        known = self.get(key)
        if known is not None:
            return known.label
        return "a custom field" if HASH_KEY.fullmatch(key) else key

    def keys_by_name(self) -> dict[str, str]:
        """Human name -> key of every custom field."""
        return {f.label: f.name for f in self.fields if f.custom}

    def to_keys(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Values keyed by field names or keys, re-keyed by field keys (unknown names are kept as given)."""
        return {self.key_for(name) or name: value for name, value in values.items()}

    def to_names(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Values keyed by field keys, re-keyed by human names."""
        return {self.name_for(key): value for key, value in values.items()}

    def humanise(self, text: str) -> str:
        """A message with every hash key replaced by its field's quoted name."""
        return HASH_KEY.sub(lambda match: f"'{self.name_for(match.group(0))}'", text)

    def with_field(self, crm_field: CrmField, option_ids: Mapping[str, int]) -> PersonFieldMap:
        """This map with one more field (just created)."""
        ids = dict(self.option_ids)
        if option_ids:
            ids[crm_field.name] = dict(option_ids)
        return PersonFieldMap((*self.fields, crm_field), ids, self.currency)

    def wire_value(self, key: str, value: Any, *, option_labels: bool = False) -> Any:
        """A custom value as Pipedrive takes it: numeric text in a number field becomes a number, option labels of
        enum and set fields become option ids, yes/no text (``true``, ``no``, ``1``) in a yes/no field the id of
        its Yes or No option, and a date field takes an ISO date (``YYYY-MM-DD``).

        Args:
            option_labels: give each option as the field lists its label (``Yes``), not its id, for a reader who
                has the field's options but not their ids (the Field Mapping preview); checked all the same.

        Raises:
            ValueError: a label that is not one of the field's options; ``'05/12/2026' is not a date (YYYY-MM-DD)``.
        """
        known = self.get(key)
        if known is not None and known.type == "monetary" and value is not None:
            return self._money(value, option_labels=option_labels)
        if known is not None and known.type in {"date", "double"} and isinstance(value, str) and not value.strip():
            # A blank (an undo putting back a field that was empty) clears a date or number field: null, the only
            # empty value those fields take.
            return None
        if known is not None and known.type == "date" and value is not None:
            # A date field takes an ISO date only (a date written day or month first is not guessed).
            return read_date(value)
        if known is not None and known.type == "double" and isinstance(value, str):
            # Mapped values travel as text ("4.5"); Pipedrive's number fields take JSON numbers only.
            return read_number(value)
        if known is None or value is None or known.type not in {"enum", "set"} or not known.options:
            return value
        ids: Mapping[str, int | str] = (
            {option.casefold(): option for option in known.options} if option_labels else self.option_ids.get(key, {})
        )
        if known.type == "enum" and is_yes_no(known) and isinstance(value, str | bool):
            # A yes/no field (as "Create missing fields" makes one for a boolean): mapped flags travel as text
            # ("true"), a marketer's file says "yes" or "1"; anything else is looked up among the options below.
            with contextlib.suppress(ValueError):
                value = "Yes" if read_yes_no(value) else "No"

        def option_id(label: Any) -> int | str:
            if isinstance(label, bool):
                label = "Yes" if label else "No"
            if isinstance(label, int):
                return label
            text = str(label).strip()
            found = ids.get(text.casefold())
            if found is None and text.isdigit():
                return int(text)
            if found is None:
                raise ValueError(not_an_option(text, known.options))
            return found

        if known.type == "enum":
            return option_id(value)
        labels = value if isinstance(value, list | tuple | set) else [v for v in str(value).split(",") if v.strip()]
        picked = [option_id(label) for label in labels]
        return picked if option_labels else sorted(picked, key=int)

    def _money(self, value: Any, *, option_labels: bool) -> Any:
        """A money field's value as Pipedrive's v2 takes it: ``{"value": 1500, "currency": "EUR"}``, from an amount
        with its currency code (``1500 EUR``, ``EUR 1500``) or without (the company's currency); blank clears it."""
        if isinstance(value, Mapping):
            amount, code = value.get("value"), value.get("currency")
        elif isinstance(value, str):
            if not value.strip():
                return None
            match = _AMOUNT_AND_CURRENCY.fullmatch(value.strip())
            if match is None or (match.group("before") and match.group("after")):
                raise ValueError(f"{value!r} is not an amount (1500, or with its currency: 1500 EUR)")
            amount, code = match.group("amount"), match.group("before") or match.group("after")
        else:
            amount, code = value, None
        number = read_number(amount)
        currency = str(code).upper() if code else self.currency
        if option_labels:
            # The Field Mapping preview, which does not know the company's currency: the amount it checked, with
            # the currency given.
            return f"{number} {currency}" if currency else number
        if currency is None:
            raise ValueError(f"{value!r} has no currency and the company's default currency is not known")
        return {"value": number, "currency": currency}

    def read_value(self, key: str, value: Any) -> Any:
        """A custom value as read from Pipedrive, as :meth:`wire_value` takes it back: an enum's option id as its
        label (a yes/no field's as ``True`` or ``False``), a set's ids as its labels joined by commas, an amount
        with its currency as ``1500 EUR``; an id that is not one of the field's options, and any other field's
        value, as it is."""
        known = self.get(key)
        if known is not None and known.type == "monetary" and isinstance(value, Mapping):
            amount = value.get("value")
            if amount is None:
                return None
            shown = int(amount) if isinstance(amount, float) and amount.is_integer() else amount
            return f"{shown} {value.get('currency') or ''}".strip()
        if known is None or value is None or known.type not in {"enum", "set"} or not known.options:
            return value
        ids = self.option_ids.get(key, {})
        labels = {ids[option.casefold()]: option for option in known.options if option.casefold() in ids}

        def label_of(item: Any) -> Any:
            if isinstance(item, bool) or not isinstance(item, int | str) or not str(item).strip().isdigit():
                return item
            return labels.get(int(item), item)

        if known.type == "enum":
            label = label_of(value)
            if is_yes_no(known) and isinstance(label, str) and label.strip().casefold() in {"yes", "no"}:
                return label.strip().casefold() == "yes"
            return label
        items = value if isinstance(value, list | tuple) else [v for v in str(value).split(",") if v.strip()]
        return ",".join(str(label_of(item)) for item in items)

    def wire_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Record fields with custom field names turned into keys and option labels into option ids.

        Raises:
            RecordProblem: a field that is not a custom person field, or a value it cannot take.
        """
        wired = {key: value for key, value in fields.items() if key in STANDARD_RECORD_FIELDS}
        for key in fields:
            if key in STANDARD_RECORD_FIELDS:
                continue
            wire_key = self.key_for(key)
            known = self.get(wire_key) if wire_key else None
            if known is None:
                raise RecordProblem(self.name_for(key), "is not a Pipedrive person field (create it first)")
            if not known.custom:
                raise RecordProblem(known.label, _READ_ONLY)
            try:
                wired[known.name] = self.wire_value(known.name, fields[key])
            except ValueError as exc:
                raise RecordProblem(known.label, str(exc)) from None
        return wired


#: Why a standard Pipedrive field outside the written ones takes no value (they are listed as not writable).
_READ_ONLY = "is read-only in Pipedrive (map it pull only)"


def field_wire_value(crm_field: CrmField, value: Any) -> Any:
    """What a push sends for ``value`` in the person or lead field ``crm_field``: a standard field's value as it is, a
    custom field's as :meth:`PersonFieldMap.wire_value` puts it, an option shown by its label (the field lists its
    options' labels, not their ids).

    Raises:
        ValueError: the field cannot take the value (``'05/12/2026' is not a date (YYYY-MM-DD)``, a label that is
            not one of its options, a standard field the sync does not write: read-only); a push fails the record,
            unsent.
    """
    if crm_field.name in STANDARD_RECORD_FIELDS:
        return value
    if not crm_field.custom:
        # A standard field the sync does not write (Update time...): it exists, creating one would not help.
        raise ValueError(_READ_ONLY)
    return PersonFieldMap((crm_field,)).wire_value(crm_field.name, value, option_labels=True)


def is_yes_no(crm_field: CrmField) -> bool:
    """Whether an enum field is a yes/no one: its options are exactly Yes and No (any case)."""
    return sorted(option.strip().casefold() for option in crm_field.options) == ["no", "yes"]


def person_field(raw: Mapping[str, Any]) -> tuple[CrmField, dict[str, int]]:
    """A ``/v1/personFields`` entry as a :class:`CrmField`, with its options' ids by case-folded label."""
    key = str(raw["key"])
    kind = str(raw.get("field_type") or "varchar")
    custom = bool(HASH_KEY.fullmatch(key)) or bool(raw.get("edit_flag"))
    options = [o for o in raw.get("options") or [] if isinstance(o, dict) and "label" in o]
    ids = {str(o["label"]).casefold(): int(o["id"]) for o in options if isinstance(o.get("id"), int)}
    crm_field = CrmField(
        name=key,
        label=str(raw.get("name") or ("Custom field" if custom else key)),
        type=kind,
        custom=custom,
        writable=custom or key in WRITABLE_PERSON_FIELDS,
        length=255 if kind in {"varchar", "varchar_auto", "phone"} else None,
        options=tuple(str(o["label"]) for o in options),
        restricted=kind in {"enum", "set"} and bool(options),
    )
    return crm_field, ids


def new_field_body(
    obj: RecordObject, name: str, label: str, field_type: str, options: Sequence[str] = ()
) -> dict[str, Any]:
    """The body of ``POST /v1/personFields`` for a custom person field named ``label`` (``name`` when empty).

    Raises:
        RequestRejectedError: for leads (their custom fields are Pipedrive's deal fields) or an unknown type.
    """
    if obj is not RecordObject.CONTACT:
        raise errors.RequestRejectedError(
            "Pipedrive keeps lead custom fields with the deal fields; create them in Pipedrive's settings",
            category=ErrorCategory.VALIDATION,
        )
    title = (label or name).strip()
    kind = field_type if field_type in PIPEDRIVE_FIELD_TYPES else _FIELD_TYPE_ALIASES.get(field_type.lower())
    if not title or kind is None:
        raise errors.RequestRejectedError(
            f"cannot create Pipedrive field {title!r} of type {field_type!r}: "
            f"types are {', '.join(PIPEDRIVE_FIELD_TYPES)}",
            category=ErrorCategory.VALIDATION,
        )
    choices = list(options) or (["Yes", "No"] if field_type.lower() in {"bool", "boolean"} else [])
    body: dict[str, Any] = {"name": title, "field_type": kind}
    if kind in {"enum", "set"}:
        body["options"] = [{"label": choice} for choice in choices]
    return body
