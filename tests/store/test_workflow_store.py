"""The workflows' outbox on a real database: queued once per key, claimed once, settled, taken up after a crash."""

from __future__ import annotations

from datetime import timedelta

from crm_desktop.domain.models import Integration, Provider
from crm_desktop.store.database import Database
from crm_desktop.store.models import DeliveryStatus, WorkflowEventKind, utcnow
from crm_desktop.store.repositories import IntegrationStore
from crm_desktop.store.workflow_store import QueuedEvent, WorkflowStore


def two_integrations(database: Database) -> list[int]:
    store = IntegrationStore(database)
    saved = [store.add(Integration(provider=Provider.HUBSPOT, name=name)) for name in ("a", "b")]
    return [integration.id for integration in saved if integration.id is not None]


def event(key: str) -> QueuedEvent:
    return QueuedEvent(WorkflowEventKind.MESSAGE, key, {"messageId": key})


def test_an_event_is_queued_once_per_integration_however_often_it_comes(database: Database) -> None:
    a, b = two_integrations(database)
    store = WorkflowStore(database)
    assert store.enqueue([a, b], [event("k1"), event("k2")]) == 4
    assert store.enqueue([a, b], [event("k1")]) == 0
    assert store.enqueue([a], [event("k2"), event("k3")]) == 1
    assert store.counts(a)[DeliveryStatus.PENDING] == 3 and store.counts(b)[DeliveryStatus.PENDING] == 2


def test_a_claim_is_taken_once_and_settled_in_one_go(database: Database) -> None:
    a, _ = two_integrations(database)
    store = WorkflowStore(database)
    store.enqueue([a], [event(f"k{n}") for n in range(5)])
    now = utcnow()
    first = store.claim(a, now, 3)
    assert [e.payload["messageId"] for e in first] == ["k0", "k1", "k2"]
    assert store.claim(a, now + timedelta(microseconds=1), 10)[0].payload["messageId"] == "k3"  # not k0 again
    store.finish([(first[0].id, "crm-1", "entry-1")], [(first[1].id, "refused: email invalid")],
                 [(first[2].id, "CRM down", now + timedelta(seconds=30))])
    counts = store.counts(a)
    assert counts[DeliveryStatus.DONE] == 1 and counts[DeliveryStatus.FAILED] == 1
    assert store.claim(a, now + timedelta(seconds=1), 10) == []  # the retry is not due yet; k3, k4 are claimed
    assert [e.attempts for e in store.claim(a, now + timedelta(seconds=31), 10)] == [1]
    assert store.failures(a)[0][2] == "refused: email invalid"
    assert store.entries_written(a) == 1 and len(store.delivered(a)) == 1


def test_claims_of_a_stopped_delivery_go_again(database: Database) -> None:
    a, _ = two_integrations(database)
    store = WorkflowStore(database)
    store.enqueue([a], [event("k1"), event("k2")])
    assert store.claim(a, utcnow() - timedelta(minutes=10), 10) == []  # queued after that: not due then
    claimed = store.claim(a, utcnow(), 10)
    assert store.release_stale(utcnow() - timedelta(minutes=5)) == 0  # fresh claims stay with their delivery
    assert store.release_stale(utcnow() + timedelta(seconds=1)) == len(claimed) == 2
    assert store.counts(a)[DeliveryStatus.PENDING] == 2
    again = store.claim(a, utcnow(), 10)
    store.release([again[0].id])
    assert store.counts(a)[DeliveryStatus.PENDING] == 1 and store.counts(a)[DeliveryStatus.SENDING] == 1


def test_the_earliest_pending_event_is_due_and_the_oldest_arrived(database: Database) -> None:
    a, b = two_integrations(database)
    store = WorkflowStore(database)
    assert store.next_attempt(a) is None and store.oldest_pending(a) is None
    before = utcnow()
    store.enqueue([a], [event("k1"), event("k2")])
    store.enqueue([b], [event("k3")])
    now = utcnow()
    first, second = store.claim(a, now, 10)
    store.finish([], [], [(first.id, "CRM down", now + timedelta(seconds=30))])

    # k1 waits for its retry in 30 s, k2 is being sent: only k1 is pending.
    assert store.next_attempt(a) == now + timedelta(seconds=30)
    oldest = store.oldest_pending(a)
    assert oldest is not None and before <= oldest <= now
    store.release([second.id])
    due = store.next_attempt(a)
    assert due is not None and due <= now  # k2 is due again at once
    store.finish([(first.id, "crm-1", "entry-1"), (second.id, "crm-2", "entry-2")], [], [])
    assert store.next_attempt(a) is None and store.oldest_pending(a) is None
    assert store.next_attempt(b) is not None
