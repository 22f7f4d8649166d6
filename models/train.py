"""Training of the zoo networks (``lineinspect train classify|segment``).

The data set is small enough to hold in memory at the input size; augmentation runs on the
batch tensor (flips, 90-degree rotations for square inputs, brightness scale, Gaussian noise,
as the papers use). AdamW with linear warm-up and cosine decay, class-balanced cross-entropy,
an exponential moving average (EMA) of the weights that is what gets evaluated and exported,
checkpoint every epoch (``last.pt``) and at the best validation score (``best.pt``), resume
with ``--resume``, fine-tune from another run's checkpoint with ``--init-from`` and add QA's
reviewed frames (``lineinspect export-reviews``) to the training split with ``--extra-data``.
Mixed precision (fp16 autocast + GradScaler) on CUDA only.

Outputs in ``--out``: ``best.pt``, ``last.pt``, ``metrics.json``, ``history.json``,
``curves.png`` and ``confusion.png`` (classify) or ``iou.png`` + ``overlays.png`` (segment).
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from core.preprocess import resize_to, to_channels
from models import arch as arch_registry
from models.arch.efficientnet_lite import freeze_encoder
from models.data import (
    DatasetIndex,
    Sample,
    assign_groups,
    grouped_split,
    index_dataset,
    read_gray_or_rgb,
)
from models.distill import check_teacher, distill_loss, teacher_targets
from models.lovasz import lovasz_softmax
from models.metrics import classification_metrics, segmentation_metrics

#: ``--overlap-loss`` choices: the term beside the segmentation cross-entropy
OVERLAP_LOSSES = ("dice", "lovasz")


@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in every checkpoint)."""

    task: str
    arch: str
    data: str
    out: str
    variant: str = "small"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    input_size: list[int] = field(default_factory=lambda: [128, 128])
    channels: int = 1
    seed: int = 0
    val_fraction: float = 0.2
    label_smoothing: float = 0.1
    ema_decay: float = 0.995
    threads: int = 0
    augment: bool = True
    max_minutes: float = 0.0
    #: validation metric that picks the best checkpoint: accuracy, macro_f1 or miou
    select_metric: str = "accuracy"
    #: segment only: train/validate on tiles of this many frame px (0 = whole image resized)
    tile: int = 0
    #: segment only: repeat foreground tiles until they are this fraction of training tiles
    positive_fraction: float = 0.0
    #: segment with positive_fraction: count only tiles holding this class ("" = any defect)
    positive_class: str = ""
    #: classify on a tile set: the frames it was cut from (images/, masks/, classes.json)
    source: str = ""
    #: classify: extra random tiles cut per training frame of ``source`` (0 = none)
    source_crops: int = 0
    #: a ``lineinspect export-reviews`` folder whose frames join the training split only
    #: (:mod:`models.review_data`)
    extra_data: str = ""
    #: checkpoint (``best.pt``/``last.pt`` of the same architecture and classes) whose EMA
    #: weights and input normalisation the run starts from (fine-tuning)
    init_from: str = ""
    #: lite* variants: stem + this many of the encoder's first stages frozen (0 = none)
    freeze_stages: int = 0
    #: loss weight of a class = (largest class count / its count) ** this (0 = all equal)
    class_weight_power: float = 0.5
    #: segment only: train on random square crops of this many px of the input-size images
    #: (0 = whole images); validation and the exported file see the whole input size, so an
    #: input larger than the data's own size costs the training run no more per step
    train_crop: int = 0
    #: segment only: a released ONNX segmenter of the same classes and input whose averaged
    #: D4 probabilities on the training images the run also learns (:mod:`models.distill`)
    distill_from: str = ""
    #: weight of the KL term towards ``distill_from``'s probabilities, beside the label loss
    distill_weight: float = 1.0
    #: segment only: the region-overlap term beside the cross-entropy: "dice" (soft Dice) or
    #: "lovasz" (Lovász-softmax, a surrogate of the IoU itself; :mod:`models.lovasz`)
    overlap_loss: str = "dice"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_split(cfg: TrainConfig, index: DatasetIndex) -> tuple[list[Sample], list[Sample]]:
    """Grouped, stratified train/validation split of the data set (deterministic)."""
    assign_groups(index, cache_dir=Path(cfg.out).parent / "cache")
    return grouped_split(index, cfg.val_fraction, cfg.seed)


def _load_images(samples: list[Sample], cfg: TrainConfig, task: str) -> tuple[np.ndarray, ...]:
    """Images resized to the input size (uint8 N,H,W,C) and labels or masks.

    With ``cfg.tile`` (segment only) every image contributes its tiles instead
    (:func:`models.tiles.cut_tiles`).
    """
    if cfg.tile:
        return _load_tiles(samples, cfg)
    imgs, targets = [], []
    for s in tqdm(samples, desc="loading", leave=False):
        img = resize_to(
            to_channels(read_gray_or_rgb(s.path, cfg.channels), cfg.channels), cfg.input_size
        )
        imgs.append(img if img.ndim == 3 else img[..., None])
        if task == "segment":
            targets.append(_load_mask(s, cfg.input_size))
        else:
            targets.append(s.label)
    return np.stack(imgs), np.asarray(targets) if task == "classify" else np.stack(targets)


def _load_tiles(samples: list[Sample], cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    from models.tiles import cut_tiles

    imgs, masks = [], []
    for s in tqdm(samples, desc="tiling", leave=False):
        img = to_channels(read_gray_or_rgb(s.path, cfg.channels), cfg.channels)
        ti, tm = cut_tiles(img, _load_mask(s, list(img.shape[:2])), cfg.tile, cfg.input_size)
        imgs.extend(t if t.ndim == 3 else t[..., None] for t in ti)
        masks.extend(tm)
    return np.stack(imgs), np.stack(masks)


def _add_source_crops(
    cfg: TrainConfig, train_s: list[Sample], classes: list[str], x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Training tiles plus random tiles from their source frames (:mod:`models.source_crops`)."""
    from models.source_crops import source_crops

    if cfg.task != "classify" or not cfg.source:
        raise ValueError("--source-crops needs a classification tile set and --source")
    tile = read_gray_or_rgb(train_s[0].path, 1).shape[0]
    xs, ys = source_crops(
        train_s, Path(cfg.source), classes, tile, cfg.input_size, cfg.source_crops,
        seed=cfg.seed, channels=cfg.channels,
    )
    tqdm.write(f"source crops: {len(xs)} ({np.bincount(ys, minlength=len(classes)).tolist()})")
    return np.concatenate([x, xs]), np.concatenate([y, ys])


def _add_extra_data(
    cfg: TrainConfig, classes: list[str], x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Training examples plus those of the review export ``cfg.extra_data``
    (:func:`models.review_data.load_extra`); ValueError when none is usable."""
    from models.review_data import load_extra

    extra = load_extra(Path(cfg.extra_data), classes, cfg)
    for skip in extra.skipped:
        tqdm.write(f"extra data: inspection {skip['inspection_id']} skipped: {skip['reason']}")
    if not len(extra.images):
        raise ValueError(f"{cfg.extra_data}: no usable item for this {cfg.task} set "
                         f"({len(extra.skipped)} skipped)")
    if extra.images.shape[1:] != x.shape[1:]:
        raise ValueError(f"{cfg.extra_data}: examples of shape {extra.images.shape[1:]}, the "
                         f"training set's are {x.shape[1:]}")
    tqdm.write(f"extra data: {len(extra.images)} training examples from {extra.used} reviews")
    return (np.concatenate([x, extra.images]),
            np.concatenate([y, extra.targets.astype(y.dtype)]), extra.summary())


def _init_from(
    cfg: TrainConfig, model: torch.nn.Module, classes: list[str], device: torch.device
) -> tuple[list, list]:
    """Load the EMA weights of checkpoint ``cfg.init_from`` into ``model``; its input mean and
    std. ValueError when it is another architecture or has other classes."""
    ck = torch.load(cfg.init_from, map_location=device, weights_only=False)
    arch = ck.get("config", {}).get("arch")
    if arch != cfg.arch or ck.get("classes") != classes:
        raise ValueError(f"{cfg.init_from}: a {arch} checkpoint of classes {ck.get('classes')}, "
                         f"not {cfg.arch} of {classes}")
    model.load_state_dict(ck["ema"])
    return ck["mean"], ck["std"]


def _load_mask(s: Sample, size: list[int]) -> np.ndarray:
    """Class-indexed mask at ``size`` (nearest); KolektorSDD's 255 becomes class 1."""
    if s.mask is None:
        return np.zeros(size, np.uint8)
    import cv2

    m = cv2.imread(str(s.mask), cv2.IMREAD_GRAYSCALE)
    m = np.where(m == 255, 1, m) if m.max() == 255 else m
    return cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def _augment(
    x: torch.Tensor, y: torch.Tensor | None, square: bool, soft: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Batch augmentation: flips, 90-degree rotations, brightness 0.7-1.3, Gaussian noise.

    The NHW mask ``y`` and the NCHW teacher probabilities ``soft`` (when given) get the same
    flips and rotation as the images."""
    flip_w = random.random() < 0.5
    flip_h = random.random() < 0.5
    rotate = square and random.random() < 0.5

    def geometric(t: torch.Tensor) -> torch.Tensor:  # NCHW
        t = t.flip(3) if flip_w else t
        t = t.flip(2) if flip_h else t
        return t.rot90(1, (2, 3)) if rotate else t

    x = geometric(x)
    y = geometric(y.unsqueeze(1)).squeeze(1) if y is not None else None
    soft = geometric(soft) if soft is not None else None
    n = x.shape[0]
    scale = torch.empty(n, 1, 1, 1).uniform_(0.7, 1.3)
    x = (x * scale).clamp(0, 1)
    noisy = (torch.rand(n, 1, 1, 1) < 0.3).float()
    x = (x + noisy * torch.randn_like(x) * 0.02).clamp(0, 1)
    return x, y, soft


def random_crops(x: torch.Tensor, y: torch.Tensor, size: int) -> tuple[torch.Tensor, ...]:
    """One random ``size`` x ``size`` window per image of NCHW ``x`` and its NHW mask ``y``."""
    h, w = x.shape[2:]
    if size > min(h, w):
        raise ValueError(f"crop {size} px is larger than the {h}x{w} input")
    tops = torch.randint(0, h - size + 1, (len(x),)).tolist()
    lefts = torch.randint(0, w - size + 1, (len(x),)).tolist()
    windows = list(zip(tops, lefts, strict=True))
    xs = [xi[:, t : t + size, c : c + size] for xi, (t, c) in zip(x, windows, strict=True)]
    ys = [yi[t : t + size, c : c + size] for yi, (t, c) in zip(y, windows, strict=True)]
    return torch.stack(xs), torch.stack(ys)


class Ema:
    """Exponential moving average of the model weights (evaluated and exported)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval()
        self.decay = decay
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for e, m in zip(self.model.state_dict().values(), model.state_dict().values(), strict=True):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(m.detach(), alpha=1 - d)
            else:
                e.copy_(m)


def class_weights(labels: np.ndarray, num_classes: int, power: float) -> torch.Tensor:
    """Cross-entropy weight per class, ``(largest count / count) ** power``, mean 1.

    ``labels`` are class indexes (images or mask pixels); 0.5 damps the rare classes' pull,
    0 weighs every class alike (fewer false alarms from a segmenter, docs/DECISIONS.md)."""
    counts = np.bincount(labels.ravel(), minlength=num_classes).astype(np.float64) + 1.0
    w = (counts.max() / counts) ** power
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def _to_tensor(imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def predict(
    model: torch.nn.Module, x01: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, bs: int = 64
) -> torch.Tensor:
    """Logits for a [0,1]-scaled NCHW tensor, normalised with mean/std, in batches."""
    model.eval()
    outs = [model((x01[i : i + bs] - mean) / std) for i in range(0, len(x01), bs)]
    return torch.cat(outs)


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Train one network; returns the final metrics dict (also written to ``metrics.json``)."""
    out = Path(cfg.out)
    _seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    index = index_dataset(Path(cfg.data))
    if index.task != cfg.task:
        raise ValueError(f"{cfg.data} is a {index.task} data set, not {cfg.task}")
    if (cfg.tile or cfg.positive_fraction) and cfg.task != "segment":
        raise ValueError("--tile and --positive-fraction are for segmentation only")
    if cfg.train_crop and (cfg.task != "segment" or not 0 < cfg.train_crop <= min(cfg.input_size)):
        raise ValueError(f"--train-crop is for segmentation and must be in "
                         f"1..{min(cfg.input_size)} (the input size)")
    if cfg.distill_from:
        if cfg.task != "segment" or cfg.train_crop:
            raise ValueError("--distill-from is for segmentation on whole input-size images "
                             "(not with --train-crop)")
        check_teacher(Path(cfg.distill_from), index.classes, cfg.input_size, cfg.channels)
    if cfg.distill_weight <= 0 or (cfg.distill_weight != 1.0 and not cfg.distill_from):
        raise ValueError("--distill-weight must be above 0 and needs --distill-from")
    if cfg.overlap_loss not in OVERLAP_LOSSES or (cfg.overlap_loss != "dice"
                                                  and cfg.task != "segment"):
        raise ValueError(f"--overlap-loss must be one of {', '.join(OVERLAP_LOSSES)} and is "
                         "for segmentation only")
    positive_id = _class_id(index.classes, cfg.positive_class)
    out.mkdir(parents=True, exist_ok=True)  # after the checks: a refused run leaves nothing
    train_s, val_s = load_split(cfg, index)
    xtr, ytr = _load_images(train_s, cfg, cfg.task)
    xva, yva = _load_images(val_s, cfg, cfg.task)
    if cfg.source_crops:
        xtr, ytr = _add_source_crops(cfg, train_s, index.classes, xtr, ytr)
    extra: dict = {}
    if cfg.extra_data:
        xtr, ytr, extra = _add_extra_data(cfg, index.classes, xtr, ytr)
    soft_tr = (teacher_targets(Path(cfg.distill_from), xtr, index.classes, cfg.input_size,
                               cfg.channels, cfg.threads) if cfg.distill_from else None)
    if cfg.positive_fraction:  # repeats tiles: their teacher targets are computed once
        from models.tiles import oversample_positive

        keep = oversample_positive(ytr, cfg.positive_fraction, positive_id)
        xtr, ytr = xtr[keep], ytr[keep]
        soft_tr = soft_tr[torch.from_numpy(keep)] if soft_tr is not None else None
    num_classes = len(index.classes)
    model = arch_registry.build(cfg.arch, num_classes, cfg.channels, cfg.variant).to(device)
    if cfg.init_from:
        mean, std = _init_from(cfg, model, index.classes, device)
    else:
        mean, std = _input_norm(model, xtr, cfg.channels)
    if cfg.freeze_stages:
        frozen = freeze_encoder(model, cfg.freeze_stages)
        tqdm.write(f"frozen: stem + {cfg.freeze_stages} encoder stages ({frozen:,} parameters)")
    ema = Ema(model, cfg.ema_decay)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, len(xtr) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def lr_at(step: int) -> float:
        if step < warm:
            return cfg.lr * (step + 1) / warm
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    weights = class_weights(ytr, num_classes, cfg.class_weight_power).to(device)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    m_t = torch.tensor(mean).view(1, -1, 1, 1).to(device)
    s_t = torch.tensor(std).view(1, -1, 1, 1).to(device)
    xtr_t, xva_t = _to_tensor(xtr), _to_tensor(xva)
    ytr_t = torch.from_numpy(ytr).long()
    square = cfg.input_size[0] == cfg.input_size[1]
    history: list[dict] = []
    start_epoch, step, best = 0, 0, -1.0
    if resume and (out / "last.pt").exists():
        ck = torch.load(out / "last.pt", map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        ema.model.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        start_epoch, step, best, history = ck["epoch"] + 1, ck["step"], ck["best"], ck["history"]
    t0 = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        perm = torch.randperm(len(xtr_t))
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"{cfg.arch} epoch {epoch + 1}/{cfg.epochs}")
        for b in bar:
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x, y = xtr_t[idx], ytr_t[idx]
            soft = soft_tr[idx] if soft_tr is not None else None
            if cfg.augment:
                x, yy, soft = _augment(x, y if cfg.task == "segment" else None, square, soft)
                y = yy if cfg.task == "segment" else y
            if cfg.train_crop:
                x, y = random_crops(x, y, cfg.train_crop)
            x, y = ((x.to(device) - m_t) / s_t), y.to(device)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                logits = model(x)
                loss = _loss(cfg, logits, y, weights)
                if soft is not None:
                    loss = loss + cfg.distill_weight * distill_loss(logits, soft.to(device))
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(trainable, 5.0)
            scaler.step(opt)
            scaler.update()
            ema.update(model, step)
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses):.3f}", lr=f"{lr_at(step):.2e}")
        metrics = _validate(cfg, ema.model, xva_t, yva, m_t, s_t, index.classes)
        score = metrics["score"]
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), **_scalars(metrics)})
        tqdm.write(f"epoch {epoch + 1}: loss {np.mean(losses):.4f} val {score:.4f}")
        ck = {
            "config": asdict(cfg),
            "classes": index.classes,
            "mean": mean,
            "std": std,
            "dataset": index.fingerprint(),
            "model": model.state_dict(),
            "ema": ema.model.state_dict(),
            "opt": opt.state_dict(),
            "epoch": epoch,
            "step": step,
            "best": max(best, score),
            "history": history,
            "metrics": metrics,
            "split": {**_split_sizes(cfg, train_s, val_s, len(xtr), len(xva)), **extra},
        }
        if score > best:
            best = score
            torch.save(ck, out / "best.pt")
        torch.save(ck, out / "last.pt")
        if cfg.max_minutes and (time.time() - t0) / 60 > cfg.max_minutes:
            tqdm.write(f"stopping after {epoch + 1} epochs: --max-minutes {cfg.max_minutes}")
            break
    best_ck = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    final = {
        **best_ck["metrics"],
        "epoch": best_ck["epoch"] + 1,
        "wall_s": round(time.time() - t0, 1),
        "split": best_ck["split"],
        "device": str(device),
        "config": asdict(cfg),
    }
    (out / "metrics.json").write_text(json.dumps(final, indent=2))
    (out / "history.json").write_text(json.dumps(history, indent=2))
    from models import plots

    plots.training_curves(history, out / "curves.png")
    if cfg.task == "classify":
        plots.confusion_matrix(np.asarray(final["confusion"]), index.classes, out / "confusion.png")
    else:
        plots.iou_bars(final["per_class_iou"], out / "iou.png")
        ema_model = arch_registry.build(cfg.arch, num_classes, cfg.channels, cfg.variant)
        ema_model.load_state_dict(best_ck["ema"])
        show = np.argsort(-(yva.reshape(len(yva), -1) > 0).mean(1), kind="stable")[:6]
        pred = predict(ema_model, xva_t[show], m_t.cpu(), s_t.cpu()).argmax(1).numpy()
        plots.segmentation_overlays(xva[show], yva[show], pred, out / "overlays.png")
    return final


def _class_id(classes: list[str], name: str) -> int | None:
    """Index of the foreground class ``name`` (None for ""); ValueError for any other name."""
    if not name:
        return None
    if name not in classes[1:]:
        raise ValueError(f"--positive-class {name!r} is not a defect class of this data set "
                         f"({', '.join(classes[1:])})")
    return classes.index(name)


def _input_norm(model: torch.nn.Module, x: np.ndarray, channels: int) -> tuple[list, list]:
    """Mean/std of pixel/255: a pretrained encoder's own (``model.input_norm``), else the data's."""
    if hasattr(model, "input_norm"):
        m, s = model.input_norm
        return [round(m, 4)] * channels, [round(s, 4)] * channels
    mean = (x.reshape(-1, channels).mean(0) / 255.0).round(4).tolist()
    std = (x.reshape(-1, channels).std(0) / 255.0).round(4).tolist()
    return mean, std


def _loss(cfg: TrainConfig, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if cfg.task == "classify":
        return F.cross_entropy(logits, y, weight=w, label_smoothing=cfg.label_smoothing)
    ce = F.cross_entropy(logits, y, weight=w)
    probs = logits.float().softmax(1)
    if cfg.overlap_loss == "lovasz":
        return ce + lovasz_softmax(probs, y)
    onehot = F.one_hot(y, logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    dice = 1 - ((2 * inter + 1) / (denom + 1)).mean()
    return ce + dice


def _validate(
    cfg: TrainConfig,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: np.ndarray,
    mean: torch.Tensor,
    std: torch.Tensor,
    classes: list[str],
) -> dict:
    device = mean.device
    logits = (
        torch.cat(
            [predict(model, x[i : i + 64].to(device), mean, std) for i in range(0, len(x), 64)]
        )
        .float()
        .cpu()
    )
    if cfg.task == "classify":
        m = classification_metrics(y, logits.argmax(1).numpy(), classes)
    else:
        m = segmentation_metrics(y, logits.argmax(1).numpy().astype(np.uint8), classes)
    m["score"] = m[cfg.select_metric]
    return m


def _split_sizes(cfg: TrainConfig, train_s: list, val_s: list, n_tr: int, n_va: int) -> dict:
    sizes = {"train": len(train_s), "val": len(val_s)}
    if cfg.tile:  # tiles actually trained/validated on (train after positive oversampling)
        sizes.update({"train_tiles": n_tr, "val_tiles": n_va})
    return sizes


def _scalars(m: dict) -> dict:
    return {k: v for k, v in m.items() if isinstance(v, int | float)}
