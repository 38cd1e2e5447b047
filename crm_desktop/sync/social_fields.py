"""The seed's social custom fields per CRM: what default mappings send and what ``fields ensure`` creates."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from crm_desktop.domain.models import Provider
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.models import FieldDirection


class FieldKind(StrEnum):
    """What a social field holds, whatever the CRM calls the type."""

    TEXT = "text"
    URL = "url"
    COUNT = "count"
    SCORE = "score"
    LONG_TEXT = "long_text"
    SENTIMENT = "sentiment"


#: The values a sentiment field offers (the app's own sentiment values).
SENTIMENTS: tuple[str, ...] = ("positive", "neutral", "negative", "mixed")


@dataclass(frozen=True)
class SocialField:
    """One custom field a CRM needs for the seed's social data.

    Attributes:
        local_field: the local field the default mapping sends to it.
        name: the CRM's API name (Salesforce ``twitter_username__c``, HubSpot ``twitter_username``) or, on
            Pipedrive, the field's name as people see it (its 40-hex key is looked up, never typed).
        label: the label a created field gets.
        kind: what it holds.
        direction: how the default mapping syncs it.
    """

    local_field: str
    name: str
    label: str
    kind: FieldKind
    direction: FieldDirection = FieldDirection.TWO_WAY


_PUSH = FieldDirection.PUSH_ONLY

#: The Salesforce Contact's ten seed fields, plus the total followers the app has always sent.
_SALESFORCE_CONTACT = (
    SocialField("twitterUsername", "twitter_username__c", "Twitter Username", FieldKind.TEXT),
    SocialField("twitterUrl", "twitter_url__c", "Twitter URL", FieldKind.URL),
    SocialField("twitterFollowers", "twitter_followers__c", "Twitter Followers", FieldKind.COUNT, _PUSH),
    SocialField("instagramUsername", "instagram_username__c", "Instagram Username", FieldKind.TEXT),
    SocialField("instagramUrl", "instagram_url__c", "Instagram URL", FieldKind.URL),
    SocialField("instagramFollowers", "instagram_followers__c", "Instagram Followers", FieldKind.COUNT, _PUSH),
    SocialField("linkedinUsername", "linkedin_username__c", "LinkedIn Username", FieldKind.TEXT),
    SocialField("linkedinUrl", "linkedin_url__c", "LinkedIn URL", FieldKind.URL),
    SocialField("socialEngagementScore", "social_engagement_score__c", "Social Engagement Score", FieldKind.SCORE,
                _PUSH),
    SocialField("socialTouchpoints", "social_touchpoints__c", "Social Touchpoints", FieldKind.LONG_TEXT, _PUSH),
    SocialField("socialFollowers", "social_followers__c", "Social Followers", FieldKind.COUNT, _PUSH),
)
_SALESFORCE_LEAD = (
    SocialField("source", "lead_source_detail__c", "Lead Source Detail", FieldKind.TEXT),
    SocialField("sentiment", "social_sentiment__c", "Social Sentiment", FieldKind.SENTIMENT),
    SocialField("engagementScore", "social_engagement_score__c", "Social Engagement Score", FieldKind.SCORE),
)
#: HubSpot's nine contact properties.
_HUBSPOT_CONTACT = (
    SocialField("twitterUsername", "twitter_username", "Twitter username", FieldKind.TEXT),
    SocialField("twitterFollowers", "twitter_followers", "Twitter followers", FieldKind.COUNT, _PUSH),
    SocialField("instagramUsername", "instagram_username", "Instagram username", FieldKind.TEXT),
    SocialField("instagramFollowers", "instagram_followers", "Instagram followers", FieldKind.COUNT, _PUSH),
    SocialField("linkedinUsername", "linkedin_username", "LinkedIn username", FieldKind.TEXT),
    SocialField("linkedinUrl", "linkedin_url", "LinkedIn URL", FieldKind.URL),
    SocialField("socialFollowers", "social_followers", "Social followers", FieldKind.COUNT, _PUSH),
    SocialField("socialEngagementScore", "social_engagement_score", "Social engagement score", FieldKind.SCORE,
                _PUSH),
    SocialField("socialTouchpoints", "social_touchpoints", "Social touchpoints", FieldKind.LONG_TEXT, _PUSH),
)
_HUBSPOT_LEAD = (
    SocialField("sentiment", "social_sentiment", "Social sentiment", FieldKind.SENTIMENT),
    SocialField("engagementScore", "social_engagement_score", "Social engagement score", FieldKind.SCORE),
)
#: Pipedrive's three person fields, by name; the rest of the social data goes into the person's note.
_PIPEDRIVE_CONTACT = (
    SocialField("twitterUsername", "twitter_username", "twitter_username", FieldKind.TEXT),
    SocialField("instagramUsername", "instagram_username", "instagram_username", FieldKind.TEXT),
    SocialField("socialEngagementScore", "social_engagement_score", "social_engagement_score", FieldKind.SCORE,
                _PUSH),
)

_CATALOGUE: dict[tuple[Provider, RecordObject], tuple[SocialField, ...]] = {
    (Provider.SALESFORCE, RecordObject.CONTACT): _SALESFORCE_CONTACT,
    (Provider.SALESFORCE, RecordObject.LEAD): _SALESFORCE_LEAD,
    (Provider.HUBSPOT, RecordObject.CONTACT): _HUBSPOT_CONTACT,
    (Provider.HUBSPOT, RecordObject.LEAD): _HUBSPOT_LEAD,
    (Provider.PIPEDRIVE, RecordObject.CONTACT): _PIPEDRIVE_CONTACT,
    (Provider.PIPEDRIVE, RecordObject.LEAD): (),
}


def social_fields(provider: Provider, obj: RecordObject) -> tuple[SocialField, ...]:
    """The seed's social custom fields of ``provider``'s contacts or leads, in the order they are created."""
    return _CATALOGUE[(provider, obj)]


def social_field_names(provider: Provider, obj: RecordObject) -> frozenset[str]:
    """The CRM names of those fields, case-folded (to tell a seed field from one a person mapped)."""
    return frozenset(f.name.casefold() for f in social_fields(provider, obj))


__all__ = ["SENTIMENTS", "FieldKind", "SocialField", "social_field_names", "social_fields"]
