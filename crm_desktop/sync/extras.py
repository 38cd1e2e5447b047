"""What a push sends besides a record's own fields: the engagement summary, and the social note (Pipedrive)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from crm_desktop.domain.engagement_summary import engagement_summary
from crm_desktop.domain.models import Contact, Lead, Provider
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.engagement_store import EngagementStore
from crm_desktop.sync.mapping import FieldMapping, Value, canonical

#: The local field that carries the engagement summary.
SUMMARY_FIELD = "socialTouchpoints"
#: The contact's local field that carries the person's engagement score.
SCORE_FIELD = "socialEngagementScore"
#: The heading of the engagement history in a note.
HISTORY_HEADING = "Engagement history:"
#: Pipedrive's seed field names, by the local field that fills each (what a note need not repeat).
_PIPEDRIVE_SEED_NAMES = {
    "twitterUsername": "twitter_username",
    "instagramUsername": "instagram_username",
    "linkedinUrl": "linkedin_url",
    "socialFollowers": "social_followers",
    "socialEngagementScore": "social_engagement_score",
    "source": "lead_source_detail",
    "sentiment": "social_sentiment",
    "engagementScore": "social_engagement_score",
}


def computed_values(
    store: EngagementStore, obj: RecordObject, records: Sequence[Contact | Lead]
) -> dict[str, dict[str, Value]]:
    """The values a push sends beside a record's own, per email: the engagement summary, and a contact's score
    (the person's, as scored from their activity and shown in the People list: the same number the person's lead
    carries to the CRM; its profiles' own figures are the fallback). One read for a whole batch."""
    histories = store.histories(r.email for r in records)
    computed: dict[str, dict[str, Value]] = {
        email: {SUMMARY_FIELD: engagement_summary(history)} for email, history in histories.items()}
    if obj is RecordObject.CONTACT:
        for email, score in store.contact_scores(r.email for r in records).items():
            computed.setdefault(email, {})[SCORE_FIELD] = canonical(score)
    return computed


class PushExtras(Protocol):
    """Values computed outside the record (from the social history), and the note a pushed record carries."""

    def values(self, obj: RecordObject, records: Sequence[Contact | Lead]) -> dict[str, dict[str, Value]]:
        """Computed local values per email (e.g. ``socialTouchpoints``), one read for a whole batch."""
        ...

    def note(self, obj: RecordObject, record: Contact | Lead, computed: dict[str, Value]) -> str | None:
        """The note to keep on the CRM record, or ``None`` when the CRM takes none on a push."""
        ...


class SocialPushExtras:
    """The engagement summary for every CRM; on Pipedrive (notes are its carrier of social data) the social note.

    Attributes:
        store: reads the people's engagement history.
        provider: the CRM pushed to.
        mappings: the run's mappings per object (a note does not repeat what a mapped field carries).
    """

    def __init__(
        self, store: EngagementStore, provider: Provider, mappings: dict[RecordObject, list[FieldMapping]]
    ) -> None:
        self.store = store
        self.provider = provider
        self.mappings = mappings

    def values(self, obj: RecordObject, records: Sequence[Contact | Lead]) -> dict[str, dict[str, Value]]:
        return computed_values(self.store, obj, records)

    def note(self, obj: RecordObject, record: Contact | Lead, computed: dict[str, Value]) -> str | None:
        if self.provider is not Provider.PIPEDRIVE:
            return None
        sent = {
            _PIPEDRIVE_SEED_NAMES[m.local_field]: m.crm_field
            for m in self.mappings.get(obj, [])
            if m.pushes and m.local_field in _PIPEDRIVE_SEED_NAMES
        }
        from crm_desktop.providers import pipedrive_records  # with its first note: httpx under it

        # Custom columns go to a field of their name or stay local, never into a note (see app/push_fields).
        bare = record.model_copy(update={"custom_fields": {}})
        if isinstance(bare, Contact):
            built = pipedrive_records.default_contact_record(bare, social_field_keys=sent)
        else:
            built = pipedrive_records.default_lead_record(bare, social_field_keys=sent)
        parts = [built.note] if built.note else []
        summary = computed.get(SUMMARY_FIELD)
        if summary:
            parts.append(f"{HISTORY_HEADING}\n{summary}")
        return "\n\n".join(parts) or None


__all__ = ["HISTORY_HEADING", "SUMMARY_FIELD", "PushExtras", "SocialPushExtras"]
