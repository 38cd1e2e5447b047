"""``crm-desktop contacts|leads list``: the store's people, filtered and paged, so a script sees what a run left."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from crm_desktop.app.people import PeopleColumn, PeopleQuery, PeopleService, PersonLine, SyncState
from crm_desktop.app.text import plural
from crm_desktop.cli.arguments import number_between, value_names, whole_number, written_value
from crm_desktop.cli.attribution import unknown_campaign_text
from crm_desktop.cli.common import CommandError, ExitCode, action, cannot_write, closing, emit, open_workspace
from crm_desktop.domain.models import SocialPlatform
from crm_desktop.domain.outcomes import RecordObject

#: How many people ``list`` prints when ``--limit`` is not given.
DEFAULT_LIMIT = 50
#: The most one call lists; ``--csv`` writes everyone the filters match.
MAX_LIMIT = 10_000
#: An engagement score bound of --min-score and --max-score.
SCORE = number_between(0, 100)


_limit = whole_number(1, MAX_LIMIT)


def _line_json(line: PersonLine) -> dict[str, Any]:
    return {
        "id": line.id, "email": line.email, "firstName": line.first_name, "lastName": line.last_name,
        "company": line.company, "engagementScore": line.score, "platforms": list(line.platforms),
        "updatedAt": line.updated_at,
    }


def _line_text(line: PersonLine) -> str:
    score = "-" if line.score is None else f"{line.score:.0f}"
    parts = [f"{line.id:>7}", line.email, line.name or "-", line.company or "-", f"score {score}"]
    if line.platforms:
        parts.append(",".join(line.platforms))
    return "  ".join(parts)


def _query(args: argparse.Namespace, obj: RecordObject, workspace: Any, people: PeopleService) -> PeopleQuery:
    integration_id = None
    if args.integration:
        integration = workspace.integrations.get(args.integration)  # NotFoundError names the missing one
        integration_id = integration.id
    elif args.state:
        raise CommandError("--state needs --integration NAME: a record's sync state is per integration")
    campaign = args.campaign
    if campaign is not None:
        # Read as `attribution report --campaign` reads it: a name no stored campaign has is said, not listed as 0.
        campaign, closest = people.campaign_named(campaign)
        if closest is not None:
            raise CommandError(unknown_campaign_text(args.campaign, closest), error_code="not_found")
    return PeopleQuery(
        obj=obj, text=args.filter or "", platform=args.platform,
        campaign=campaign, score_min=args.min_score, score_max=args.max_score, integration_id=integration_id,
        sync_state=SyncState(args.state) if args.state else None, sort=PeopleColumn(args.sort),
        descending=args.descending,
    )


def _list(args: argparse.Namespace, obj: RecordObject) -> int:
    with closing(open_workspace(args)) as workspace:
        people = PeopleService(workspace.database, workspace.social, workspace.sync)
        query = _query(args, obj, workspace, people)
        if args.csv is not None:
            try:
                written = people.export_csv(query, args.csv)
            except OSError as exc:
                raise cannot_write(args.csv, exc) from None
            emit(args, {"exported": written, "file": str(args.csv)},
                 f"{plural(written, obj.value)} written to {args.csv}")
            return ExitCode.OK
        total = people.count(query)
        lines = people.page(query, None, args.limit)
    shown = len(lines)
    noun = obj.value if shown == 1 else f"{obj.value}s"
    # Past the most one call lists, a larger --limit is refused: --csv writes them all.
    see = "raise --limit to see more" if args.limit < MAX_LIMIT else "--csv FILE writes every one"
    more = f" (first {shown:,} of {total:,}; {see})" if total > shown else ""
    text = "\n".join([*map(_line_text, lines), f"{shown:,} {noun}{more}"])
    emit(args, {"total": total, "shown": shown, "people": [_line_json(line) for line in lines]}, text)
    return ExitCode.OK


def cmd_contacts_list(args: argparse.Namespace) -> int:
    """List the store's contacts."""
    return _list(args, RecordObject.CONTACT)


def cmd_leads_list(args: argparse.Namespace) -> int:
    """List the store's leads."""
    return _list(args, RecordObject.LEAD)


def add_list_command(group_commands: Any, noun: str) -> None:
    """Register ``contacts list`` or ``leads list`` in the group's subcommands."""
    with action(
        group_commands, "list", cmd_contacts_list if noun == "contacts" else cmd_leads_list,
        help=f"list the {noun} in the local store",
        description=f"List the {noun} in the local store (what imports and syncs left there), sorted by email "
        "unless --sort says otherwise. Filters combine.",
    ) as listing:
        listing.add_argument("--filter", metavar="TEXT", help="text found in the name, email or company (any case)")
        listing.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT, metavar="N",
                             help=f"how many to list (default {DEFAULT_LIMIT}, at most {MAX_LIMIT:,})")
        listing.add_argument("--platform", type=written_value(SocialPlatform), metavar=value_names(SocialPlatform),
                             help="only people with a profile on this platform (any case)")
        listing.add_argument("--campaign", metavar="NAME", help="only people with a touchpoint of this campaign (its "
                             "name in any case, when only one has it)")
        listing.add_argument("--min-score", type=SCORE, metavar="N", help="engagement score at least N (0-100)")
        listing.add_argument("--max-score", type=SCORE, metavar="N", help="engagement score at most N (0-100)")
        listing.add_argument("--integration", metavar="NAME", help="with --state: the integration the state is in")
        listing.add_argument("--state", type=str.lower, choices=[s.value for s in SyncState],
                             help="only records in this state in --integration")
        listing.add_argument("--sort", type=str.lower, choices=[c.value for c in PeopleColumn],
                             default=PeopleColumn.EMAIL.value, help="the column to sort by (default: email)")
        listing.add_argument("--descending", action="store_true", help="reverse the order")
        listing.add_argument("--csv", type=Path, metavar="FILE",
                             help="write everyone the filters match (no --limit) to FILE in the columns "
                             f"`{noun} import` reads, instead of listing them")
