"""Model card ``models/zoo/alexnet_svm.md`` from the measured run facts.

    python -m models.svm.card --run models/zoo --facts alexnet_svm.json \
        --notes alexnet_svm.notes.json --cascade ../../docs/perf/commutator_cascade.json \
        --out models/zoo/alexnet_svm.md

Reads the facts of a :mod:`models.svm.train_screen` run (its ``card_facts.json``; the released
copy is ``models/zoo/alexnet_svm.json``; its ``--compare-sizes`` runs become the input-size
table) and, when present, the cascade figures (:mod:`models.svm.cascade`). Free-text sections
that need judgement (decisions, limits) come from a notes file (``{"decisions": [...],
"limits": [...], "localisation": [...]}``) so that every number in the card comes from a file a
run wrote; ``tests/models/test_svm_card.py`` checks the released card against a re-render.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.card import LICENCES, _cm_table


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _m(m: dict) -> str:
    return (
        f"accuracy {m['accuracy']:.4f}, recall (defective) {m['recall_defective']:.4f}, "
        f"precision {m['precision_defective']:.4f}, confusion {m['confusion']}"
    )


def _errors(errors: dict) -> str:
    """Image names behind an out-of-fold confusion."""
    missed = ", ".join(errors["missed_defective"]) or "none"
    return f"; missed: {missed}; false alarms: {', '.join(errors['false_alarms']) or 'none'}"


def _views_section(views: dict | None) -> list[str]:
    """Flip-view (test-time averaging) comparison on the out-of-fold CV, if recorded."""
    if not views:
        return []
    rows = [
        f"| {'+'.join(c['views'])} | {c['cv_auc']} | {c['val_auc']} | "
        f"{c['cv_at_0']['accuracy']:.4f} / {c['cv_at_0']['recall_defective']:.4f} | "
        f"{c['val_at_0']['accuracy']:.4f} / {c['val_at_0']['recall_defective']:.4f} |"
        for c in views["candidates"]
    ]
    return [
        "## Flip views (decision averaged over mirrored copies of the frame)",
        f"Rule: {views['rule']}. Chosen: `{'+'.join(views['chosen'])}`; the graph runs the "
        "feature network once per view, so its cost per frame grows with the number of views.",
        "",
        "| views | CV ROC AUC | val ROC AUC | CV acc/recall at d>=0 | val acc/recall at d>=0 |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def _size_experiment(decision: dict | None) -> list[str]:
    """Input sizes trained with the full protocol (``--compare-sizes``), if more than one."""
    if not decision or len(decision.get("experiment", {})) < 2:
        return []
    rows = []
    for size, v in decision["experiment"].items():
        cv, val = v["cv_svm_at_0"], v["val_svm_at_0"]
        rows.append(
            f"| {size} | {v['roc_auc_by_views']['id']['cv']} | {v['cv_balanced_accuracy']:.4f} | "
            f"{cv['accuracy']:.4f} / {cv['recall_defective']:.4f} | "
            f"{val['accuracy']:.4f} / {val['recall_defective']:.4f} | "
            f"{v['svm']['log2C']} / {v['svm']['log2gamma']} | {v['train_wall_s']} |"
        )
    h, w = decision["chosen"]
    return [
        "## Input size (full protocol per size: fold nets, SSA on the same folds)",
        f"Rule: {decision['rule']}. Chosen: {h}x{w}. Single view, SVM at d >= 0.",
        "",
        "| input HxW | CV ROC AUC | CV balanced acc. | CV acc / recall | val acc / recall | "
        "SSA log2 C / log2 gamma | final net train s |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def render(
    run: Path,
    facts: str = "card_facts.json",
    notes_file: str = "notes.json",
    cascade_file: str = "cascade.json",
) -> str:
    """Markdown card from the JSON files in ``run`` (``facts``: the train_screen output).

    File names are relative to ``run``; ``cascade_file`` is the output of
    :mod:`models.svm.cascade` (the released one is ``docs/perf/commutator_cascade.json``).
    """
    f = json.loads((run / facts).read_text())
    cascade = _load(run / cascade_file)
    notes = _load(run / notes_file) or {}
    meta, tr, th, sv = f["meta"], f["training"], f["threshold"], f["svm_search"]
    h, w = f["meta"]["lineinspect.input_size"].strip("[]").split(", ")
    onnx_val = f["validation_onnx"]
    name = f.get("name", "alexnet_svm")
    lines = [
        f"# {name} — model card",
        "",
        "**Paper**: Cai, *Defect recognition and localisation model based on improved "
        "Alexnet-SVM and Fast RCNN*: AlexNet with SPP-style kernel changes, "
        "global average pooling of pool5 (256-d), RBF SVM tuned by the Sparrow Search Algorithm.",
        f'**Task**: OK/NG screen of whole commutator frames, classes `["ok", "defect"]`; '
        f"{notes.get('role', 'first stage of the `commutator` cascade')}. "
        f"Version `{f['version']}`.",
        "",
        "## Architecture",
        f"- AlexNet-SPP `{f['variant']}` (models/arch/alexnet_spp.py): CL1 11x11/4, CL2 5x5, "
        "CL3-CL5 3x3 (widths 48-128-192-192-256), BN + ReLU, overlapping 3x3/2 max pools, SPP "
        "block (stride-1 max pools 5/9/13 + 1x1 fuse) after CL5, pool5 = SPP-net pyramid max "
        "pooling (1+4+16 bins), global average -> 256-d feature (paper Sec. 3.1.2).",
        "- StandardScaler + RBF SVC (class_weight balanced) on the 256-d feature; C and gamma "
        "by SSA (models/svm/ssa.py, paper Eqs. (5)-(6) + Xue & Shen's scouts).",
        "- One ONNX graph: features (torch export) -> skl2onnx `Scaler` + `SVMClassifier` "
        "(ai.onnx.ml) -> `logits = [-z/2, z/2]`, `z = a (d - t)`; argmax = NG iff d >= t, "
        "softmax[1] = sigmoid(z) (Platt slope a).",
        f"- parameters: {f['params']['feature_net']:,} (feature net) + "
        f"{f['params']['svm_support_vectors']} support vectors x 257 = "
        f"{f['params']['total']:,} values; FLOPs {f['flops']['gflops_total']} G per frame at "
        f"{h}x{w} ({f['flops']['counting']}); ONNX {f['size_mb']} MB; opsets {f['opset']}.",
        "",
        "## Artifact metadata (docs/CONTRACT.md)",
        "| key | value |",
        "|---|---|",
        *[f"| `{k}` | `{v}` |" for k, v in meta.items()],
        f"| parity ONNX vs torch+sklearn (validation images) | max abs logit diff "
        f"{f['parity']['max_abs_diff_logits']:.2e}, decisions agree: "
        f"{f['parity']['decisions_agree']} |",
        "",
        "## Training data and command",
        f"- KolektorSDD (`ksdd`, 319 images 500x~1250 gray, 42 defective). Grouped (near-"
        f"duplicate) stratified split, seed {f['split']['seed']}: {f['split']['train']} train "
        f"({f['split']['train_defective']} defective) / {f['split']['val']} validation "
        f"({f['split']['val_defective']} defective).",
        f"- command: `{tr['command']}`",
        f"- recipe: {json.dumps(tr['config'])}",
        f"- wall time: final net {tr['final_net_wall_s']} s, {sv['folds'].split(',')[0]} fold "
        f"nets {tr['cv_fold_nets_wall_s']} s, whole invocation {tr['invocation_wall_s']} s; "
        f"hardware: {notes.get('hardware', 'shared 2-core CPU, torch 1 thread')}.",
        "",
        "## SVM hyper-parameters: SSA vs grid search (same folds)",
        f"Folds: {sv['folds']}. Objective: {sv['objective']}. Space: {sv['space']}.",
        "",
        "| search | log2 C | log2 gamma | CV objective | CV balanced acc. | evaluations | "
        "wall s | CV acc/recall at d>=0 | val acc/recall at d>=0 | support vectors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in ("ssa", "grid"):
        s = sv[k]
        lines.append(
            f"| {k} | {s['log2C']} | {s['log2gamma']} | {s['cv_objective']} | "
            f"{s['cv_balanced_accuracy']} | {s['evaluations']} | {s['wall_s']} | "
            f"{s['cv_at_0']['accuracy']:.4f} / {s['cv_at_0']['recall_defective']:.4f} | "
            f"{s['val_at_0']['accuracy']:.4f} / {s['val_at_0']['recall_defective']:.4f} | "
            f"{s['n_support']} |"
        )
    lines += [f"\nReleased: `{sv['used']}`.", ""]
    lines += _views_section(f.get("views"))
    lines += _size_experiment(f.get("input_size_decision"))
    lines += [
        "## Threshold",
        f"- rule: {th['rule']}.",
        f"- chosen t = {th['decision_value_t']} (Platt slope a = {th['platt_slope_a']}); pooled "
        f"out-of-fold + validation at t: {_m(th['pooled_at_chosen'])}.",
        "",
        "## Validation (own grouped split, scored from the ONNX file)",
        f"- **{onnx_val['images']} images: accuracy {onnx_val['accuracy']:.4f}, recall of "
        f"defective {onnx_val['recall_defective']:.4f}**, precision "
        f"{onnx_val['precision_defective']:.4f}; missed: {onnx_val['missed_defective'] or 'none'}"
        f"; false alarms: {onnx_val['false_alarms'] or 'none'}.",
        "",
        _cm_table(onnx_val["confusion"], ["ok", "defect"]),
        f"![confusion]({name}.confusion.png)" if notes.get("confusion_png") else "",
        "- out-of-fold CV on the training split at t: "
        + _m(f["cv_out_of_fold"]["chosen_threshold"])
        + _errors(f["cv_out_of_fold"]["errors_at_chosen"]),
        "- fine-tuning head argmax on validation (not released): "
        + _m(f["validation_head_argmax"]),
        "- paper anchor: 88.79 % accuracy (KolektorSDD, their 7:3 split).",
        "",
        f"Reproduce: `lineinspect evaluate --model models/zoo/{name}.onnx --data "
        "/work/shared/datasets/ksdd --split val` (ONNX + metadata only).",
        "",
    ]
    if cascade:
        c, n = cascade["cascade"], cascade["no_screen"]
        lines += [
            "## Cascade (`commutator` recipe)",
            f"Screen threshold (defect probability) {cascade['screen_threshold']}, scope "
            f"`{cascade['screen_scope']}`; {cascade['images']} validation frames "
            f"({cascade['defective']} defective), onnxruntime {cascade['ort_threads']} thread, "
            "`python -m models.svm.cascade --recipe commutator --split val`.",
            "",
            "| variant | frame ms mean / median | heavy model ran | image acc | recall "
            "defective | box recall@0.3 / @0.5 | mean IoU |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, v in (("localiser on every frame", n), ("screen -> localiser", c)):
            b = v["boxes_on_defective"]
            lines.append(
                f"| {name} | {v['mean_ms']} / {v['median_ms']} | {v['heavy_ran_fraction']:.2%} | "
                f"{v['accuracy']:.4f} | {v['recall_defective']:.4f} | "
                f"{b['box_recall@0.3']:.3f} / {b['box_recall@0.5']:.3f} | {b['mean_iou']:.3f} |"
            )
        lines += [
            "",
            f"Speed-up {cascade['speedup']}x, recall cost {cascade['recall_cost']:.4f} "
            "(defective-image recall without minus with the screen; negative = the cascade "
            "catches more, because a flagged frame on which the localiser finds nothing is "
            "still NG via the screen's own defect).",
            "",
        ]
    for title, key in (("Decisions", "decisions"), ("Localisation", "localisation")):
        if notes.get(key):
            lines += [f"## {title}", *[f"- {x}" for x in notes[key]], ""]
    lat = f["latency_ort_cpu"]
    lines += [
        "## CPU latency (onnxruntime, CPUExecutionProvider)",
        f"{f['machine']}; " + notes.get("latency_conditions", "conditions not recorded."),
        "",
        "| batch | p50 ms | p99 ms | frames/s |",
        "|---|---|---|---|",
        *[
            f"| {b.split('_')[1]} | {v['p50_ms']} | {v['p99_ms']} | {v['tiles_per_s']} |"
            for b, v in lat.items()
        ],
        "",
        "## Known limits",
        *[f"- {x}" for x in notes.get("limits", [])],
        "",
        "## Data licence",
        LICENCES["ksdd"] + " The model is released for research use under the same terms "
        "(CC BY-NC-SA 4.0), with KolektorSDD (Kolektor Group / ViCoS) named as its source.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("models/zoo/alexnet_svm.md"))
    ap.add_argument("--facts", default="card_facts.json", help="facts file in --run")
    ap.add_argument("--notes", default="notes.json", help="notes file in --run")
    ap.add_argument("--cascade", default="cascade.json", help="cascade figures, relative to --run")
    args = ap.parse_args(argv)
    args.out.write_text(render(args.run, args.facts, args.notes, args.cascade))


if __name__ == "__main__":
    main()
