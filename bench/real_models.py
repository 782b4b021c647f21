"""Models as users bring them: the zoo's float ResNet-8 quantized with onnxruntime's
``quantize_static`` defaults (uint8 activations), against the same network with symmetric
int8 activations, exact and under approximate plans, on the full CIFAR-10 test set.

    AXONNX_DATA=../shared/data python -P bench/real_models.py --out bench/results/real-models

The question it answers (issue "Real models"): does a model quantized with the defaults lose
no more under ``--llam 'ROUP(1,4)'`` than the symmetric-int8 one? With the multiplier fed
zero-point-free operands (SPEC.md), a ReLU zero is an exact 0 in both.

Variants, each in QDQ and QOperator form, per-tensor int8 weights (the defaults):
  * ``defaults``:  ``quantize_static(fp32, out, reader)`` (QDQ) or with
    ``quant_format=QOperator``: asymmetric uint8 activations;
  * ``sym-int8``:  the same with ``activation_type=QInt8`` and ``ActivationSymmetric``.
Calibration: ``--calib`` (500) training images, seed 0, raw 0..255 float32 as the float
model takes them. Writes ``results.json`` and ``results.md`` into ``--out``.
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
from axonnx.transform import transform_model
from axonnx.zoo import resolve_model

IR_VERSION = 10  # onnxruntime 1.31 loads IR <= 13; onnx 1.23 writes 14
PLANS = {
    "exact": None,
    "llam ROUP(1,4)": ("llam", ("ROUP(1,4)",)),
    "llam ROUP_M": ("llam", ("ROUP_M",)),
    "flam ROUP(0,0),ROUP(1,4),ROUP(2,6)": ("flam", ("ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)")),
}


def quantize(fp32: Path, out: Path, fmt: str, variant: str, calib: np.ndarray) -> Path:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    name = onnx.load(str(fp32)).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{name: calib[i:i + 100]} for i in range(0, len(calib), 100)])

        def get_next(self):
            return next(self.batches, None)

    options = {} if fmt == "qdq" else {"quant_format": QuantFormat.QOperator}
    if variant == "sym-int8":
        options.update(activation_type=QuantType.QInt8,
                       extra_options={"ActivationSymmetric": True})
    quantize_static(str(fp32), str(out), Reader(), **options)
    model = onnx.load(str(out))
    model.ir_version = IR_VERSION
    # Keep the float model's axonnx metadata (preprocessing, classes) for axonnx eval.
    source = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    for key, value in source.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(out))
    return out


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
    test = load_split("test", args.data)
    if args.limit:
        test = type(test)(test.images[:args.limit], test.labels[:args.limit],
                          f"first {args.limit} test images")
    fp32 = resolve_model("zoo:resnet8-fp32")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("defaults", "sym-int8"):
            for fmt in ("qdq", "qoperator"):
                path = quantize(fp32, Path(tmp) / f"{variant}_{fmt}.onnx", fmt, variant, calib)
                model = onnx.load(str(path))
                for label, spec in PLANS.items():
                    target = path
                    if spec is not None:
                        plan = Plan((LayerRule(("*",), spec[0], spec[1]),), "weight")
                        target = Path(tmp) / f"{variant}_{fmt}_{len(rows)}.onnx"
                        onnx.save(transform_model(model, plan), str(target))
                    t0 = time.perf_counter()
                    result = evaluate(target, test, progress=True)
                    rows.append({"variant": variant, "format": fmt, "plan": label,
                                 "top1": result.top1, "n": result.n,
                                 "seconds": time.perf_counter() - t0})
                    print(f"{variant:9s} {fmt:9s} {label:36s} {100 * result.top1:6.2f}%",
                          file=sys.stderr)
    exact = {(r["variant"], r["format"]): r["top1"] for r in rows if r["plan"] == "exact"}
    for r in rows:
        r["loss_pp"] = 100 * (exact[(r["variant"], r["format"])] - r["top1"])
    (args.out / "results.json").write_text(json.dumps(
        {"data": test.source, "calibration_images": args.calib, "rows": rows}, indent=1) + "\n")
    lines = [f"Top-1 on {test.source} ({len(test)} images); loss in pp against the same "
             "model's exact int8 run.", "",
             "| variant | format | plan | top-1 | loss (pp) |", "|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['format']} | {r['plan']} | {100 * r['top1']:.2f}% | "
              f"{r['loss_pp']:.2f} |" for r in rows]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
