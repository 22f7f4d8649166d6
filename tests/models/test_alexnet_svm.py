"""AlexNet-SPP + SSA-SVM OK/NG screen (``models.arch.alexnet_spp``, ``models.svm``).

Checks the composition, not accuracy: a tiny untrained network and an SVM fitted on synthetic
features are composed into one ONNX graph whose logits must match PyTorch features ->
scikit-learn. Parts that read KolektorSDD skip when ``../shared/datasets/ksdd`` is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")

from core.model_meta import REQUIRED, ModelMeta, read_meta, read_props  # noqa: E402
from models.arch import alexnet_spp  # noqa: E402
from models.arch import build as build_arch  # noqa: E402
from models.svm import compose as composer  # noqa: E402
from models.svm.localize import (  # noqa: E402
    box_iou,
    mask_to_boxes,
    prob_to_boxes,
    score_boxes,
    score_masks,
)
from models.svm.tune import cv_folds, make_objective, make_svm  # noqa: E402
from models.svm.views import average_views, flip_images  # noqa: E402

KSDD = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "ksdd"
needs_ksdd = pytest.mark.skipif(
    not (KSDD / "labels.csv").exists(), reason=f"KolektorSDD not found at {KSDD}"
)
SIZE = [128, 64]  # small input keeps the test fast; the network takes any size


def _realistic(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics from one training-mode batch, then eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 1, *SIZE, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def tiny() -> tuple:
    torch.manual_seed(0)
    net = _realistic(alexnet_spp.build(2, 1, "small"))
    x = torch.randn(24, 1, *SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        f = net.features(x).numpy()
    y = (f[:, :4].sum(1) > np.median(f[:, :4].sum(1))).astype(np.int64)
    pipe = make_svm(1.0, -7.0).fit(f, y)
    meta = ModelMeta("classify", ["ok", "defect"], SIZE, 1, [0.5], [0.2], "1.0.0", "t sha256:0")
    return net, pipe, meta, x, f


@pytest.mark.parametrize("variant", ["small", "full"])
@pytest.mark.parametrize("hw", [(227, 227), (512, 208)])
def test_features_are_256d(variant: str, hw: tuple[int, int]) -> None:
    net = build_arch("alexnet_spp", 2, 1, variant).eval()
    x = torch.randn(2, 1, *hw)
    with torch.no_grad():
        f = net.features(x)
        logits, aux = net.forward_train(x)
    assert f.shape == (2, alexnet_spp.FEATURE_DIM) == (2, 256)
    assert net(x).shape == logits.shape == (2, 2)
    assert aux.shape[:2] == (2, 1) and aux.shape[2] == -(-hw[0] // 16)
    assert (f >= 0).all()  # GAP of ReLU/max-pooled maps


def test_unknown_variant() -> None:
    with pytest.raises(ValueError):
        alexnet_spp.build(2, 1, "huge")


def test_composed_onnx_matches_torch_and_sklearn(tiny: tuple, tmp_path: Path) -> None:
    net, pipe, meta, x, f = tiny
    a, t = 1.7, -0.3
    path = tmp_path / "screen.onnx"
    composer.save(composer.compose(net, pipe, meta, a=a, b=-a * t), path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert sess.get_outputs()[0].name == "logits"
    got = np.concatenate(
        [sess.run(None, {"input": x[i : i + n].numpy()})[0] for i, n in ((0, 1), (1, 23))]
    )  # batch 1 and 23 from one file: dynamic N
    d = pipe.decision_function(f)
    z = a * (d - t)
    assert got.shape == (24, 2)
    assert np.abs(got - np.stack([-z / 2, z / 2], 1)).max() < 1e-3
    assert (got.argmax(1) == (d >= t)).all()
    # at a = 1, b = 0 the ONNX decision is exactly sklearn's predict
    composer.save(composer.compose(net, pipe, meta), path)
    got0 = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    assert (got0.argmax(1) == pipe.predict(f)).all()
    assert np.allclose(
        torch.softmax(torch.from_numpy(got0), 1)[:, 1], 1 / (1 + np.exp(-d)), atol=1e-4
    )


def test_flip_views_average_the_decision(tiny: tuple, tmp_path: Path) -> None:
    """With views baked in, the ONNX decision is the mean SVM decision over the flipped
    copies of each image, for any batch size (the views are stacked on the batch axis)."""
    net, pipe, meta, x, _ = tiny
    views = ("id", "h", "v", "hv")
    a, t = 1.3, -0.2
    path = tmp_path / "screen_views.onnx"
    composer.save(composer.compose(net, pipe, meta, a=a, b=-a * t, views=views), path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = np.concatenate(
        [sess.run(None, {"input": x[i : i + n].numpy()})[0] for i, n in ((0, 1), (1, 23))]
    )
    images = x[:, 0].numpy()
    with torch.no_grad():
        d = {
            v: pipe.decision_function(
                net.features(torch.from_numpy(flip_images(images, v)).unsqueeze(1)).numpy()
            )
            for v in views
        }
    z = a * (average_views(d, views) - t)
    assert got.shape == (24, 2)
    assert np.abs(got - np.stack([-z / 2, z / 2], 1)).max() < 1e-3
    assert np.abs(z - a * (d["id"] - t)).max() > 1e-2  # the views do change the decision
    assert read_props(path)["lineinspect.views"] == json.dumps(list(views))


def test_metadata_complete(tiny: tuple, tmp_path: Path) -> None:
    net, pipe, meta, _, _ = tiny
    path = tmp_path / "screen.onnx"
    composer.save(composer.compose(net, pipe, meta), path)
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert all("lineinspect." + k in props for k in REQUIRED)
    got = read_meta(path)
    assert got == meta
    assert got.task == "classify" and got.classes == ("ok", "defect") and got.channels == 1


def test_svm_objective_separable() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40, np.int64), np.ones(10, np.int64)]
    X = rng.standard_normal((50, 8)) + 4.0 * y[:, None]
    folds = cv_folds(y, np.arange(50), k=3)
    f = make_objective(X, y, folds)
    assert f(np.array([0.0, -3.0])) < 0.01  # separable: balanced accuracy 1
    assert f(np.array([-5.0, 3.0])) > f(np.array([0.0, -3.0]))


def test_boxes_and_scores() -> None:
    m = np.zeros((100, 50), np.uint8)
    m[10:20, 5:30] = 1
    m[60:62, 10:40] = 1
    assert mask_to_boxes(m) == [[5, 10, 25, 10], [10, 60, 30, 2]]
    assert mask_to_boxes(m, min_area=61) == [[5, 10, 25, 10]]  # the 2 x 30 box has 60 px
    assert box_iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(1 / 3)
    assert box_iou([0, 0, 10, 10], [20, 20, 5, 5]) == 0.0
    pred = np.zeros_like(m)
    pred[10:20, 5:25] = 1  # IoU 0.8 with the first box
    pred[90:95, 0:5] = 1  # false positive
    s = score_masks([pred], [m])
    assert s["box_recall@0.3"] == s["box_recall@0.5"] == 0.5
    assert s["box_precision@0.5"] == 0.5
    assert s["mean_iou"] == pytest.approx((0.8 + 0.0) / 2)
    # predicted mask at another resolution is resized (nearest) to the truth
    s2 = score_masks([pred[::2, ::2]], [m])
    assert s2["box_recall@0.3"] == 0.5
    # gaps closed into one box; scores are the max probability inside
    prob = np.zeros((20, 40), np.float32)
    prob[5, 2:10] = 0.9
    prob[5, 12:20] = 0.6
    assert len(prob_to_boxes(prob, 0.5)) == 2
    ((box, score),) = prob_to_boxes(prob, 0.5, close_px=2)
    assert box == [2, 5, 18, 1] and score == pytest.approx(0.9)
    empty = score_boxes([[]], [[[0, 0, 5, 5]]])
    assert empty["box_recall@0.5"] == 0.0 and empty["mean_iou"] == 0.0


@needs_ksdd
def test_ksdd_masks_and_boxes() -> None:
    from models.data import index_dataset
    from models.svm.features import load_mask

    index = index_dataset(KSDD)
    defective = [s for s in index.samples if s.label == 1][:3]
    assert defective and all(s.mask is not None for s in defective)
    import cv2

    for s in defective:
        h, w = cv2.imread(str(s.path), cv2.IMREAD_GRAYSCALE).shape
        m = load_mask(s, (h, w))  # masks can be a few rows shorter than the image
        assert m.shape == (h, w) and m.max() == 1
        boxes = mask_to_boxes(m)
        assert boxes and all(b[0] + b[2] <= w and b[1] + b[3] <= h for b in boxes)


@needs_ksdd
def test_evaluate_screen_on_ksdd_val(tiny: tuple, tmp_path: Path) -> None:
    from models.svm.evaluate_screen import evaluate_screen

    net, pipe, meta, _, _ = tiny
    path = tmp_path / "screen.onnx"
    composer.save(composer.compose(net, pipe, meta), path)
    r = evaluate_screen(path, KSDD, "val")
    assert r["images"] == r["n"] == sum(map(sum, r["confusion"])) > 0
    assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["recall_defective"] <= 1.0
    assert sum(r["confusion"][1]) > 0  # the validation split holds defective images


def test_training_loop_and_augmentations() -> None:
    from models.svm.features import (
        NetConfig,
        _augment,
        _paste,
        defect_patches,
        extract,
        train_net,
    )

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    imgs = rng.integers(100, 160, size=(8, 64, 32), dtype=np.uint8)
    masks = np.zeros_like(imgs)
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    for i in (6, 7):
        imgs[i, 30:33, 4:28] = 20  # a dark horizontal "crack"
        masks[i, 30:33, 4:28] = 1
    patches = defect_patches(imgs, masks, labels)
    assert len(patches) == 2 and patches[0][0].shape == patches[0][1].shape
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(imgs[:4]).unsqueeze(1).float() / 255
    m = torch.from_numpy(masks[:4]).unsqueeze(1).float()
    xp, mp, yp = _paste(x, m, torch.zeros(4, dtype=torch.long), patches, 1.0, g)
    assert (yp == 1).all() and (mp.flatten(1).amax(1) == 1).all()
    cfg = NetConfig(input_size=(64, 32), epochs=1, batch_size=4, shift=4)
    xa, ma = _augment(xp, mp, cfg, g)
    assert xa.shape == xp.shape and ma.shape == mp.shape
    assert 0 <= float(xa.min()) and float(xa.max()) <= 1 and set(ma.unique().tolist()) <= {0, 1}
    model, facts = train_net(imgs, masks, labels, cfg, [0.5], [0.2], log=False)
    assert len(facts["history"]) == 1 and not model.training
    feats, logits = extract(model, imgs, [0.5], [0.2])
    assert feats.shape == (8, 256) and logits.shape == (8, 2)


def test_threshold_rule() -> None:
    from models.svm.train_screen import NestedFolds, choose_threshold, recall_threshold

    y = np.array([0, 0, 0, 1, 1, 1])
    assert choose_threshold(np.array([-2.0, -1.5, -1.0, 0.5, 1.0, 2.0]), y) == 0.0  # all caught
    d = np.array([-2.0, -1.5, -1.0, -0.7, 1.0, 2.0])
    assert choose_threshold(d, y) == pytest.approx(-0.85)  # midpoint below the lowest defect
    assert recall_threshold(d, y) == pytest.approx(-0.85)
    # catching the last defect would cost too much accuracy: the floor wins, t stays higher
    y2 = np.array([0] * 30 + [1] * 10)
    d2 = np.r_[np.linspace(-3, -0.5, 30), -2.9, np.linspace(0.5, 2, 9)]
    t = choose_threshold(d2, y2, recall=0.99, accuracy_floor=0.97)
    assert np.mean((d2 >= t) == (y2 == 1)) >= 0.97 and -2.9 < t <= 0
    assert recall_threshold(d2, y2) < -2.9
    # nested folds: fold k is scored with fold net k's features
    feats = [np.full((6, 2), k, float) for k in range(2)]
    folds = [(np.array([0, 1, 3]), np.array([2, 4, 5])), (np.array([2, 4, 5]), np.array([0, 1, 3]))]
    nf = NestedFolds(feats, folds)
    assert nf.X.shape == (12, 2)
    assert [te.tolist() for _, te in nf.folds] == [[2, 4, 5], [6, 7, 9]]


def test_views_chosen_on_cv_not_validation() -> None:
    """The view set with the best out-of-fold AUC wins, ties go to fewer views, and the
    validation decisions are only reported."""
    from models.svm.train_screen import NestedFolds, choose_views

    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    noisy = np.array([-1.0, 0.4, -0.5, -0.8, 0.2, 1.0, -0.9, 0.8])  # AUC < 1
    clean = np.array([-1.0, -0.9, -0.8, -0.7, 0.6, 0.7, 0.8, 0.9])
    d_oof = {"id": noisy, "h": clean, "v": noisy, "hv": noisy}
    d_val = {"id": clean, "h": -clean, "v": clean, "hv": -clean}  # validation prefers "id"
    views, table = choose_views(d_oof, y, d_val, y)
    assert views == ("id", "h")
    assert [row["views"] for row in table] == [
        ["id"],
        ["id", "h"],
        ["id", "v"],
        ["id", "h", "v", "hv"],
    ]
    assert table[0]["val_auc"] == 1.0 and table[0]["cv_auc"] < 1.0
    # equal CV AUC everywhere: the single plain view is kept
    same = {v: clean for v in ("id", "h", "v", "hv")}
    assert choose_views(same, y, same, y)[0] == ("id",)
    # out-of-fold decisions per view: fold k's SVM, fitted on plain rows, scores each view
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(8, 3)) + y[:, None] * 2 for _ in range(2)]
    folds = [(np.arange(0, 8, 2), np.arange(1, 8, 2)), (np.arange(1, 8, 2), np.arange(0, 8, 2))]
    nf = NestedFolds(feats, folds)
    per_view = nf.oof_decision_views(y, 0.0, -2.0, {"id": nf.X, "h": nf.X * 0.5})
    assert np.allclose(per_view["id"], nf.oof_decision(y, 0.0, -2.0))
    assert not np.allclose(per_view["h"], per_view["id"])


@needs_ksdd
def test_lineinspect_evaluate_routes_the_screen(tiny: tuple, tmp_path: Path) -> None:
    """``models.evaluate.evaluate`` (the CLI's) scores an ok/defect screen on the ksdd layout."""
    from models.evaluate import evaluate
    from models.svm.evaluate_screen import evaluate_screen

    net, pipe, meta, _, _ = tiny
    path = tmp_path / "screen.onnx"
    composer.save(composer.compose(net, pipe, meta), path)
    got = evaluate(path, KSDD, "val", out_dir=tmp_path / "ev")
    ref = evaluate_screen(path, KSDD, "val")
    assert got["confusion"] == ref["confusion"] and got["accuracy"] == ref["accuracy"]
    assert (tmp_path / "ev" / "evaluation.json").exists()
    assert (tmp_path / "ev" / "confusion.png").exists()


ZOO_DIR = Path(__file__).resolve().parents[2] / "models" / "zoo"


@pytest.mark.parametrize("name", ["alexnet_svm", "alexnet_svm_fast"])
def test_zoo_screen_metadata_and_real_size_frame(name: str) -> None:
    """The released screens carry the artifact metadata and run on a 500 x 1247 gray frame."""
    from core.preprocess import preprocess

    path = ZOO_DIR / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} not released yet")
    meta = read_meta(path)
    assert meta.task == "classify" and meta.classes == ("ok", "defect")
    assert meta.channels == 1 and len(meta.input_size) == 2
    assert meta.version and meta.dataset.startswith("ksdd sha256:")
    if (KSDD / "images").is_dir():
        import cv2

        img = cv2.imread(str(sorted((KSDD / "images").iterdir())[0]), cv2.IMREAD_GRAYSCALE)
    else:
        img = np.random.default_rng(0).integers(0, 256, (1247, 500), dtype=np.uint8)
    assert img.shape[1] == 500 and img.shape[0] > 1200
    x = preprocess([img, img[::-1]], 1, meta.input_size, meta.mean, meta.std)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert logits.shape == (2, 2) and np.isfinite(logits).all()
    assert np.allclose(logits[:, 0], -logits[:, 1], atol=1e-4)  # [-z/2, z/2]


def test_screen_errors_name_misses_and_false_alarms() -> None:
    from models.svm.evaluate_screen import screen_errors

    names = ["ok_hit", "ok_alarm", "bad_hit", "bad_missed"]
    errors = screen_errors(names, np.array([0, 0, 1, 1]), np.array([0, 1, 1, 0]))
    assert errors == {"missed_defective": ["bad_missed"], "false_alarms": ["ok_alarm"]}
