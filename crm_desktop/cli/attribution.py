"""``crm-desktop attribution ...``: the campaign and platform report, and one lead's credits, from the local store."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from typing import Any

from crm_desktop.app.text import plural
from crm_desktop.cli.arguments import value_names, written_value
from crm_desktop.cli.common import CommandError, ExitCode, action, closing, command_group, emit, open_workspace, table
from crm_desktop.domain.models import aware_utc, platform_name
from crm_desktop.domain.social import AttributionModel, AttributionReport, CreditedTouchpoint, ReportRow

#: ``--model``: an attribution model in any case, with spaces or hyphens for underscores (``Time Decay``).
MODEL = written_value(AttributionModel)
MODELS = value_names(AttributionModel)
DEFAULT_MODEL = AttributionModel.LINEAR


def parse_moment(option: str, value: str | None) -> datetime | None:
    """``--since`` / ``--until``: a date (midnight UTC) or an ISO 8601 time with its zone.

    Raises:
        CommandError: when it is neither, naming ``option``.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{option} {value}: not a date; write 2026-11-01 or 2026-11-01T09:00:00Z") from None
    if moment.tzinfo is None:
        raise CommandError(f"{option} {value}: give the time zone, e.g. 2026-11-01T09:00:00Z")
    try:
        return aware_utc(moment)
    except ValueError as exc:
        raise CommandError(f"{option} {value}: {exc}") from None


def unknown_campaign_text(asked: str, closest: list[str]) -> str:
    """What ``--campaign`` says when no stored campaign has that name (nor only one that name in another case)."""
    if not closest:
        return f"no campaign {asked!r} in the local store (`attribution report` without --campaign lists them)"
    return f"no campaign {asked!r} in the local store; the closest: {', '.join(repr(name) for name in closest)}"


def _money(values: dict[str, float]) -> str:
    return ", ".join(f"{amount:,.2f} {currency}" for currency, amount in values.items()) or "-"


def _report_table(title: str, rows: list[ReportRow]) -> list[str]:
    """A table of the report's campaigns or platforms (a platform by its owner's spelling, as the window names it;
    ``--json`` keeps the wire's value)."""
    named = platform_name if title == "platform" else str
    body = [
        [named(row.name) if row.name else "(no campaign)", str(row.touchpoints), str(row.leads),
         f"{row.conversions_credited:.2f}", _money(row.value_credited)]
        for row in rows
    ]
    return [table([title, "touchpoints", "leads", "conversions", "value"], body)] if body else [f"{title}: none"]


def _report_text(report: AttributionReport) -> str:
    scope = [f"model {report.model.value}"]
    if report.since:
        scope.append(f"since {report.since:%Y-%m-%d %H:%M} UTC")
    if report.until:
        scope.append(f"until {report.until:%Y-%m-%d %H:%M} UTC (not included)")
    head = (f"{plural(report.conversions, 'conversion')} ({report.unattributed_conversions:,} without touchpoints), "
            f"value {_money(report.value)}")
    if report.campaign:
        # The totals are every campaign's: said so, with the one campaign's share beside them.
        mine = next((row for row in report.by_campaign if row.name == report.campaign), None)
        share = (f"{mine.conversions_credited:.2f} conversions, value {_money(mine.value_credited)}"
                 if mine is not None else "nothing")
        head = f"campaign {report.campaign} credited {share}, of {head} in all campaigns"
    lines = [
        f"attribution report ({', '.join(scope)}): {head}",
        "",
        *_report_table("campaign", report.by_campaign),
        "",
        *_report_table("platform", report.by_platform),
    ]
    return "\n".join(lines)


def cmd_attribution_report(args: argparse.Namespace) -> int:
    """Per campaign and per platform: touchpoints, leads, conversions and value credited."""
    since, until = parse_moment("--since", args.since), parse_moment("--until", args.until)
    if since is not None and until is not None and until <= since:
        raise CommandError(f"--until {args.until} must be after --since {args.since}")
    with closing(open_workspace(args)) as workspace:
        report = workspace.social.attribution_report(args.model, since, args.campaign, until)
    if report.unknown_campaign:
        raise CommandError(unknown_campaign_text(args.campaign, report.closest_campaigns), error_code="not_found")
    # Nulls kept: the row of touchpoints without a campaign has "name": null (a script looks for the key).
    emit(args, report.model_dump(mode="json", by_alias=True), _report_text(report))
    return ExitCode.OK


def cmd_attribution_lead(args: argparse.Namespace) -> int:
    """One lead's touchpoints and the credit each earned."""
    lead: int | str = int(args.lead) if args.lead.isascii() and args.lead.isdigit() else args.lead
    with closing(open_workspace(args)) as workspace:
        attribution = workspace.social.attribution(lead, args.model)
    headers = ["time (UTC)", "platform", "type", "campaign", "credit"]

    def rows(touches: list[CreditedTouchpoint]) -> list[list[str]]:
        return [[f"{t.timestamp:%Y-%m-%d %H:%M}", platform_name(t.platform), t.type.value,
                 t.campaign or "(no campaign)", f"{t.credit:.4f}"] for t in touches]

    head = f"lead {attribution.lead_id} ({attribution.email}), "
    if len(attribution.conversions) > 1:
        # Each conversion shares 1 among the touchpoints before it, as `attribution report` counts it.
        head += f"converted {len(attribution.conversions)} times, model {attribution.model.value}"
        parts = [head]
        for number, conversion in enumerate(attribution.conversions, start=1):
            worth = f", {conversion.value:.2f} {conversion.currency}" if conversion.value is not None else ""
            parts.append(f"\nconversion {number}: {conversion.timestamp:%Y-%m-%d %H:%M} UTC{worth}")
            parts.append(table(headers, rows(conversion.touchpoints)) if conversion.touchpoints
                         else "no touchpoints before it")
        text = "\n".join(parts)
    else:
        when = (f"converted {attribution.converted_at:%Y-%m-%d %H:%M} UTC" if attribution.converted_at
                else "not converted")
        head += f"{when}, model {attribution.model.value}"
        text = head + "\n" + (table(headers, rows(attribution.touchpoints)) if attribution.touchpoints
                              else "no touchpoints")
    emit(args, attribution.to_wire(), text)
    return ExitCode.OK


def add_commands(commands: Any) -> None:
    """Register ``attribution`` and its actions."""
    actions = command_group(
        commands, "attribution", help="which campaigns and platforms earned the leads and conversions"
    )
    with action(
        actions, "report", cmd_attribution_report,
        help="per campaign and per platform: touchpoints, leads, conversions and value credited",
        description="Each conversion's credit (1) is shared among its person's touchpoints before it by the "
        "model; --since keeps the touchpoints and conversions from that date on, --until those before it "
        "(--since 2026-11-01 --until 2026-12-01 is November); --campaign keeps one campaign.",
    ) as report:
        report.add_argument("--model", type=MODEL, metavar=MODELS, default=DEFAULT_MODEL,
                            help=f"attribution model, any case (default {DEFAULT_MODEL.value})")
        report.add_argument("--since", metavar="DATE", help="2026-11-01 (UTC) or 2026-11-01T09:00:00+01:00")
        report.add_argument("--until", metavar="DATE",
                            help="the end of the period, not included: 2026-12-01 (UTC) or 2026-12-01T09:00:00Z")
        report.add_argument("--campaign", help="only this campaign (its name in any case, when only one has it)")

    with action(
        actions, "lead", cmd_attribution_lead, help="one lead's touchpoints and the credit each earned"
    ) as lead:
        lead.add_argument("lead", metavar="ID", help="the lead's local id or its email")
        lead.add_argument("--model", type=MODEL, metavar=MODELS, required=True,
                          help="attribution model, any case (time_decay, \"Time Decay\", time-decay)")
