"""The app quits cleanly after a large sync: a real app process, demo mode, offscreen (issue 15).

The full 10,000-contact session is ``python -m bench.quit_after_sync`` (run by hand, see docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app_session import SessionSettings, run_app_session

pytestmark = pytest.mark.loopback

#: With the demo's own records, about 1,500 contacts and leads to each of the three CRMs: tens of thousands of Qt
#: calls on the GUI loop, which wore None away under PySide6 6.12.0 (it aborted at 1,000).
CONTACTS = 1_000


@pytest.mark.timeout(480)
def test_the_app_quits_with_status_0_and_a_quiet_stderr_after_syncing_thousands_of_contacts(tmp_path: Path) -> None:
    report = run_app_session(
        SessionSettings(
            data_dir=tmp_path / "data",
            contacts=CONTACTS,
            collect_before_quit=True,
            # Pipedrive writes one person per request (and searches): larger bursts than the top plan's keep the
            # session within a CI minute or so; the quit is what is tested here, not the rate limits.
            pipedrive_burst=1_200,
            timeout=400,
        )
    )
    assert report.unexpected_stderr == []
    assert report.exit_code == 0
    assert set(report.runs) == {"Salesforce (demo)", "HubSpot (demo)", "Pipedrive (demo)"}
    for name, run in report.runs.items():
        assert run["status"] == "succeeded" and run["failed"] == 0, (name, run)
        assert run["created"] >= CONTACTS, (name, run)
    # The emulator's process-wide tuning stays out of the app's process.
    assert report.at_quit["frozen_objects"] == 0
    assert report.at_quit["gc_threshold"][0] == 700
    assert report.at_quit["uvloop_loaded"] is False
    # The sandboxes run in a child process: no emulator thread competes with the GUI for the interpreter.
    assert "sandbox-server" not in report.at_quit["threads"]
