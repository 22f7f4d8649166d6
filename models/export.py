"""``lineinspect export``: checkpoint -> ONNX with the artifact metadata (docs/CONTRACT.md)
-> model card.

The EMA weights of the best checkpoint are exported (opset 17, TorchScript exporter,
dynamic batch; dynamic H/W for segmenters), the ONNX output is checked against PyTorch
(max abs difference must stay below ``tolerance``), the validation split is re-scored with
the ONNX file through :func:`models.evaluate.evaluate`, CPU latency is measured, and the
model card ``<out>.md`` is written from all of that.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from core.model_meta import ModelMeta, write_meta
from inference.backends.onnxruntime import create_session
from models import arch as arch_registry
from models.golden import torch_golden
from models.onnx_rewrite import optimize_file


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds x 2 of Conv2d and Linear layers for one forward pass of ``x``."""
    total = 0

    def conv_hook(m: torch.nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += 2 * out.numel() * k

    def linear_hook(m: torch.nn.Linear, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += 2 * out.numel() * m.in_features

    hooks = []
    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, torch.nn.Linear):
            hooks.append(mod.register_forward_hook(linear_hook))
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return total // x.shape[0]


def ort_latency(path: Path, shape: list[int], runs: int = 20, threads: int = 2) -> dict[str, float]:
    """onnxruntime CPU latency (p50/p99 ms) and tiles/s for input ``shape``."""
    sess = create_session(path, providers="CPUExecutionProvider", threads=threads)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    name = sess.get_inputs()[0].name
    for _ in range(3):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1000)
    p50 = float(np.percentile(times, 50))
    return {
        "p50_ms": round(p50, 2),
        "p99_ms": round(float(np.percentile(times, 99)), 2),
        "tiles_per_s": round(shape[0] * 1000 / p50, 1),
    }


def export_onnx(
    model: torch.nn.Module,
    out: Path,
    channels: int,
    input_size: list[int],
    task: str,
    tolerance: float = 1e-4,
) -> float:
    """Export ``model`` to ONNX and return the max abs difference against PyTorch.

    The export is refused when that difference reaches ``tolerance`` times the largest
    output magnitude (at least 1): float32 rounding grows with the logits' size, and the
    random test inputs drive some networks' logits well above 1."""
    model = model.eval()
    h, w = input_size
    x = torch.randn(2, channels, h, w)
    axes = {0: "N", 2: "H", 3: "W"} if task == "segment" else {0: "N"}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (x,),
        str(out),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": axes, "logits": axes},
    )
    optimize_file(out)
    sess = create_session(out, providers="CPUExecutionProvider")
    diff, scale = 0.0, 1.0
    for n in (1, 3):
        xi = torch.randn(n, channels, h, w)
        with torch.no_grad():
            ref = model(xi).numpy()
        got = sess.run(None, {"input": xi.numpy()})[0]
        diff = max(diff, float(np.abs(ref - got).max()))
        scale = max(scale, float(np.abs(ref).max()))
    if diff >= tolerance * scale:
        raise RuntimeError(
            f"ONNX output differs from PyTorch by {diff:.2e} (>= {tolerance} x the largest "
            f"output {scale:.3g})"
        )
    return diff


#: batch sizes the card reports latency and tiles/s at (the new file and ``--compare``'s)
LATENCY_BATCHES = (1, 8, 32)

#: plots of a training run that are released next to the model as ``<name>.<plot>.png``
RUN_PLOTS = ("confusion", "curves", "iou", "overlays")


def _run_facts(checkpoint: Path, out: Path) -> dict:
    """Best epoch and wall time of the training run, and its plots copied beside ``out``."""
    import shutil

    run_dir = checkpoint.parent
    facts: dict = {}
    metrics_file = run_dir / "metrics.json"
    if metrics_file.exists():
        metrics = json.loads(metrics_file.read_text())
        facts["best_epoch"] = metrics.get("epoch")
        facts["wall_s"] = metrics.get("wall_s")
        facts["train_device"] = metrics.get("device")
    plots = []
    for plot in RUN_PLOTS:
        src = run_dir / f"{plot}.png"
        if src.exists():
            shutil.copyfile(src, out.with_name(f"{out.stem}.{plot}.png"))
            plots.append(plot)
    facts["plots"] = plots
    return facts


def _previous_release(path: Path, data: Path, cfg: dict) -> dict:
    """Validation figures and tiles/s of the released file at ``path`` (same split)."""
    from core.model_meta import read_meta
    from models.evaluate import evaluate

    meta = read_meta(path)
    metrics = evaluate(path, data, split="val", seed=cfg["seed"], val_fraction=cfg["val_fraction"])
    shape = [meta.channels, *meta.input_size]
    return {
        "version": meta.version,
        "select": cfg["select_metric"],
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
        "tiles_per_s": {
            f"batch_{b}": ort_latency(path, [b, *shape])["tiles_per_s"] for b in LATENCY_BATCHES
        },
    }


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    version: str = "1.0.0",
    data: Path | None = None,
    card_extra: dict | None = None,
    compare: Path | None = None,
) -> dict:
    """Export a training checkpoint to ``out`` (ONNX + metadata + card); returns the facts.

    ``compare``: the released file this one replaces; its validation figures (on ``data``)
    and tiles/s are measured in the same run and stored as ``previous``.
    """
    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    classes = ck["classes"]
    model = arch_registry.build(cfg["arch"], len(classes), cfg["channels"], cfg["variant"])
    model.load_state_dict(ck["ema"])
    model.eval()
    diff = export_onnx(model, out, cfg["channels"], cfg["input_size"], cfg["task"])
    meta = ModelMeta(
        task=cfg["task"],
        classes=classes,
        input_size=cfg["input_size"],
        channels=cfg["channels"],
        mean=ck["mean"],
        std=ck["std"],
        version=version,
        dataset=ck["dataset"],
        # trained on tiles of this many frame px: evaluate and the recipes tile alike
        tile=int(cfg.get("tile") or 0),
    )
    # arch/variant let `lineinspect bench models` rebuild the same net in PyTorch
    write_meta(out, meta, extra={"arch": cfg["arch"], "variant": cfg["variant"]})
    params = sum(p.numel() for p in model.parameters())
    flops = count_flops(model, torch.zeros(1, cfg["channels"], *cfg["input_size"]))
    latency = {
        f"batch_{b}": ort_latency(out, [b, cfg["channels"], *cfg["input_size"]])
        for b in LATENCY_BATCHES
    }
    facts = {
        "name": out.stem,
        "arch": cfg["arch"],
        "variant": cfg["variant"],
        "params": params,
        "gflops": round(flops / 1e9, 3),
        "onnx_max_abs_diff": diff,
        "latency": latency,
        "train_metrics": ck["metrics"],
        "config": cfg,
        "meta": meta.to_props(),
        "history": ck["history"],
        "golden": torch_golden(model, cfg, ck["mean"], ck["std"]),
        "split": ck["split"],
        "size_mb": round(out.stat().st_size / 1e6, 2),
        "machine": f"{platform.machine()} CPU, onnxruntime {ort.__version__}, 2 threads",
    }
    if data is not None:
        from models.evaluate import evaluate

        facts["onnx_val_metrics"] = evaluate(
            out, data, split="val", seed=cfg["seed"], val_fraction=cfg["val_fraction"]
        )
    if compare is not None and data is not None:
        facts["previous"] = _previous_release(compare, data, cfg)
    facts.update(_run_facts(checkpoint, out))
    facts.update(card_extra or {})
    (out.with_suffix(".json")).write_text(json.dumps(facts, indent=2, default=str))
    return facts
