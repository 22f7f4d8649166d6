"""What every ``lineinspect`` sub-command module shares: settings from the environment with
command-line overrides, and the one way a command refuses bad input (exit status 2)."""

from __future__ import annotations

import logging

import typer
from rich.console import Console

console = Console()


def load_settings(**overrides: object):  # noqa: ANN201 - Settings is imported lazily
    """Settings from the environment, with the non-empty ``overrides``; sets up logging."""
    from core.settings import Settings

    values = {k: v for k, v in overrides.items() if v not in (None, "")}
    settings = Settings(**values)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return settings


def fail(message: str) -> None:
    """Print ``message`` as a CLI error and exit with status 2 (bad input, nothing changed)."""
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)
