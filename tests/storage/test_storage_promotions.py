"""PromotionStore (issue 21.3) on SQLite and the real PostgreSQL (see conftest.db_url): the
active recipe per line, one-step rollback, the record, and refusals that change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.promotion import PromotionRefused, RecipeSnapshot, ReplayEvidence
from storage.db import make_engine, migrate
from storage.promotions import Actor, PromotionStore

LIVE = RecipeSnapshot("live", "/r/live.yaml", "a" * 64, "name: live\n",
                      [{"name": "seg", "version": "1.0.0", "path": "/m/a.onnx",
                        "sha256": "1" * 64}])
CAND = RecipeSnapshot("cand", "/r/cand.yaml", "b" * 64, "name: cand\n",
                      [{"name": "seg", "version": "2.0.0", "path": "/m/b.onnx",
                        "sha256": "2" * 64}])
EVIDENCE = ReplayEvidence("/reports/report.json", "c" * 64,
                          {"replayed": 12, "flipped": 3, "agreement_with_live": 0.75})
ANNA = Actor("qa-anna", "admin", "10.0.0.7")


@pytest.fixture()
def store(db_url: str) -> Iterator[PromotionStore]:
    migrate(db_url)
    engine = make_engine(db_url)
    yield PromotionStore(engine)
    engine.dispose()


def test_promote_then_rollback_is_recorded(store: PromotionStore) -> None:
    assert store.version("L1") == 0 and store.active("L1") is None and store.history("L1") == []
    rec = store.promote("L1", LIVE, CAND, EVIDENCE, ANNA, expected_version=0, note="new lamp")
    active = store.active("L1")
    assert active is not None and active.version == 1 == store.version("L1")
    assert active.current == CAND and active.previous == LIVE
    assert active.promotion_id == rec["id"]
    assert rec["action"] == "promote" and rec["note"] == "new lamp"
    assert rec["from"] == {"recipe": "live", "sha256": LIVE.sha256, "models": LIVE.models}
    assert rec["to"]["recipe"] == "cand" and rec["to"]["models"] == CAND.models
    assert rec["report"] == {"path": EVIDENCE.path, "sha256": EVIDENCE.sha256,
                             "summary": EVIDENCE.summary}
    assert (rec["actor"], rec["role"], rec["client"]) == ("qa-anna", "admin", "10.0.0.7")
    assert store.active("L2") is None  # per line

    back = store.rollback("L1", LIVE.models, ANNA, expected_version=1)
    active = store.active("L1")
    assert active is not None and active.version == 2
    assert active.current.content == LIVE.content and active.current.name == "live"
    assert active.previous is None  # one step
    assert back["action"] == "rollback" and back["from"]["recipe"] == "cand"
    assert back["to"]["recipe"] == "live" and back["report"] is None
    assert [h["action"] for h in store.history("L1")] == ["rollback", "promote"]


def test_refusals_change_nothing(store: PromotionStore) -> None:
    with pytest.raises(PromotionRefused) as exc:
        store.rollback("L1", [], ANNA, expected_version=0)
    assert exc.value.status == 409 and exc.value.error == "no_previous_recipe"
    store.promote("L1", LIVE, CAND, EVIDENCE, ANNA, expected_version=0)
    with pytest.raises(PromotionRefused) as exc:  # someone else switched first
        store.promote("L1", CAND, LIVE, EVIDENCE, ANNA, expected_version=0)
    assert exc.value.status == 409 and exc.value.error == "conflict"
    store.rollback("L1", LIVE.models, ANNA, expected_version=1)
    with pytest.raises(PromotionRefused) as exc:
        store.rollback("L1", LIVE.models, ANNA, expected_version=2)
    assert exc.value.error == "no_previous_recipe"
    assert store.version("L1") == 2 and len(store.history("L1")) == 2
