"""Storage concern: the inspection log (SQLAlchemy, Alembic migrations, aggregates) and the
image store."""
