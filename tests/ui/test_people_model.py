"""The People table model pages through the store with keysets, sorts and filters in SQL, and never reads all rows."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QApplication, QTableView
from pytestqt.qtbot import QtBot

from crm_desktop.app.people import Keyset, PeopleColumn, PeopleQuery, PeopleService, PersonLine, SyncState
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, SocialPlatform, SocialProfile
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.ui.people_model import PeopleTableModel, PersonColumn
from tests.support.marketing_data import seed_marketing


def contact(number: int) -> Contact:
    return Contact(
        email=f"p{number:04d}@example.com",
        first_name=f"Name{number % 7}",
        last_name="Tester",
        company="Acme" if number % 2 else "Globex",
        social_profiles=(
            [SocialProfile(platform=SocialPlatform.INSTAGRAM, username=f"ig{number}", followers=number)]
            if number % 5 == 0 else []
        ),
    )


@pytest.fixture
def service(workspace: Workspace) -> PeopleService:
    workspace.contacts.save_many(contact(number) for number in range(1, 1001))
    return PeopleService(workspace.database, workspace.social, workspace.sync)


class CountingLoader:
    """Wraps the service's page reads to record each call's keyset and size."""

    def __init__(self, service: PeopleService) -> None:
        self.service = service
        self.calls: list[tuple[Keyset | None, int]] = []

    def __call__(self, query: PeopleQuery, after: Keyset | None, limit: int) -> Sequence[PersonLine]:
        self.calls.append((after, limit))
        return self.service.page(query, after, limit)


def test_fetch_more_reads_one_page_at_a_time(service: PeopleService) -> None:
    loader = CountingLoader(service)
    model = PeopleTableModel(loader, service.count, page_size=50)
    model.reload()
    assert model.total == 1000
    assert model.rowCount() == 50
    assert model.canFetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    assert model.rowCount() == 100
    assert loader.calls == [(None, 50), (("p0050@example.com", 50), 50)]
    emails = [model.data(model.index(row, PersonColumn.EMAIL)) for row in range(model.rowCount())]
    assert emails == [f"p{number:04d}@example.com" for number in range(1, 101)]


def test_a_view_reads_only_the_pages_it_shows(qtbot: QtBot, qapp: QApplication, service: PeopleService) -> None:
    loader = CountingLoader(service)
    model = PeopleTableModel(loader, service.count, page_size=100)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(600, 400)
    view.show()
    qtbot.waitExposed(view)
    model.reload()
    QApplication.processEvents()
    assert model.rowCount() < model.total, "the view must not make the model read every row"
    before = len(loader.calls)
    view.scrollToBottom()
    QApplication.processEvents()
    assert len(loader.calls) == before + 1, "scrolling to the bottom reads exactly one more page"
    assert model.rowCount() == 100 * len(loader.calls) < 1000


def test_the_last_page_ends_the_fetching(service: PeopleService) -> None:
    model = PeopleTableModel(service.page, service.count, page_size=400)
    model.reload()
    model.fetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    assert model.rowCount() == 1000
    assert not model.canFetchMore(QModelIndex())


@pytest.mark.parametrize("descending", [False, True])
def test_sorting_is_done_in_sql_across_pages(service: PeopleService, descending: bool) -> None:
    model = PeopleTableModel(service.page, service.count, page_size=64)
    model.reload()
    order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
    model.sort(PersonColumn.COMPANY, order)
    assert model.query.sort is PeopleColumn.COMPANY and model.query.descending is descending
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
    rows = [model.line(row) for row in range(model.rowCount())]
    keys = [(line.company, line.id) for line in rows if line is not None]
    assert len(keys) == 1000 and len({key[1] for key in keys}) == 1000, "no row lost or repeated at page edges"
    assert keys == sorted(keys, reverse=descending)


def test_filters_run_in_sql(service: PeopleService) -> None:
    model = PeopleTableModel(service.page, service.count, page_size=50)
    model.set_query(PeopleQuery(text="NAME3 test"))
    assert model.total == len([n for n in range(1, 1001) if n % 7 == 3])
    model.set_query(PeopleQuery(platform=SocialPlatform.INSTAGRAM))
    assert model.total == 200
    assert model.data(model.index(0, PersonColumn.PLATFORMS)) == "instagram"
    model.set_query(PeopleQuery(text="globex", platform=SocialPlatform.INSTAGRAM))
    assert model.total == 100  # Globex (even numbers) with an Instagram profile (multiples of 5)
    model.set_query(PeopleQuery(text="100%"))
    assert model.total == 0, "% is matched literally"


def test_score_campaign_and_sync_state_filters(workspace: Workspace) -> None:
    seed_marketing(workspace)
    service = PeopleService(workspace.database, workspace.social, workspace.sync)
    leads = service.page(PeopleQuery(obj=RecordObject.LEAD), None, 100)
    scored = [line.score for line in leads if line.score is not None]
    assert scored and len(scored) == len(leads)
    middle = sorted(scored)[len(scored) // 2]
    high = PeopleQuery(obj=RecordObject.LEAD, score_min=middle)
    assert service.count(high) == len([s for s in scored if s >= middle])
    assert all(line.score is not None and line.score >= middle for line in service.page(high, None, 100))
    by_score = service.page(PeopleQuery(obj=RecordObject.LEAD, sort=PeopleColumn.SCORE, descending=True), None, 3)
    assert [line.score for line in by_score] == sorted(scored, reverse=True)[:3]
    assert 0 < service.count(PeopleQuery(campaign="Black Friday")) < service.count(PeopleQuery())
    assert service.count(PeopleQuery(campaign="No Such Campaign")) == 0
    assert service.count(PeopleQuery(integration_id=1, sync_state=SyncState.LINKED)) == 0
