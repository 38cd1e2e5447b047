"""The demo's social feed: events posted to the real local API land in the store, a salesperson's steps in the
sandboxes come back as conversions, and the feed stops at once when told, in-process and as ``demo --serve``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_desktop.api.server import LocalApiServer
from crm_desktop.app.demo import HISTORY_DAYS, Demo, FeedThread, feed_rate, record_history, start_demo
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.social import AttributionModel
from crm_desktop.sandbox.data import generate_people
from crm_desktop.sandbox.social_feed import SocialFeed

pytestmark = pytest.mark.loopback

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = start_demo(tmp_path, local_contacts=12, crm_contacts=8)
    try:
        yield running
    finally:
        running.stop()


async def _runs_finished(demo: Demo) -> None:
    deadline = time.monotonic() + 60
    names = [i.name for i in demo.workspace.integrations.list()]
    while any(demo.workspace.sync.is_running(name) for name in names):
        assert time.monotonic() < deadline, "the syncs the feed started did not finish"
        await asyncio.sleep(0.1)


def test_feed_events_land_and_salesperson_steps_come_back_as_conversions(demo: Demo) -> None:
    store = demo.workspace.social.store
    history = {c.id for c in store.conversions()}  # the demo workspace's past month

    async def scenario() -> None:
        api = LocalApiServer(demo.workspace, 0)
        url = await api.start()
        try:
            feed = demo.social_feed(url, api.tokens.current(), per_minute=6000)
            feed.step_every = 4
            stats = await feed.run(limit=24)
            await _runs_finished(demo)
        finally:
            await api.stop()
        assert stats.refused == 0 and not stats.errors, stats.errors
        assert stats.events >= 15 and stats.posted.get("engagement", 0) > 0
        assert stats.posted.get("conversation", 0) > 0 and stats.salesperson_steps == 6
        assert stats.syncs_started >= 3
        assert len(store.touchpoints_since(None)) >= stats.posted["engagement"]
        report = demo.workspace.social.attribution_report(AttributionModel.LINEAR)
        # Every salesperson's step was pulled back by the sync it started; the feed's events credit them.
        pulled = [c for c in store.conversions() if c.id not in history]
        assert len(pulled) >= 6
        assert sum(c.value or 0 for c in pulled if c.currency == "EUR") > 0  # won deals, customers' won deals
        assert {row.name for row in report.by_campaign} & {"Spring launch", "Webinar series", "Customer stories",
                                                          "Black Friday"}
        assert any(row.conversions_credited > 0 for row in report.by_campaign)

    asyncio.run(scenario())


def test_the_demo_workspace_starts_with_a_month_of_activity_and_conversions(demo: Demo) -> None:
    """Attribution and the timelines have figures from the first minute: touchpoints spread over the past month,
    conversations with messages, and conversions with a value, each after its person's first touchpoint."""
    social = demo.workspace.social
    touches = social.store.touchpoints_since(None)
    now = datetime.now(UTC)
    days = {t.touch.timestamp.date() for t in touches}
    assert len(days) >= HISTORY_DAYS * 2 // 3, "the activity is spread over the month"
    assert min(t.touch.timestamp for t in touches) >= now - timedelta(days=HISTORY_DAYS, minutes=5)
    assert max(t.touch.timestamp for t in touches) <= now
    conversions = social.store.conversions()
    assert conversions and all(c.value and c.value > 0 and c.currency == "EUR" for c in conversions)
    for conversion in conversions:
        first = min(t.touch.timestamp for t in touches if t.email == conversion.email)
        assert first < conversion.timestamp <= now, conversion.email
    report = social.attribution_report(AttributionModel.LINEAR)
    assert report.unattributed_conversions == 0
    assert all(row.conversions_credited > 0 for row in report.by_campaign)
    assert sum(row.conversions_credited for row in report.by_campaign) == pytest.approx(len(conversions))


def test_one_seed_gives_one_past(tmp_path: Path) -> None:
    """Two demo workspaces from one seed and moment hold the same past month, person for person."""
    people = generate_people(10, 107)
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

    def past(folder: Path) -> tuple[list[tuple[str | None, str, str]], list[tuple[str, str, str]]]:
        workspace = Workspace.open(folder)
        try:
            record_history(workspace, people, seed=7, now=now)
            store = workspace.social.store
            return ([(t.email, t.touch.campaign or "", t.touch.timestamp.isoformat())
                     for t in store.touchpoints_since(None)],
                    [(c.email, str(c.value), c.timestamp.isoformat()) for c in store.conversions()])
        finally:
            workspace.close()

    one = past(tmp_path / "one")
    assert one[0] and one[1]
    assert one == past(tmp_path / "two")


def test_the_same_seed_gives_the_same_stream(demo: Demo) -> None:
    def first(feed: SocialFeed, count: int) -> list[tuple[str, str]]:
        steps = feed.steps()
        return [(s.kind, json.dumps(s.body, sort_keys=True)[:60]) for s in (next(steps) for _ in range(count))]

    one = demo.social_feed("http://127.0.0.1:1", "t")
    two = demo.social_feed("http://127.0.0.1:1", "t")
    one._clock = two._clock = lambda: datetime(2026, 12, 1, tzinfo=UTC)
    assert first(one, 30) == first(two, 30)


def test_a_slow_feed_stops_at_once_when_told(demo: Demo) -> None:
    async def scenario() -> float:
        api = LocalApiServer(demo.workspace, 0)
        url = await api.start()
        try:
            feed = demo.social_feed(url, api.tokens.current(), per_minute=1)  # a minute between events
            stop = asyncio.Event()
            running = asyncio.ensure_future(feed.run(stop))
            deadline = time.monotonic() + 30
            while feed.stats.events == 0:
                assert time.monotonic() < deadline, feed.stats.errors
                await asyncio.sleep(0.05)
            asked = time.monotonic()
            stop.set()
            await asyncio.wait_for(running, timeout=5)
            return time.monotonic() - asked
        finally:
            await api.stop()

    assert asyncio.run(scenario()) < 1.0


def test_the_feed_thread_posts_beside_the_apps_loop_and_stops(demo: Demo) -> None:
    async def scenario() -> int:
        api = LocalApiServer(demo.workspace, 0)
        url = await api.start()
        feed = FeedThread(demo, url, per_minute=3000)
        feed.start()
        try:
            deadline = time.monotonic() + 30
            while feed.stats.events < 5:
                assert time.monotonic() < deadline, feed.stats.errors
                await asyncio.sleep(0.05)
        finally:
            await asyncio.to_thread(feed.stop)
            await api.stop()
        return feed.stats.events

    assert asyncio.run(scenario()) >= 5


def test_the_rate_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert feed_rate({}) == 6.0
    assert feed_rate({"CRM_DESKTOP_DEMO_FEED_PER_MINUTE": "30"}) == 30.0
    assert feed_rate({"CRM_DESKTOP_DEMO_FEED_PER_MINUTE": "0"}) == 0.0
    with pytest.raises(ValueError, match="CRM_DESKTOP_DEMO_FEED_PER_MINUTE='fast'"):
        feed_rate({"CRM_DESKTOP_DEMO_FEED_PER_MINUTE": "fast"})
    with pytest.raises(ValueError, match="0 \\(no feed\\) or more"):
        feed_rate({"CRM_DESKTOP_DEMO_FEED_PER_MINUTE": "-2"})


def test_demo_serve_runs_the_feed_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CRM_DESKTOP_DB_URL"}
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_desktop", "--data-dir", str(tmp_path), "demo", "--headless", "--contacts", "10",
         "--serve", "--api-port", "0", "--feed-rate", "600", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        lines: list[dict[str, object]] = []
        buffer = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            buffer += line
            try:
                lines.append(json.loads(buffer))
                buffer = ""
            except ValueError:
                continue
            if "api" in lines[-1]:
                break
        assert lines and lines[-1]["feedPerMinute"] == 600
        time.sleep(3)  # ten events a second
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        posted = [line for line in err.splitlines() if line.startswith("social feed:")]
        assert posted and int(posted[0].split()[2]) >= 5, err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def _touchpoints_in(database: Path, since: datetime) -> int:
    """Touchpoints at or after ``since`` (the feed's; the demo's past month is before it)."""
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return int(connection.execute("SELECT count(*) FROM touchpoints WHERE timestamp >= ?",
                                          (since.strftime("%Y-%m-%d %H:%M:%S.%f"),)).fetchone()[0])
    except sqlite3.Error:
        return 0  # not migrated yet


@pytest.mark.timeout(240)
def test_the_apps_demo_mode_runs_the_feed_into_its_window_and_quits_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"CRM_DESKTOP_DB_URL", "CRM_DESKTOP_API_PORT"}}
    env.update(PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen", CRM_DESKTOP_DEMO_FEED_PER_MINUTE="600")
    started = datetime.now(UTC)
    # -X faulthandler: should the app hang on quit, SIGABRT makes it print every thread's stack (below).
    process = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "crm_desktop", "--data-dir",
                                str(tmp_path), "--demo"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        database = tmp_path / "demo" / "crm-desktop.db"
        deadline = time.monotonic() + 150
        while _touchpoints_in(database, started) < 5:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the demo's feed posted nothing to the app's local API"
            time.sleep(0.5)
        asked, asked_at = time.monotonic(), datetime.now(UTC)
        process.send_signal(signal.SIGTERM)
        try:
            _out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            _out, err = process.communicate(timeout=30)
            log = tmp_path / "logs" / "crm-desktop.log"
            tail = log.read_text(encoding="utf-8")[-6000:] if log.exists() else "(no log)"
            heard = "asked to quit by SIGTERM" in (log.read_text(encoding="utf-8") if log.exists() else "")
            pytest.fail(f"the demo app had not quit 60 s after SIGTERM (sent {asked_at:%H:%M:%S.%f} UTC; the app "
                        f"{'logged' if heard else 'never logged'} hearing it). Its threads then:\n{err[-12000:]}\n"
                        f"The end of its log:\n{tail}")
        assert process.returncode == 0, err
        assert time.monotonic() - asked < 20
        assert "Traceback" not in err, err
        assert "asked to quit by SIGTERM" in (tmp_path / "logs" / "crm-desktop.log").read_text(encoding="utf-8")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
