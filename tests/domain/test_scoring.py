"""The engagement score against hand-computed tables (docs/scoring.md works the same example)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.scoring import Interaction, decay, engagement_score, reach_part
from crm_desktop.domain.social import DEFAULT_WEIGHTS, ScoringSettings

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_the_documented_default_weights() -> None:
    assert {k: DEFAULT_WEIGHTS[k] for k in ("view", "click", "like", "comment", "share", "dm")} == {
        "view": 1.0, "click": 3.0, "like": 2.0, "comment": 5.0, "share": 8.0, "dm": 10.0,
    }
    assert (DEFAULT_WEIGHTS["inbound_message"], DEFAULT_WEIGHTS["outbound_message"]) == (6.0, 1.0)
    settings = ScoringSettings()
    assert (settings.half_life_days, settings.attribution_half_life_days) == (30.0, 7.0)


@pytest.mark.parametrize(
    ("age_days", "half_life", "expected"),
    [(0, 30, 1.0), (30, 30, 0.5), (60, 30, 0.25), (90, 30, 0.125), (7, 7, 0.5), (-3, 30, 1.0)],
    ids=["now", "one-half-life", "two", "three", "week-half-life", "future-counts-in-full"],
)
def test_recency_decay_halves_every_half_life(age_days: float, half_life: float, expected: float) -> None:
    assert decay(age_days, half_life) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("followers", "expected"),
    # log10(1 + f) / log10(1 + 1,000,000); log10(1,000,001) = 6.00000043
    [(0, 0.0), (9, 1 / 6.00000043), (999, 3 / 6.00000043), (1_000_000, 1.0), (50_000_000, 1.0)],
)
def test_reach_is_followers_on_a_log_scale_capped(followers: int, expected: float) -> None:
    assert reach_part(followers, 1_000_000) == pytest.approx(expected, rel=1e-6)


# Hand-computed: activity = sum(weight * 2^(-age/30)); part = 1 - 2^(-activity/20);
# score = 100 * part * (0.8 + 0.2 * reach).
SCORE_TABLE = [
    pytest.param([], 5_000, 0.0, 0.0, id="no interaction scores 0 whatever the reach"),
    # like now: 2 points; 1 - 2^(-0.1) = 0.066967; * 0.8 * 100 = 5.357
    pytest.param([("like", 0)], 0, 2.0, 5.4, id="one like now, no followers"),
    # share 30 d (8 * 0.5 = 4) + dm 60 d (10 * 0.25 = 2.5) + inbound message now (6) = 12.5;
    # 1 - 2^(-0.625) = 0.351580; reach log10(1000)/log10(1000001) = 0.5; 100 * 0.351580 * 0.9 = 31.64
    pytest.param([("share", 30), ("dm", 60), ("inbound_message", 0)], 999, 12.5, 31.6, id="mixed, 999 followers"),
    # comment 30 d (2.5) + outbound message now (1) + view 90 d (0.125) = 3.625; 1 - 2^(-0.18125) = 0.118061;
    # * 0.8 = 9.44
    pytest.param([("comment", 30), ("outbound_message", 0), ("view", 90)], 0, 3.625, 9.4, id="old and outbound"),
    # 200 DMs now: activity 2000, part = 1 - 2^-100 = 1; full reach: 100
    pytest.param([("dm", 0)] * 200, 1_000_000, 2000.0, 100.0, id="saturated with full reach"),
]


@pytest.mark.parametrize(("done", "followers", "activity", "score"), SCORE_TABLE)
def test_engagement_score_table(done: list[tuple[str, float]], followers: int, activity: float, score: float) -> None:
    result = engagement_score([Interaction(kind, days_ago(age)) for kind, age in done], followers, ScoringSettings(),
                              NOW)
    assert result.activity == pytest.approx(activity)
    assert result.score == score
    assert result.interactions == len(done)


def test_weights_and_half_life_are_the_workspace_s_to_change() -> None:
    settings = ScoringSettings(weights={"like": 10}, half_life_days=10)
    assert settings.weights["share"] == 8.0  # a partial table changes only what it names
    # like 10 days ago: 10 * 2^(-10/10) = 5; 1 - 2^(-0.25) = 0.159104; * 0.8 = 12.73
    result = engagement_score([Interaction("like", days_ago(10))], 0, settings, NOW)
    assert result.activity == pytest.approx(5.0)
    assert result.score == 12.7


def test_unknown_interaction_kinds_and_bad_settings_are_refused() -> None:
    with pytest.raises(InvalidRecordError) as refused:
        ScoringSettings(weights={"retweet": 3}, half_life_days=0)
    assert refused.value.fields == ["weights", "halfLifeDays"]
    assert "unknown interaction retweet" in str(refused.value)
