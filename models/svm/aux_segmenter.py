"""Export the screen network's auxiliary defect map as a small segmenter (localisation option).

AlexNet-SPP is trained with an auxiliary 1x1-conv defect map on its SPP output (stride 16,
supervised by the KolektorSDD masks; :mod:`models.arch.alexnet_spp`, choice 5). This module
exports that map as a *segment* model artifact (docs/CONTRACT.md): ``input [N, 1, H, W] -> logits
[N, 2, H, W]`` (classes ``["background", "defect"]``, ``logits = [-z/2, z/2]`` with ``z`` the
bilinearly upsampled map logit, so softmax[1] = sigmoid(z)). Boxes are the connected
components of its mask (:mod:`models.svm.localize`), exactly as for a trained segmenter.

    python -m models.svm.aux_segmenter --run /work/runs/alexnet_svm --out /tmp/aux.onnx

It is a localisation baseline that costs no extra training: a 16-pixel map cannot draw
thin-crack outlines, so its IoU is limited by construction; compare it with the segmenter by
box recall / IoU (:mod:`models.svm.cascade`).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import onnx
import torch
import torch.nn.functional as F
from torch import nn

from core.model_meta import ModelMeta
from models.arch.alexnet_spp import AlexNetSPP, build

OPSET = 17


class AuxSegmenter(nn.Module):
    """``net``'s auxiliary defect map as 2-class logits at the input resolution."""

    def __init__(self, net: AlexNetSPP) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net.aux(self.net.feature_map(x))
        z = F.interpolate(z, size=(x.shape[2], x.shape[3]), mode="bilinear", align_corners=False)
        return torch.cat([-z / 2, z / 2], 1)


def export(net: AlexNetSPP, meta: ModelMeta, path: Path) -> None:
    """TorchScript export (dynamic N, fixed H, W) with ``meta`` as ``metadata_props``."""
    x = torch.zeros(2, meta.channels, *meta.input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            AuxSegmenter(net).eval(),
            (x,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        )
    model = onnx.load(str(path))
    for k, v in meta.to_props().items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="train_screen output folder")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    facts = json.loads((args.run / "card_facts.json").read_text())
    size = "x".join(str(v) for v in json.loads(facts["meta"]["lineinspect.input_size"]))
    (ck_path,) = sorted((args.run / "nets").glob(f"final_{size}_*.pt"))
    ck = torch.load(ck_path, map_location="cpu", weights_only=False)
    net = build(2, 1, ck["config"]["variant"])
    net.load_state_dict(ck["state"])
    props = facts["meta"]
    meta = ModelMeta.from_props(
        {**props, "lineinspect.task": "segment", "lineinspect.classes": '["background", "defect"]'}
    )
    export(net.eval(), meta, args.out)


if __name__ == "__main__":
    main()
