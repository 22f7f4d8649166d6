"""Storage concern: inspection log (SQLAlchemy), image store, Redis connection and keys."""
