"""``lineinspect serve`` as a real process for the tests that need a running service
(schemathesis against its OpenAPI schema, a real Prometheus scraping ``/metrics``).

The process runs from the repository with ``cwd`` in the test's temporary directory (nothing
is written into the repository), is killed when the test ends and its log is kept beside it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A local TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    """Poll ``url`` until it answers; fail with the process log if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not up after {timeout_s} s:\n{log.read_text()[-4000:]}")


@contextmanager
def lineinspect_process(command: list[str], env: dict[str, str], workdir: Path,
                        name: str) -> Iterator[subprocess.Popen]:
    """``python -m deploy.cli *command`` with ``env`` added to the environment; killed (and
    waited for) on exit. Its output goes to ``workdir/<name>.log``."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", *command], cwd=workdir,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


@contextmanager
def serve(env: dict[str, str], workdir: Path) -> Iterator[str]:
    """``lineinspect serve`` on a free port; yields its base URL once ``/healthz`` answers."""
    port = free_port()
    with lineinspect_process(["serve", "--host", "127.0.0.1", "--port", str(port)], env,
                             workdir, "serve") as proc:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz", proc, workdir / "serve.log")
        yield base
