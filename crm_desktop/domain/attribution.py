"""Multi-touch attribution: how one lead's or conversion's credit is shared among its touchpoints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from crm_desktop.domain.models import SocialPlatform, TouchpointType
from crm_desktop.domain.scoring import age_in_days, decay
from crm_desktop.domain.social import AttributionModel

#: Position-based shares: the first and the last touch get this much each; the middle touches share the rest.
POSITION_END_SHARE = 0.4


@dataclass(frozen=True)
class Touch:
    """A touchpoint as attribution sees it.

    Attributes:
        timestamp: when it happened (aware UTC).
        platform: the social network.
        type: what the person did.
        campaign: the campaign it carried, if any.
        order: the order it was recorded in; breaks ties between touches at the same instant.
    """

    timestamp: datetime
    platform: SocialPlatform
    type: TouchpointType
    campaign: str | None
    order: int


@dataclass(frozen=True)
class Credit:
    """One touch and the share of the credit it earned (the shares of one attribution sum to 1)."""

    touch: Touch
    credit: float


def in_time_order(touches: Sequence[Touch]) -> list[Touch]:
    """Oldest first; touches at the same instant in the order they were recorded."""
    return sorted(touches, key=lambda t: (t.timestamp, t.order))


def attribute(
    touches: Sequence[Touch], model: AttributionModel, reference: datetime, half_life_days: float = 7.0
) -> list[Credit]:
    """Share one unit of credit among ``touches`` (returned oldest first).

    Args:
        touches: the touchpoints before the conversion (or all of them, for a lead not converted).
        model: the attribution model.
        reference: the conversion's instant, or now; the time-decay model measures each touch's age back from it.
        half_life_days: the time-decay model's half-life: a touch that much older earns half the weight.

    Returns:
        One credit per touch, summing to 1; empty when there is no touch.
    """
    ordered = in_time_order(touches)
    count = len(ordered)
    if count == 0:
        return []
    shares: list[float]
    if model is AttributionModel.FIRST_TOUCH:
        shares = [1.0] + [0.0] * (count - 1)
    elif model is AttributionModel.LAST_TOUCH:
        shares = [0.0] * (count - 1) + [1.0]
    elif model is AttributionModel.LINEAR:
        shares = [1.0 / count] * count
    elif model is AttributionModel.TIME_DECAY:
        ages = [max(0.0, age_in_days(t.timestamp, reference)) for t in ordered]
        # Weighed from the newest touch (the shares are the same): touches a thousand half-lives old would all
        # weigh 0.0 in floating point, and their shares be 0/0.
        youngest = min(ages)
        weights = [decay(age - youngest, half_life_days) for age in ages]
        total = sum(weights)
        shares = [w / total for w in weights]
    elif model is AttributionModel.POSITION_BASED:
        if count == 1:
            shares = [1.0]
        elif count == 2:
            shares = [0.5, 0.5]
        else:
            middle = (1.0 - 2 * POSITION_END_SHARE) / (count - 2)
            shares = [POSITION_END_SHARE] + [middle] * (count - 2) + [POSITION_END_SHARE]
    else:  # pragma: no cover - the enum is exhaustive
        raise ValueError(f"unknown attribution model {model!r}")
    return [Credit(touch, share) for touch, share in zip(ordered, shares, strict=True)]
