"""``lineinspect promote|rollback|recipe-history`` and ``lineinspect drift reset`` (issue 21).

The same checks and records as the API's (:class:`api.promotions.RecipePromoter`); the actor
is ``cli:<OS user>`` from ``cli@<host>``, and every call - done or refused - is written to
the audit log (``action`` ``cli promote`` etc., ``result`` ``ok`` or the refusal's status).
A refusal prints the reason and exits with status 2, changing nothing.
"""

from __future__ import annotations

import getpass
import json
import socket
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from deploy.cli_base import fail, load_settings

drift_app = typer.Typer(help="Drift statistics (issue 21)", no_args_is_help=True)
console = Console()


def _actor() -> Any:
    from storage.promotions import Actor

    return Actor(f"cli:{getpass.getuser()}", None, f"cli@{socket.gethostname()}")


def _audited(action: str, line: str, detail: dict[str, Any], work: Any) -> Any:
    """Run ``work(settings, engine, actor)`` and audit it; a refusal is a CLI error."""
    from core.promotion import PromotionRefused
    from storage.access import AccessStore
    from storage.db import get_engine

    settings = load_settings()
    line = line or settings.line_id
    engine = get_engine(settings)
    actor = _actor()
    try:
        try:
            out = work(settings, engine, actor, line)
        except PromotionRefused as exc:
            AccessStore(engine).audit(actor=actor.name, role=None, client=actor.client,
                                      action=f"cli {action}", target=f"line={line}",
                                      result=str(exc.status), detail=json.dumps(
                                          {**detail, "refused": exc.detail}))
            fail(exc.detail)
        AccessStore(engine).audit(actor=actor.name, role=None, client=actor.client,
                                  action=f"cli {action}", target=f"line={line}", result="ok",
                                  detail=json.dumps({**detail, **_record_id(out)}))
        return out
    finally:
        engine.dispose()


def _record_id(out: dict[str, Any]) -> dict[str, Any]:
    return {"promotion_id": out["id"]} if "id" in out else {}


def _show(record: dict[str, Any]) -> None:
    frm = record["from"] or {}
    console.print(
        f"line {record['line_id']}: {record['action']} {frm.get('recipe')} -> "
        f"{record['to']['recipe']} (record {record['id']}, by {record['actor']}); the "
        "inference workers switch within a few seconds, between frames"
    )
    for m in record["to"]["models"]:
        console.print(f"  {m['name']} {m['version']} sha256 {m['sha256'][:16]}...")


def promote(
    recipe: str = typer.Option(..., help="candidate recipe (name or YAML path)"),
    report: Path = typer.Option(..., help="its replay report.json (lineinspect replay)"),
    line: str = typer.Option("", help="line id (default LINEINSPECT_LINE_ID)"),
    note: str = typer.Option("", help="why (kept with the record)"),
) -> None:
    """Switch a line to a candidate recipe on the evidence of its replay report; the old
    recipe is kept for one-step rollback and the decision is recorded."""
    from api.promotions import RecipePromoter
    from core.promotion import PromotionRefused
    from storage.promotions import PromotionStore

    def work(settings: Any, engine: Any, actor: Any, line_id: str) -> dict[str, Any]:
        if not report.is_file():
            raise PromotionRefused(422, "report_missing", f"replay report {report} not found")
        return RecipePromoter(settings, PromotionStore(engine)).promote(
            line_id, recipe, report.read_bytes(), str(report.resolve()), actor, note or None)

    _show(_audited("promote", line, {"recipe": recipe, "report": str(report)}, work))


def rollback(
    line: str = typer.Option("", help="line id (default LINEINSPECT_LINE_ID)"),
    note: str = typer.Option("", help="why (kept with the record)"),
) -> None:
    """Switch a line back to the recipe before its last promotion (one step)."""
    from api.promotions import RecipePromoter
    from storage.promotions import PromotionStore

    def work(settings: Any, engine: Any, actor: Any, line_id: str) -> dict[str, Any]:
        return RecipePromoter(settings, PromotionStore(engine)).rollback(line_id, actor,
                                                                         note or None)

    _show(_audited("rollback", line, {}, work))


def recipe_history(
    line: str = typer.Option("", help="line id (default LINEINSPECT_LINE_ID)"),
    limit: int = typer.Option(20, min=1, max=500, help="most records"),
) -> None:
    """A line's promotions and rollbacks, newest first (JSON)."""
    from storage.db import get_engine
    from storage.promotions import PromotionStore

    settings = load_settings()
    engine = get_engine(settings)
    try:
        items = PromotionStore(engine).history(line or settings.line_id, limit)
    finally:
        engine.dispose()
    typer.echo(json.dumps(items, indent=2))


@drift_app.command("reset")
def drift_reset(
    line: str = typer.Option("", help="line id (default LINEINSPECT_LINE_ID)"),
) -> None:
    """Forget the line's drift reference after a deliberate change (new lamp, new product):
    the running workers start a new one from the next frames."""
    import redis

    from api.promotions import RecipePromoter
    from core.promotion import PromotionRefused
    from core.redis_conn import connect
    from inference.drift import reset_reference
    from storage.promotions import PromotionStore

    def work(settings: Any, engine: Any, actor: Any, line_id: str) -> dict[str, Any]:
        RecipePromoter(settings, PromotionStore(engine)).require_line(line_id)
        try:
            reset_reference(connect(settings), line_id)
        except redis.RedisError as exc:
            raise PromotionRefused(503, "redis_unavailable", f"Redis: {exc}") from None
        return {"line_id": line_id}

    out = _audited("drift reset", line, {}, work)
    console.print(f"line {out['line_id']}: drift reference reset; the next frames make a new "
                  "one")
