"""Issue 17.10: a test whose server or tool is missing fails (CI cannot pass by skipping),
unless ``LINEINSPECT_ALLOW_SKIP`` says a skip is fine."""

from __future__ import annotations

import pytest

from tests.servers import ALLOW_SKIP_ENV, missing


def test_missing_server_fails_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_SKIP_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="no Redis"):
        missing("no Redis")
    monkeypatch.setenv(ALLOW_SKIP_ENV, "0")
    with pytest.raises(pytest.fail.Exception):
        missing("no Redis")


def test_missing_server_skips_when_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_SKIP_ENV, "1")
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL"):
        missing("no PostgreSQL")
