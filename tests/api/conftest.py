"""Fixtures of the API tests: the real Redis at 127.0.0.1:6379 (unique line ids, keys
deleted afterwards), a temporary SQLite log and image store, and a small fake inspector.

The fake inspector is only used to test the API's own behaviour (validation, logging,
serving); ``test_api_inspect.py`` also runs the real :class:`inference.pipeline.Inspector`
with tiny formula ONNX models.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from core.bus import line_keys
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.api.api_helpers import API_KEY, RECIPE_YAML, REDIS_URL, fake_factory  # noqa: E402


@pytest.fixture()
def new_line(redis_client: redis.Redis) -> Iterator[Callable[[], str]]:
    """Factory of unique line ids; their keys are deleted afterwards."""
    made: list[str] = []

    def make() -> str:
        line = f"test-api-{uuid.uuid4().hex[:10]}"
        made.append(line)
        return line

    yield make
    for line in made:
        redis_client.delete(*line_keys(line))
        redis_client.srem("lines", line)


@pytest.fixture()
def line_id(new_line: Callable[[], str]) -> str:
    """The line the app is configured for."""
    return new_line()


@pytest.fixture()
def make_settings(tmp_path: Path, line_id: str) -> Callable[..., Settings]:
    """Settings on a temporary SQLite file, image store and recipe dir; overrides as kwargs."""
    recipes = tmp_path / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / "test-recipe.yaml").write_text(RECIPE_YAML)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": REDIS_URL,
            "database_url": f"sqlite:///{tmp_path / 'api.db'}",
            "data_dir": tmp_path,
            "image_store_dir": tmp_path / "images",
            "recipes_dir": recipes,
            "recipe": "test-recipe",
            "line_id": line_id,
            "api_key": API_KEY,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture()
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Default test settings."""
    return make_settings()


@pytest.fixture()
def client(settings: Settings, redis_client: redis.Redis) -> Iterator[TestClient]:
    """TestClient of the app with the fake inspector (lifespan running)."""
    app = create_app(settings, inspector_factory=fake_factory, retention_interval_s=None)
    with TestClient(app) as c:
        yield c


@pytest.fixture()
def services(client: TestClient) -> Any:
    """The app's shared services (repository, image store, Redis)."""
    return client.app.state.services
