"""Models as users bring them: the zoo's float ResNet-8 quantized with onnxruntime's
``quantize_static`` defaults (uint8 activations), against the same network with symmetric
int8 activations, exact and under approximate plans, on the full CIFAR-10 test set.

    AXONNX_DATA=../shared/data python -P bench/real_models.py --out bench/results/real-models

The question it answers (issue "Real models"): does a model quantized with the defaults lose
no more under ``--llam 'ROUP(1,4)'`` than the symmetric-int8 one? With the multiplier fed
zero-point-free operands (SPEC.md), a ReLU zero is an exact 0 in both.

Variants (axonnx.zoo.quantize_float), each in QDQ and QOperator form, per-tensor int8
weights (the defaults):
  * ``defaults``:  ``quantize_static(fp32, out, reader)``: asymmetric activations of the
    installed onnxruntime's default type (QUInt8 up to 1.2x, QInt8 in 1.32: a ReLU zero is
    stored as -128);
  * ``uint8``:     the same with ``activation_type=QUInt8`` (asymmetric uint8);
  * ``sym-int8``:  the same with ``activation_type=QInt8`` and ``ActivationSymmetric``.
Calibration: ``--calib`` (500) training images, seed 0, raw 0..255 float32 as the float
model takes them; bias correction measures 512 other training images. Writes ``results.json`` and ``results.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from axonnx.data.cifar10 import load_split
from axonnx.evaluate import evaluate
from axonnx.plan import LayerRule, Plan
from axonnx.recovery import Recovery, measure_activations
from axonnx.transform import transform_model
from axonnx.zoo import QUANTIZATIONS, quantize_float, resolve_model

PLANS = {  # label: (approach, multipliers, bias correction)
    "exact": None,
    "llam ROUP(1,4)": ("llam", ("ROUP(1,4)",), False),
    "llam ROUP(1,4) + bias correction": ("llam", ("ROUP(1,4)",), True),
    "llam ROUP_M": ("llam", ("ROUP_M",), False),
    "flam ROUP(0,0),ROUP(1,4),ROUP(2,6)": ("flam", ("ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)"), False),
}


def activation_type(model: onnx.ModelProto) -> str:
    """The stored type and zero point of the first quantized conv's input, e.g. 'uint8 zp 0'."""
    from axonnx.passes import GraphIndex
    from axonnx.transform import prepared

    work, layers, _ = prepared(model)
    zx = np.asarray(GraphIndex(work.graph).constant(layers[1].inputs[2]))
    return f"{zx.dtype} zp {int(zx.reshape(-1)[0])}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="CIFAR-10 folder (default $AXONNX_DATA)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/real-models"))
    parser.add_argument("--calib", type=int, default=500)
    parser.add_argument("--limit", type=int, default=None,
                        help="score the first N test images only (not the full set)")
    args = parser.parse_args(argv)

    train = load_split("train", args.data)
    order = np.random.default_rng(0).permutation(len(train))
    calib = train.images[np.sort(order[:args.calib])].astype(np.float32)
    recovery_images = train.images[np.sort(order[args.calib:args.calib + 512])]
    test = load_split("test", args.data)
    if args.limit:
        test = type(test)(test.images[:args.limit], test.labels[:args.limit],
                          f"first {args.limit} test images")
    fp32 = resolve_model("zoo:resnet8-fp32")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in QUANTIZATIONS:
            for fmt in ("qdq", "qoperator"):
                path = quantize_float(fp32, Path(tmp) / f"{variant}_{fmt}.onnx", calib, fmt=fmt,
                                      activations=variant)
                model = onnx.load(str(path))
                # Bias correction measures the activations on other training images.
                recovery = Recovery(measure_activations(model, recovery_images), correct_bias=True)
                for label, spec in PLANS.items():
                    target = path
                    if spec is not None:
                        approach, multipliers, bias = spec
                        plan = Plan((LayerRule(("*",), approach, multipliers),), "weight")
                        target = Path(tmp) / f"{variant}_{fmt}_{len(rows)}.onnx"
                        onnx.save(transform_model(model, plan, recovery=recovery if bias else None),
                                  str(target))
                    t0 = time.perf_counter()
                    result = evaluate(target, test)
                    rows.append({"variant": variant, "format": fmt, "plan": label,
                                 "activations": activation_type(model),
                                 "top1": result.top1, "n": result.n,
                                 "seconds": time.perf_counter() - t0})
                    print(f"{variant:9s} {fmt:9s} {label:36s} {100 * result.top1:6.2f}%",
                          file=sys.stderr)
    exact = {(r["variant"], r["format"]): r["top1"] for r in rows if r["plan"] == "exact"}
    for r in rows:
        r["loss_pp"] = 100 * (exact[(r["variant"], r["format"])] - r["top1"])
    (args.out / "results.json").write_text(json.dumps(
        {"data": test.source, "calibration_images": args.calib, "rows": rows}, indent=1) + "\n")
    import onnxruntime

    lines = [f"Top-1 on {test.source} ({len(test)} images), onnxruntime "
             f"{onnxruntime.__version__}; loss in pp against the same model's exact run.", "",
             "| variant | activations | format | plan | top-1 | loss (pp) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['activations']} | {r['format']} | {r['plan']} | "
              f"{100 * r['top1']:.2f}% | {r['loss_pp']:.2f} |" for r in rows]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
