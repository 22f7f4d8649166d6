"""Issue 17.6: the running service against its own OpenAPI schema, with schemathesis 4.

``lineinspect serve`` runs as a real process on a fresh PostgreSQL schema (where NUL bytes
and 64-bit overflows used to come back as 503s) and the real Redis; the ``schemathesis run``
CLI generates requests for every operation of ``/openapi.json`` - valid ones and ones that
break the schema (``0001-01-01`` times, NUL bytes, ids past 2**63, wrong types ...) - and runs
its checks on every answer: no 5xx, the status and content type documented, the body
conforming to the documented schema (every error: ``ErrorBody``).

Bounded and reproducible: a fixed number of examples per operation, a fixed seed and
deterministic generation; no example database (nothing written outside the test's
temporary directory).

Left out, for reasons of the API's design rather than robustness: ``/readyz`` (a probe: its
documented 503 "not ready" - no camera and no worker run here - is its answer, tested in
``test_api_health.py``), ``positive_data_acceptance``
(a request the schema allows may still be refused with a 4xx by the API's rules: ``since``
after ``until``, an unknown inspection id, a wrong key) and the stateful phase (reviews and
keys need real inspections and an admin key).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from storage.db import migrate
from tests.servers import REDIS_URL
from tests.service_process import serve

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

#: Generated cases per operation and phase: bounded (about a minute or two here).
MAX_EXAMPLES = 25
SEED = 17


def test_no_5xx_and_no_schema_violation(tmp_path: Path, pg_schema_url: str,
                                        redis_client: object) -> None:
    migrate(pg_schema_url)
    env = {
        "LINEINSPECT_REDIS_URL": REDIS_URL,
        "LINEINSPECT_DATABASE_URL": pg_schema_url,
        "LINEINSPECT_DATA_DIR": str(tmp_path / "data"),
        "LINEINSPECT_LINE_ID": f"test-st-{uuid.uuid4().hex[:8]}",
        "LINEINSPECT_API_KEY": "schemathesis-admin-key",
        "LINEINSPECT_LOG_LEVEL": "WARNING",
    }
    schemathesis = Path(sys.executable).with_name("schemathesis")
    with serve(env, tmp_path) as base:
        run = subprocess.run(
            [str(schemathesis), "run", f"{base}/openapi.json",
             "--checks", "all", "--exclude-checks", "positive_data_acceptance",
             "--phases", "examples,coverage,fuzzing", "--exclude-path", "/readyz",
             "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
             "--generation-deterministic",
             "--workers", "1", "--no-color", "--request-timeout", "30",
             "--header", "X-API-Key: schemathesis-admin-key"],
            cwd=tmp_path, capture_output=True, text=True, timeout=900,
        )
    report = run.stdout[-12000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "No issues found" in run.stdout or "passed" in run.stdout, report
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "database error" not in log, log[-6000:]
