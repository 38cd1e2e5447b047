"""The support bundle: useful to whoever helps, and free of every secret and personal value the app holds."""

from __future__ import annotations

import io
import json
import logging
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from crm_desktop import __version__
from crm_desktop.app.diagnostics import Redactor, export_diagnostics
from crm_desktop.app.logging_setup import configure_logging
from crm_desktop.app.settings import SettingKey
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli import ExitCode, main
from crm_desktop.domain.models import Contact, Integration, Lead, SocialPlatform, SocialProfile
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.store.models import SyncRunStatus, SyncTrigger

SECRETS = {
    "hubspot token": "pat-na1-PLANTED0-hub1-spot2",
    "salesforce client secret": "PLANTED-client-secret-9f8e7d",
    "salesforce access token": "00DPLANTED00001!AQ.access.token.value",
    "salesforce refresh token": "5Aep861PLANTEDrefreshTokenValue",
    "pipedrive token": "PLANTEDpipedrive0123456789abcdef",
    "local API token": "planted-local-api-token-1d2c3b4a",
    "proxy password": "PlantedProxyPass77",
}
PERSONAL = {
    "email": "zebulon.quixote@example.org",
    "lead email": "marguerite.vasquez@example.net",
    "first name": "Zebulon",
    "last name": "Quixote",
    "lead first name": "Marguerite",
    "phone": "+14155550199",
    "phone without plus": "14155550199",
    "social username": "zebq_social",
    "lead username": "margvasq",
}


def plant(data_dir: Path) -> None:
    """Put every kind of secret and personal value where the app keeps them."""
    workspace = Workspace.open(data_dir)
    try:
        workspace.integrations.add(Integration(provider="hubspot", name="hs"), {"token": SECRETS["hubspot token"]})
        workspace.integrations.add(
            Integration(provider="salesforce", name="sf", base_url="https://acme.my.salesforce.com"),
            {"clientId": "3MVG9-client", "clientSecret": SECRETS["salesforce client secret"],
             "accessToken": SECRETS["salesforce access token"],
             "refreshToken": SECRETS["salesforce refresh token"]},
        )
        pd = workspace.integrations.add(Integration(provider="pipedrive", name="pd", domain="acme"),
                                        {"apiToken": SECRETS["pipedrive token"]})
        workspace.vault.save_api_token(SECRETS["local API token"])
        workspace.network.set(SettingKey.PROXY,
                              f"http://proxyuser:{SECRETS['proxy password']}@proxy.example.com:3128")
        workspace.contacts.save(Contact(
            email=PERSONAL["email"], first_name=PERSONAL["first name"], last_name=PERSONAL["last name"],
            phone=PERSONAL["phone"],
            social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username=PERSONAL["social username"])],
        ))
        workspace.leads.save(Lead(
            email=PERSONAL["lead email"], first_name=PERSONAL["lead first name"], last_name="Vasquez",
            social_profiles=[SocialProfile(platform=SocialPlatform.INSTAGRAM, username=PERSONAL["lead username"])],
        ))
        assert pd.id is not None
        store = workspace.sync.store
        run_id = store.start_run(pd.id, SyncTrigger.CLI, "both")
        store.add_record_outcomes(run_id, [
            (RecordObject.CONTACT, PERSONAL["email"], None, RecordOutcome.FAILED, ErrorCategory.VALIDATION,
             f"phone {PERSONAL['phone']} of {PERSONAL['first name']} {PERSONAL['last name']} refused"),
        ])
        store.finish_run(run_id, SyncRunStatus.PARTIAL, failed=1,
                         message=f"{PERSONAL['email']} failed; token={SECRETS['pipedrive token']}")
        log_file = workspace.paths.log_file
    finally:
        workspace.close()
    configure_logging(log_file)
    logging.getLogger("crm_desktop.test").warning(
        "refused %s (%s, @%s) calling %s", PERSONAL["email"], PERSONAL["first name"], PERSONAL["social username"],
        PERSONAL["phone without plus"],
    )
    for handler in logging.getLogger("crm_desktop").handlers:
        handler.flush()
    # An older line written before tokens were scrubbed: the export must not trust the log to be clean.
    with log_file.open("a", encoding="utf-8") as handle:
        handle.write(f"2026-12-01 10:00:00 INFO old: Authorization: Bearer {SECRETS['hubspot token']} "
                     f"refresh_token={quote(SECRETS['salesforce refresh token'])} user {PERSONAL['lead email']} "
                     f"{PERSONAL['lead first name']} {PERSONAL['lead username']} proxy "
                     f"{SECRETS['proxy password']} api {SECRETS['local API token']}\n")


@contextmanager
def opened(data_dir: Path) -> Iterator[Workspace]:
    workspace = Workspace.open(data_dir)
    try:
        yield workspace
    finally:
        workspace.close()


def planted() -> list[bytes]:
    values = [*SECRETS.values(), *PERSONAL.values()]
    forms = {form for value in values for form in (value, value.lower(), value.upper(), quote(value, safe=""))}
    return sorted({form.encode() for form in forms})


def test_a_bundle_carries_no_secret_and_no_personal_value(tmp_path: Path) -> None:
    data_dir = tmp_path / "D"
    plant(data_dir)
    destination = tmp_path / "out" / "diagnostics.zip"
    destination.parent.mkdir()  # an export never creates its folder
    with opened(data_dir) as workspace:
        report = export_diagnostics(workspace, destination, qt_platform="offscreen",
                                    environ={"CRM_DESKTOP_HOME": str(data_dir), "QT_QPA_PLATFORM": "offscreen"})
    raw = destination.read_bytes()
    with zipfile.ZipFile(destination) as bundle:
        members = {name: bundle.read(name) for name in bundle.namelist()}
    assert set(report.files) == set(members)
    assert {"README.txt", "about.json", "settings.json", "integrations.json", "runs.json",
            "logs/crm-desktop.log"} <= set(members)
    for value in planted():
        assert value not in raw, value
        for name, content in members.items():
            assert value not in content, (name, value)

    # What helps a supporter is still there.
    about = json.loads(members["about.json"])
    assert about["app"]["version"] == __version__ and about["qt"]["platform"] == "offscreen"
    assert "SQLAlchemy" in about["libraries"] and about["os"]["system"]
    integrations = {i["name"]: i for i in json.loads(members["integrations.json"])}
    assert set(integrations) == {"hs", "sf", "pd"}
    assert integrations["sf"]["credentials"] == ["accessToken", "clientId", "clientSecret", "refreshToken"]
    [run] = json.loads(members["runs.json"])
    assert run["integration"] == "pd" and run["errorCategories"] == {"validation": 1} and run["status"] == "partial"
    assert "[email]" in run["message"] and "[secret]" in run["message"]
    settings = json.loads(members["settings.json"])
    assert any(s["key"] == "proxy" and "proxy.example.com" in str(s["value"]) for s in settings["network"])
    log = members["logs/crm-desktop.log"].decode()
    assert "refused [email] ([personal], @[personal]) calling [personal]" in log or "refused [email]" in log
    assert "Bearer [secret]" in log


def test_the_redactor_by_shape_alone() -> None:
    redactor = Redactor()
    text = ("Authorization: Bearer abc.def-123 token=xyz%20 call +1 415-555-0132 from ann@example.com "
            "ann%40example.com pat-na1-11111111-2222")
    assert redactor.redact(text) == ("Authorization: Bearer [secret] token=[secret] call [phone] from [email] "
                                     "[email] [secret]")
    assert Redactor(personal={"Mary Ann"}).redact("by mary ann, on 2026-12-03 05:50:16") == (
        "by [personal], on 2026-12-03 05:50:16")


def test_the_cli_writes_the_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "D"
    plant(data_dir)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    destination = tmp_path / "bundle.zip"
    code = main(["--data-dir", str(data_dir), "diagnostics", "export", str(destination), "--json"])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    data = json.loads(out)
    assert data["runs"] == 1 and data["logs"] >= 1 and "runs.json" in data["files"]
    raw = destination.read_bytes()
    with zipfile.ZipFile(destination) as bundle:
        contents = b"".join(bundle.read(name) for name in bundle.namelist())
    for value in planted():
        assert value not in raw and value not in contents, value
    code = main(["--data-dir", str(data_dir), "diagnostics", "export", str(tmp_path / "bundle.txt")])
    assert code == ExitCode.USAGE and "FILE.zip" in capsys.readouterr().err
