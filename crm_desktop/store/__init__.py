"""Local store: SQLAlchemy models, migrations and repositories (the only layer that speaks SQL)."""
