"""Sync services the GUI and the CLI share: run, schedule, conflicts, run history, undo, mappings, import."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar

from crm_desktop.app.conversions import ConversionService
from crm_desktop.app.crm_actions import CrmActions
from crm_desktop.app.imports import ImportProgressListener, ImportReport, ImportService
from crm_desktop.app.integrations import IntegrationService
from crm_desktop.app.social import SocialService
from crm_desktop.app.sync_process import SyncProcess, SyncProcessStartError
from crm_desktop.app.sync_worker import SyncWorker, on_loop
from crm_desktop.app.text import stored_text
from crm_desktop.domain.models import Integration, SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject
from crm_desktop.providers.contract import CrmAdapter, CrmField, ReadsMappedFields
from crm_desktop.providers.errors import ConfigurationError, ProviderError
from crm_desktop.store.database import Database
from crm_desktop.store.engagement_store import EngagementStore
from crm_desktop.store.models import (
    LOCAL_TRIGGERS,
    ConflictRow,
    ConflictRule,
    FieldDirection,
    SyncRecordLogRow,
    SyncRunRow,
    SyncRunStatus,
    SyncTrigger,
    utcnow,
)
from crm_desktop.store.repositories import ContactStore, LeadStore, NotFoundError
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.sync.actions import (
    ConflictOutcome,
    DueSync,
    ResolutionStatus,
    UndoRefused,
    UndoReport,
    due_syncs,
    next_due_at,
    resolve_conflict,
    resolve_conflicts,
    undo_run,
    waiting_for_reconnect,
)
from crm_desktop.sync.engine import Progress, SyncAlreadyRunning, SyncEngine, SyncProgress, SyncResult
from crm_desktop.sync.extras import SocialPushExtras
from crm_desktop.sync.lock_refusal import take_lock
from crm_desktop.sync.mapping import (
    FieldMapping,
    MappingProblem,
    Transform,
    default_mappings,
    fit_to_crm,
    local_fields,
    record_values,
    validate_mappings,
    with_crm_lengths,
)
from crm_desktop.sync.plan import SyncPlan
from crm_desktop.vault import VaultError

logger = logging.getLogger(__name__)

T = TypeVar("T")
ListenerArgs = ParamSpec("ListenerArgs")

__all__ = [
    "ConflictOutcome",
    "ConflictRow",
    "ConflictRule",
    "DueSync",
    "FieldDirection",
    "FieldMapping",
    "ImportReport",
    "MappingChangeError",
    "MappingProblem",
    "ResolutionStatus",
    "RunNews",
    "SyncRecordLogRow",
    "SyncResult",
    "SyncRunRow",
    "SyncService",
    "SyncTrigger",
    "Transform",
    "UndoRefused",
    "local_run_name",
]


def local_run_name(run: SyncRunRow) -> str:
    """What `runs list` and the local API name in place of the integration of a run on the local store alone: an
    edit by hand (People's Edit…, ``contacts set``) or a file import, and their undos."""
    return "(edit by hand)" if run.trigger == SyncTrigger.EDIT else "(local import)"


#: Pushes of at least this many chosen records go to the sync process, as full runs do: their objects would cost the
#: window's process full garbage collections. Fewer (an event's contact, "Sync this one now") stay on the sync
#: worker, where they go at once, without waiting for a child to start.
PROCESS_PUSH_MIN = 200

#: The runs that pull, after which the CRM's conversions are pulled too.
PULLING = frozenset({"pull", "both"})


#: Told how each run ended: the integration, and the run's result or the error that stopped it.
RunListener = Callable[[Integration, "SyncResult | Exception"], None]
#: Told what each import of a file into the local store did: the file and the import's report.
ImportListener = Callable[[Path, ImportReport], None]


@dataclass(frozen=True)
class RunNews:
    """How a run of this process stands, told to the run watchers as it starts, reports progress and ends, whoever
    started it (a window's button, the schedule, the local API, an automatic push, People's "Sync this one now").

    Attributes:
        key: tells this run's news from another's (the same for all the news of one run).
        integration: the integration syncing.
        trigger, direction: what started it and where it goes.
        run_id: its row in the store, once recorded (told as news of its own).
        progress: its latest figures (``None`` before the first).
        ended: it ended (done, failed or cancelled): its row and figures are in the store.
    """

    key: int
    integration: Integration
    trigger: SyncTrigger
    direction: SyncDirection
    run_id: int | None = None
    progress: SyncProgress | None = None
    ended: bool = False


#: Told how each run of this process stands (see :class:`RunNews`), on the loop that awaits the run.
RunWatcher = Callable[[RunNews], None]
#: Told of a run cancelled before it ended (the app quitting), with its result as the store recorded it, on the
#: thread the run ran on (the sync worker's, the sync process's): store work only.
CancelListener = Callable[[Integration, SyncResult], None]


class MappingChangeError(ValueError):
    """A field mapping cannot be changed as asked; the message says why."""


class Listeners(Generic[ListenerArgs]):
    """The callbacks told of one kind of event. A callback that raises is logged and skipped: it never stops the
    others, nor undoes what it was told of."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._callbacks: list[Callable[ListenerArgs, None]] = []

    def add(self, callback: Callable[ListenerArgs, None]) -> None:
        self._callbacks.append(callback)

    def remove(self, callback: Callable[ListenerArgs, None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def tell(self, about: str, *args: ListenerArgs.args, **kwargs: ListenerArgs.kwargs) -> None:
        """Call every callback with ``args``; ``about`` names the event in the log of a callback's failure."""
        for callback in list(self._callbacks):
            try:
                callback(*args, **kwargs)
            except Exception:
                logger.exception("%s listener failed on %s", self._kind, about)


class SyncService:
    """Runs syncs and everything around them for every integration of a workspace.

    A second sync of an integration already running in this process joins the running one; a run in another
    process (the cron CLI, a second window) is refused by the store's lock.
    """

    def __init__(self, database: Database, integrations: IntegrationService, actions: CrmActions) -> None:
        self.store = SyncStore(database)
        #: Reads people's engagement history for the summary field and Pipedrive's social note.
        self.engagement = EngagementStore(database)
        self.integrations = integrations
        self.actions = actions
        self.contacts = ContactStore(database)
        self.leads = LeadStore(database)
        #: Brings each CRM's conversions (and Pipedrive's deals) after a run that pulls.
        #: Scores the people a pull or an import saved after their social activity was recorded.
        self.social = SocialService(database)
        self.conversions = ConversionService(database, integrations, actions, self.social)
        self.imports = ImportService(database)
        self._running: dict[int, asyncio.Task[SyncResult]] = {}
        #: One push of chosen records at a time per integration: concurrent API requests queue, not refuse.
        self._push_turns: dict[int, asyncio.Lock] = {}
        self._run_listeners: Listeners[[Integration, SyncResult | Exception]] = Listeners("a run")
        self._run_watchers: Listeners[[RunNews]] = Listeners("a run's news")
        self._cancel_listeners: Listeners[[Integration, SyncResult]] = Listeners("a cancelled run")
        #: Runs going on in this process per integration id, whoever started them (pushes of chosen records too).
        self._going: Counter[int] = Counter()
        self._run_keys = itertools.count(1)
        self._import_listeners: Listeners[[Path, ImportReport]] = Listeners("an import")
        self._worker: SyncWorker | None = None
        self._process: SyncProcess | None = None

    def run_in_process(self, process: SyncProcess | None) -> None:
        """Run full syncs from now on in ``process`` (the desktop app: their garbage must not pause its window), or
        back in this one (``None``; the process there was is closed).

        Runs of chosen records and dry runs stay on the worker thread (or this loop); the process is closed with
        this service.
        """
        if self._process is not None and self._process is not process:
            self._process.close()
        self._process = process

    @property
    def sync_process(self) -> SyncProcess | None:
        """The child process full runs go to, if any."""
        return self._process

    def run_off_thread(self) -> SyncWorker:
        """Run syncs from now on in a worker thread (the desktop app: its loop must only draw); idempotent."""
        if self._worker is None or not self._worker.running:
            self._worker = SyncWorker()
        return self._worker

    def close(self) -> None:
        """Stop the sync process and the sync worker, if any (runs still going are cancelled and wind down first)."""
        if self._process is not None:
            self._process.close()
            self._process = None
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    # -- mappings ------------------------------------------------------------------------------
    def mappings(self, integration: Integration, obj: RecordObject) -> list[FieldMapping]:
        """The integration's saved mappings of ``obj``, or the CRM's defaults."""
        assert integration.id is not None
        rows = self.store.load_mappings(integration.id, obj)
        if not rows:
            return default_mappings(integration.provider, obj)
        defaults = {m.local_field: m for m in default_mappings(integration.provider, obj)}
        result = []
        for row in rows:
            default = defaults.get(row.local_field)
            value_map = default.value_map if default and default.crm_field == row.crm_field else ()
            result.append(
                FieldMapping(
                    row.local_field,
                    row.crm_field,
                    row.direction,
                    row.conflict_rule,
                    tuple(Transform(t) for t in row.transforms),
                    row.default_value,
                    default.length if default else None,
                    row.blank_wipes,
                    value_map,
                )
            )
        return result

    def all_mappings(self, integration: Integration) -> dict[RecordObject, list[FieldMapping]]:
        return {obj: self.mappings(integration, obj) for obj in RecordObject}

    def save_mappings(self, integration: Integration, obj: RecordObject, mappings: list[FieldMapping]) -> None:
        """Save an integration's mappings of ``obj`` (replacing the defaults).

        A field that now flows where it did not (newly mapped, turned to push or pull, or pointed at another CRM
        field) is compared afresh on every linked record by the next sync: the values already on either side are
        sent, pulled, or raised as conflicts, not left until the record next changes.
        """
        assert integration.id is not None
        flows = {(m.local_field, m.crm_field, m.pushes, m.pulls) for m in self.mappings(integration, obj)}
        reread = sorted({m.local_field for m in mappings if (m.local_field, m.crm_field, m.pushes, m.pulls) not in flows
                         and (m.pushes or m.pulls)})
        rows = [
            {
                "local_field": m.local_field,
                "crm_field": m.crm_field,
                "direction": m.direction,
                "conflict_rule": m.conflict_rule,
                "transforms": [t.value for t in m.transforms],
                "default_value": m.default_value,
                "blank_wipes": m.blank_wipes,
            }
            for m in mappings
        ]
        self.store.save_mappings(integration.id, obj, rows, reread=reread)

    def set_rule(self, integration: Integration, obj: RecordObject, local_field: str, rule: ConflictRule) -> None:
        """Change one field's conflict rule."""
        mappings = [
            replace(m, conflict_rule=rule) if m.local_field == local_field else m
            for m in self.mappings(integration, obj)
        ]
        self.save_mappings(integration, obj, mappings)

    def change_mapping(
        self,
        integration: Integration,
        obj: RecordObject,
        local_field: str,
        *,
        rule: ConflictRule | None = None,
        direction: FieldDirection | None = None,
        crm_field: str | None = None,
        crm_fields: Sequence[CrmField] | None = None,
    ) -> FieldMapping:
        """Change one field's conflict rule, direction or CRM field (mapping a known local field not mapped yet
        needs its CRM field); returns the field's mapping as saved. With ``crm_fields`` (the CRM's live list, see
        :meth:`crm_field_list`) the changed mapping is checked against it as the Field Mapping panel checks it.

        Raises:
            MappingChangeError: for a field that is not a local field, or not mapped and given no CRM field; a
                blank CRM field; the email turned off; a CRM field the CRM lacks or cannot take (nothing is saved).
        """
        known = local_fields(obj)
        mappings = self.mappings(integration, obj)
        by_name = {m.local_field.casefold(): m.local_field for m in mappings}
        by_name.update({name.casefold(): name for name in known})
        name = by_name.get(local_field.strip().casefold())
        if name is None and local_field.startswith("custom."):
            name = local_field
        if name is None:
            choices = ", ".join(sorted({m.local_field for m in mappings} | set(known)))
            raise MappingChangeError(f"{obj.value}s have no field {local_field!r}; fields: {choices}")
        current = next((m for m in mappings if m.local_field == name), None)
        if current is None:
            if not crm_field:
                raise MappingChangeError(f"{name} is not mapped yet: give its CRM field (--crm-field)")
            current = FieldMapping(name, crm_field)
            mappings.append(current)
        changed = replace(
            current,
            conflict_rule=rule or current.conflict_rule,
            direction=direction or current.direction,
            crm_field=(crm_field if crm_field is not None else current.crm_field).strip(),
        )
        if not changed.crm_field:
            raise MappingChangeError(f"{name}: the CRM field is blank; give its API name or label")
        if name == "email" and changed.direction is FieldDirection.OFF:
            raise MappingChangeError("email is every record's key (records are matched by it): it cannot be off")
        updated = [changed if m.local_field == name else m for m in mappings]
        if crm_fields is not None:
            # A CRM field named now is checked even with the field off: turned on later, it would be refused then.
            problems = [p for p in validate_mappings(obj, updated, crm_fields, integration.provider,
                                                     names_of_off=crm_field is not None)
                        if p.local_field == name]
            if problems:
                raise MappingChangeError("; ".join(str(p) for p in problems) + "; nothing was changed")
        self.save_mappings(integration, obj, updated)
        return changed

    async def crm_field_list(self, name: str, obj: RecordObject) -> list[CrmField]:
        """The CRM's live fields of contacts or leads (one call, or a few for a paged field list)."""
        integration = self.integrations.get(name)
        adapter = self.actions.adapter_for(integration)
        try:
            return await adapter.list_fields(obj)
        finally:
            await adapter.aclose()

    async def check_mappings(self, name: str, obj: RecordObject) -> list[MappingProblem]:
        """Validate the mappings against the CRM's live field list."""
        integration = self.integrations.get(name)
        fields = await self.crm_field_list(name, obj)
        return validate_mappings(obj, self.mappings(integration, obj), fields, integration.provider)

    # -- runs ----------------------------------------------------------------------------------
    async def sync(
        self,
        name: str,
        direction: SyncDirection = SyncDirection.BOTH,
        trigger: SyncTrigger = SyncTrigger.MANUAL,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> SyncResult:
        """Run (or join the running) sync of one integration."""
        integration = self.integrations.get(name)
        assert integration.id is not None
        if not dry_run:
            running = self._running.get(integration.id)
            if running is not None and not running.done():
                return await asyncio.shield(running)
        task = _outliving_its_caller(self._run(integration, direction, trigger, dry_run, progress), integration)
        if not dry_run:
            self._running[integration.id] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self._running.get(integration.id) is task:
                del self._running[integration.id]

    async def start(
        self, name: str, direction: SyncDirection = SyncDirection.BOTH,
        trigger: SyncTrigger = SyncTrigger.MANUAL,
    ) -> int:
        """Start a sync of one integration in the background and return its run id once the run has begun.

        Raises:
            SyncAlreadyRunning: when a run of the integration is going on (here or in another process).
            AuthError, ProviderError, VaultError: when the run cannot begin.
        """
        integration = self.integrations.get(name)
        assert integration.id is not None
        if self.is_running(name):
            raise SyncAlreadyRunning(f"a sync of {integration.name!r} is already running")
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def begun(run_id: int) -> None:
            if not started.done():
                started.set_result(run_id)

        task = asyncio.ensure_future(self._run(integration, direction, trigger, False, None, on_started=begun))
        self._running[integration.id] = task
        task.add_done_callback(lambda done: self._finished_in_background(integration, done))
        waiting: list[asyncio.Future[Any]] = [started, task]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if started.done():
            return started.result()
        return task.result().run_id or 0  # raises what stopped the run from beginning

    def _finished_in_background(self, integration: Integration, task: asyncio.Task[SyncResult]) -> None:
        if self._running.get(integration.id or -1) is task:
            del self._running[integration.id or -1]
        if not task.cancelled() and task.exception() is not None:
            logger.warning("background sync of %s stopped: %s", integration.name, task.exception())

    async def push_now(
        self, name: str, local_ids: dict[RecordObject, list[int]], trigger: SyncTrigger = SyncTrigger.AUTO
    ) -> SyncResult:
        """Push these local records to the integration's CRM now, as a recorded run (nothing is pulled).

        Pushes of the same integration take turns; a full sync going on is not waited for.

        Raises:
            SyncAlreadyRunning: when a sync of the integration is going on (here or in another process).
        """
        integration = self.integrations.get(name)
        assert integration.id is not None
        async with self._push_turns.setdefault(integration.id, asyncio.Lock()):
            if self.is_running(name):
                raise SyncAlreadyRunning(f"a sync of {integration.name!r} is already running")
            task = _outliving_its_caller(
                self._run(integration, SyncDirection.PUSH, trigger, False, None, local_ids=local_ids), integration
            )
            return await asyncio.shield(task)

    async def _run(
        self, integration: Integration, direction: SyncDirection, trigger: SyncTrigger, dry_run: bool,
        progress: Progress | None, *, local_ids: dict[RecordObject, list[int]] | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> SyncResult:
        """One run: a full run, or a push of :data:`PROCESS_PUSH_MIN` chosen records or more, in the sync process
        when there is one; else on the sync worker when there is one (its callbacks come back to this loop), else
        here.

        The run's listeners hear how it ended, and its watchers how it stands from its start to its end (a dry run
        is not a run: they hear nothing of it).
        """
        if dry_run:
            return await self._run_in_this_process(integration, direction, trigger, dry_run, progress,
                                                   local_ids=local_ids, on_started=on_started)
        assert integration.id is not None
        about = f"the run of {integration.name}"
        news = RunNews(next(self._run_keys), integration, trigger, direction)

        def tell(**changes: Any) -> None:
            nonlocal news
            news = replace(news, **changes)
            self._run_watchers.tell(about, news)

        def begun(run_id: int) -> None:
            if on_started is not None:
                on_started(run_id)
            tell(run_id=run_id)

        def reported(report: SyncProgress) -> None:
            if progress is not None:
                progress(report)
            tell(progress=report)

        self._going[integration.id] += 1
        tell()
        try:
            result = None
            if self._process is not None and (
                    local_ids is None or sum(map(len, local_ids.values())) >= PROCESS_PUSH_MIN):
                try:
                    result = await self._process.run(integration.name, direction, trigger, progress=reported,
                                                     on_started=begun, local_ids=local_ids)
                except SyncProcessStartError as exc:
                    # Nothing was sent: the run goes on in this process, as do the next ones.
                    logger.warning("%s; sync runs go on in the app's own process", exc)
                    self.run_in_process(None)
            if result is None:
                result = await self._run_in_this_process(integration, direction, trigger, dry_run, reported,
                                                         local_ids=local_ids, on_started=begun)
        except Exception as exc:
            self._run_listeners.tell(about, integration, exc)
            raise
        else:
            # A listener's bug must not turn a finished run into a failed one.
            self._run_listeners.tell(about, integration, result)
        finally:
            self._going[integration.id] -= 1
            if self._going[integration.id] <= 0:
                del self._going[integration.id]
            tell(ended=True)
        return result

    async def _run_in_this_process(
        self, integration: Integration, direction: SyncDirection, trigger: SyncTrigger, dry_run: bool,
        progress: Progress | None, *, local_ids: dict[RecordObject, list[int]] | None,
        on_started: Callable[[int], None] | None,
    ) -> SyncResult:
        """One run on the sync worker when there is one (its callbacks come back to this loop), else here."""
        if self._worker is None:
            return await self.run_here(integration, direction, trigger, dry_run, progress, local_ids=local_ids,
                                       on_started=on_started)
        here = asyncio.get_running_loop()
        return await self._worker.run(self.run_here(
            integration, direction, trigger, dry_run, on_loop(here, progress) if progress else None,
            local_ids=local_ids, on_started=on_loop(here, on_started) if on_started else None,
        ))

    def add_run_listener(self, listener: RunListener) -> None:
        """Call ``listener`` with the integration and the result (or the error) of every run that ends here."""
        self._run_listeners.add(listener)

    def remove_run_listener(self, listener: RunListener) -> None:
        self._run_listeners.remove(listener)

    def add_run_watcher(self, watcher: RunWatcher) -> None:
        """Call ``watcher`` with the news of every run of this process as it starts, reports progress and ends,
        whoever started it (see :class:`RunNews`)."""
        self._run_watchers.add(watcher)

    def remove_run_watcher(self, watcher: RunWatcher) -> None:
        self._run_watchers.remove(watcher)

    def add_cancel_listener(self, listener: CancelListener) -> None:
        """Call ``listener`` with the integration and the recorded result of every run cancelled before it ended
        in this process (the run listeners are not told of those: the app may be quitting). It is called on the
        thread the run ran on, right after the run was recorded as cancelled: store work only."""
        self._cancel_listeners.add(listener)

    def remove_cancel_listener(self, listener: CancelListener) -> None:
        self._cancel_listeners.remove(listener)

    async def run_here(
        self, integration: Integration, direction: SyncDirection, trigger: SyncTrigger, dry_run: bool,
        progress: Progress | None, *, local_ids: dict[RecordObject, list[int]] | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> SyncResult:
        """One run in this process and on this loop, its listeners not told (the caller tells them: the app's
        :meth:`_run`, or the sync process's parent)."""
        assert integration.id is not None
        # The lock comes before any network call: a run of another process is refused at once, not after the
        # adapter's first calls (the engine takes the same lock again, as the same owner, and releases it).
        if not dry_run:
            take_lock(self.store, integration.id, integration.name)
        try:
            adapter = self.actions.adapter_for(integration)
        except BaseException:
            if not dry_run:
                self.store.release_lock(integration.id)
            raise
        mappings = self.all_mappings(integration)
        if local_ids is not None:
            mappings = {obj: m for obj, m in mappings.items() if local_ids.get(obj)}
        try:
            await self.actions.check_crm_account(integration, adapter)
            fields = {obj: await adapter.list_fields(obj) for obj in RecordObject if mappings.get(obj)}
            mappings = {obj: self._fitted(integration, obj, m, fields.get(obj, []), dry_run=dry_run)
                        for obj, m in mappings.items()}
            if isinstance(adapter, ReadsMappedFields):
                for obj, fitted in mappings.items():
                    adapter.read_mapped_fields(obj, [m.crm_field for m in fitted])
        except BaseException:
            await adapter.aclose()
            if not dry_run:
                self.store.release_lock(integration.id)
            raise
        extras = SocialPushExtras(self.engagement, integration.provider, mappings)
        engine = SyncEngine(self.store, integration, adapter, mappings, progress=progress, extras=extras)
        run_ids: list[int] = []

        def begun(run_id: int) -> None:
            run_ids.append(run_id)
            if on_started is not None:
                on_started(run_id)

        try:
            result = await engine.run(direction, trigger, dry_run=dry_run, local_ids=local_ids, on_started=begun)
        except asyncio.CancelledError:
            if run_ids:
                self._tell_cancelled(integration, run_ids[0], adapter)
            raise
        # Not after a run the CRM refused or could not be reached in: the pull would only wait out its retries.
        stopped = result.auth_failed or result.status is SyncRunStatus.OFFLINE
        if not dry_run and local_ids is None and direction in PULLING and not stopped:
            await self._pull_conversions(integration)
        if not dry_run and direction in PULLING:
            # People the pull brought in whose touchpoints were recorded before: scored now, not at the daily rescore.
            self._score_newcomers()
        return result

    def _tell_cancelled(self, integration: Integration, run_id: int, adapter: CrmAdapter) -> None:
        """Tell the cancel listeners of run ``run_id``, cancelled: its counts as the engine recorded them (what it did
        before it stopped), the quota as the CRM last reported it."""
        try:
            row = self.store.get_run(run_id)
        except Exception:  # the store is going away with the app: the run's row says what it did
            logger.warning("could not read the cancelled run %d of %s", run_id, integration.name, exc_info=True)
            return
        counts = {"created": row.created, "updated": row.updated, "unchanged": row.unchanged, "failed": row.failed,
                  "conflicts": row.conflicts, "decided": row.conflicts_decided}
        seconds = (row.finished_at - row.started_at).total_seconds() if row.finished_at else 0.0
        result = SyncResult(run_id, row.status, counts, row.api_calls, SyncPlan(), [], row.message, seconds,
                            quota=adapter.quota(), api_errors=adapter.api_errors)
        self._cancel_listeners.tell(f"the cancelled run of {integration.name}", integration, result)

    def _score_newcomers(self) -> None:
        """Score the people just saved whose social activity was recorded before; a failure here leaves the run or
        import as it ended (the daily rescore catches them up)."""
        try:
            self.social.score_unscored()
        except Exception:
            logger.warning("could not score the people just saved; the daily rescore will", exc_info=True)

    async def _pull_conversions(self, integration: Integration) -> None:
        """Record the CRM's conversions and make Pipedrive's deals; a CRM failure there is logged and never
        fails the run that pulled the records (the next run tries again)."""
        try:
            await self.conversions.pull(integration.name)
        except ProviderError as exc:
            logger.warning("conversions of %s not pulled: %s", integration.name, exc)

    def _fitted(
        self, integration: Integration, obj: RecordObject, mappings: list[FieldMapping], crm_fields: list[CrmField],
        *, dry_run: bool = False,
    ) -> list[FieldMapping]:
        """The mappings a run uses: CRM fields by wire name and length; seed social fields the CRM lacks left out.

        The fields left out are logged once per integration and change of them or of the mappings, not at every
        run (the Field Mapping panel names them all the while).
        """
        fitted = fit_to_crm(integration.provider, obj, mappings, crm_fields)
        facts = {"integration": integration.name, "missing": list(fitted.missing),
                 "mappings": [[m.local_field, m.crm_field] for m in mappings]}
        changed = self.store.notice_changed(f"notice.fields-missing.{integration.id}.{obj.value}", facts,
                                            remember=not dry_run)
        if fitted.missing and changed:
            logger.warning(
                "%s has no %s field %s; not synced until created (crm-desktop fields ensure %s)",
                integration.name, obj.value, ", ".join(fitted.missing), integration.name,
            )
        return with_crm_lengths(fitted.mappings, crm_fields)

    async def off_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await ``coroutine`` on the sync worker when there is one, else here: the desktop app's loop only draws,
        so a coroutine's store calls and CRM requests must not run on it."""
        if self._worker is None:
            return await coroutine
        return await self._worker.run(coroutine)

    def _syncing_ids(self) -> set[int]:
        """The integrations whose sync runs in this process now (read on the caller's loop, which owns the runs)."""
        return {integration_id for integration_id, task in self._running.items() if not task.done()}

    def is_running(self, name: str) -> bool:
        """Whether a full sync of the integration runs in this process (pushes of chosen records not included)."""
        integration = self.integrations.get(name)
        task = self._running.get(integration.id or -1)
        return task is not None and not task.done()

    def is_syncing(self, name: str) -> bool:
        """Whether any run of the integration goes on in this process: a full sync, or a push of chosen records
        (the local API's, an automatic one, a retry, People's "Sync this one now")."""
        integration = self.integrations.get(name)
        return self.is_running(name) or self._going.get(integration.id or -1, 0) > 0

    def due(self, now: datetime | None = None) -> list[DueSync]:
        """Scheduled syncs due now (from the last successful runs in the store)."""
        return due_syncs(self.store, self.integrations.list(), now or utcnow())

    def next_due(self, integration: Integration) -> datetime | None:
        return next_due_at(self.store, integration)

    def waiting_for_reconnect(self, integration: Integration, now: datetime | None = None) -> datetime | None:
        """Until when the schedule leaves the integration be, as the CRM refused its sign-in (``None``: it does
        not, or no longer); a reconnect ends the wait at once."""
        held = waiting_for_reconnect(self.store, integration)
        return held if held is not None and held > (now or utcnow()) else None

    def records_waiting(self, name: str) -> int:
        """Local records the integration's next push looks at (never synced to it, or changed since): what waits
        for its next run while its CRM cannot be reached."""
        integration = self.integrations.get(name)
        assert integration.id is not None
        return sum(self.store.count_changed_local(integration.id, obj) for obj in RecordObject
                   if self.mappings(integration, obj))

    async def run_due(
        self, trigger: SyncTrigger = SyncTrigger.SCHEDULED, *, on_start: Callable[[str], object] | None = None,
        keep_going: Callable[[], bool] | None = None,
    ) -> list[tuple[str, SyncResult | Exception]]:
        """Run every due sync once, one after another; failures are returned, not raised.

        Each integration's turn looks at the schedule again as it comes, as the batch's earlier syncs take time: one
        whose auto-sync was turned off, that was removed, or that another run synced meanwhile, is passed over.

        Args:
            on_start: told each integration's name as its sync starts (the others of the batch wait their turn).
            keep_going: asked before each integration's turn; ``False`` (auto-sync paused) starts no more of them.
        """
        outcomes: list[tuple[str, SyncResult | Exception]] = []
        for first_look in self.due():
            if keep_going is not None and not keep_going():
                logger.info("auto-sync paused: the rest of the scheduled batch is not run")
                break
            item = next((now for now in self.due() if now.integration.id == first_look.integration.id), None)
            if item is None:
                logger.info("scheduled sync of %s no longer due; passed over", first_look.integration.name)
                continue
            if on_start is not None:
                on_start(item.integration.name)
            try:
                result = await self.sync(item.integration.name, item.direction, trigger)
                outcomes.append((item.integration.name, result))
            except Exception as exc:  # one integration's failure must not stop the others
                logger.warning("scheduled sync of %s failed: %s", item.integration.name, exc)
                outcomes.append((item.integration.name, exc))
        return outcomes

    def runs_changed(self, newer_than: int, unfinished: list[int]) -> list[SyncRunRow]:
        """Runs started after run ``newer_than`` and the ``unfinished`` ones as they stand (a live view's re-read)."""
        if unfinished:
            self.imports.log.mark_interrupted()
            self.store.close_orphaned_runs()
        return self.store.runs_changed(newer_than, unfinished)

    def runs(self, name: str | None = None, limit: int = 50, *, before: int | None = None) -> list[SyncRunRow]:
        """The newest runs, of one integration or of all (imports, edits and syncs killed mid-way shown as
        interrupted, a sync with the counts of its record log); with ``before``, the newest older than that run."""
        self.imports.log.mark_interrupted()
        self.store.close_orphaned_runs()
        integration_id = self.integrations.get(name).id if name else None
        return self.store.list_runs(integration_id, limit, before=before)

    def run(self, run_id: int) -> tuple[SyncRunRow, list[SyncRecordLogRow]]:
        return self.store.get_run(run_id), self.store.record_log(run_id)

    def run_log(self, run_id: int, *, offset: int = 0, limit: int = 500,
                failures_first: bool = False) -> list[SyncRecordLogRow]:
        """One page of a run's record log (a run of 100,000 records is never read whole)."""
        return self.store.record_log_page(run_id, offset=offset, limit=limit, failures_first=failures_first)

    def run_log_size(self, run_id: int) -> int:
        return self.store.record_log_count(run_id)

    def run_errors(self, run_id: int) -> dict[ErrorCategory, int]:
        """How many records of a run failed or were skipped, per error category."""
        return self.store.record_log_errors(run_id)

    def integration_of_run(self, run_id: int) -> Integration:
        integration_id = self.store.get_run(run_id).integration_id
        if integration_id is None:
            raise NotFoundError(f"run {run_id} is an import or an edit of the local store; it has no integration")
        return self.integrations.get_by_id(integration_id)

    async def undo(self, run_id: int, trigger: SyncTrigger = SyncTrigger.MANUAL, *, force: bool = False) -> UndoReport:
        """Undo a run: its audit rows restore the previous values on both sides.

        Args:
            trigger: what asked for the undo (``cli`` from the command line, ``manual`` from the app).
            force: put back the values from before the run even where they changed after it.

        Raises:
            UndoRefused: when the run was undone already, or values it wrote changed after it (without ``force``).
            SyncAlreadyRunning: when a sync of the integration is running (the store's lock does not tell runs of
                this process apart).

        On the sync worker when there is one (the desktop app), like a run.
        """
        return await self.off_loop(self._undo_here(run_id, trigger, force, self._syncing_ids()))

    async def _undo_here(self, run_id: int, trigger: SyncTrigger, force: bool, syncing: set[int]) -> UndoReport:
        if self.store.get_run(run_id).trigger in LOCAL_TRIGGERS:
            return self.imports.undo(run_id, force=force)
        integration = self.integration_of_run(run_id)
        if integration.id in syncing:
            raise SyncAlreadyRunning(f"a sync of {integration.name!r} is running; undo it afterwards")
        adapter = await self.actions.checked_adapter(integration)
        try:
            return await undo_run(self.store, adapter, integration, self.all_mappings(integration), run_id,
                                  trigger=trigger, force=force)
        finally:
            await adapter.aclose()

    # -- conflicts -----------------------------------------------------------------------------
    def conflicts(self, name: str | None = None, *, after_id: int = 0, limit: int | None = None) -> list[ConflictRow]:
        """Open conflicts, oldest first (a page of ``limit`` after conflict ``after_id`` when given)."""
        integration_id = self.integrations.get(name).id if name else None
        return self.store.open_conflicts(integration_id, after_id=after_id, limit=limit)

    def local_values_now(self, conflicts: Sequence[ConflictRow]) -> dict[int, str | None]:
        """Each conflict's field as its local record holds it now, by conflict id (a conflict whose record is gone
        is left out): the value recorded when it was raised may be stale, since a sibling conflict of another
        integration was resolved or the person was edited. One read of the records per object, however many."""
        wanted: dict[RecordObject, set[int]] = {}
        for conflict in conflicts:
            wanted.setdefault(conflict.object, set()).add(conflict.local_id)
        records = {obj: self.store.local_records(obj, sorted(ids)) for obj, ids in wanted.items()}
        values: dict[int, str | None] = {}
        for conflict in conflicts:
            local = records[conflict.object].get(conflict.local_id)
            if local is not None:
                values[conflict.id] = stored_text(record_values(local.record).get(conflict.field))
        return values

    def conflict_count(self) -> int:
        return self.store.count_open_conflicts()

    def conflict(self, conflict_id: int) -> ConflictRow:
        return self.store.get_conflict(conflict_id)

    async def resolve(self, conflict_id: int, *, take: str | None = None, value: str | None = None) -> Any:
        """Resolve a conflict: take the CRM's value, the local one, or a typed value; applied to both sides.

        On the sync worker when there is one (the desktop app), like a run: its store writes and CRM call never
        hold up the caller's loop.
        """
        return await self.off_loop(self._resolve_here(conflict_id, take, value))

    async def _resolve_here(self, conflict_id: int, take: str | None, value: str | None) -> Any:
        conflict = self.store.get_conflict(conflict_id)
        integration = self.integrations.get_by_id(conflict.integration_id)
        adapter = await self.actions.checked_adapter(integration)
        try:
            return await resolve_conflict(
                self.store, adapter, integration, self.all_mappings(integration), conflict_id, take=take, value=value
            )
        finally:
            await adapter.aclose()

    async def resolve_many(
        self,
        conflict_ids: Sequence[int],
        *,
        take: str,
        progress: Callable[[ConflictOutcome], None] | None = None,
        stop: threading.Event | None = None,
    ) -> list[ConflictOutcome]:
        """Resolve many conflicts the same way (``take``: ``crm`` or ``local``), each CRM's values written in its
        own batches; one conflict's failure or race leaves the others to be resolved.

        Args:
            progress: told each conflict's outcome as it is known (on the caller's loop).
            stop: once set, the conflicts not yet begun are left ``NOT_TRIED`` (the batch under way finishes).

        Returns:
            One outcome per conflict, in the order given.

        Raises:
            NotFoundError: naming the ids of no conflict (nothing was written).

        On the sync worker when there is one (the desktop app), like :meth:`resolve`.
        """
        told = progress
        if progress is not None and self._worker is not None:
            told = on_loop(asyncio.get_running_loop(), progress)
        return await self.off_loop(self._resolve_many_here(list(conflict_ids), take, told, stop))

    async def _resolve_many_here(
        self, conflict_ids: list[int], take: str, progress: Callable[[ConflictOutcome], None] | None,
        stop: threading.Event | None,
    ) -> list[ConflictOutcome]:
        found = self.store.conflicts_by_id(conflict_ids)
        missing = [str(conflict_id) for conflict_id in conflict_ids if conflict_id not in found]
        if missing:
            raise NotFoundError(f"no conflict {', '.join(missing)}; nothing was resolved")
        by_integration: dict[int, list[ConflictRow]] = {}
        for conflict_id in dict.fromkeys(conflict_ids):
            conflict = found[conflict_id]
            by_integration.setdefault(conflict.integration_id, []).append(conflict)
        outcomes: dict[int, ConflictOutcome] = {}
        for integration_id, conflicts in by_integration.items():
            integration = self.integrations.get_by_id(integration_id)
            try:
                adapter = await self.actions.checked_adapter(integration)
            except (ProviderError, ConfigurationError, VaultError) as exc:
                # No CRM to write to (credentials missing or refused, another account): this integration's
                # conflicts stay open with the reason; the other integrations' are resolved.
                for conflict in conflicts:
                    outcome = ConflictOutcome(conflict, ResolutionStatus.FAILED,
                                              reason=f"{integration.name} cannot be reached: {exc}")
                    outcomes[conflict.id] = outcome
                    if progress is not None:
                        progress(outcome)
                continue
            try:
                done = await resolve_conflicts(
                    self.store, adapter, integration, self.all_mappings(integration), conflicts, take=take,
                    progress=progress, stopped=stop.is_set if stop is not None else None)
            finally:
                await adapter.aclose()
            outcomes.update((outcome.conflict.id, outcome) for outcome in done)
        return [outcomes[conflict_id] for conflict_id in dict.fromkeys(conflict_ids)]

    # -- local import --------------------------------------------------------------------------
    def import_file(
        self, path: Path, obj: RecordObject = RecordObject.CONTACT, *, blank_clears: bool = False,
        progress: ImportProgressListener | None = None,
    ) -> ImportReport:
        """Validate a CSV/JSONL file and lay its valid rows over the local store (see :class:`ImportService`,
        which tells ``progress`` how far it is).

        The import listeners hear what it did (refused rows included).
        """
        report = self.imports.import_file(path, obj, blank_clears=blank_clears, progress=progress)
        if report.created:
            # People the file brought in whose touchpoints were recorded before get their score now.
            self._score_newcomers()
        # A listener's bug must not undo a saved import.
        self._import_listeners.tell(path.name, path, report)
        return report

    def add_import_listener(self, listener: ImportListener) -> None:
        """Call ``listener`` with the file and the report of every import into the local store."""
        self._import_listeners.add(listener)

    def remove_import_listener(self, listener: ImportListener) -> None:
        self._import_listeners.remove(listener)


def _outliving_its_caller(run: Coroutine[Any, Any, SyncResult], integration: Integration) -> asyncio.Task[SyncResult]:
    """The run as a task that goes on when the one awaiting it is cancelled (a window closing, a delivery worker
    stopping): a run stopped halfway would leave its page unapplied. ``asyncio.shield`` forgets the task once its
    caller is cancelled, so how such a run ended is logged here rather than reported as never retrieved (the run's
    listeners have heard it already)."""
    task = asyncio.ensure_future(run)

    def ended(done: asyncio.Task[SyncResult]) -> None:
        if not done.cancelled() and done.exception() is not None:
            logger.debug("run of %s ended: %s", integration.name, done.exception())

    task.add_done_callback(ended)
    return task
