"""Migration 0011: the People list's sorts by name, company and a lead's score read their first page from an index
(no sort of the whole table), on SQLite and (with CRM_DESKTOP_DB_URL) PostgreSQL; a downgrade drops the indexes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, inspect, text

from crm_desktop.domain.models import Contact, Lead
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.database import Database, migrate_to
from crm_desktop.store.people_store import PeopleColumn, PeopleQuery, PeopleStore
from crm_desktop.store.repositories import ContactStore, LeadStore

pytestmark = pytest.mark.postgres

SORT_INDEXES = {
    "contacts": {"ix_contacts_name_sort", "ix_contacts_company_sort", "ix_contacts_score_sort"},
    "leads": {"ix_leads_name_sort", "ix_leads_company_sort", "ix_leads_score_sort"},
}


def sort_indexes(database: Database) -> set[str]:
    if database.is_sqlite:
        with database.engine.connect() as connection:
            return set(connection.scalars(text("SELECT name FROM sqlite_master WHERE type = 'index'"))) & set.union(
                *SORT_INDEXES.values())
    names = {index["name"] for table in SORT_INDEXES for index in inspect(database.engine).get_indexes(table)}
    return names & set.union(*SORT_INDEXES.values())


def test_0011_and_0014_add_the_sort_indexes_and_their_downgrades_drop_them(blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0010")
    assert sort_indexes(blank_database) == set()
    blank_database.migrate()
    assert sort_indexes(blank_database) == set.union(*SORT_INDEXES.values())
    migrate_to(blank_database.engine, "0010", downgrade=True)
    assert sort_indexes(blank_database) == set()


def first_page_plan(database: Database, query: PeopleQuery) -> str:
    """The query plan of the People list's first page for ``query``, as the database would run it."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "ORDER BY" in statement and "LIMIT" in statement:
            captured.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", capture)
    try:
        PeopleStore(database).page(query, None, 50)
    finally:
        event.remove(database.engine, "before_cursor_execute", capture)
    statement, parameters = captured[0]
    with database.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        if database.is_sqlite:
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        # A handful of rows makes a scan and a sort the cheapest plan; forbid both to see whether the index fits.
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_sort = off")
        cursor.execute(f"EXPLAIN {statement}", parameters)
        plan = "\n".join(str(row[0]) for row in cursor.fetchall())
        raw.rollback()
        return plan


@pytest.mark.parametrize(("obj", "sort", "index"), [
    (RecordObject.CONTACT, PeopleColumn.NAME, "ix_contacts_name_sort"),
    (RecordObject.CONTACT, PeopleColumn.COMPANY, "ix_contacts_company_sort"),
    (RecordObject.CONTACT, PeopleColumn.SCORE, "ix_contacts_score_sort"),
    (RecordObject.LEAD, PeopleColumn.NAME, "ix_leads_name_sort"),
    (RecordObject.LEAD, PeopleColumn.COMPANY, "ix_leads_company_sort"),
    (RecordObject.LEAD, PeopleColumn.SCORE, "ix_leads_score_sort"),
])
@pytest.mark.parametrize("descending", [False, True])
def test_a_sorted_first_page_is_read_from_its_index(
    database: Database, obj: RecordObject, sort: PeopleColumn, index: str, descending: bool
) -> None:
    ContactStore(database).save_many(
        Contact(email=f"c{n}@example.com", first_name=f"F{n % 5}", last_name="L", company=f"Co {n % 3}")
        for n in range(30))
    LeadStore(database).save_many(Lead(email=f"l{n}@example.com", first_name=f"F{n % 5}") for n in range(30))
    plan = first_page_plan(database, PeopleQuery(obj=obj, sort=sort, descending=descending))
    assert index in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan.replace("Sort Key", ""), plan
