"""The workflows' outbox on a real database: queued once per key, claimed once, settled, taken up after a crash."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from crm_desktop.domain.models import Integration, Provider, SocialPlatform
from crm_desktop.store.database import Database
from crm_desktop.store.models import ConversationRow, DeliveryStatus, WorkflowEventKind, WorkflowEventRow, utcnow
from crm_desktop.store.repositories import IntegrationStore
from crm_desktop.store.workflow_store import QueuedEvent, WorkflowStore, conversation_never_arrived


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


# -- queued again once the person is known: many settled events, few of them theirs -------------------------------

#: A settled event to build: integration (index), kind, payload, the status it ends in, its CRM id or error.
Settled = tuple[int, WorkflowEventKind, dict[str, Any], DeliveryStatus, str | None]


def settle(database: Database, integrations: list[int], events: dict[str, Settled]) -> None:
    """Queue each event (by key) for its integration and leave it as said: delivered to a CRM record (``done``
    with a CRM id), settled without one (``done``, no id), failed with its reason, claimed, or pending."""
    store = WorkflowStore(database)
    for index, integration_id in enumerate(integrations):
        mine = {key: e for key, e in events.items() if e[0] == index}
        store.enqueue([integration_id], [QueuedEvent(kind, key, payload) for key, (_, kind, payload, _, _)
                                         in mine.items()])
        claimed = store.claim(integration_id, utcnow(), len(mine))
        assert len(claimed) == len(mine)
        outcome = {event.id: mine[str(event.payload["key"])] for event in claimed}
        now = utcnow()
        store.finish([(i, why, None) for i, (_, _, _, status, why) in outcome.items() if status == DeliveryStatus.DONE],
                     [(i, why or "") for i, (_, _, _, status, why) in outcome.items()
                      if status == DeliveryStatus.FAILED],
                     [(i, why or "", now) for i, (_, _, _, status, why) in outcome.items()
                      if status == DeliveryStatus.PENDING])


def outbox(database: Database) -> dict[tuple[int, str], tuple[DeliveryStatus, str | None]]:
    """Each event's status and error, by integration and key."""
    with database.session() as session:
        return {(integration_id, key): (status, error) for integration_id, key, status, error in session.execute(
            select(WorkflowEventRow.integration_id, WorkflowEventRow.event_key, WorkflowEventRow.status,
                   WorkflowEventRow.error))}


def requeued(before: dict[tuple[int, str], tuple[DeliveryStatus, str | None]],
             after: dict[tuple[int, str], tuple[DeliveryStatus, str | None]]) -> set[tuple[int, str]]:
    """The events a requeue changed; each must now be pending with no error, and nothing else changed."""
    assert before.keys() == after.keys()
    changed = {key for key in before if before[key] != after[key]}
    assert all(after[key] == (DeliveryStatus.PENDING, None) for key in changed), {k: after[k] for k in changed}
    return changed


def test_conversations_settled_without_a_crm_go_again_exactly_those_of_the_linked_people(database: Database) -> None:
    """Thousands of settled conversation events, a handful the linked people's: only those (by platform and
    conversation id, as written) that reached no CRM record are queued again, for each integration holding one."""
    a, b = two_integrations(database)
    started = utcnow()
    conversations = [(SocialPlatform.TWITTER, f"dm-{n}", f"p{n}@example.com") for n in range(3000)]
    conversations += [
        (SocialPlatform.INSTAGRAM, "dm-7", "other@example.com"),  # p7's conversation id, another platform's
        (SocialPlatform.TWITTER, "DM-7", "other@example.com"),  # differs by case: another conversation
        (SocialPlatform.LINKEDIN, "li-7", "p7@example.com"),  # p7's second conversation
        (SocialPlatform.TWITTER, "dm-x", "p7@example.co"),  # a near-miss of the email
        (SocialPlatform.TWITTER, "dm-anon", None),  # still known by username alone
    ]
    with database.session() as session:
        session.add_all([ConversationRow(platform=platform, conversation_id=conversation_id, email=email,
                                         started_at=started) for platform, conversation_id, email in conversations])

    def started_event(key: str, platform: str, conversation_id: str) -> dict[str, Any]:
        return {"key": key, "conversationId": conversation_id, "platform": platform,
                "participant": {"username": f"u-{conversation_id}"}}

    conversation, message = WorkflowEventKind.CONVERSATION, WorkflowEventKind.MESSAGE
    done, failed, pending, sending = (DeliveryStatus.DONE, DeliveryStatus.FAILED, DeliveryStatus.PENDING,
                                      DeliveryStatus.SENDING)
    events: dict[str, Settled] = {
        f"c{n}": (n % 2, conversation, started_event(f"c{n}", "twitter", f"dm-{n}"), done,
                  None if n % 3 else f"crm-{n}")
        for n in range(3000)
    }
    decoys: dict[str, Settled] = {
        "ours-a": (0, conversation, started_event("ours-a", "twitter", "dm-7"), done, None),
        "ours-b": (1, conversation, started_event("ours-b", "twitter", "dm-7"), done, None),
        "ours-li": (0, conversation, started_event("ours-li", "linkedin", "li-7"), done, None),
        "ours-2": (0, conversation, started_event("ours-2", "twitter", "dm-2997"), done, None),
        "reached": (0, conversation, started_event("reached", "twitter", "dm-7"), done, "crm-7"),
        "failed": (0, conversation, started_event("failed", "twitter", "dm-7"), failed, "refused"),
        "claimed": (1, conversation, started_event("claimed", "twitter", "dm-7"), sending, None),
        "waiting": (1, conversation, started_event("waiting", "twitter", "li-7"), pending, "CRM down"),
        "message": (0, message, {"key": "message", "conversationId": "dm-7", "messageId": "m-7"}, done, None),
        "other-platform": (0, conversation, started_event("other-platform", "instagram", "dm-7"), done, None),
        "platform-case": (0, conversation, started_event("platform-case", "Twitter", "dm-7"), done, None),
        "id-case": (1, conversation, started_event("id-case", "twitter", "DM-7"), done, None),
        "wrong-platform": (0, conversation, started_event("wrong-platform", "twitter", "li-7"), done, None),
        "near-email": (0, conversation, started_event("near-email", "twitter", "dm-x"), done, None),
        "anonymous": (1, conversation, started_event("anonymous", "twitter", "dm-anon"), done, None),
        "no-id": (0, conversation, {"key": "no-id", "platform": "twitter"}, done, None),
    }
    events.update(decoys)
    events.pop("c7")  # p7's events are the decoys'
    settle(database, [a, b], events)
    store = WorkflowStore(database)
    before = outbox(database)

    assert store.requeue_unreached_conversations([]) == []
    assert store.requeue_unreached_conversations(["nobody@example.com"]) == []
    assert outbox(database) == before
    # p2997's conversation reached its CRM record for b (c2997), but not for a ("ours-2").
    linked = ["p7@example.com", "p2997@example.com", "nobody@example.com"]
    assert store.requeue_unreached_conversations(linked) == [a, b]

    assert requeued(before, outbox(database)) == {(a, "ours-a"), (b, "ours-b"), (a, "ours-li"), (a, "ours-2")}
    assert store.requeue_unreached_conversations(["p7@example.com"]) == []  # pending now: not settled


def test_messages_settled_without_a_crm_go_again_exactly_those_of_the_reached_conversations(
        database: Database) -> None:
    """Thousands of settled message events: of one integration's, those of the reached conversations (by their id
    as written) settled without a CRM record, or given up waiting for that very conversation, are queued again."""
    a, b = two_integrations(database)
    quoted = "it's \"dm\""  # repr() picks its quotes: the reason must be this conversation's, word for word

    def message(key: str, conversation_id: str) -> dict[str, Any]:
        return {"key": key, "conversationId": conversation_id, "messageId": key, "text": f"about {conversation_id}"}

    kind = WorkflowEventKind.MESSAGE
    done, failed, pending, sending = (DeliveryStatus.DONE, DeliveryStatus.FAILED, DeliveryStatus.PENDING,
                                      DeliveryStatus.SENDING)
    events: dict[str, Settled] = {
        f"m{n}": (n % 2, kind, message(f"m{n}", f"dm-{n % 1000}"),
                  failed if n % 5 == 0 else done, conversation_never_arrived(f"dm-{n % 1000}") if n % 5 == 0
                  else None if n % 3 else f"crm-{n}")
        for n in range(3000) if n % 1000 not in (7, 8)
    }
    decoys: dict[str, Settled] = {
        "unreached": (0, kind, message("unreached", "dm-7"), done, None),
        "unreached-2": (0, kind, message("unreached-2", "dm-7"), done, None),
        "gave-up": (0, kind, message("gave-up", "dm-7"), failed, conversation_never_arrived("dm-7")),
        "quoted": (0, kind, message("quoted", quoted), failed, conversation_never_arrived(quoted)),
        "quoted-done": (0, kind, message("quoted-done", quoted), done, None),
        "other-reason": (0, kind, message("other-reason", "dm-7"), failed, "refused: contact deleted"),
        "reason-other-conversation": (0, kind, message("reason-other-conversation", "dm-7"), failed,
                                      conversation_never_arrived(quoted)),
        "reason-repr-other": (0, kind, message("reason-repr-other", quoted), failed,
                              f"conversation '{quoted}' never arrived"),
        "reached": (0, kind, message("reached", "dm-7"), done, "crm-7"),
        "claimed": (0, kind, message("claimed", "dm-7"), sending, None),
        "waiting": (0, kind, message("waiting", "dm-7"), pending, "CRM down"),
        "other-integration": (1, kind, message("other-integration", "dm-7"), done, None),
        "other-gave-up": (1, kind, message("other-gave-up", "dm-7"), failed, conversation_never_arrived("dm-7")),
        "id-case": (0, kind, message("id-case", "DM-7"), done, None),
        "id-case-gave-up": (0, kind, message("id-case-gave-up", "DM-7"), failed, conversation_never_arrived("DM-7")),
        "not-wanted": (0, kind, message("not-wanted", "dm-8"), done, None),
        "conversation": (0, WorkflowEventKind.CONVERSATION,
                         {"key": "conversation", "conversationId": "dm-7", "platform": "twitter"}, done, None),
        "no-id": (0, kind, {"key": "no-id", "messageId": "no-id"}, done, None),
    }
    events.update(decoys)
    settle(database, [a, b], events)
    store = WorkflowStore(database)
    before = outbox(database)

    assert store.requeue_unreached_messages(a, []) == 0
    assert store.requeue_unreached_messages(a, ["dm-nothing"]) == 0
    assert outbox(database) == before
    # dm-4's m4 and m1004 were settled without a CRM record and m2004 reached one; dm-10's three gave up waiting.
    assert store.requeue_unreached_messages(a, ["dm-7", quoted, "dm-4", "dm-10", "dm-nothing"]) == 10

    assert requeued(before, outbox(database)) == {
        (a, "unreached"), (a, "unreached-2"), (a, "gave-up"), (a, "quoted"), (a, "quoted-done"),
        (a, "m4"), (a, "m1004"), (a, "m10"), (a, "m1010"), (a, "m2010")}
    assert store.requeue_unreached_messages(a, ["dm-7", quoted]) == 0  # pending now: not settled
