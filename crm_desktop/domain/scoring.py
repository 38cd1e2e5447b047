"""The engagement score: 0-100 from a person's interactions, their recency and their reach (docs/scoring.md)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from crm_desktop.domain.social import ScoringSettings

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Interaction:
    """One thing a person did that counts: a touchpoint type or ``inbound_message``/``outbound_message``, and when."""

    kind: str
    at: datetime


@dataclass(frozen=True)
class EngagementScore:
    """A score with the parts it is made of, so a marketer can see why.

    Attributes:
        score: 0-100, one decimal.
        activity: the interactions' points after recency decay.
        activity_part: 0-1, how close the activity is to saturation.
        reach_part: 0-1, the followers on a log scale up to the cap.
        followers: the reach used (the largest follower count of the person's profiles).
        interactions: how many interactions were counted.
    """

    score: float
    activity: float
    activity_part: float
    reach_part: float
    followers: int
    interactions: int


def decay(age_days: float, half_life_days: float) -> float:
    """The weight left after ``age_days``: halves every ``half_life_days``; a future instant counts in full."""
    return math.pow(2.0, -max(0.0, age_days) / half_life_days)


def age_in_days(moment: datetime, reference: datetime) -> float:
    """How many days ``moment`` lies before ``reference``."""
    return (reference - moment).total_seconds() / SECONDS_PER_DAY


def reach_part(followers: int, cap: int) -> float:
    """Followers on a log scale: ``log10(1 + followers) / log10(1 + cap)``, at most 1."""
    return min(1.0, math.log10(1 + max(0, followers)) / math.log10(1 + cap))


def engagement_score(
    interactions: Iterable[Interaction], followers: int, settings: ScoringSettings, now: datetime
) -> EngagementScore:
    """Score a person's engagement.

    ``activity = sum(weight(kind) * 2^(-age/half-life))``; ``activity_part = 1 - 2^(-activity/saturation)``;
    ``score = 100 * activity_part * ((1 - reach_share) + reach_share * reach_part)``: no interaction scores 0 whatever
    the reach, and reach lifts an active person by up to ``reach_share``.
    """
    activity = 0.0
    count = 0
    for interaction in interactions:
        weight = settings.weights.get(interaction.kind, 0.0)
        activity += weight * decay(age_in_days(interaction.at, now), settings.half_life_days)
        count += 1
    activity_part = 1.0 - math.pow(2.0, -activity / settings.saturation)
    reach = reach_part(followers, settings.reach_cap_followers)
    score = 100.0 * activity_part * ((1.0 - settings.reach_share) + settings.reach_share * reach)
    return EngagementScore(
        score=round(min(100.0, max(0.0, score)), 1),
        activity=activity,
        activity_part=activity_part,
        reach_part=reach,
        followers=max(0, followers),
        interactions=count,
    )
