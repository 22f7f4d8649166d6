"""``lineinspect bench soak``: ``lineinspect run`` for minutes, memory of every process."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def bench_soak(
    minutes: float = typer.Option(10.0, min=0.05, help="measured minutes (after the warm-up)"),
    fps: float = typer.Option(..., min=0.05, help="camera frame rate (a rate the machine "
                              "sustains: check that no frame is skipped)"),
    out: Path = typer.Option(..., help="folder for soak.json and soak.png"),
    workers: int = typer.Option(-1, help="inference worker processes (default: as run sizes "
                                "them, LINEINSPECT_INFERENCE_WORKERS or one per core)"),
    interval: float = typer.Option(5.0, min=0.5, help="seconds between samples"),
    warmup: float = typer.Option(60.0, min=0.0, help="seconds sampled but not measured"),
    recipe: str = typer.Option("", help="recipe name or YAML path (default steel-strip)"),
) -> None:
    """Soak of ``lineinspect run`` (embedded Redis, SQLite, emulated camera at ``--fps``):
    RSS of the service, each worker process and redis-server every ``--interval`` s; writes
    the samples and summary (``soak.json``) and a plot (``soak.png``)."""
    from rich.progress import Progress

    from deploy.soak import run_soak
    from deploy.soak_plot import soak_chart

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"soak {minutes:g} min at {fps:g} fps", total=1.0)
        try:
            report = run_soak(minutes, fps, workers=workers if workers >= 0 else None,
                              interval_s=interval, warmup_s=warmup, recipe=recipe,
                              progress=lambda f: bar.update(task, completed=f))
        except RuntimeError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=1))
    soak_chart(report, out / "soak.png")
    print_summary(report)
    console.print(f"wrote {out / 'soak.json'} and {out / 'soak.png'}")


def print_summary(report: dict) -> None:
    """The per-process memory table and the frame counts of a soak report."""
    summary = report["summary"]
    frames = summary["frames"]
    table = Table(title=f"RSS over {frames['measured_min']} measured minutes "
                        f"(after {report['config']['warmup_s']:g} s warm-up)")
    for col in ("process", "kind", "start MB", "end MB", "max MB", "slope MB/min"):
        table.add_column(col, justify="left" if col in ("process", "kind") else "right")
    for label, p in summary["processes"].items():
        table.add_row(label, p["kind"], f"{p['rss_start_mb']:.1f}", f"{p['rss_end_mb']:.1f}",
                      f"{p['rss_max_mb']:.1f}", f"{p['slope_mb_per_min']:+.3f}")
    console.print(table)
    console.print(
        f"frames: grabbed {frames['grabbed']}, inspected {frames['inspected']} "
        f"({frames['inspected_per_s']}/s), skipped (UNKNOWN) {frames['skipped_unknown']}, "
        f"dropped {frames['dropped']}, stream at most {frames['stream_len_max']} waiting; "
        f"load average {frames['load_avg_1m_mean']}; exit status {report['exit_status']}, "
        f"processes left {len(report['children_left'])}, log errors "
        f"{report['log']['errors']}, tracebacks {report['log']['tracebacks']}"
    )
