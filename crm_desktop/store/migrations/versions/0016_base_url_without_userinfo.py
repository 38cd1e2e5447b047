"""Integration addresses hold no user name or password: one given in a base URL is taken out of the store

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 08:25:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` before its host taken out."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def upgrade() -> None:
    """Apply this migration: the app refuses such addresses now, and a secret belongs in the keyring only."""
    connection = op.get_bind()
    integrations = sa.table("integrations", sa.column("id", sa.Integer), sa.column("base_url", sa.String))
    stored = connection.execute(
        sa.select(integrations.c.id, integrations.c.base_url).where(integrations.c.base_url.like("%@%"))).all()
    for integration_id, base_url in stored:
        cleaned = without_userinfo(base_url)
        if cleaned != base_url:
            connection.execute(
                integrations.update().where(integrations.c.id == integration_id).values(base_url=cleaned))


def downgrade() -> None:
    """Revert this migration: nothing to put back (the secret is not kept anywhere)."""
