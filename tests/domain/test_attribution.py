"""Multi-touch attribution against hand-computed tables: every model, ties in time, one touch, none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_desktop.domain.attribution import Touch, attribute
from crm_desktop.domain.models import SocialPlatform, TouchpointType
from crm_desktop.domain.social import AttributionModel

FIRST, LAST, LINEAR, DECAY, POSITION = (
    AttributionModel.FIRST_TOUCH,
    AttributionModel.LAST_TOUCH,
    AttributionModel.LINEAR,
    AttributionModel.TIME_DECAY,
    AttributionModel.POSITION_BASED,
)
CONVERTED = datetime(2026, 11, 29, 12, tzinfo=UTC)


def touch(days_before: float, order: int, campaign: str = "c") -> Touch:
    return Touch(CONVERTED - timedelta(days=days_before), SocialPlatform.TWITTER, TouchpointType.CLICK, campaign, order)


def credits(touches: list[Touch], model: AttributionModel, half_life: float = 7.0) -> list[tuple[int, float]]:
    return [(c.touch.order, c.credit) for c in attribute(touches, model, CONVERTED, half_life)]


THREE = [touch(0, 3), touch(14, 1), touch(7, 2)]  # given out of order on purpose
FOUR = [touch(21, 1), touch(14, 2), touch(7, 3), touch(0, 4)]
TWO = [touch(7, 1), touch(0, 2)]
ONE = [touch(3, 1)]

TABLE = [
    # three touches 14, 7 and 0 days before the conversion
    (THREE, FIRST, [1.0, 0.0, 0.0]),
    (THREE, LAST, [0.0, 0.0, 1.0]),
    (THREE, LINEAR, [1 / 3, 1 / 3, 1 / 3]),
    # weights 2^(-14/7) = 0.25, 2^(-7/7) = 0.5, 1; total 1.75
    (THREE, DECAY, [0.25 / 1.75, 0.5 / 1.75, 1 / 1.75]),
    (THREE, POSITION, [0.4, 0.2, 0.4]),
    # four touches 21, 14, 7, 0 days before
    (FOUR, FIRST, [1.0, 0.0, 0.0, 0.0]),
    (FOUR, LAST, [0.0, 0.0, 0.0, 1.0]),
    (FOUR, LINEAR, [0.25] * 4),
    # weights 0.125, 0.25, 0.5, 1; total 1.875
    (FOUR, DECAY, [0.125 / 1.875, 0.25 / 1.875, 0.5 / 1.875, 1 / 1.875]),
    (FOUR, POSITION, [0.4, 0.1, 0.1, 0.4]),
    # two touches: position based is 50/50; time decay 0.5 and 1 of 1.5
    (TWO, FIRST, [1.0, 0.0]),
    (TWO, LAST, [0.0, 1.0]),
    (TWO, LINEAR, [0.5, 0.5]),
    (TWO, DECAY, [1 / 3, 2 / 3]),
    (TWO, POSITION, [0.5, 0.5]),
    # one touch earns everything under every model
    *[(ONE, model, [1.0]) for model in AttributionModel],
]


@pytest.mark.parametrize(
    ("touches", "model", "expected"),
    TABLE,
    ids=[f"{len(t)}-touches-{m.value}" for t, m, _ in TABLE],
)
def test_attribution_table(touches: list[Touch], model: AttributionModel, expected: list[float]) -> None:
    result = credits(touches, model)
    assert [order for order, _ in result] == sorted(t.order for t in touches)  # oldest first
    assert [credit for _, credit in result] == pytest.approx(expected)
    assert sum(credit for _, credit in result) == pytest.approx(1.0)


def test_ties_in_time_go_by_recording_order() -> None:
    # Two touches at the same instant 7 days before, recorded as 5 then 6; one at the conversion.
    tied = [touch(0, 7), touch(7, 6), touch(7, 5)]
    assert credits(tied, FIRST) == [(5, 1.0), (6, 0.0), (7, 0.0)]
    assert credits(tied, LAST) == [(5, 0.0), (6, 0.0), (7, 1.0)]
    # weights 0.5, 0.5, 1 of 2
    assert credits(tied, DECAY) == [(5, pytest.approx(0.25)), (6, pytest.approx(0.25)), (7, pytest.approx(0.5))]
    assert credits(tied, POSITION) == [(5, 0.4), (6, pytest.approx(0.2)), (7, 0.4)]
    # all at one instant: the last recorded is the last touch
    same = [touch(2, 2), touch(2, 1)]
    assert credits(same, LAST) == [(1, 0.0), (2, 1.0)]
    assert credits(same, DECAY) == [(1, pytest.approx(0.5)), (2, pytest.approx(0.5))]


def test_time_decay_half_life_is_a_parameter() -> None:
    # 14 days before: half-life 7 gives 2^(-2) = 0.25 against 1 (0.2 of 1.25); half-life 14 gives 0.5 against 1
    two_weeks = [touch(14, 1), touch(0, 2)]
    assert [c for _, c in credits(two_weeks, DECAY)] == pytest.approx([0.2, 0.8])
    assert [c for _, c in credits(two_weeks, DECAY, half_life=14)] == pytest.approx([1 / 3, 2 / 3])


def test_no_touch_no_credit() -> None:
    for model in AttributionModel:
        assert attribute([], model, CONVERTED) == []


@pytest.mark.parametrize("model", list(AttributionModel))
def test_touches_a_thousand_half_lives_old_still_share_one_credit(model: AttributionModel) -> None:
    # 2^-(age/half-life) is 0.0 in floating point past about 1,075 half-lives: 20 years at 7 days, 3 at 1 day.
    ancient = [touch(365 * 26, 1), touch(365 * 25, 2)]
    shares = [share for _, share in credits(ancient, model, half_life=1.0)]
    assert sum(shares) == pytest.approx(1.0)
    if model is DECAY:
        # The newer of two touches one year apart, at a one-day half-life, takes all but 2^-365 of the credit.
        assert shares == pytest.approx([0.0, 1.0])
        assert [s for _, s in credits([touch(14, 1), touch(7, 2)], DECAY)] == pytest.approx([1 / 3, 2 / 3])
