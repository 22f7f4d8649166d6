"""``lineinspect verdict-rates``: how often a recipe says NG on labelled folders of frames."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from deploy.cli_base import fail, load_settings

console = Console()


def verdict_rates_cmd(
    data: list[Path] = typer.Option(..., exists=True, file_okay=False,
                                    help="folder of images or of class folders (repeatable); "
                                         "folders named 'clean', 'defect_free', 'ok' or "
                                         "'good' hold defect-free frames"),
    recipe: str = typer.Option("steel-strip", help="recipe name or YAML path"),
    model: list[str] = typer.Option([], help="NAME=PATH: read that model of the recipe from "
                                              "another ONNX file (repeatable)"),
    fp32: bool = typer.Option(False, "--fp32", help="run every model from its fp32 file, "
                                                   "ignoring the recipe's 'quantize: int8'"),
    engine: str = typer.Option("onnxruntime", help="onnxruntime | openvino | auto"),
    out: Path = typer.Option(None, dir_okay=False, help="write the counts as JSON here"),
) -> None:
    """Run a recipe over labelled frames and count NG verdicts per folder: the defective
    frames a model release would let through, and the clean frames it would stop."""
    from rich.progress import Progress

    from core.recipe import load_recipe
    from deploy.verdict_rates import parse_swaps, verdict_rates, with_models

    settings = load_settings()
    try:
        chosen = load_recipe(recipe, settings)
        chosen = with_models(chosen, parse_swaps(model, chosen), fp32=fp32)
        chosen = chosen.model_copy(update={"engine": engine})
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("inspecting", total=None)
            report = verdict_rates(chosen, data, settings,
                                   progress=lambda i, n: bar.update(task, completed=i, total=n))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    table = Table(title=f"NG verdicts of recipe {report['recipe']}")
    for col in ("folder", "expected", "frames", "NG", "NG rate"):
        table.add_column(col, justify="left" if col in ("folder", "expected") else "right")
    for row in report["folders"]:
        table.add_row(row["folder"], "OK" if row["clean"] else "NG", str(row["frames"]),
                      str(row["ng"]), "-" if row["ng_rate"] is None else f"{row['ng_rate']:.3f}")
    for label in ("defective", "clean"):
        t = report[label]
        if t["frames"]:
            table.add_row(f"[b]all {label}[/b]", "OK" if label == "clean" else "NG",
                          str(t["frames"]), str(t["ng"]), f"{t['ng_rate']:.3f}")
    console.print(table)
    unreadable = [
        f"{r['folder']} ({r['unreadable']})" for r in report["folders"] if r["unreadable"]
    ]
    if unreadable:
        console.print(f"[yellow]not decodable, not counted:[/yellow] {', '.join(unreadable)}")
    if out:
        out.write_text(json.dumps(report, indent=1) + "\n")
        console.print(f"wrote {out}")
