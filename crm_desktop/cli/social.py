"""``crm-desktop social ...``: import social events from files, read a person's engagement score, set the weights."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from crm_desktop.app.social import SocialImportReport
from crm_desktop.app.text import plural
from crm_desktop.cli.arguments import value_names, written_value
from crm_desktop.cli.common import (
    CommandError,
    ExitCode,
    action,
    add_action,
    cannot_read,
    closing,
    command_group,
    emit,
    open_workspace,
    readable_file,
)
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import SocialPlatform, normalise_email
from crm_desktop.domain.social import INTERACTION_KINDS, PersonRef, ScoringSettings, SocialEventKind


def _import_lines(report: SocialImportReport) -> list[str]:
    lines = [f"warning: {notice}" for notice in report.notices]
    lines += [f"line {r.line:>5}  refused  {r.record}  {r.field}: {r.reason}" for r in report.refused]
    lines += [f"line {line:>5}  skipped  {email}  {reason}" for line, email, reason in report.skipped]
    rows = "row" if report.refused_lines == 1 else "rows"
    kinds = ", ".join(plural(count, kind.removesuffix("s"), kind) for kind, count in report.by_kind.items())
    lines.append(
        f"recorded social events ({kinds}): {report.created:,} created, {report.updated:,} updated, "
        f"{report.unchanged:,} unchanged, {report.refused_lines:,} {rows} refused"
        + (f", {len(report.skipped):,} skipped (forgotten)" if report.skipped else "")
    )
    if report.columns_not_used:
        lines.append(f"columns not used: {', '.join(report.columns_not_used)}")
    if report.linked_touchpoints:
        lines.append(f"{plural(report.linked_touchpoints, 'earlier touchpoint')} joined the person their username "
                     "belongs to")
    if report.requeued_conversations:
        lines.append("conversations started before their person's email was known are sent again to "
                     f"{plural(report.requeued_conversations, 'integration')}")
    return lines


def cmd_social_import(args: argparse.Namespace) -> int:
    """Record the conversations, messages and engagements of a JSONL or CSV file in the local store."""
    readable_file(args.file)
    kind = SocialEventKind(args.kind) if args.kind else None
    with closing(open_workspace(args)) as workspace:
        try:
            report = workspace.social.import_file(args.file, kind)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise cannot_read(args.file, exc) from None
    data = {
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "linkedTouchpoints": report.linked_touchpoints,
        "conversationsSentAgainTo": report.requeued_conversations,
        "byKind": report.by_kind,
        "refused": [{"line": r.line, "record": r.record, "field": r.field, "reason": r.reason} for r in report.refused],
        "skipped": [{"line": line, "record": email, "reason": reason} for line, email, reason in report.skipped],
        "columnsNotUsed": report.columns_not_used,
        "notices": report.notices,
    }
    emit(args, data, "\n".join(_import_lines(report)))
    return ExitCode.PARTIAL if report.refused else ExitCode.OK


def _person(args: argparse.Namespace) -> PersonRef:
    if args.email:
        try:
            return PersonRef(email=normalise_email(args.email))
        except ValueError as exc:
            raise CommandError(f"--email: {exc}") from None
    if not (args.platform and args.username):
        raise CommandError("name the person with --email, or with --platform and --username")
    return PersonRef(platform=args.platform, username=args.username)


def cmd_social_score(args: argparse.Namespace) -> int:
    """Print a person's engagement score and what it is made of."""
    person = _person(args)
    with closing(open_workspace(args)) as workspace:
        # A person never seen is said to be unknown (exit 2, "not_found"), not scored 0 as if they were idle.
        score = workspace.social.engagement_score(person, known_only=True)
    data = {
        "person": person.to_wire(),
        "score": score.score,
        "activity": round(score.activity, 4),
        "activityPart": round(score.activity_part, 4),
        "reachPart": round(score.reach_part, 4),
        "followers": score.followers,
        "interactions": score.interactions,
    }
    who = person.email or f"{person.platform} user {person.username}"
    text = (
        f"engagement score of {who}: {score.score}\n"
        f"  {plural(score.interactions, 'interaction')}, {score.activity:.2f} points after recency decay "
        f"(activity {score.activity_part:.1%}); {plural(score.followers, 'follower')} (reach {score.reach_part:.1%})"
    )
    emit(args, data, text)
    return ExitCode.OK


def _weights(pairs: list[str]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for pair in pairs:
        kind, sep, points = pair.partition("=")
        if not sep:
            raise CommandError(f"--weight {pair}: write KIND=POINTS, e.g. like=2")
        try:
            weights[kind.strip()] = float(points)
        except ValueError:
            raise CommandError(f"--weight {pair}: {points!r} is not a number") from None
    return weights


def cmd_social_scoring(args: argparse.Namespace) -> int:
    """Show the workspace's scoring settings, or change some of them."""
    with closing(open_workspace(args)) as workspace:
        service = workspace.social
        current = ScoringSettings() if args.reset else service.scoring_settings()
        changes: dict[str, Any] = {}
        if args.weight:
            changes["weights"] = {**current.weights, **_weights(args.weight)}
        for option, key in (
            ("half_life_days", "halfLifeDays"),
            ("saturation", "saturation"),
            ("reach_share", "reachShare"),
            ("reach_cap_followers", "reachCapFollowers"),
            ("attribution_half_life_days", "attributionHalfLifeDays"),
        ):
            value = getattr(args, option)
            if value is not None:
                changes[key] = value
        if changes or args.reset:
            try:
                current = service.set_scoring_settings(
                    ScoringSettings.model_validate({**current.to_wire(), **changes}))
            except InvalidRecordError as exc:
                raise CommandError("; ".join(f"{p.field}: {p.reason}" for p in exc.problems)) from None
            rescored: int | None = service.rescore_everyone()
        else:
            rescored = None
    data = current.to_wire()
    lines = [f"{kind:<18} {points:g}" for kind, points in sorted(current.weights.items())]
    lines += [
        f"half-life            {current.half_life_days:g} days",
        f"saturation           {current.saturation:g} points",
        f"reach share          {current.reach_share:g} (full reach at {current.reach_cap_followers} followers)",
        f"attribution half-life {current.attribution_half_life_days:g} days (time decay model)",
    ]
    if rescored is not None:
        lines.append(f"scores recomputed with these settings for {plural(rescored, 'person', 'people')}")
        data = {**data, "rescored": rescored}
    emit(args, data, "\n".join(lines))
    return ExitCode.OK


def cmd_social_rescore(args: argparse.Namespace) -> int:
    """Bring every stored engagement score up to date (they decay with time: run it daily from cron)."""
    with closing(open_workspace(args)) as workspace:
        rescored = workspace.social.rescore_everyone()
    emit(args, {"rescored": rescored}, f"engagement scores recomputed for {plural(rescored, 'person', 'people')}")
    return ExitCode.OK


def add_commands(commands: Any) -> None:
    """Register ``social`` and its actions."""
    actions = command_group(commands, "social", help="social events in the local store, engagement scores")
    with action(
        actions, "import", cmd_social_import,
        help="record social events from a JSONL or CSV file",
        description="Validate every row and record the valid ones in the local store, as the local API would "
        "(conversations, messages, engagements; a re-sent event changes nothing). Refused rows are reported with "
        "line, field and reason, and nothing of them is written. Without --kind each row's kind is read from its "
        "fields: messageId means a message, participant or startedAt a conversation, anything else an engagement. "
        "CSV columns are the JSON fields, with the person's (email, username, firstName, lastName, profileUrl, "
        "followers) flat; a CSV column no event has (a tool's Impressions, Reach) is not used, and the report "
        "names it. Exit 1 if any row was refused.",
    ) as imports:
        imports.add_argument("file", type=Path, metavar="FILE", help="a .jsonl or .csv file")
        imports.add_argument("--kind", choices=[k.value for k in SocialEventKind], help="what every row is")

    with action(
        actions, "score", cmd_social_score, help="a person's engagement score (0-100) and what it is made of"
    ) as score:
        score.add_argument("--email", help="the person's email")
        score.add_argument("--platform", type=written_value(SocialPlatform), metavar=value_names(SocialPlatform),
                           help="with --username (any case: Twitter is twitter)")
        score.add_argument("--username", help="the person's username on --platform")

    with action(
        actions, "scoring", cmd_social_scoring,
        help="show or change the workspace's engagement-score weights and half-lives",
        description="With no option, print the settings. See docs/scoring.md for what each one does.",
    ) as scoring:
        scoring.add_argument(
            "--weight",
            action="append",
            metavar="KIND=POINTS",
            help=f"points of one interaction kind ({', '.join(sorted(INTERACTION_KINDS))}); repeatable",
        )
        scoring.add_argument("--half-life-days", type=float, help="recency half-life of the score (default 30)")
        scoring.add_argument("--saturation", type=float,
                             help="decayed points at which activity is half its maximum")
        scoring.add_argument("--reach-share", type=float, help="the part of the score that needs reach (0-1)")
        scoring.add_argument("--reach-cap-followers", type=int, help="followers at which reach is full")
        scoring.add_argument("--attribution-half-life-days", type=float,
                             help="half-life of the time-decay attribution model (default 7)")
        scoring.add_argument("--reset", action="store_true", help="back to the documented defaults first")

    add_action(
        actions, "rescore", cmd_social_rescore,
        help="recompute every stored engagement score as of now",
        description="Scores decay with time; the app recomputes them once a day while it runs and after the "
        "scoring settings change. Run this daily from cron when the app is not kept open. People with no local "
        "social activity keep the score a CRM or a file gave them.",
    )
