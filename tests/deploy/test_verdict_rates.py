"""``lineinspect verdict-rates``: the shipped steel-strip recipe and its zoo models over labelled
folders of demo frames (clean ones OK, pasted defects NG), a swapped model file that changes the
counts, and bad input refused with exit status 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.recipe import load_recipe
from core.settings import DEMO_FRAMES_DIR, Settings
from deploy.cli import app
from deploy.verdict_rates import is_clean, parse_swaps, verdict_rates, with_models
from tests.onnx_factory import make_segmenter


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clean/ (three clean demo frames) and defects/ (every demo frame with a pasted defect)."""
    root = tmp_path_factory.mktemp("frames")
    for sub, pick in (("clean", lambda n: "clean" in n), ("defects", lambda n: "clean" not in n)):
        (root / sub).mkdir()
        chosen = [p for p in sorted(DEMO_FRAMES_DIR.glob("frame_*.png")) if pick(p.name)]
        for path in chosen[:3]:
            shutil.copy(path, root / sub / path.name)
    return root


def test_shipped_recipe_stops_every_defect_frame_and_passes_the_clean_ones(frames: Path) -> None:
    report = verdict_rates(load_recipe("steel-strip"), [frames], Settings(ort_threads=1))
    rows = {Path(r["folder"]).name: r for r in report["folders"]}
    defects = len(list((frames / "defects").iterdir()))
    assert defects >= 2
    assert rows["defects"]["ng"] == rows["defects"]["frames"] == defects
    assert rows["clean"]["ng"] == 0 and rows["clean"]["frames"] == 3
    assert report["defective"] == {"frames": defects, "ng": defects, "ng_rate": 1.0}
    assert report["clean"]["ng_rate"] == 0.0


def test_a_swapped_segmenter_changes_the_verdicts(frames: Path, tmp_path: Path) -> None:
    """The steel-strip segmenter swapped for one that calls every pixel background: the
    classifiers it gates see no tile, so no frame is NG."""
    blind = make_segmenter(tmp_path / "blind.onnx",
                           ("background", "inclusion", "patches", "scratches"),
                           (128.0, 9e3, 1e4, 1.1e4), input_size=(200, 200))
    recipe = load_recipe("steel-strip")
    swapped = with_models(recipe, parse_swaps([f"sme_deeplabv3plus={blind}"], recipe), fp32=True)
    report = verdict_rates(swapped, [frames / "defects"], Settings(ort_threads=1))
    assert report["models"]["sme_deeplabv3plus"] == str(blind.resolve())
    assert report["defective"]["frames"] > 0 and report["defective"]["ng"] == 0


@pytest.mark.parametrize(
    ("model", "message"),
    [("sme_deeplabv3plus", "expected NAME=PATH"), ("nosuch=/x.onnx", "has no model 'nosuch'"),
     ("mm=/no/such.onnx", "no file /no/such.onnx")],
)
def test_bad_model_swaps_are_refused(frames: Path, model: str, message: str) -> None:
    result = CliRunner().invoke(app, ["verdict-rates", "--data", str(frames), "--model", model])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_a_folder_without_images_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "rates.json"
    result = CliRunner().invoke(
        app, ["verdict-rates", "--data", str(tmp_path / "empty"), "--out", str(out)]
    )
    assert result.exit_code == 2 and "no images" in result.output
    assert not out.exists()


def test_cli_writes_the_counts_it_prints(frames: Path, tmp_path: Path) -> None:
    out = tmp_path / "rates.json"
    result = CliRunner().invoke(
        app, ["verdict-rates", "--data", str(frames / "clean"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["clean"]["frames"] == 3 and report["defective"]["frames"] == 0
    assert "all clean" in result.output


@pytest.mark.parametrize(
    ("label", "clean"),
    [("c/clean", True), ("aluminum-tiles/defect_free", True), ("line/ok", True),
     ("x-sdd/red_iron", False), ("neu-cls/crazing", False), ("uncleaned", False)],
)
def test_clean_folders_are_known_by_name(label: str, clean: bool) -> None:
    assert is_clean(label) is clean


def test_an_undecodable_file_is_counted_and_named_not_inspected(frames: Path,
                                                                tmp_path: Path) -> None:
    folder = tmp_path / "clean"
    folder.mkdir()
    shutil.copy(next((frames / "clean").iterdir()), folder / "a.png")
    (folder / "broken.png").write_bytes(b"not a png")
    result = CliRunner().invoke(app, ["verdict-rates", "--data", str(folder)])
    assert result.exit_code == 0, result.output
    assert "not decodable, not counted" in result.output and "clean (1)" in result.output
    report = verdict_rates(load_recipe("steel-strip"), [folder], Settings(ort_threads=1))
    assert report["folders"][0]["unreadable"] == 1 and report["clean"]["frames"] == 1


def test_fp32_runs_every_model_from_its_fp32_file() -> None:
    """``--fp32``: what quantisation changes on the line; the shipped recipe runs INT8 files."""
    recipe = load_recipe("steel-strip")
    assert any(m.resolved_path().name.endswith(".int8.onnx") for m in recipe.models)
    plain = with_models(recipe, {}, fp32=True)
    assert [m.resolved_path().name for m in plain.models] == [
        Path(m.path).name for m in recipe.models]
    assert not any(m.resolved_path().name.endswith(".int8.onnx") for m in plain.models)
