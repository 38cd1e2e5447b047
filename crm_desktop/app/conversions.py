"""Conversions pulled from the CRMs, and Pipedrive deals for converted or qualified leads; shared by CLI and GUI.

A pull reads what the CRM calls a conversion (a converted Salesforce Lead, a HubSpot contact whose lifecycle
stage reached opportunity or customer, a won Pipedrive deal with its value) and records each through the social
service with source ``crm_pull`` and the CRM's id, so pulling again changes nothing. On a Pipedrive integration
with a deal pipeline chosen, every qualified or converted lead then gets one deal there, linked to its person.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crm_desktop.app.crm_actions import CrmActions
from crm_desktop.app.forget import ForgetService
from crm_desktop.app.integrations import IntegrationService
from crm_desktop.app.social import SocialService
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import DealPipelineChoice, Integration
from crm_desktop.domain.social import Conversion, ConversionSource, EventAction
from crm_desktop.domain.wording import forgotten_reason
from crm_desktop.providers.contract import CrmAdapter
from crm_desktop.providers.conversions import DealPipeline, KeepsDeals, PullsConversions, stage_names
from crm_desktop.providers.errors import RequestRejectedError
from crm_desktop.store.conversion_store import ConversionPullStore
from crm_desktop.store.database import Database

logger = logging.getLogger(__name__)

#: People a pull looks up for their deal at most (two Pipedrive searches each, from search's own 10-per-2-s window):
#: the others wait for the next pull, so a backlog never holds a sync for minutes.
DEALS_PER_PULL = 100

__all__ = ["ConversionPullReport", "ConversionService", "DealPipeline", "PipelineChoiceError"]


class PipelineChoiceError(ValueError):
    """A pipeline or stage name the CRM does not have, or an integration whose CRM keeps no deal pipelines.

    Attributes:
        choices: the names the CRM has (``Pipeline / Stage``), to pick from.
    """

    def __init__(self, message: str, choices: list[str] | None = None) -> None:
        super().__init__(message)
        self.choices = choices or []


@dataclass
class ConversionPullReport:
    """What one pull of an integration's conversions did.

    Attributes:
        integration: the integration's name.
        pulled: conversions the CRM reported.
        created: newly recorded; ``updated``: recorded before and changed on the CRM (a deal's value);
            ``unchanged``: recorded before as they are.
        deals_created: ``(email, deal id)`` of deals made in the chosen pipeline.
        deals_found: people who already had a deal there (made by hand, or before this desktop's records).
        deals_waiting: emails with no person in the CRM yet (their deal is made by a pull after a sync pushed them).
        deals_deferred: people left for the next pull (more than :data:`DEALS_PER_PULL` to look up).
        deal_errors: ``(email, reason)`` of deals the CRM refused.
        refused: ``(the CRM's id, reason)`` of conversions not recorded: the CRM holds no valid email or value for
            them (Pipedrive takes any text as an email); the pull goes past them, and records one once it is
            changed on the CRM.
        skipped: ``(the CRM's id, reason)`` of conversions of people forgotten at their request, not recorded.
        api_calls: requests sent.
    """

    integration: str
    pulled: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deals_created: list[tuple[str, str]] = field(default_factory=list)
    deals_found: int = 0
    deals_waiting: list[str] = field(default_factory=list)
    deals_deferred: int = 0
    deal_errors: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    api_calls: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "pulled": self.pulled,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "dealsCreated": [{"email": email, "dealId": deal} for email, deal in self.deals_created],
            "dealsFound": self.deals_found,
            "dealsWaiting": self.deals_waiting,
            "dealsDeferred": self.deals_deferred,
            "dealErrors": [{"email": email, "reason": reason} for email, reason in self.deal_errors],
            "refused": [{"externalId": external_id, "reason": reason} for external_id, reason in self.refused],
            "skipped": [{"externalId": external_id, "reason": reason} for external_id, reason in self.skipped],
            "apiCalls": self.api_calls,
        }


class ConversionService:
    """Pulls conversions from an integration's CRM and keeps the Pipedrive deal pipeline in step.

    Args:
        database: the workspace's store.
        integrations: the integrations (store and vault).
        actions: builds adapters with the workspace's transport and network settings.
        social: records the conversions (idempotent by the CRM's id).
    """

    def __init__(
        self, database: Database, integrations: IntegrationService, actions: CrmActions, social: SocialService
    ) -> None:
        self.store = ConversionPullStore(database)
        self.forgetting = ForgetService(database)
        self.deals_per_pull = DEALS_PER_PULL
        self.integrations = integrations
        self.actions = actions
        self.social = social

    async def _with_adapter(self, integration: Integration, work: Callable[[CrmAdapter], Any]) -> Any:
        adapter = self.actions.adapter_for(integration)
        try:
            return await work(adapter)
        finally:
            await adapter.aclose()

    # -- pulling ----------------------------------------------------------------------------------------------
    async def pull(self, name: str) -> ConversionPullReport:
        """Record the conversions the CRM reports since the last pull; then, on a CRM with deals and a chosen
        pipeline, give each qualified or converted lead its deal.

        Raises:
            NotFoundError: unknown integration. AuthError, ProviderError: the CRM refused or failed (nothing of
            that pull's conversions is half-recorded: they are recorded in one transaction).
        """
        integration = self.integrations.get(name)
        assert integration.id is not None
        report = ConversionPullReport(integration.name)

        async def work(adapter: CrmAdapter) -> None:
            try:
                await self._pull_into(integration, adapter, report)
                if isinstance(adapter, KeepsDeals) and integration.sync_config.deal_pipeline is not None:
                    await self._open_deals(integration, adapter, integration.sync_config.deal_pipeline, report)
            finally:
                report.api_calls = adapter.api_calls

        await self._with_adapter(integration, work)
        logger.info(
            "conversions of %s: %d pulled (%d new), %d deals made", integration.name, report.pulled, report.created,
            len(report.deals_created),
        )
        return report

    async def _pull_into(self, integration: Integration, adapter: CrmAdapter, report: ConversionPullReport) -> None:
        assert integration.id is not None
        if not isinstance(adapter, PullsConversions):
            return
        since = self.store.cursor(integration.id)
        found = await adapter.conversions_since(since)
        report.pulled = len(found)
        if not found:
            return
        conversions: list[Conversion] = []
        for item in found:
            try:
                conversions.append(Conversion(
                    email=item.email,
                    timestamp=item.converted_at,
                    value=item.value,
                    currency=item.currency,
                    source=ConversionSource.CRM_PULL,
                    external_id=item.external_id,
                    integration=str(integration.id),
                ))
            except InvalidRecordError as exc:
                # One bad record on the CRM must not hold back the others, nor stop every later pull at it.
                reason = "; ".join(f"{p.field}: {p.reason}" for p in exc.problems) or str(exc)
                report.refused.append((item.external_id, reason))
                logger.warning("%s: conversion %s not recorded (%s)", integration.name, item.external_id, reason)
        forgotten = self.forgetting.forgotten_among([c.email for c in conversions])
        if forgotten:
            report.skipped = [(c.external_id or "", forgotten_reason(forgotten[c.email], "not recorded"))
                              for c in conversions if c.email in forgotten]
            conversions = [c for c in conversions if c.email not in forgotten]
        results = self.social.record_conversions(conversions) if conversions else []
        report.created = sum(1 for r in results if r.action is EventAction.CREATED)
        report.updated = sum(1 for r in results if r.action is EventAction.UPDATED)
        report.unchanged = sum(1 for r in results if r.action is EventAction.UNCHANGED)
        stamps = [item.modified_at for item in found if item.modified_at is not None]
        if stamps:
            # The CRMs filter from the cursor inclusively or at whole-second grain: a record seen again is
            # recorded as unchanged, never twice.
            self.store.set_cursor(integration.id, max(stamps))

    async def _open_deals(
        self, integration: Integration, adapter: KeepsDeals, choice: DealPipelineChoice, report: ConversionPullReport
    ) -> None:
        assert integration.id is not None
        made = self.store.deals(integration.id)
        waiting = [c for c in self.store.deal_candidates(excluding_integration=str(integration.id))
                   if c.email not in made]
        report.deals_deferred = max(0, len(waiting) - self.deals_per_pull)
        for candidate in waiting[: self.deals_per_pull]:
            existing = await adapter.person_deal(candidate.email, choice.pipeline_id)
            if existing is not None:
                self.store.put_deal(integration.id, candidate.email, existing)
                report.deals_found += 1
                continue
            title = f"{candidate.name or candidate.email} (social lead)"
            try:
                deal_id = await adapter.open_person_deal(
                    candidate.email, title, choice.pipeline_id, choice.stage_id, candidate.value, candidate.currency
                )
            except RequestRejectedError as exc:
                # One refused deal (a person deleted meanwhile, a stage removed) does not stop the others.
                report.deal_errors.append((candidate.email, str(exc)))
                continue
            if deal_id is None:
                report.deals_waiting.append(candidate.email)
                continue
            self.store.put_deal(integration.id, candidate.email, deal_id)
            report.deals_created.append((candidate.email, deal_id))

    # -- the deal pipeline ------------------------------------------------------------------------------------
    async def pipelines(self, name: str) -> list[DealPipeline]:
        """The CRM's live deal pipelines and their stages.

        Raises:
            PipelineChoiceError: when the integration's CRM keeps no deal pipelines here (only Pipedrive does).
        """
        integration = self.integrations.get(name)

        async def work(adapter: CrmAdapter) -> list[DealPipeline]:
            if not isinstance(adapter, KeepsDeals):
                raise PipelineChoiceError(
                    f"{integration.name!r} is a {integration.provider.value} integration; deal pipelines are chosen "
                    "for Pipedrive integrations"
                )
            return await adapter.deal_pipelines()

        pipelines: list[DealPipeline] = await self._with_adapter(integration, work)
        return pipelines

    async def choose_pipeline(self, name: str, pipeline: str, stage: str | None = None) -> DealPipelineChoice:
        """Choose, by name (case-insensitive), the pipeline and stage where leads get their deal, from the CRM's
        live list; without ``stage``, the pipeline's first stage. Saved in the integration's settings.

        Raises:
            PipelineChoiceError: an unknown pipeline or stage name (with the names there are).
        """
        pipelines = await self.pipelines(name)
        wanted = pipeline.strip().casefold()
        matching = [p for p in pipelines if p.name.strip().casefold() == wanted]
        if not matching:
            names = [p.name for p in pipelines]
            raise PipelineChoiceError(
                f"no pipeline named {pipeline!r}; the pipelines are: {', '.join(names) or '(none)'}",
                stage_names(pipelines),
            )
        chosen = matching[0]
        if not chosen.stages:
            raise PipelineChoiceError(f"pipeline {chosen.name!r} has no stages", stage_names(pipelines))
        if stage is None:
            picked = chosen.stages[0]
        else:
            stages = [s for s in chosen.stages if s.name.strip().casefold() == stage.strip().casefold()]
            if not stages:
                raise PipelineChoiceError(
                    f"pipeline {chosen.name!r} has no stage named {stage!r}; its stages are: "
                    f"{', '.join(s.name for s in chosen.stages)}",
                    stage_names([chosen]),
                )
            picked = stages[0]
        choice = DealPipelineChoice(
            pipeline_id=chosen.id, pipeline_name=chosen.name, stage_id=picked.id, stage_name=picked.name
        )
        integration = self.integrations.get(name)
        config = integration.sync_config.model_copy(update={"deal_pipeline": choice})
        self.integrations.update(integration.model_copy(update={"sync_config": config}))
        return choice

    def clear_pipeline(self, name: str) -> None:
        """Stop making deals for the integration (deals already made stay on the CRM)."""
        integration = self.integrations.get(name)
        config = integration.sync_config.model_copy(update={"deal_pipeline": None})
        self.integrations.update(integration.model_copy(update={"sync_config": config}))
