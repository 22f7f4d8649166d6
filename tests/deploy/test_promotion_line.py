"""Promotion with a record on a running line (issue 21.3): the inference worker as
``lineinspect infer`` builds it consumes the real Redis stream and logs into a migrated SQLite
file or a fresh PostgreSQL schema; the candidate is replayed over the logged frames, promoted
with ``lineinspect promote`` on that report, and rolled back with ``lineinspect rollback``.
New frames are inspected by the candidate's models after the promotion and by the old ones
after the rollback; the records and audit rows say who switched what on which evidence."""

from __future__ import annotations

import getpass
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.bus import line_keys, stream_key  # noqa: E402
from core.frame import Frame  # noqa: E402
from core.promotion import file_sha256  # noqa: E402
from core.recipe import load_recipe  # noqa: E402
from core.settings import Settings  # noqa: E402
from deploy.cli import app  # noqa: E402
from deploy.replay import ReplayQuery, replay, write_report  # noqa: E402
from deploy.wiring import run_inference_worker  # noqa: E402
from inference.drift import reference_key, reset_key  # noqa: E402
from storage.access import AccessStore  # noqa: E402
from storage.db import make_engine, migrate  # noqa: E402
from storage.images import ImageStore  # noqa: E402
from storage.promotions import PromotionStore  # noqa: E402
from storage.repository import InspectionRepository  # noqa: E402
from tests.onnx_factory import make_segmenter  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
RECIPE = """name: {name}
max_backlog_ms: 0
models:
  - name: seg
    path: {model}
    tile: 64
    min_area: 50
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated SQLite file or fresh PostgreSQL schema."""
    url = (f"sqlite:///{tmp_path / 'log.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_schema_url"))
    migrate(url)
    return url


class Line:
    """A line with one inference worker (thread) and a frame feeder."""

    def __init__(self, settings: Settings, r: redis.Redis) -> None:
        self.settings, self.r, self.next_id = settings, r, 1
        self.engine = make_engine(settings.sqlalchemy_url)
        self.repo = InspectionRepository(self.engine)
        self.start()

    def start(self) -> None:
        """Start the worker on the configured recipe (as ``lineinspect infer`` does)."""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=run_inference_worker, args=(
            self.settings, load_recipe(self.settings.recipe, self.settings), self.stop),
            kwargs={"block_ms": 100, "recipe_poll_s": 0.1}, daemon=True)
        self.thread.start()

    def restart(self) -> None:
        """Stop the worker and start a new one."""
        self.stop.set()
        self.thread.join(timeout=30)
        self.start()

    def inspect_one(self) -> tuple[int, str, dict[str, str], str]:
        """Send a frame with a 120-gray patch; wait until it is logged with its image (every
        frame is retained); (frame id, recipe, models, verdict)."""
        fid, self.next_id = self.next_id, self.next_id + 1
        img = np.full((96, 128), 200, np.uint8)
        img[30:60, 40:90] = 120
        line = self.settings.line_id
        self.r.xadd(stream_key(line), Frame(line, fid, fid, time.time(), 128, 96, "Mono8",
                                            img.tobytes()).to_fields())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            items, _ = self.repo.query(line_id=line, limit=1)
            if items and items[0].result.frame_id == fid and items[0].image_path:
                res = items[0].result
                return fid, res.recipe, dict(res.models), res.verdict
            time.sleep(0.02)
        raise AssertionError(f"frame {fid} was not logged")

    def until_models(self, version: str, most: int = 200) -> list[tuple]:
        """Frames inspected until one ran model version ``version`` (and 3 more after)."""
        seen = []
        for _ in range(most):
            seen.append(self.inspect_one())
            if seen[-1][2] == {"seg": version}:
                return seen + [self.inspect_one() for _ in range(3)]
        raise AssertionError(f"no frame inspected with seg {version}: {seen[-3:]}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.engine.dispose()


def _switches_once(seen: list[tuple], old: str, new: str) -> None:
    """Frames in order: first the old models, then only the new ones (one switch, between
    frames, none lost or run twice)."""
    versions = [s[2]["seg"] for s in seen]
    k = versions.index(new)
    assert set(versions[:k]) <= {old} and set(versions[k:]) == {new}
    assert [s[0] for s in seen] == list(range(seen[0][0], seen[0][0] + len(seen)))


@pytest.fixture()
def line(log_url: str, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Line]:
    name = f"test-promote-{uuid.uuid4().hex[:8]}"
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    live = make_segmenter(tmp_path / "live.onnx", ("background", "dark"), (180.0, 40.0),
                          input_size=(32, 32), version="1.0.0")
    cand = make_segmenter(tmp_path / "cand.onnx", ("background", "dark"), (180.0, 100.0),
                          input_size=(32, 32), version="2.0.0")
    (recipes / "live.yaml").write_text(RECIPE.format(name="strip-live", model=live))
    (recipes / "cand.yaml").write_text(RECIPE.format(name="strip-cand", model=cand))
    settings = Settings(redis_url=REDIS_URL, database_url=log_url, data_dir=tmp_path,
                        image_store_dir=tmp_path / "images", recipes_dir=recipes,
                        recipe="live", line_id=name, ort_threads=1, retain_ok_images=True)
    running = Line(settings, redis_client)
    yield running
    running.close()
    redis_client.delete(*line_keys(name), reference_key(name), reset_key(name))
    redis_client.srem("lines", name)


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {"LINEINSPECT_DATABASE_URL": settings.sqlalchemy_url,
           "LINEINSPECT_REDIS_URL": REDIS_URL,
           "LINEINSPECT_RECIPES_DIR": str(settings.recipes_dir),
           "LINEINSPECT_RECIPE": settings.recipe,
           "LINEINSPECT_LINE_ID": settings.line_id,
           "LINEINSPECT_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


@pytest.mark.redis
def test_promote_and_rollback_switch_the_running_line(line: Line, tmp_path: Path) -> None:
    s, name = line.settings, line.settings.line_id
    before = [line.inspect_one() for _ in range(4)]
    assert {(r, v) for _, r, m, v in before if m == {"seg": "1.0.0"}} == {("strip-live", "OK")}

    # the candidate replayed over the logged frames: it calls the patches NG
    report = replay(line.repo, ImageStore.from_settings(s),
                    load_recipe("cand", s), ReplayQuery(line_id=name), s)
    assert report["replayed"] == 4 and len(report["flipped"]) == 4
    report_json, _ = write_report(report, tmp_path / "replay")

    code, out = _cli(s, "promote", "--line", name, "--recipe", "cand", "--report",
                     str(report_json), "--note", "darker patches are pits")
    assert code == 0, out
    seen = before + line.until_models("2.0.0")
    _switches_once(seen, "1.0.0", "2.0.0")
    assert {(r, v) for _, r, m, v in seen if m == {"seg": "2.0.0"}} == {("strip-cand", "NG")}

    line.restart()  # a restarted worker keeps the promoted recipe, not the configured one
    assert line.inspect_one()[1:] == ("strip-cand", {"seg": "2.0.0"}, "NG")

    store = PromotionStore(line.engine)
    rec = store.history(name)[0]
    assert rec["action"] == "promote" and rec["note"] == "darker patches are pits"
    assert rec["actor"] == f"cli:{getpass.getuser()}" and rec["client"].startswith("cli@")
    assert rec["from"]["recipe"] == "strip-live" and rec["to"]["recipe"] == "strip-cand"
    assert [(m["name"], m["version"], m["sha256"]) for m in rec["from"]["models"]] == [
        ("seg", "1.0.0", file_sha256(tmp_path / "live.onnx"))]
    assert [(m["name"], m["version"], m["sha256"]) for m in rec["to"]["models"]] == [
        ("seg", "2.0.0", file_sha256(tmp_path / "cand.onnx"))]
    assert rec["report"]["path"] == str(report_json.resolve())
    assert rec["report"]["summary"]["replayed"] == 4
    assert rec["report"]["summary"]["flipped"] == 4
    assert rec["report"]["summary"]["agreement_with_live"] == 0.0

    code, out = _cli(s, "rollback", "--line", name, "--note", "too many NG")
    assert code == 0, out
    after = line.until_models("1.0.0")
    _switches_once(after, "2.0.0", "1.0.0")
    assert {(r, v) for _, r, m, v in after if m == {"seg": "1.0.0"}} == {("strip-live", "OK")}
    back = store.history(name)[0]
    assert back["action"] == "rollback" and back["to"]["recipe"] == "strip-live"
    assert back["to"]["models"][0]["sha256"] == file_sha256(tmp_path / "live.onnx")
    version = store.version(name)

    code, out = _cli(s, "rollback", "--line", name)  # one step only
    assert code == 2 and "no previous recipe" in out
    assert store.version(name) == version and len(store.history(name)) == 2
    code, out = _cli(s, "drift", "reset", "--line", name)  # after a new lamp
    assert code == 0, out
    assert line.r.get(reset_key(name)) and not line.r.exists(reference_key(name))
    code, out = _cli(s, "drift", "reset", "--line", f"{name}-typo")
    assert code == 2 and "unknown line" in out
    audit = [(a["action"], a["target"], a["result"])
             for a in AccessStore(line.engine).audit_records(10)]
    assert audit[:5] == [("cli drift reset", f"line={name}-typo", "404"),
                         ("cli drift reset", f"line={name}", "ok"),
                         ("cli rollback", f"line={name}", "409"),
                         ("cli rollback", f"line={name}", "ok"),
                         ("cli promote", f"line={name}", "ok")]
