"""Issue 17.5/17.10: ``lineinspect migrate`` runs for real and never prints the database
password (it printed the whole URL)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
PG = "postgresql+psycopg://postgres:{pw}@127.0.0.1:5432/test"


@pytest.mark.postgres
def test_migrate_masks_the_password(tmp_path: Path) -> None:
    password = f"s3cret-{uuid.uuid4().hex[:8]}"
    schema = f"cli_{uuid.uuid4().hex[:8]}"
    url = PG.format(pw=password)
    engine = create_engine(url)
    with engine.begin() as conn:  # the local server trusts: the password is only carried
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        env = {**os.environ,
               "LINEINSPECT_DATABASE_URL": url + f"?options=-csearch_path%3D{schema}",
               "LINEINSPECT_DATA_DIR": str(tmp_path), "LINEINSPECT_LOG_LEVEL": "DEBUG"}
        out = subprocess.run([sys.executable, "-m", "deploy.cli", "migrate"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        printed = "".join(out.stdout.split())  # rich wraps long lines
        assert "migratedpostgresql+psycopg://postgres:***@127.0.0.1:5432/test" in printed
        assert password not in out.stdout + out.stderr
        with engine.connect() as conn:
            tables = conn.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema}).scalars().all()
        assert {"inspections", "api_keys", "audit_log"} <= set(tables)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
