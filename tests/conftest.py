"""Fixtures every test folder shares: the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture()
def redis_client() -> Iterator[redis.Redis]:
    """The real Redis (skipped with a reason when it is not running)."""
    r = redis.Redis.from_url(REDIS_URL, socket_timeout=5.0)
    try:
        r.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis on 127.0.0.1:6379: {exc}")
    yield r
    r.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Issue 17.9: the suite leaves no process running. Any child process still alive at the
    end (an embedded ``redis-server``, a server a test forgot) is listed, killed, and fails
    the run."""
    import psutil

    from core.redis_conn import stop_embedded

    stop_embedded()
    left = [p for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    if not left:
        return
    names = ", ".join(f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in left)
    for p in left:
        p.kill()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"FAILED: processes left running by the test suite: {names}",
                            red=True)
    session.exitstatus = 1
