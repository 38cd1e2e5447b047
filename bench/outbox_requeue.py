"""Outbox requeue benchmark: one call of each of the workflow outbox's requeues on a store holding a long history of
settled social events, few of them the person's.

After every social import (or API event) that links a username to an email, the conversations that person started
while known by username alone, settled without reaching a CRM, are queued again
(``WorkflowStore.requeue_unreached_conversations``); after a delivery that reached a conversation's CRM record, its
messages settled without one are (``requeue_unreached_messages``). Both look for those events among every settled
event of the outbox, which only grows. The store is filled with Core inserts (a fresh SQLite workspace, or the
PostgreSQL database ``--url`` names, whose ``public`` schema is dropped first): ``--count`` settled events over two
integrations, a third conversation starts and two thirds messages, one in three reached no CRM record, and one
conversation per ten events, each its own person's. Each requeue is then timed once for one person (and one
conversation) with two unreached events per integration, and the figures checked.

Run from the repository root::

    python -m bench.outbox_requeue                    # 200,000 settled events, SQLite
    python -m bench.outbox_requeue --count 20000      # a quick look
    python -m bench.outbox_requeue --url postgresql+psycopg://postgres@127.0.0.1:54421/crm_bench
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench import measured_here
from crm_desktop.domain.models import Integration, Provider, SocialPlatform
from crm_desktop.store.database import Database, sqlite_url
from crm_desktop.store.models import ConversationRow, DeliveryStatus, WorkflowEventKind, WorkflowEventRow
from crm_desktop.store.repositories import IntegrationStore
from crm_desktop.store.workflow_store import WorkflowStore

#: Rows inserted per statement while filling the store.
INSERT_CHUNK = 5_000


def fill(database: Database, count: int) -> tuple[list[int], str, str]:
    """``count`` settled events and their conversations; the integrations, and the person and conversation whose
    unreached events the requeues are timed on."""
    integrations = IntegrationStore(database)
    ids = [i.id for i in (integrations.add(Integration(provider=Provider.HUBSPOT, name=name)) for name in "ab")
           if i.id is not None]
    now = datetime.now(UTC)
    people = max(count // 10, 1)
    with database.session() as session:
        for start in range(0, people, INSERT_CHUNK):
            session.execute(insert(ConversationRow), [
                {"conversation_id": f"dm-{n}", "platform": SocialPlatform.TWITTER, "email": f"fan{n}@example.com",
                 "started_at": now, "crm_links": {}} for n in range(start, min(start + INSERT_CHUNK, people))])
        for start in range(0, count, INSERT_CHUNK):
            rows: list[dict[str, Any]] = []
            for n in range(start, min(start + INSERT_CHUNK, count)):
                conversation = f"dm-{n % people}"
                if n % 3 == 0:
                    kind, payload = WorkflowEventKind.CONVERSATION, {
                        "conversationId": conversation, "platform": "twitter", "startedAt": now.isoformat(),
                        "participant": {"username": f"fan{n % people}"}}
                else:
                    kind, payload = WorkflowEventKind.MESSAGE, {
                        "conversationId": conversation, "messageId": f"m-{n}", "sentAt": now.isoformat(),
                        "direction": "inbound", "text": f"message {n} in {conversation}"}
                rows.append({
                    "integration_id": ids[n % 2], "event_key": f"k-{n}", "kind": kind, "payload": payload,
                    "status": DeliveryStatus.DONE, "attempts": 1, "next_attempt_at": now, "received_at": now,
                    "delivered_at": now, "crm_id": None if n % 3 == 1 or (n % 3 == 0 and n % 2) else f"crm-{n}",
                })
            session.execute(insert(WorkflowEventRow), rows)
    with database.session() as session:  # the timed person: two unreached starts and messages per integration
        session.execute(insert(ConversationRow), [{"conversation_id": "dm-timed", "platform": SocialPlatform.TWITTER,
                                                   "email": "timed@example.com", "started_at": now, "crm_links": {}}])
        session.execute(insert(WorkflowEventRow), [
            {"integration_id": integration_id, "event_key": f"timed-{kind}-{n}", "kind": kind,
             "payload": {"conversationId": "dm-timed", "platform": "twitter", "messageId": f"timed-{n}"},
             "status": DeliveryStatus.DONE, "attempts": 1, "next_attempt_at": now, "received_at": now,
             "delivered_at": now, "crm_id": None}
            for integration_id in ids for kind in WorkflowEventKind if kind is not WorkflowEventKind.ENGAGEMENT
            for n in range(2)])
    return ids, "timed@example.com", "dm-timed"


def run(count: int, url: str) -> dict[str, Any]:
    """Fill the store, then time one call of each requeue."""
    database = Database(url)
    try:
        if not database.is_sqlite:
            with database.engine.begin() as connection:
                connection.exec_driver_sql("DROP SCHEMA public CASCADE")
                connection.exec_driver_sql("CREATE SCHEMA public")
        database.migrate()
        started = time.perf_counter()
        (a, b), email, conversation = fill(database, count)
        fill_seconds = time.perf_counter() - started
        store = WorkflowStore(database)
        started, cpu = time.perf_counter(), time.process_time()
        targets = store.requeue_unreached_conversations([email])
        conversations_seconds, conversations_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        messages = store.requeue_unreached_messages(a, [conversation])
        messages_seconds, messages_cpu = time.perf_counter() - started, time.process_time() - cpu
        pending = store.counts()[DeliveryStatus.PENDING]
    finally:
        database.close()
    assert (targets, messages, pending) == ([a, b], 2, 6), (targets, messages, pending)
    return {
        "settledEvents": count + 8,
        "backend": "SQLite" if url.startswith("sqlite") else "PostgreSQL",
        "fillSeconds": round(fill_seconds, 1),
        "requeueConversationsSeconds": round(conversations_seconds, 3),
        "requeueConversationsCpuSeconds": round(conversations_cpu, 3),
        "requeueMessagesSeconds": round(messages_seconds, 3),
        "requeueMessagesCpuSeconds": round(messages_cpu, 3),
        **measured_here(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="settled events (default 200,000)")
    parser.add_argument("--url", help="a PostgreSQL database to fill (its public schema is dropped first); "
                                      "default: a new SQLite file")
    args = parser.parse_args(argv)
    if args.url:
        print(json.dumps(run(args.count, args.url), indent=2))
        return 0
    with tempfile.TemporaryDirectory(prefix="crm-outbox-requeue-bench-") as folder:
        print(json.dumps(run(args.count, sqlite_url(Path(folder) / "crm.db")), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
