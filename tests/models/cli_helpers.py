"""``lineinspect train classify`` invoked on an empty one-class folder, for the tests that
check which option combinations the CLI refuses before any training starts."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner


def train_classify_mm(tmp_path: Path, *options: str) -> Result:
    """Run ``train classify --arch mm`` on ``tmp_path/cls`` with ``options`` (out: ``o``)."""
    from deploy.cli import app

    data = tmp_path / "cls" / "a"
    data.mkdir(parents=True)
    return CliRunner().invoke(
        app,
        ["train", "classify", "--arch", "mm", "--data", str(data.parent), "--out",
         str(tmp_path / "o"), *options],
    )
