"""``lineinspect bench models`` on tiny on-the-fly models: well-formed JSON, every engine/batch."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from typer.testing import CliRunner

from deploy.bench_models import ENGINES, ratios
from deploy.cli import app

BATCHES = [1, 2]
RESULT_KEYS = {"model", "tile", "engine", "batch", "tiles_per_s", "p50_ms", "p99_ms"}
MACHINE_KEYS = {"cpu", "cores", "os", "python", "onnxruntime", "torch", "openvino", "date"}


def _run(zoo: Path, out: Path, *extra: str) -> dict:
    args = ["bench", "models", "--json", str(out), "--models-dir", str(zoo), "--seconds", "0.05",
            "--threads", "1", "--batches", ",".join(map(str, BATCHES)), *extra]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_bench_models_json_has_every_engine_and_batch(tiny_zoo: Path, tmp_path: Path) -> None:
    report = _run(tiny_zoo, tmp_path / "bench.json")
    assert MACHINE_KEYS <= set(report["machine"])
    names = sorted(p.stem for p in tiny_zoo.glob("*.onnx"))
    assert sorted(report["models"]) == names
    for row in report["results"]:
        assert RESULT_KEYS <= set(row)
        assert row["tiles_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
    got = {(r["model"], r["engine"], r["batch"]) for r in report["results"]}
    skipped = {(s["model"], s["engine"]) for s in report["skipped"]}
    has_openvino = importlib.util.find_spec("openvino") is not None
    for name in names:
        for engine in ENGINES:
            if (name, engine) in skipped:
                continue
            assert {(name, engine, b) for b in BATCHES} <= got, (name, engine)
    # the architecture export runs on all three engines; the formula models have no PyTorch net
    assert all(("mm", e) not in skipped for e in ("onnxruntime", "pytorch"))
    assert ("brightness", "pytorch") in skipped and ("spots", "pytorch") in skipped
    assert (("mm", "openvino") in skipped) is not has_openvino
    if not has_openvino:
        reason = next(s["reason"] for s in report["skipped"] if s["engine"] == "openvino")
        assert "not installed" in reason
    assert "copied from ONNX initializers" in report["models"]["mm"]["notes"]["pytorch"]
    rows = [r for r in ratios(report) if r["model"] == "mm"]
    assert len(rows) == len(BATCHES) and all(r["ort_over_pytorch"] for r in rows)
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "bench.png").stat().st_size > 0


def test_bench_models_engine_subset(tiny_zoo: Path, tmp_path: Path) -> None:
    report = _run(tiny_zoo, tmp_path / "ort.json", "--engines", "onnxruntime")
    assert {r["engine"] for r in report["results"]} == {"onnxruntime"}
    assert len(report["results"]) == len(list(tiny_zoo.glob("*.onnx"))) * len(BATCHES)


def test_bench_models_pytorch_uses_checkpoint(tiny_zoo: Path, tmp_path: Path) -> None:
    import torch

    from deploy.bench_torch import build_torch_model
    from models import arch

    net = arch.build("mm", 3, 1, "small")
    torch.save({"config": {"arch": "mm", "variant": "small"}, "ema": net.state_dict()},
               tmp_path / "mm.pt")
    rebuilt, note = build_torch_model(tiny_zoo / "mm.onnx", tmp_path)
    assert "checkpoint" in note
    for k, v in net.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v)


def test_bench_models_rejects_bad_options(tiny_zoo: Path, tmp_path: Path) -> None:
    for extra in (["--engines", "tensorflow"], ["--batches", "0"], ["--batches", "x"]):
        res = CliRunner().invoke(
            app, ["bench", "models", "--json", str(tmp_path / "x.json"), "--models-dir",
                  str(tiny_zoo), *extra])
        assert res.exit_code == 2, (extra, res.output)
    res = CliRunner().invoke(app, ["bench", "models", "--json", str(tmp_path / "x.json"),
                                   "--models-dir", str(tmp_path / "missing")])
    assert res.exit_code == 2
