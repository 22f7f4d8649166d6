"""One ONNX graph: AlexNet-SPP features -> StandardScaler -> RBF SVM -> OK/NG logits.

* The feature network (:class:`models.arch.alexnet_spp.FeatureExtractor`) is exported with the
  TorchScript exporter (opset 17, dynamic batch): ``input [N, C, H, W] -> features [N, 256]``.
* The scikit-learn ``StandardScaler + SVC`` pipeline is converted by skl2onnx (``Scaler`` and
  ``SVMClassifier`` of the ``ai.onnx.ml`` domain, which onnxruntime's CPU provider runs); its
  score output holds the SVM decision value ``d`` (``d > 0`` = defect) in one column and
  ``-d`` in the other -- which column is which is read off by comparison with
  ``decision_function`` at composition time rather than assumed.
* The two are joined with :func:`onnx.compose.merge_models` and two elementwise nodes turn the
  scores into ``logits = [-z / 2, z / 2]`` with ``z = a * d + b``: ``softmax(logits)[1] =
  sigmoid(z)``. ``a, b`` are a Platt (logistic) fit of the labels on out-of-fold decision
  values, shifted so that ``z = 0`` sits at the chosen screen threshold; argmax of the logits is
  therefore the service's OK/NG decision and softmax a calibrated-ish defect score.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.pipeline import Pipeline

from core.model_meta import ModelMeta
from inference.backends.onnxruntime import create_session
from models.arch.alexnet_spp import FEATURE_DIM, AlexNetSPP, FeatureExtractor
from models.svm.views import add_view_average

OPSET = 17
ML_OPSET = 3


def export_features(net: AlexNetSPP, channels: int, input_size: list[int]) -> onnx.ModelProto:
    """TorchScript export of ``net.features`` (``input`` -> ``features``), dynamic batch."""
    import io

    buf = io.BytesIO()
    x = torch.zeros(2, channels, *input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            FeatureExtractor(net).eval(),
            (x,),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["features"],
            dynamic_axes={"input": {0: "N"}, "features": {0: "N"}},
        )
    return onnx.load_from_string(buf.getvalue())


def convert_svm(pipe: Pipeline) -> tuple[onnx.ModelProto, int, float]:
    """skl2onnx graph ``features -> scores``; returns it with the column of ``d`` and its sign."""
    svc = pipe.steps[-1][1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = to_onnx(
            pipe,
            initial_types=[("features", FloatTensorType([None, FEATURE_DIM]))],
            options={id(svc): {"zipmap": False}},
            target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        )
    scores_name = model.graph.output[1].name
    scaler = pipe.steps[0][1]
    rng = np.random.default_rng(0)
    probe = np.concatenate(
        [
            scaler.inverse_transform(svc.support_vectors_[:8]),
            scaler.mean_ + scaler.scale_ * rng.standard_normal((8, len(scaler.mean_))),
        ]
    ).astype(np.float32)
    sess = create_session(model.SerializeToString(), providers="CPUExecutionProvider")
    scores = sess.run([scores_name], {"features": probe})[0]
    ref = pipe.decision_function(probe)
    errs = {
        (col, sign): float(
            max(
                np.abs(sign * scores[:, col] - ref).max(),
                np.abs(sign * scores[:, 1 - col] + ref).max(),
            )
        )
        for col in (0, 1)
        for sign in (1.0, -1.0)
    }
    (col, sign), err = min(errs.items(), key=lambda kv: kv[1])
    if err > 1e-3 * max(1.0, float(np.abs(ref).max())):
        raise RuntimeError(f"skl2onnx SVM scores do not match decision_function ({err:.2e})")
    return model, col, sign


def compose(
    net: AlexNetSPP,
    pipe: Pipeline,
    meta: ModelMeta,
    a: float = 1.0,
    b: float = 0.0,
    views: Sequence[str] = ("id",),
) -> onnx.ModelProto:
    """Feature network + scaler/SVM + ``logits = [-z/2, z/2]``, ``z = a d + b``, with metadata;
    ``d`` is averaged over the flip ``views`` of each frame (:mod:`models.svm.views`)."""
    feat = export_features(net, meta.channels, meta.input_size)
    svm, col, sign = convert_svm(pipe)
    ir = max(feat.ir_version, svm.ir_version)
    feat.ir_version = svm.ir_version = ir
    svm = onnx.compose.add_prefix(svm, "svm_")
    scores = svm.graph.output[1].name
    merged = onnx.compose.merge_models(
        feat, svm, io_map=[("features", svm.graph.input[0].name)], outputs=[scores]
    )
    scores = add_view_average(merged.graph, merged.graph.input[0].name, scores, views)
    # scores[:, j] = s_j * d with s_col = sign, s_other = -sign (checked in convert_svm); with
    # logits = scores * k + c: -z/2 = k0 s0 d - b/2 and z/2 = k1 s1 d + b/2 -> k0 = k1 = -a s0 / 2
    s0 = sign if col == 0 else -sign
    k = np.full(2, -a * s0 / 2, np.float32)
    c = np.array([-b / 2, b / 2], np.float32)
    g = merged.graph
    g.initializer.extend(
        [
            numpy_helper.from_array(k.reshape(1, 2), "logit_scale"),
            numpy_helper.from_array(c.reshape(1, 2), "logit_shift"),
        ]
    )
    g.node.extend(
        [
            helper.make_node("Mul", [scores, "logit_scale"], ["logits_scaled"], name="logit_mul"),
            helper.make_node("Add", ["logits_scaled", "logit_shift"], ["logits"], name="logit_add"),
        ]
    )
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])])
    opsets = {(o.domain, o.version) for o in merged.opset_import}
    del merged.opset_import[:]
    merged.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(opsets))
    merged.graph.name = "alexnet_svm"
    for key, value in meta.to_props().items():
        merged.metadata_props.add(key=key, value=value)
    merged.metadata_props.add(key="lineinspect.views", value=json.dumps(list(views)))
    onnx.checker.check_model(merged)
    return merged


def save(model: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
