"""``crm-desktop integration ...``: add, list, show, remove, test and sign in to CRM connections."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from typing import Any

from crm_desktop.app.conversions import ConversionService, PipelineChoiceError
from crm_desktop.app.errors import AuthError, CredentialsError, InvalidRecordError, ProviderError, VaultError
from crm_desktop.app.text import plural
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli.arguments import whole_number
from crm_desktop.cli.common import (
    CommandError,
    ExitCode,
    Handler,
    action,
    add_action,
    closing,
    command_group,
    emit,
    open_workspace,
)
from crm_desktop.domain.credentials import check_lasting_session, needs_sign_in, parse_secret
from crm_desktop.domain.models import PROVIDERS, Integration, Provider

logger = logging.getLogger(__name__)


def _integration_json(workspace: Workspace, integration: Integration) -> dict[str, Any]:
    data = integration.to_wire()
    stored = False
    try:
        stored = workspace.integrations.has_credentials(integration)
        data["credentials"] = "stored in OS keyring" if stored else "missing"
    except VaultError:
        data["credentials"] = "keyring unavailable"
    age = workspace.integrations.key_age(integration) if stored else None
    data["keyAgeDays"] = age.days if age else None
    data["rotateAfterDays"] = workspace.integrations.rotate_after_days or None
    data["rotationDue"] = bool(age and age.rotation_due)
    return data


def _age_text(days: int | None) -> str:
    """``set today``, ``set 1 day ago``, ``set 120 days ago``; ``-`` when unknown."""
    if days is None:
        return "-"
    return "set today" if days == 0 else f"set {plural(days, 'day')} ago"


def _rotation_hints(items: list[dict[str, Any]]) -> list[str]:
    """One reminder per integration whose keys are older than the rotation period."""
    return [
        f"rotate: the keys of {i['name']!r} were {_age_text(i['keyAgeDays'])} (reminder after "
        f"{plural(i['rotateAfterDays'], 'day')}); put new ones in with `crm-desktop integration update {i['name']} "
        "--secret-stdin` (links, runs, mappings and cursors are kept)"
        for i in items if i.get("rotationDue")
    ]


def _read_secret(provider: Provider) -> dict[str, Any]:
    if sys.stdin.isatty():
        prompt = {
            Provider.HUBSPOT: "HubSpot private-app token: ",
            Provider.PIPEDRIVE: "Pipedrive API token: ",
            Provider.SALESFORCE: "Salesforce credentials JSON: ",
        }[provider]
        text = getpass.getpass(prompt)
    else:
        text = sys.stdin.read()
    return parse_secret(provider, text)


#: The command-line option of each integration field, so problems name what the user typed.
_OPTIONS = {"name": "--name", "description": "--description", "baseUrl": "--base-url", "domain": "--domain"}


def _integration_problems(exc: InvalidRecordError) -> list[str]:
    return [f"{_OPTIONS.get(p.field, p.field)}: {p.reason}" for p in exc.problems]


def _domain_refusal(provider: Provider) -> str:
    """Why ``--domain`` is refused for ``provider``: it is Pipedrive's company domain and means nothing elsewhere."""
    salesforce = "; a Salesforce org's My Domain address goes in --base-url" if provider is Provider.SALESFORCE else ""
    return (f"--domain: a {provider.value} integration has no company domain (it is Pipedrive's, the 'acme' of "
            f"acme.pipedrive.com){salesforce}")


def cmd_integration_add(args: argparse.Namespace) -> int:
    """Add an integration; its secret comes on stdin and goes to the OS keyring.

    Every problem (the name, the other options, the secret) is found and reported together before anything is
    written, so one corrected command succeeds and a refused one leaves nothing behind.
    """
    provider = Provider(args.provider)
    problems: list[str] = []
    integration: Integration | None = None
    try:
        integration = Integration(
            provider=provider,
            name=args.name,
            description=args.description or "",
            base_url=args.base_url,
            domain=args.domain,
        )
    except InvalidRecordError as exc:
        problems.extend(_integration_problems(exc))
    if args.domain is not None and provider is not Provider.PIPEDRIVE:
        problems.append(_domain_refusal(provider))
    with closing(open_workspace(args)) as workspace:
        if workspace.integrations.find(args.name) is not None:
            problems.append(
                f"--name: an integration named {args.name!r} already exists (change it with "
                f"`crm-desktop integration update {args.name} ...`, or choose another name)"
            )
        credentials: dict[str, Any] | None = None
        if args.secret_stdin:
            try:
                credentials = _read_secret(provider)
                check_lasting_session(provider, credentials, args.name)
            except CredentialsError as exc:
                problems.append(f"secret: {exc}")
        elif provider is not Provider.SALESFORCE:
            problems.append(
                f"secret: none given; pipe the {provider.value} token in with --secret-stdin "
                f"(e.g. `crm-desktop integration add --provider {provider.value} --name {args.name} --secret-stdin "
                "< token.txt`)"
            )
        if problems or integration is None:
            raise CommandError(
                f"integration {args.name!r} was not added:\n" + "\n".join(f"  {p}" for p in problems),
                ExitCode.USAGE, "invalid_integration",
            )
        saved = workspace.integrations.add(integration, credentials)
        data = _integration_json(workspace, saved)
    note = ""
    if needs_sign_in(provider, credentials):
        note = (
            f"\nno Salesforce tokens yet: sign in with `crm-desktop integration login {saved.name}"
            + ("" if credentials else " --client-id CONSUMER_KEY") + "` before the first sync"
        )
    data["needsSignIn"] = needs_sign_in(provider, credentials)
    emit(args, data, f"added {saved.provider.value} integration {saved.name!r}{note}")
    return ExitCode.OK


def cmd_integration_list(args: argparse.Namespace) -> int:
    """List integrations."""
    with closing(open_workspace(args)) as workspace:
        items = [_integration_json(workspace, i) for i in workspace.integrations.list()]
    if not items:
        emit(args, [], "no integrations yet: add one with `crm-desktop integration add`")
        return ExitCode.OK
    width = max(len(i["name"]) for i in items)
    lines = [
        f"{i['name']:<{width}}  {i['provider']:<10}  {i['syncConfig']['direction']:<13}  "
        f"every {i['syncConfig']['syncInterval']} min  credentials: {i['credentials']}  "
        f"keys: {_age_text(i['keyAgeDays'])}{' (rotate!)' if i.get('rotationDue') else ''}  "
        f"scopes: {', '.join(i.get('scopes') or []) or '(not tested yet)'}"
        for i in items
    ]
    emit(args, items, "\n".join(lines + _rotation_hints(items)))
    return ExitCode.OK


def cmd_integration_show(args: argparse.Namespace) -> int:
    """Show one integration."""
    with closing(open_workspace(args)) as workspace:
        data = _integration_json(workspace, workspace.integrations.get(args.name))
    config = data["syncConfig"]
    text = "\n".join(
        [
            f"name:         {data['name']}",
            f"provider:     {data['provider']}",
            f"description:  {data.get('description') or '-'}",
            f"base URL:     {data.get('baseUrl') or '(vendor default)'}",
            f"domain:       {data.get('domain') or '-'}",
            f"scopes:       {', '.join(data.get('scopes') or []) or '(not known: run `crm-desktop integration test`)'}",
            f"sync:         {config['direction']} every {config['syncInterval']} min, "
            f"auto-sync {'on' if config['autoSync'] else 'off'}",
            f"credentials:  {data['credentials']}",
            f"keys:         {_age_text(data['keyAgeDays'])}",
            *_rotation_hints([data]),
        ]
    )
    emit(args, data, text)
    return ExitCode.OK


def cmd_integration_update(args: argparse.Namespace) -> int:
    """Change an integration in place; new credentials are tested against the CRM before they are saved."""
    changes: dict[str, Any] = {
        field: value
        for field, value in (("name", args.new_name), ("description", args.description),
                             ("base_url", args.base_url), ("domain", args.domain))
        if value is not None
    }
    if not changes and not args.secret_stdin:
        raise CommandError("nothing to change: give --name, --description, --base-url, --domain or --secret-stdin")
    with closing(open_workspace(args)) as workspace:
        current = workspace.integrations.get(args.name)
        if args.domain is not None and current.provider is not Provider.PIPEDRIVE:
            raise CommandError(_domain_refusal(current.provider))
        credentials = _read_secret(current.provider) if args.secret_stdin else None
        # On a team database a colleague's integration has no credentials in this desktop's keyring until given.
        had_credentials = credentials is not None and workspace.integrations.has_credentials(current)
        try:
            update = asyncio.run(workspace.crm.update_integration(args.name, changes, credentials))
        except InvalidRecordError as exc:
            raise CommandError(
                f"integration {args.name!r} was not changed:\n"
                + "\n".join(f"  {p}" for p in _integration_problems(exc)),
                ExitCode.USAGE, "invalid_integration",
            ) from None
        except AuthError as exc:
            raise CommandError(
                f"the CRM refused the new credentials, so nothing was changed"
                f"{' and the old ones stay' if had_credentials else ''}: {exc}",
                ExitCode.AUTH, "auth_refused",
            ) from None
        except ProviderError as exc:
            raise CommandError(
                f"the new settings could not be tested against the CRM ({exc}), so nothing was changed; try again "
                "when the CRM can be reached", ExitCode.PARTIAL, "crm_error",
            ) from None
        data = _integration_json(workspace, update.integration)
    saved = update.integration
    lines = [f"updated integration {saved.name!r}" + (f" (was {args.name!r})" if saved.name != args.name else "")]
    if update.connection is not None:
        info = update.connection
        lines.append(f"connection tested: {info.account} as {info.user}")
    if update.credentials_replaced:
        lines.append("new credentials stored in this desktop's OS keyring; the old ones are gone" if had_credentials
                     else "credentials stored in this desktop's OS keyring")
    if update.needs_sign_in:
        lines.append(f"no Salesforce tokens yet: sign in with `crm-desktop integration login {saved.name}`")
    lines.append("links, runs, mappings and cursors are kept")
    data["tested"] = update.connection is not None
    data["credentialsReplaced"] = update.credentials_replaced
    data["needsSignIn"] = update.needs_sign_in
    emit(args, data, "\n".join(lines))
    return ExitCode.OK


def cmd_integration_remove(args: argparse.Namespace) -> int:
    """Remove an integration, its keyring entry and its sync data (as the Integrations panel's Remove)."""
    with closing(open_workspace(args)) as workspace:
        removed = workspace.integrations.remove(args.name)
    emit(args, {"removed": removed.name}, f"removed integration {removed.name!r}, its keyring entry and its sync "
         "history (runs, links, mappings); the CRM's records are not touched")
    return ExitCode.OK


def cmd_integration_test(args: argparse.Namespace) -> int:
    """Test an integration's connection: who am I, scopes, quota left."""
    with closing(open_workspace(args)) as workspace:
        info = asyncio.run(workspace.crm.test_connection(args.name))
    quota = info.quota
    data: dict[str, Any] = {
        "integration": args.name,
        "ok": True,
        "account": info.account,
        "user": info.user,
        "scopes": list(info.scopes),
        "quota": None
        if quota is None
        else {"used": quota.used, "limit": quota.limit, "remaining": quota.remaining},
    }
    quota_text = "unknown"
    if quota is not None and quota.remaining is not None:
        quota_text = f"{plural(quota.remaining, 'call')} left" + (f" of {quota.limit:,}" if quota.limit else "")
    text = (
        f"connection ok: {info.account} as {info.user}\n"
        f"scopes: {', '.join(info.scopes) or 'not reported'}\nquota: {quota_text}"
    )
    emit(args, data, text)
    return ExitCode.OK


def cmd_integration_login(args: argparse.Namespace) -> int:
    """Sign in to Salesforce in the system browser (PKCE, loopback redirect)."""
    with closing(open_workspace(args)) as workspace:
        actions = workspace.crm
        sys.stderr.write("opening the browser to sign in to Salesforce; waiting for you to finish...\n")
        asyncio.run(actions.sign_in(args.name, port=args.port, client_id=args.client_id))
    emit(args, {"integration": args.name, "signedIn": True}, f"signed in; tokens for {args.name!r} are in the keyring")
    return ExitCode.OK


def cmd_integration_pipeline(args: argparse.Namespace) -> int:
    """List the CRM's deal pipelines, or choose by name where converted or qualified leads get their deal."""
    with closing(open_workspace(args)) as workspace:
        service = ConversionService(workspace.database, workspace.integrations, workspace.crm, workspace.social)
        integration = workspace.integrations.get(args.name)
        if args.clear:
            service.clear_pipeline(args.name)
            emit(args, {"integration": integration.name, "dealPipeline": None},
                 f"{integration.name}: no deals are made for converted or qualified leads any more")
            return ExitCode.OK
        try:
            if args.pipeline is None:
                pipelines = asyncio.run(service.pipelines(args.name))
                current = integration.sync_config.deal_pipeline
                data = {
                    "integration": integration.name,
                    "dealPipeline": current.to_wire() if current else None,
                    "pipelines": [{"id": p.id, "name": p.name, "stages": [{"id": s.id, "name": s.name}
                                                                          for s in p.stages]} for p in pipelines],
                }
                chosen = f"{current.pipeline_name} / {current.stage_name}" if current else "none chosen"
                lines = [f"deal pipeline of {integration.name}: {chosen}"]
                lines += [f"  {p.name}: {', '.join(s.name for s in p.stages)}" for p in pipelines]
                emit(args, data, "\n".join(lines))
                return ExitCode.OK
            choice = asyncio.run(service.choose_pipeline(args.name, args.pipeline, args.stage))
        except PipelineChoiceError as exc:
            raise CommandError(str(exc), ExitCode.USAGE, "unknown_pipeline") from None
    emit(args, {"integration": integration.name, "dealPipeline": choice.to_wire()},
         f"{integration.name}: converted or qualified leads get a deal in {choice.pipeline_name} / "
         f"{choice.stage_name}")
    return ExitCode.OK


def cmd_integration_conversions(args: argparse.Namespace) -> int:
    """Pull the CRM's conversions now (a sync does it too), and make the deals of the chosen pipeline."""
    with closing(open_workspace(args)) as workspace:
        service = ConversionService(workspace.database, workspace.integrations, workspace.crm, workspace.social)
        report = asyncio.run(service.pull(args.name))
    lines = [
        f"conversions of {report.integration}: {report.pulled} on the CRM, {report.created} new, "
        f"{report.updated} updated, {report.unchanged} already recorded ({plural(report.api_calls, 'API call')})"
    ]
    if report.deals_created or report.deals_found or report.deals_waiting or report.deal_errors or \
            report.deals_deferred:
        lines.append(
            f"deals: {len(report.deals_created)} made, {report.deals_found} already there, "
            f"{len(report.deals_waiting)} waiting for their person to reach the CRM, "
            f"{report.deals_deferred} left for the next pull"
        )
    lines += [f"deal refused for {email}: {reason}" for email, reason in report.deal_errors]
    lines += [f"conversion {external_id} not recorded: {reason}" for external_id, reason in report.refused]
    lines += [f"conversion {external_id} skipped: {reason}" for external_id, reason in report.skipped]
    emit(args, report.to_wire(), "\n".join(lines))
    return ExitCode.PARTIAL if report.deal_errors or report.refused else ExitCode.OK


def _connection_options(parser: argparse.ArgumentParser, *, base_url_help: str, secret_help: str) -> None:
    """The options ``integration add`` and ``integration update`` share, so the two stay alike."""
    parser.add_argument("--description", help="what this connection is for")
    parser.add_argument("--base-url", help=base_url_help)
    parser.add_argument("--domain", help="company domain (Pipedrive: the 'acme' of acme.pipedrive.com)")
    parser.add_argument("--secret-stdin", action="store_true", help=secret_help)


def _on_one_integration(actions: Any, name: str, handler: Handler, **texts: str) -> None:
    """An action whose only argument is the integration's name."""
    with action(actions, name, handler, **texts) as parser:
        parser.add_argument("name")


def add_commands(commands: Any) -> None:
    """Register ``integration`` and its actions."""
    integration_commands = command_group(commands, "integration", help="add, list, show and remove CRM integrations")
    with action(
        integration_commands, "add", cmd_integration_add,
        help="connect a CRM",
        description="Connect a CRM. Secrets are read from stdin only (never from arguments): HubSpot a private-app "
        "token, Pipedrive an API token, Salesforce a JSON object with clientId, clientSecret, accessToken, "
        "refreshToken and instanceUrl (an accessToken needs its refreshToken). A Salesforce integration may start "
        "without tokens and sign in with `integration login`. Every problem is reported at once and nothing is "
        "written unless all is well; to change an existing integration use `integration update`.",
    ) as add:
        add.add_argument("--provider", required=True, choices=PROVIDERS)
        add.add_argument("--name", required=True, help="a name for this connection, e.g. 'hubspot-prod'")
        _connection_options(
            add,
            base_url_help="API base URL (a Salesforce My Domain, or a sandbox); http only to loopback",
            secret_help="read the secret from stdin",
        )

    add_action(integration_commands, "list", cmd_integration_list, help="list integrations")
    _on_one_integration(integration_commands, "show", cmd_integration_show, help="show one integration")

    with action(
        integration_commands, "update", cmd_integration_update,
        help="change an integration in place: rename it, move it, or replace its credentials",
        description="Change an integration in place; its links, runs, mappings and sync cursors are kept. New "
        "credentials (read from stdin only, as for `add`) are tested against the CRM before they are saved: "
        "refused ones are not saved and the old ones stay. A new --base-url or --domain is tested with the stored "
        "credentials. Salesforce credentials without tokens are saved untested; sign in next with "
        "`integration login`.",
    ) as update:
        update.add_argument("name", help="the integration's current name")
        update.add_argument("--name", dest="new_name", metavar="NEW", help="a new name")
        _connection_options(
            update,
            base_url_help="API base URL ('' for the vendor's default); http only to loopback",
            secret_help="read new credentials from stdin",
        )
    _on_one_integration(
        integration_commands, "remove", cmd_integration_remove,
        help="remove an integration, its keyring entry and its sync history",
    )
    _on_one_integration(
        integration_commands, "test", cmd_integration_test, help="test the connection: who am I, scopes, quota left"
    )

    with action(
        integration_commands, "login", cmd_integration_login,
        help="sign in to Salesforce in the system browser",
        description="Sign in to Salesforce with the authorization-code flow and PKCE in the system browser; the "
        "redirect comes back to a one-shot listener on 127.0.0.1 (register http://localhost:PORT/OauthRedirect "
        "as the connected app's callback).",
    ) as login:
        login.add_argument("name")
        login.add_argument("--port", type=whole_number(1, 65_535), default=1717,
                           help="loopback port of the redirect (default 1717)")
        login.add_argument("--client-id", help="the connected app's consumer key (default: the stored one)")

    with action(
        integration_commands, "pipeline", cmd_integration_pipeline,
        help="list the CRM's deal pipelines, or choose one by name for the deals of converted leads (Pipedrive)",
        description="Without --pipeline, list the CRM's live deal pipelines and their stages and the one chosen. "
        "With --pipeline NAME (and --stage NAME, else its first stage), choose where every lead that converts or "
        "is marked qualified gets its deal, linked to its person, once; won deals come back as conversions. "
        "Names are matched without regard to case; an unknown one is refused with the names there are.",
    ) as pipeline:
        pipeline.add_argument("name")
        pipeline.add_argument("--pipeline", metavar="NAME", help="the pipeline's name, as the CRM shows it")
        pipeline.add_argument("--stage", metavar="NAME", help="the stage's name (default: the pipeline's first)")
        pipeline.add_argument("--clear", action="store_true", help="stop making deals")
    _on_one_integration(
        integration_commands, "conversions", cmd_integration_conversions,
        help="pull the CRM's conversions now (a sync does too) and make the deals of the chosen pipeline",
        description="Record what the CRM calls a conversion, each once (a re-pull changes nothing): Salesforce "
        "Leads converted (IsConverted, ConvertedDate), HubSpot contacts whose lifecycle stage reached "
        "opportunity or customer, Pipedrive deals won (with their value). They show in `attribution report`.",
    )
