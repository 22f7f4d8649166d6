"""The ``lineinspect`` command line (typer).

Service parts: ``acquire``, ``infer``, ``serve`` and ``run`` (all three in one process).
Models: ``train``, ``export``, ``evaluate``, ``verdict-rates``.
Benchmarks: ``bench models|pipeline|profile``.
QA: ``export-reviews`` (reviewed inspections as a labelled data set).
Heavy imports happen inside the commands so ``lineinspect --help`` stays fast and the
service commands never import torch.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from deploy import plc_cli as _plc_cli
from deploy import promote_cli as _promote_cli
from deploy import soak_cli as _soak_cli
from deploy import verdict_rates_cli as _verdict_rates_cli
from deploy.cli_base import fail, load_settings

app = typer.Typer(help="lineinspect: inline surface inspection", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(_plc_cli.plc_app, name="plc")
bench_app.command("plc")(_plc_cli.bench_plc)
bench_app.command("soak")(_soak_cli.bench_soak)
app.command("verdict-rates")(_verdict_rates_cli.verdict_rates_cmd)
console = Console()


def _time_window(since: str, until: str):  # noqa: ANN202 - datetime is imported lazily
    """``--since``/``--until`` (ISO-8601, empty = open) as datetimes, or a CLI error."""
    from datetime import datetime

    try:
        t0 = datetime.fromisoformat(since) if since else None
        t1 = datetime.fromisoformat(until) if until else None
    except ValueError as exc:
        fail(f"bad --since/--until: {exc}")
    return t0, t1


def _recipe(settings):  # noqa: ANN001, ANN202
    from core.recipe import load_recipe

    try:
        return load_recipe(settings.recipe, settings)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))


def _stop_on_signals():  # noqa: ANN202 - threading is imported lazily
    """An event that SIGTERM/SIGINT set, so a worker finishes its frame and stops cleanly."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _serve_worker_metrics(settings) -> None:  # noqa: ANN001
    """Expose this worker's Prometheus metrics on ``metrics_port`` (0 = off)."""
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port)


@app.command()
def acquire(
    recipe: str = typer.Option("", help="recipe name or YAML path"),
    line: str = typer.Option("", help="line id"),
    camera: str = typer.Option("", help="camera serial number or user-defined name"),
) -> None:
    """Grab frames from the camera into the Redis stream ``frames:{line}``."""
    from deploy.wiring import run_acquisition_worker

    settings = load_settings(recipe=recipe, line_id=line, camera=camera)
    _serve_worker_metrics(settings)
    run_acquisition_worker(settings, _recipe(settings), _stop_on_signals())


@app.command()
def infer(
    recipe: str = typer.Option("", help="recipe name or YAML path"),
    line: str = typer.Option("", help="line id"),
    workers: int = typer.Option(
        -1, help="worker processes (default LINEINSPECT_INFERENCE_WORKERS; 0 = one per core)"
    ),
) -> None:
    """Inspect frames from the stream, log them and publish verdicts (scale out freely):
    as many worker processes as the machine has cores unless set."""
    from deploy.wiring import run_inference_worker
    from deploy.workers import plan_workers, run_worker_processes

    settings = load_settings(
        recipe=recipe, line_id=line, inference_workers=workers if workers >= 0 else None
    )
    plan = plan_workers(settings)
    if plan.workers > 1:
        run_worker_processes(settings, _recipe(settings), _stop_on_signals())
        return
    settings = settings.model_copy(update={"ort_threads": plan.threads})
    _serve_worker_metrics(settings)
    run_inference_worker(settings, _recipe(settings), _stop_on_signals())


@app.command()
def serve(
    host: str = typer.Option("", help="bind address"),
    port: int = typer.Option(0, help="port"),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes"),
    access_log: bool = typer.Option(True, help="log every request (off for fast PLC polls)"),
) -> None:
    """Serve the HTTP API, the QA UI and /metrics."""
    from deploy.api_server import serve_api

    serve_api(load_settings(api_host=host, api_port=port or None), workers, access_log)


@app.command()
def run(
    recipe: str = typer.Option("", help="recipe name or YAML path"),
    line: str = typer.Option("", help="line id"),
    workers: int = typer.Option(
        -1, help="inference worker processes (default LINEINSPECT_INFERENCE_WORKERS; 0 = one "
        "per core)"
    ),
) -> None:
    """Everything on one machine: embedded Redis, SQLite, emulated camera, inference worker
    processes sized to the machine (as ``infer``), API."""
    from deploy.runner import run_all

    settings = load_settings(
        recipe=recipe, line_id=line, inference_workers=workers if workers >= 0 else None
    )
    run_all(settings)


@app.command()
def migrate() -> None:
    """Apply the database migrations to ``LINEINSPECT_DATABASE_URL``."""
    from storage.db import migrate as do_migrate
    from storage.db import safe_url

    settings = load_settings()
    do_migrate(settings.sqlalchemy_url)
    console.print(f"migrated {safe_url(settings.sqlalchemy_url)}")  # never the password


@app.command()
def train(
    task: str = typer.Argument(..., help="classify or segment"),
    arch: str = typer.Option(..., help="aludef | mm | esg_convnext | sme_deeplabv3plus"),
    data: Path = typer.Option(..., exists=True, file_okay=False, help="data set folder"),
    out: Path = typer.Option(..., help="run directory (checkpoints, metrics, plots)"),
    epochs: int = 30,
    variant: str = "small",
    batch_size: int = 32,
    lr: float = 2e-3,
    input_size: str = typer.Option("128,128", help="H,W the model is trained at"),
    channels: int = typer.Option(1, help="1 (gray) or 3 (RGB)"),
    seed: int = 0,
    select_metric: str = typer.Option("", help="accuracy | macro_f1 | miou"),
    threads: int = 0,
    max_minutes: float = typer.Option(0.0, help="stop after this many minutes (0 = no limit)"),
    resume: bool = typer.Option(False, help="continue from OUT/last.pt"),
    tile: int = typer.Option(0, help="segment: train on tiles of this many frame px (0 = off)"),
    positive_fraction: float = typer.Option(
        0.0, help="segment with --tile: repeat defect tiles to this fraction of training tiles"
    ),
    positive_class: str = typer.Option(
        "", help="segment: with --positive-fraction, count only tiles holding this class"),
    source: Path = typer.Option(None, help="classify: frames the tile set was cut from"),
    source_crops: int = typer.Option(0, help="classify: extra random tiles per --source frame"),
    extra_data: Path = typer.Option(
        None, help="a lineinspect export-reviews folder: QA's reviewed frames join the "
        "training split (never validation)"),
    init_from: Path = typer.Option(
        None, help="start from this checkpoint (best.pt/last.pt of the same arch and classes)"),
    freeze_stages: int = typer.Option(
        0, help="lite* variants: freeze the encoder's stem and first N of its 7 stages"),
    class_weight_power: float = typer.Option(
        0.5, help="loss weight of a class = (largest class count / its count) ** this, in "
        "[0, 1]; 0 = all classes alike"),
    train_crop: int = typer.Option(
        0, help="segment: train on random crops of this many px of the --input-size images "
        "(0 = whole images); validation and export use the whole input size"),
    distill_from: Path = typer.Option(
        None, help="segment: a released ONNX segmenter of the same classes and input; the run "
        "also learns its probabilities averaged over flips and rotations"),
    distill_weight: float = typer.Option(
        1.0, help="with --distill-from: weight of its KL term beside the label loss"),
    overlap_loss: str = typer.Option(
        "dice", help="segment: dice (soft Dice) | lovasz (Lovász-softmax, an IoU surrogate) "
        "beside the cross-entropy"),
) -> None:
    """Train a zoo network on a data set with a grouped train/validation split; fine-tune
    with --init-from and QA's reviews (--extra-data)."""
    from models.arch import ARCHITECTURES, task_of
    from models.arch.efficientnet_lite import LITE_STAGES
    from models.train import TrainConfig
    from models.train import train as do_train

    if task not in ("classify", "segment"):
        fail("task must be classify or segment")
    if arch not in ARCHITECTURES or task_of(arch) != task:
        fail(f"{arch!r} is not a {task} architecture")
    size = [int(v) for v in input_size.split(",")]
    if (tile or positive_fraction) and task != "segment":
        fail("--tile and --positive-fraction are for segmentation only")
    if source_crops and (task != "classify" or source is None or not source.is_dir()):
        fail("--source-crops needs a classification set and an existing --source folder")
    if not 0.0 <= positive_fraction < 1.0:
        fail("--positive-fraction must be in [0, 1)")
    if positive_class and not positive_fraction:
        fail("--positive-class needs a --positive-fraction above 0")
    if extra_data is not None and not (extra_data / "manifest.json").is_file():
        fail(f"--extra-data {extra_data}: no manifest.json (write it with export-reviews)")
    if init_from is not None and not init_from.is_file():
        fail(f"--init-from {init_from}: no such checkpoint")
    if freeze_stages and not (variant.startswith("lite") and 0 < freeze_stages <= LITE_STAGES):
        fail(f"--freeze-stages needs a lite* variant and a number of stages in 1..{LITE_STAGES}")
    if not 0.0 <= class_weight_power <= 1.0:
        fail("--class-weight-power must be in [0, 1]")
    if distill_from is not None and not distill_from.is_file():
        fail(f"--distill-from {distill_from}: no such ONNX file")
    cfg = TrainConfig(
        task=task,
        arch=arch,
        data=str(data),
        out=str(out),
        variant=variant,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        input_size=size,
        channels=channels,
        seed=seed,
        threads=threads,
        max_minutes=max_minutes,
        tile=tile,
        positive_fraction=positive_fraction,
        positive_class=positive_class,
        source=str(source or ""),
        source_crops=source_crops,
        select_metric=select_metric or ("miou" if task == "segment" else "accuracy"),
        extra_data=str(extra_data or ""),
        init_from=str(init_from or ""),
        freeze_stages=freeze_stages,
        class_weight_power=class_weight_power,
        train_crop=train_crop,
        distill_from=str(distill_from or ""),
        distill_weight=distill_weight,
        overlap_loss=overlap_loss,
    )
    try:
        metrics = do_train(cfg, resume=resume)
    except ValueError as exc:  # data set, extra data or checkpoint that does not fit
        fail(str(exc))
    console.print_json(json.dumps({k: v for k, v in metrics.items() if k != "confusion"}))


@app.command()
def export(
    checkpoint: Path = typer.Option(..., exists=True, dir_okay=False),
    out: Path = typer.Option(..., help="models/zoo/<name>.onnx"),
    version: str = "1.0.0",
    data: Path = typer.Option(None, help="data set to re-score the validation split on"),
    card: bool = typer.Option(True, help="write the model card <out>.md"),
    limit: list[str] = typer.Option(None, "--limit", help="a known limit for the card (repeat)"),
    compare: Path = typer.Option(
        None, exists=True, dir_okay=False, help="released ONNX file this replaces (with --data)"
    ),
) -> None:
    """Export a checkpoint to ONNX with the artifact metadata, check parity, write the card."""
    from models.export import export_checkpoint

    extra = {"limits": limit} if limit else None
    if compare is not None and data is None:
        fail("--compare needs --data (the validation split both files are scored on)")
    facts = export_checkpoint(
        checkpoint, out, version=version, data=data, card_extra=extra, compare=compare
    )
    if card:
        from models.card import write_card

        write_card(facts, out.with_suffix(".md"))
    console.print(
        f"{out}: {facts['params']:,} params, {facts['gflops']} GFLOPs, "
        f"parity {facts['onnx_max_abs_diff']:.1e}"
    )


@app.command()
def evaluate(
    model: Path = typer.Option(..., exists=True, dir_okay=False, help="ONNX file"),
    data: Path = typer.Option(..., exists=True, file_okay=False, help="data set folder"),
    split: str = typer.Option("all", help="all | val | train (the grouped split of training)"),
    seed: int = 0,
    out: Path = typer.Option(None, help="folder for evaluation.json + confusion.png"),
) -> None:
    """Score a released ONNX model on a folder of images (ONNX + metadata only)."""
    from models.evaluate import evaluate as do_eval

    try:
        m = do_eval(model, data, split=split, seed=seed, out_dir=out)
    except ValueError as exc:
        fail(str(exc))
    table = Table(title=f"{model.name} on {data} ({split}, {m['images']} images)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("accuracy", "macro_f1", "miou", "pixel_accuracy", "recall_defective"):
        if key in m:
            table.add_row(key, f"{m[key]:.4f}")
    for cls, v in (m.get("per_class_iou") or {}).items():
        table.add_row(f"IoU {cls}", "-" if v is None else f"{v:.4f}")
    console.print(table)
    if "confusion" in m and ("per_class" in m or "recall_defective" in m):
        console.print("confusion (rows = true):", m["confusion"])


@app.command("export-reviews")
def export_reviews(
    out: Path = typer.Option(..., file_okay=False, help="folder to write the data set to"),
    line: str = typer.Option("", help="only this line"),
    since: str = typer.Option("", help="captured at or after (ISO-8601, naive = UTC)"),
    until: str = typer.Option("", help="captured before (ISO-8601, naive = UTC)"),
) -> None:
    """Write QA-reviewed inspections as a labelled data set (images, masks, manifest)."""

    from storage.db import get_engine
    from storage.images import ImageStore
    from storage.repository import InspectionRepository
    from storage.review_export import export_reviews as do_export

    t0, t1 = _time_window(since, until)
    settings = load_settings()
    engine = get_engine(settings)
    try:
        summary = do_export(
            InspectionRepository(engine), ImageStore.from_settings(settings), out,
            line_id=line or None, since=t0, until=t1,
        )
    finally:
        engine.dispose()
    console.print(
        f"{summary.out}: {summary.items} reviewed inspections, classes {summary.classes}, "
        f"{len(summary.skipped)} skipped (image not retained)"
    )


@app.command()
def quantize(
    model: Path = typer.Option(..., exists=True, dir_okay=False, help="fp32 ONNX file"),
    data: Path = typer.Option(..., exists=True, file_okay=False, help="training data set"),
    out: Path = typer.Option(None, help="default: <model dir>/<stem>.int8.onnx"),
    images: int = typer.Option(256, help="calibration images (from the train split)"),
    method: str = typer.Option("minmax", help="minmax | entropy | percentile"),
    seed: int = 0,
    compare: bool = typer.Option(True, help="score fp32 and int8 on the validation split"),
    keep_float: list[str] = typer.Option(
        None, "--keep-float", help="keep the nodes whose names start with this in float "
        "(repeat; e.g. a segmenter's full-resolution layers)"),
) -> None:
    """INT8 static quantisation calibrated on training images (recipe: ``quantize: int8``)."""
    from models.quantize import (
        acceptance,
        compare_on_split,
        int8_path,
        quantize_int8,
        write_facts,
    )

    out = out or int8_path(model)
    try:
        facts = quantize_int8(model, data, out, images=images, method=method, seed=seed,
                              keep_float=tuple(keep_float or ()))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    from deploy.bench_models import machine_info

    facts["machine"] = machine_info()  # an INT8 file's figures hold for the CPU they came from
    if compare:
        try:
            facts["validation"] = compare_on_split(model, out, data, seed=seed)
            facts["acceptance"] = acceptance(facts["validation"])
        except (FileNotFoundError, ValueError) as exc:
            facts["validation"] = {"error": str(exc)}
            console.print(f"[yellow]no validation comparison:[/yellow] {exc}")
    write_facts(facts, out)
    console.print_json(json.dumps(facts, default=str))
    verdict = facts.get("acceptance")
    if verdict is not None:
        word = "[green]accepted[/green]" if verdict["accepted"] else "[red]rejected[/red]"
        console.print(f"{out.name}: {word}: {verdict['why']}")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        fail(f"expected comma-separated positive integers, got {text!r}")
    return values


@bench_app.command("models")
def bench_models(
    json_out: Path = typer.Option(..., "--json", help="report JSON (plot written beside it)"),
    models_dir: Path = typer.Option(Path("models/zoo"), help="folder of *.onnx models"),
    threads: int = typer.Option(2, help="threads for every engine"),
    batches: str = typer.Option("1,8,32", help="comma-separated batch sizes"),
    seconds: float = typer.Option(3.0, help="timed seconds per model, engine and batch"),
    engines: str = typer.Option("onnxruntime,pytorch,openvino", help="engines to run"),
    checkpoint_dir: Path = typer.Option(
        None, help="<name>.pt or <name>/best.pt training checkpoints for PyTorch weights"
    ),
) -> None:
    """Each zoo model on onnxruntime (as the service runs it), PyTorch eager and OpenVINO."""
    from rich.progress import Progress

    from core.model_meta import ModelMetadataError
    from deploy.bench_models import ENGINES, print_report, run_benchmark, write_report

    chosen = [e.strip() for e in engines.split(",") if e.strip()]
    if not chosen or any(e not in ENGINES for e in chosen):
        fail(f"--engines must be a subset of {','.join(ENGINES)}")
    if not models_dir.is_dir():
        fail(f"models folder not found: {models_dir}")
    sizes = _int_list(batches)
    n_models = len(list(models_dir.glob("*.onnx")))
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("bench models", total=n_models * len(sizes) * len(chosen))

        def step(label: str) -> None:
            bar.update(task, description=label)
            bar.advance(task)

        try:
            report = run_benchmark(
                models_dir, sizes, threads, seconds, chosen, checkpoint_dir, progress=step
            )
        except (FileNotFoundError, ModelMetadataError) as exc:
            fail(str(exc))
    plot = write_report(report, json_out)
    print_report(report, console)
    console.print(f"wrote {json_out}" + (f" and {plot}" if plot else " (no matplotlib: no plot)"))


@bench_app.command("pipeline")
def bench_pipeline(
    recipe: str = typer.Option("steel-strip", help="recipe name or YAML path"),
    seconds: float = typer.Option(30.0, help="measured seconds (after the warm-up)"),
    json_out: Path = typer.Option(..., "--json", help="report JSON"),
    fps: float = typer.Option(0.0, help="camera frame rate (0 = as fast as it goes)"),
    warmup: float = typer.Option(3.0, help="seconds run before measuring"),
    frames_dir: Path = typer.Option(None, help="images the emulator replays (default: demo)"),
    threads: int = typer.Option(0, help="intra-op threads per worker (0 = cores // workers)"),
    workers: int = typer.Option(
        0, min=0, help="inference worker processes, measured 1..N (0 = sized to the machine)"
    ),
    no_scaling: bool = typer.Option(False, help="run only --workers, not 1..N"),
    peak_seconds: float = typer.Option(
        1.0, help="seconds per shape of the conv peak micro-benchmark (0 = skip)"
    ),
) -> None:
    """Emulated camera at full rate -> stream -> 1..N inference worker processes -> DB ->
    verdict; the scaling over workers and the roofline (GFLOP per frame vs measured peak)."""
    import os

    os.environ.setdefault("PYLON_CAMEMU", "1")  # before pypylon is imported
    from rich.progress import Progress

    from deploy.bench_pipeline import print_report, run_pipeline_bench
    from deploy.workers import plan_workers

    settings = load_settings()  # logging as configured
    logging.getLogger("acquisition").setLevel(logging.WARNING)
    workers = workers or plan_workers(settings).workers
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"bench pipeline {recipe}", total=1.0)
        try:
            report = run_pipeline_bench(
                recipe, seconds, fps=fps, warmup=warmup, frames_dir=frames_dir,
                threads=threads, workers=workers, scaling=not no_scaling,
                peak_seconds=peak_seconds, progress=lambda f: bar.update(task, completed=f),
            )
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            fail(str(exc))
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2))
    print_report(report, console)
    console.print(f"wrote {json_out}")


@bench_app.command("gpu")
def bench_gpu(
    out: Path = typer.Option(Path("docs/perf/gpu"), help="folder of the JSON report"),
    recipe: str = typer.Option("steel-strip", help="recipe of the 30 fps pipeline run"),
    install: bool = typer.Option(True, help="install onnxruntime-gpu when CUDA is missing"),
    wheels: Path = typer.Option(None, help="offline: folder with the GPU wheels"),
    max_minutes: float = typer.Option(10.0, help="budget of the whole check"),
    fps: float = typer.Option(30.0, help="camera rate of the pipeline run"),
    seconds: float = typer.Option(60.0, help="measured seconds of the pipeline run"),
    strict: bool = typer.Option(False, help="exit 3 when there is no GPU or it failed"),
) -> None:
    """The GPU check in one go: install onnxruntime-gpu, every zoo model on CUDA and TensorRT
    (fp16 where accuracy holds), the recipe at 30 fps for 60 s; a JSON report to commit."""
    from deploy.bench_gpu import run_gpu_check

    settings = load_settings()
    with console.status("GPU check"):
        report, path = run_gpu_check(
            out, data_dir=settings.data_dir, recipe=recipe, do_install=install, wheels=wheels,
            max_minutes=max_minutes, fps=fps, seconds=seconds,
        )
    status = report["status"]
    if status != "measured":
        console.print(f"[yellow]{status}:[/yellow] {report.get('message', '')}")
    else:
        for m in report["models"]:
            cells = ", ".join(
                f"{k}: {v.get('tiles_per_s_b32', '-')} tiles/s"
                + (f" (fp16 {'ok' if v.get('fp16_accepted') else 'rejected'})"
                   if "fp16_accepted" in v else "") + (" ERROR" if "error" in v else "")
                for k, v in m["configs"].items()
            )
            console.print(f"{m['model']}: {cells}")
        p = report["pipeline"]
        console.print(f"pipeline {recipe} at {fps:g} fps: {p}")
    console.print(f"wrote {path}")
    if strict and status != "measured":
        raise typer.Exit(3)


@bench_app.command("profile")
def bench_profile(
    model: Path = typer.Option(..., help="ONNX model (zoo file)"),
    json_out: Path = typer.Option(..., "--json", help="report JSON"),
    batch: int = typer.Option(32, min=1, help="batch size"),
    threads: int = typer.Option(2, min=1, help="threads for every engine"),
    runs: int = typer.Option(10, min=1, help="profiled calls (after 3 warm-up calls)"),
    engines: str = typer.Option("onnxruntime,pytorch,openvino", help="engines to profile"),
    checkpoint_dir: Path = typer.Option(
        None, help="<name>.pt or <name>/best.pt training checkpoints for PyTorch weights"
    ),
    top: int = typer.Option(12, min=1, help="operators listed per engine"),
) -> None:
    """Where one model's time goes: ms per operator and category on each engine, side by side."""
    from core.model_meta import ModelMetadataError
    from deploy.profile_ops import ENGINES, print_profile, run_profile

    chosen = tuple(e.strip() for e in engines.split(",") if e.strip())
    if not chosen or any(e not in ENGINES for e in chosen):
        fail(f"--engines must be a subset of {','.join(ENGINES)}")
    if not model.is_file():
        fail(f"model not found: {model}")
    with console.status(f"profiling {model.name} at batch {batch}"):
        try:
            report = run_profile(model, batch, threads, runs, chosen, checkpoint_dir)
        except (ModelMetadataError, ValueError) as exc:
            fail(f"{model}: {exc}")
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2))
    print_profile(report, console, top)
    console.print(f"wrote {json_out}")


@app.command("replay")
def replay_cmd(
    recipe: str = typer.Option(..., help="candidate recipe (name or YAML path)"),
    out: Path = typer.Option(Path("replay-report"), file_okay=False, help="report folder"),
    line: str = typer.Option("", help="only this line"),
    since: str = typer.Option("", help="captured at or after (ISO-8601, naive = UTC)"),
    until: str = typer.Option("", help="captured before (ISO-8601, naive = UTC)"),
    reviewed: bool = typer.Option(False, help="every QA-reviewed inspection"),
    limit: int = typer.Option(10_000, min=1, help="most inspections replayed"),
) -> None:
    """Re-inspect retained frames with a candidate recipe; write report.json + report.html."""

    from core.recipe import load_recipe
    from deploy.replay import ReplayQuery, write_report
    from deploy.replay import replay as do_replay
    from storage.db import get_engine
    from storage.images import ImageStore
    from storage.repository import InspectionRepository

    t0, t1 = _time_window(since, until)
    settings = load_settings()
    try:
        candidate = load_recipe(recipe, settings)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    engine = get_engine(settings)
    try:
        report = do_replay(
            InspectionRepository(engine), ImageStore.from_settings(settings), candidate,
            ReplayQuery(line or None, t0, t1, reviewed, limit), settings,
        )
    finally:
        engine.dispose()
    js, page = write_report(report, out)
    console.print(
        f"{report['replayed']} frames replayed ({len(report['skipped'])} skipped: image gone), "
        f"{len(report['flipped'])} flip; wrote {js} and {page}"
    )


# issue 21.3: promotion with a record, and the drift reference reset (deploy/promote_cli.py)
app.add_typer(_promote_cli.drift_app, name="drift")
app.command("promote")(_promote_cli.promote)
app.command("rollback")(_promote_cli.rollback)
app.command("recipe-history")(_promote_cli.recipe_history)


def main() -> None:
    """Entry point used by ``python -m deploy.cli``."""
    app(sys.argv[1:])


if __name__ == "__main__":
    main()
