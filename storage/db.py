"""Database engine, sessions and migrations for the inspection log.

* :func:`make_engine` / :func:`get_engine` build a SQLAlchemy engine for SQLite (the embedded
  default) or PostgreSQL (production).

  - **SQLite**: WAL journal (readers never block the writer), ``foreign_keys=ON``, a busy
    timeout, and transactions emitted by us instead of by the ``sqlite3`` module: ``BEGIN``
    for every transaction, ``BEGIN IMMEDIATE`` for connections with the execution option
    ``sqlite_immediate=True`` (see :func:`write_engine`). A write transaction that starts
    ``IMMEDIATE`` takes the write lock up front and waits for it with the busy timeout, so
    concurrent writers (several inference workers, the API) serialise instead of failing with
    ``database is locked`` when a read turns into a write. ``synchronous`` stays ``FULL``: a
    committed inspection must survive a power cut because its Redis stream entry is acked
    right after the commit (docs/CONTRACT.md, section 6).
  - **PostgreSQL**: ``pool_pre_ping`` (a restarted server does not fail the next request) and
    a connect timeout (``/readyz`` answers instead of hanging).

* :func:`migrate` applies the Alembic migrations (``alembic.ini`` at the repository root,
  scripts in ``storage/migrations/``) programmatically. On PostgreSQL it holds an advisory
  lock, so several processes migrating at start-up do not race.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = REPO_ROOT / "alembic.ini"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Milliseconds a SQLite writer waits for the write lock before ``database is locked``.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Arbitrary constant key of the PostgreSQL advisory lock held while migrating.
_MIGRATION_LOCK_KEY = 0x6C696E65  # "line"


def is_sqlite(engine_or_url: Engine | str) -> bool:
    """True when the engine or URL is SQLite."""
    if isinstance(engine_or_url, Engine):
        return engine_or_url.dialect.name == "sqlite"
    return make_url(engine_or_url).get_backend_name() == "sqlite"


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    u = make_url(url)
    if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
        Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = dict(kwargs.pop("connect_args", {}) or {})
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000.0)
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy (the "begin" hook below) emit BEGIN, not the sqlite3 module, which
        # would start transactions late (at the first write) and never IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def make_engine(url: str, **kwargs: Any) -> Engine:
    """A new engine for ``url`` (SQLite: WAL, foreign keys, busy timeout; PostgreSQL:
    ``pool_pre_ping`` and a 5 s connect timeout). ``kwargs`` go to ``create_engine``."""
    if is_sqlite(url):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    if make_url(url).get_backend_name() == "postgresql":
        connect_args = dict(kwargs.pop("connect_args", {}) or {})
        connect_args.setdefault("connect_timeout", 5)
        kwargs["connect_args"] = connect_args
        kwargs.setdefault("pool_size", 5)
        kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


def get_engine(settings: Settings, **kwargs: Any) -> Engine:
    """A new engine for ``settings.sqlalchemy_url`` (see :func:`make_engine`)."""
    return make_engine(settings.sqlalchemy_url, **kwargs)


def write_engine(engine: Engine) -> Engine:
    """The engine to run write transactions on: on SQLite they begin ``IMMEDIATE``."""
    if is_sqlite(engine):
        return engine.execution_options(sqlite_immediate=True)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Session factory bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Any:
    """The Alembic ``Config`` of ``alembic.ini`` with the script location made absolute.

    The URL is passed through ``config.attributes["url"]`` (not the ini option, whose
    ``%``-interpolation would break URLs such as ``...?options=-csearch_path%3Dx``).
    """
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["configure_logger"] = False
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def head_revision() -> str | None:
    """The revision the migration scripts end at."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated). Reads ``alembic_version``
    directly (cheap and quiet enough for every ``/readyz`` probe)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise RuntimeError(f"several migration heads in the database: {rows}")
    return rows[0] if rows else None


def migrate(url: str | Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations up to ``revision`` to the database at ``url``.

    Idempotent (a database at head is left alone). Accepts an engine too (tests).
    """
    from alembic import command

    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with write_engine(engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        if not isinstance(url, Engine):
            engine.dispose()
    log.info("database at revision %s", revision)


def safe_url(url: str) -> str:
    """``url`` with its password masked (``***``), for output and logs: secrets are never
    printed."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL: print nothing of it
        return "<database url>"
