"""A person's engagement history in a few lines: what the CRM's summary field (or Pipedrive note) holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from crm_desktop.domain.models import Sentiment, SocialPlatform, platform_name

#: Touchpoints listed under "Recent touchpoints", newest first.
RECENT_TOUCHPOINTS = 5
#: The summary stays well inside every CRM's long-text limit (Salesforce 32,768, HubSpot 65,536 characters).
SUMMARY_LIMIT = 2000
#: How each sentiment counts towards the trend.
_SENTIMENT_POINTS = {Sentiment.POSITIVE: 1.0, Sentiment.NEUTRAL: 0.0, Sentiment.MIXED: 0.0, Sentiment.NEGATIVE: -1.0}
#: A change in the average smaller than this is "steady".
_TREND_THRESHOLD = 0.25


@dataclass(frozen=True)
class ConversationFact:
    """One conversation as the summary counts it."""

    platform: SocialPlatform
    started_at: datetime
    last_message_at: datetime | None = None


@dataclass(frozen=True)
class Interaction:
    """One dated thing the person did (a touchpoint or a message): when, where and what."""

    at: datetime
    platform: SocialPlatform
    what: str
    campaign: str | None = None


@dataclass(frozen=True)
class EngagementHistory:
    """What is known of one person's engagement, oldest first within each list.

    Attributes:
        conversations: their conversations.
        sentiments: the sentiment of each message that has one, with when it was sent.
        interactions: touchpoints and messages.
    """

    conversations: tuple[ConversationFact, ...] = ()
    sentiments: tuple[tuple[datetime, Sentiment], ...] = ()
    interactions: tuple[Interaction, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.conversations or self.sentiments or self.interactions)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def sentiment_trend(readings: Sequence[tuple[datetime, Sentiment]]) -> str:
    """``improving``, ``declining`` or ``steady`` (with the latest sentiment), comparing the older half of the
    readings with the newer half; ``no sentiment yet`` without readings."""
    ordered = [sentiment for _, sentiment in sorted(readings, key=lambda reading: reading[0])]
    if not ordered:
        return "no sentiment yet"
    latest = ordered[-1].value
    if len(ordered) < 2:
        return f"{latest} (one reading)"
    half = len(ordered) // 2
    older = sum(_SENTIMENT_POINTS[s] for s in ordered[:half]) / half
    newer = sum(_SENTIMENT_POINTS[s] for s in ordered[half:]) / (len(ordered) - half)
    if newer - older >= _TREND_THRESHOLD:
        direction = "improving"
    elif older - newer >= _TREND_THRESHOLD:
        direction = "declining"
    else:
        direction = "steady"
    return f"{direction}, latest {latest} ({len(ordered)} readings)"


def engagement_summary(history: EngagementHistory, *, recent: int = RECENT_TOUCHPOINTS) -> str | None:
    """The summary text: conversation count (per network), last interaction, sentiment trend, recent touchpoints.

    ``None`` when nothing is known (a blank never wipes the CRM's field). Deterministic: the same history gives
    the same text, so an unchanged history sends nothing.
    """
    if history.empty:
        return None
    lines: list[str] = []
    per_network = Counter(platform_name(c.platform) for c in history.conversations)
    networks = ", ".join(f"{name} {count}" for name, count in sorted(per_network.items()))
    count = len(history.conversations)
    lines.append(f"Conversations: {count}" + (f" ({networks})" if networks else ""))
    moments = [(i.at, f"{i.what} on {platform_name(i.platform)}") for i in history.interactions]
    moments += [(c.last_message_at or c.started_at, f"conversation on {platform_name(c.platform)}")
                for c in history.conversations]
    if moments:
        at, what = max(moments, key=lambda moment: moment[0])
        lines.append(f"Last interaction: {_when(at)} ({what})")
    lines.append(f"Sentiment trend: {sentiment_trend(history.sentiments)}")
    newest = sorted(history.interactions, key=lambda i: i.at, reverse=True)[:recent]
    if newest:
        lines.append("Recent touchpoints:")
        lines.extend(
            f"- {_when(i.at)} {platform_name(i.platform)} {i.what}" + (f" ({i.campaign})" if i.campaign else "")
            for i in newest
        )
    text = "\n".join(lines)
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


__all__ = [
    "ConversationFact",
    "EngagementHistory",
    "Interaction",
    "engagement_summary",
    "sentiment_trend",
]
