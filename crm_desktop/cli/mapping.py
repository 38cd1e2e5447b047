"""``crm-desktop mapping ...``: an integration's field mappings, and changing one field's rule, direction or field."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from crm_desktop.app.errors import ProviderError
from crm_desktop.app.sync_service import ConflictRule, FieldDirection, FieldMapping, MappingChangeError
from crm_desktop.cli.common import CommandError, ExitCode, action, closing, command_group, emit, open_workspace, table
from crm_desktop.domain.outcomes import RecordObject

logger = logging.getLogger(__name__)

#: How each conflict rule reads for the marketer.
RULE_WORDS = {
    ConflictRule.LAST_WRITE_WINS: "newest change wins",
    ConflictRule.PREFER_CRM: "CRM wins",
    ConflictRule.PREFER_LOCAL: "local wins",
    ConflictRule.PREFER_CRM_UNLESS_BLANK: "CRM wins unless blank",
    ConflictRule.PREFER_LOCAL_UNLESS_BLANK: "local wins unless blank",
    ConflictRule.MANUAL: "ask me (waits in `conflicts list`)",
}


def _mapping_json(obj: RecordObject, mapping: FieldMapping) -> dict[str, Any]:
    return {
        "object": obj.value,
        "field": mapping.local_field,
        "crmField": mapping.crm_field,
        "direction": mapping.direction.value,
        "rule": mapping.conflict_rule.value,
        "transforms": [t.value for t in mapping.transforms],
        "defaultValue": mapping.default_value,
        "blankWipes": mapping.blank_wipes,
    }


def _objects(args: argparse.Namespace) -> list[RecordObject]:
    return [RecordObject(args.object)] if args.object else list(RecordObject)


def cmd_mapping_show(args: argparse.Namespace) -> int:
    """Show an integration's field mappings."""
    with closing(open_workspace(args)) as workspace:
        integration = workspace.integrations.get(args.name)
        items = [_mapping_json(obj, m) for obj in _objects(args) for m in workspace.sync.mappings(integration, obj)]
    rows = [
        (i["object"], i["field"], i["crmField"], i["direction"], RULE_WORDS[ConflictRule(i["rule"])],
         ", ".join(i["transforms"]) or "-", "yes" if i["blankWipes"] else "no")
        for i in items
    ]
    text = table(("OBJECT", "FIELD", "CRM FIELD", "DIRECTION", "CONFLICT RULE", "TRANSFORMS", "BLANK WIPES"), rows)
    emit(args, {"integration": args.name, "mappings": items}, text)
    return ExitCode.OK


def cmd_mapping_set(args: argparse.Namespace) -> int:
    """Change one field's conflict rule, direction or CRM field."""
    if not (args.rule or args.direction or args.crm_field):
        raise CommandError("say what to change: --rule, --direction and/or --crm-field")
    obj = RecordObject(args.object or RecordObject.CONTACT.value)
    with closing(open_workspace(args)) as workspace:
        integration = workspace.integrations.get(args.name)
        crm_fields = None
        if not args.no_check:
            try:
                crm_fields = asyncio.run(workspace.sync.crm_field_list(integration.name, obj))
            except ProviderError as exc:
                raise CommandError(f"{integration.name}: the CRM's field list, to check the change against, could "
                                   f"not be read ({exc}); try again, or save it unchecked with --no-check",
                                   ExitCode.PARTIAL, "crm_error") from None
        try:
            mapping = workspace.sync.change_mapping(
                integration, obj, args.field,
                rule=ConflictRule(args.rule) if args.rule else None,
                direction=FieldDirection(args.direction) if args.direction else None,
                crm_field=args.crm_field, crm_fields=crm_fields,
            )
        except MappingChangeError as exc:
            raise CommandError(str(exc)) from None
    data = _mapping_json(obj, mapping)
    emit(args, data, f"{args.name} {obj.value} {mapping.local_field}: CRM field {mapping.crm_field}, "
                     f"{mapping.direction.value}, conflict rule {RULE_WORDS[mapping.conflict_rule]}")
    return ExitCode.OK


def add_commands(commands: Any) -> None:
    """Register ``mapping`` and its actions."""
    actions = command_group(commands, "mapping", help="field mappings: show them, change a field's rule or direction")
    with action(actions, "show", cmd_mapping_show, help="show an integration's field mappings") as show:
        show.add_argument("name", metavar="NAME", help="the integration")
        show.add_argument("--object", choices=[o.value for o in RecordObject], help="only contacts or only leads")
    with action(
        actions, "set", cmd_mapping_set,
        help="change one field's conflict rule, direction or CRM field",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Change how one local field syncs. FIELD is the local field (firstName, company,
twitterUsername, custom.NAME...; see `mapping show`). A field mapped for the first
time needs --crm-field. The change is checked against the CRM's live field list
first, as the Field Mapping panel checks it (a field the CRM lacks, a read-only or
incompatible one is refused and nothing is saved); --no-check saves it unchecked.

conflict rules (a field changed on both sides since the last sync):
  last_write_wins            the newest change wins (the default)
  prefer_crm / prefer_local  that side wins
  prefer_crm_unless_blank    the CRM wins unless its value is blank
  prefer_local_unless_blank  the local value wins unless it is blank
  manual                     ask me: the field waits in `crm-desktop conflicts list`""",
    ) as change:
        change.add_argument("name", metavar="NAME", help="the integration")
        change.add_argument("field", metavar="FIELD", help="the local field")
        change.add_argument("--object", choices=[o.value for o in RecordObject],
                            help="contact (default) or lead")
        change.add_argument("--rule", choices=[r.value for r in ConflictRule], help="the conflict rule")
        change.add_argument("--direction", choices=[d.value for d in FieldDirection],
                            help="two_way, push_only, pull_only or off")
        change.add_argument("--crm-field", metavar="CRM_FIELD", help="the CRM field's API name")
        change.add_argument("--no-check", action="store_true",
                            help="save without checking the change against the CRM's live field list (offline)")
