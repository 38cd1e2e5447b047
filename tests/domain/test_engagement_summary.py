"""The engagement summary the CRM's summary field holds: counts, last interaction, sentiment trend, recent touches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_desktop.domain.engagement_summary import (
    SUMMARY_LIMIT,
    ConversationFact,
    EngagementHistory,
    Interaction,
    engagement_summary,
    sentiment_trend,
)
from crm_desktop.domain.models import Sentiment, SocialPlatform

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
TW, IG = SocialPlatform.TWITTER, SocialPlatform.INSTAGRAM


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_nothing_known_gives_no_summary() -> None:
    assert engagement_summary(EngagementHistory()) is None


def test_the_summary_names_counts_last_interaction_trend_and_recent_touches() -> None:
    history = EngagementHistory(
        conversations=(ConversationFact(TW, at(0), at(30)), ConversationFact(IG, at(5)), ConversationFact(TW, at(7))),
        sentiments=((at(1), Sentiment.NEGATIVE), (at(2), Sentiment.NEUTRAL), (at(20), Sentiment.POSITIVE),
                    (at(30), Sentiment.POSITIVE)),
        interactions=tuple(
            Interaction(at(h), IG if h % 2 else TW, what, campaign)
            for h, what, campaign in [(3, "like", None), (4, "comment", "spring"), (6, "share", "spring"),
                                      (8, "click", None), (9, "view", None), (11, "comment", None)]
        ),
    )
    assert engagement_summary(history) == "\n".join([
        "Conversations: 3 (Instagram 1, Twitter/X 2)",
        "Last interaction: 2026-01-11 15:00 UTC (conversation on Twitter/X)",
        "Sentiment trend: improving, latest positive (4 readings)",
        "Recent touchpoints:",
        "- 2026-01-10 20:00 UTC Instagram comment",
        "- 2026-01-10 18:00 UTC Instagram view",
        "- 2026-01-10 17:00 UTC Twitter/X click",
        "- 2026-01-10 15:00 UTC Twitter/X share (spring)",
        "- 2026-01-10 13:00 UTC Twitter/X comment (spring)",
    ])


def test_the_trend_compares_the_older_half_with_the_newer() -> None:
    assert sentiment_trend([]) == "no sentiment yet"
    assert sentiment_trend([(at(0), Sentiment.MIXED)]) == "mixed (one reading)"
    # Out of order on purpose: the trend follows time, not the order given.
    declining = [(at(3), Sentiment.NEGATIVE), (at(0), Sentiment.POSITIVE), (at(1), Sentiment.POSITIVE),
                 (at(2), Sentiment.NEUTRAL)]
    assert sentiment_trend(declining) == "declining, latest negative (4 readings)"
    steady = [(at(0), Sentiment.POSITIVE), (at(1), Sentiment.NEUTRAL), (at(2), Sentiment.POSITIVE),
              (at(3), Sentiment.NEUTRAL)]
    assert sentiment_trend(steady) == "steady, latest neutral (4 readings)"


def test_a_person_with_only_touches_has_no_conversation_and_no_sentiment() -> None:
    text = engagement_summary(EngagementHistory(interactions=(Interaction(at(0), IG, "follow"),)))
    assert text == "\n".join([
        "Conversations: 0",
        "Last interaction: 2026-01-10 09:00 UTC (follow on Instagram)",
        "Sentiment trend: no sentiment yet",
        "Recent touchpoints:",
        "- 2026-01-10 09:00 UTC Instagram follow",
    ])


def test_the_summary_is_bounded() -> None:
    many = tuple(Interaction(at(h), TW, "comment", "c" * 300) for h in range(50))
    text = engagement_summary(EngagementHistory(interactions=many), recent=50)
    assert text is not None and len(text) == SUMMARY_LIMIT and text.endswith("…")
