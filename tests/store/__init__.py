"""Tests of the local store, on SQLite and (with CRM_DESKTOP_DB_URL) on PostgreSQL."""
