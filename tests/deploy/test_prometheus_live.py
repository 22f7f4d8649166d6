"""Issue 17.8: the alerts fire in a real Prometheus, not only in ``promtool test rules``.

A running ``lineinspect serve`` (real Redis, temporary SQLite) is scraped by a real
``prometheus`` (Debian's package, installed by ``make test``) started with
``deploy/prometheus/prometheus.yml`` adapted to the test: the API job's target is the
test's service port, the jobs of processes that do not run here (acquisition, inference
replicas found through compose DNS) are left out, the intervals are 1 s so the test is
short. ``alerts.yml`` is used as shipped. The test's line has a camera heartbeat: while it
says connected the scrape is up and ``LineinspectCameraDisconnected`` is not active for the
line; once it says disconnected the alert goes pending and then firing (its ``for: 10s``).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from core.bus import LINES_KEY, line_keys, set_camera_status
from tests.servers import REDIS_URL, missing
from tests.service_process import free_port, serve, wait_until_up

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
ALERT = "LineinspectCameraDisconnected"


def prometheus_config(api_target: str, prom_target: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml pointed at ``api_target``: the API job (target
    replaced), Prometheus itself; 1 s scrape and evaluation intervals (and scrape timeout)."""
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["lineinspect-api"]
    api["static_configs"][0]["targets"] = [api_target]
    api["scrape_interval"] = "1s"
    jobs["prometheus"]["static_configs"][0]["targets"] = [prom_target]
    config["scrape_configs"] = [api, jobs["prometheus"]]
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    return config


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 120) -> Any:
    """Poll ``check`` until it returns something truthy (a deadline, not a timed
    assertion: only a hang fails it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class Heartbeat:
    """The acquisition worker's camera heartbeat for one line, every 0.25 s."""

    def __init__(self, r: redis.Redis, line: str) -> None:
        self.r, self.line, self.connected = r, line, True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            set_camera_status(self.r, self.line, self.connected)

    def __enter__(self) -> Heartbeat:
        set_camera_status(self.r, self.line, True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture()
def line(redis_client: redis.Redis) -> Iterator[str]:
    """A line id of this test; its keys are deleted afterwards."""
    line_id = f"test-prom-{uuid.uuid4().hex[:8]}"
    yield line_id
    redis_client.delete(*line_keys(line_id))
    redis_client.srem(LINES_KEY, line_id)


def test_real_prometheus_scrapes_the_service_and_fires_camera_down(
        tmp_path: Path, redis_client: redis.Redis, line: str) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        missing("prometheus not installed (make test installs it: apt-get install prometheus)")
    env = {"LINEINSPECT_REDIS_URL": REDIS_URL, "LINEINSPECT_DATA_DIR": str(tmp_path / "data"),
           "LINEINSPECT_LINE_ID": line, "LINEINSPECT_LOG_LEVEL": "WARNING"}
    with Heartbeat(redis_client, line) as heartbeat, serve(env, tmp_path) as base:
        prom_port = free_port()
        prom = f"http://127.0.0.1:{prom_port}"
        conf_dir = tmp_path / "prometheus"
        conf_dir.mkdir()
        shutil.copy(PROM_DIR / "alerts.yml", conf_dir / "alerts.yml")
        (conf_dir / "prometheus.yml").write_text(yaml.safe_dump(
            prometheus_config(base.removeprefix("http://"), f"127.0.0.1:{prom_port}")))
        log = tmp_path / "prometheus.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [prometheus, f"--config.file={conf_dir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_up(f"{prom}/-/ready", proc, log)

            def query(expr: str) -> list[dict[str, Any]]:
                body = httpx.get(f"{prom}/api/v1/query", params={"query": expr}).json()
                return body["data"]["result"]

            def line_alerts() -> list[dict[str, Any]]:
                alerts = httpx.get(f"{prom}/api/v1/alerts").json()["data"]["alerts"]
                return [a for a in alerts
                        if a["labels"].get("alertname") == ALERT
                        and a["labels"].get("line") == line]

            up = wait_for("the API target up", lambda: [
                r for r in query('up{job="lineinspect-api"}') if r["value"][1] == "1"])
            assert up[0]["metric"]["component"] == "api"
            connected = wait_for("the line's camera gauge at 1", lambda: query(
                f'lineinspect_camera_connected{{line="{line}"}} == 1'))
            assert connected and line_alerts() == []

            heartbeat.connected = False
            wait_for("the line's camera gauge at 0", lambda: query(
                f'lineinspect_camera_connected{{line="{line}"}} == 0'))
            pending_or_firing = wait_for("the alert active", line_alerts)
            assert pending_or_firing[0]["state"] in ("pending", "firing")
            firing = wait_for("the alert firing", lambda: [
                a for a in line_alerts() if a["state"] == "firing"])
            assert firing[0]["labels"]["severity"] == "critical"
            assert line in firing[0]["annotations"]["summary"]
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
