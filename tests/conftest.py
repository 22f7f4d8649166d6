"""Fixtures every test folder shares: the real Redis at 127.0.0.1:6379 and a fresh schema on
the real PostgreSQL at 127.0.0.1:5432. A missing server fails the test
(:func:`tests.servers.missing`; ``LINEINSPECT_ALLOW_SKIP=1`` skips instead)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``tests.*`` helper modules, for this file and every test
    sys.path.insert(0, str(ROOT))

from tests.servers import PG_URL, REDIS_URL, missing, pg_unreachable  # noqa: E402

_UNTRACKED = pytest.StashKey[dict[str, int]]()
_CACHE_DIR = pytest.StashKey[str]()
#: Written by Python and the tools on every run; not the suite's output.
_CACHES = ("__pycache__/", ".pytest_cache/", ".ruff_cache/", ".egg-info/")


@pytest.fixture()
def redis_client() -> Iterator[redis.Redis]:
    """The real Redis (:func:`missing` when it is not running)."""
    r = redis.Redis.from_url(REDIS_URL, socket_timeout=5.0)
    try:
        r.ping()
    except redis.RedisError as exc:
        missing(f"no Redis on 127.0.0.1:6379: {exc}")
    yield r
    r.close()


@pytest.fixture()
def pg_schema_url() -> Iterator[str]:
    """The URL of a fresh, empty schema on the real PostgreSQL (``search_path``); dropped
    afterwards. :func:`missing` when the server does not answer."""
    reason = pg_unreachable()
    if reason:
        missing(reason)
    schema = f"li_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remember the untracked paths of the repository (see :func:`repo_writes`), and send the
    split caches of commands run without a run folder to a temporary folder."""
    session.config.stash[_UNTRACKED] = untracked_paths()
    if not os.environ.get("LINEINSPECT_CACHE_DIR"):
        import tempfile

        os.environ["LINEINSPECT_CACHE_DIR"] = tempfile.mkdtemp(prefix="lineinspect-cache-")
        session.config.stash[_CACHE_DIR] = os.environ["LINEINSPECT_CACHE_DIR"]


def untracked_paths() -> dict[str, int]:
    """Untracked files of the repository, ignored ones included, with their modification
    times - less the virtual environment and Python's and the tools' caches."""
    out = subprocess.run(["git", "ls-files", "--others", "-z", "--", ".", ":!.venv"],
                         cwd=ROOT, capture_output=True, text=True, check=False).stdout
    files = {}
    for rel in filter(None, out.split("\0")):
        if any(part in rel for part in _CACHES):
            continue
        try:
            files[rel] = (ROOT / rel).stat().st_mtime_ns
        except OSError:
            continue
    return files


def repo_writes(session: pytest.Session) -> list[str]:
    """Issue 17.10: files the suite created or rewrote in the repository. Checked where nobody else
    works in the tree: in CI (``CI`` set) or with ``LINEINSPECT_CHECK_REPO_WRITES=1``."""
    if not (os.environ.get("CI") or os.environ.get("LINEINSPECT_CHECK_REPO_WRITES")):
        return []
    before = session.config.stash.get(_UNTRACKED, {})
    return sorted(p for p, mtime in untracked_paths().items() if before.get(p) != mtime)


def _fail_session(session: pytest.Session, message: str) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"FAILED: {message}", red=True)
    session.exitstatus = 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Issue 17.9: the suite leaves no process running. Any child process still alive at the
    end (an embedded ``redis-server``, a server a test forgot) is listed, killed, and fails
    the run. Issue 17.10: so does a file the suite wrote into the repository."""
    import psutil

    from core.redis_conn import stop_embedded

    stop_embedded()
    cache = session.config.stash.get(_CACHE_DIR, "")
    if cache:
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
    written = repo_writes(session)
    if written:
        _fail_session(session, f"the test suite wrote into the repository: {written}")
    left = [p for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    if not left:
        return
    names = ", ".join(f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in left)
    for p in left:
        p.kill()
    _fail_session(session, f"processes left running by the test suite: {names}")
