"""Post-training static quantization of the trained ResNet-8 with onnxruntime.

    AXONNX_DATA=../shared/data python zoo/resnet8/quantize.py \\
        --fp32 zoo/resnet8/runs/e50/resnet8_fp32.onnx --out zoo/resnet8

Writes into ``--out``:
  * ``resnet8_fp32.onnx``      the trained float model, with the axonnx metadata added;
  * ``resnet8_int8.onnx``      QOperator (QLinearConv, ...), per-channel symmetric int8
                               weights, int8 (QInt8, asymmetric) activations;
  * ``resnet8_int8_qdq.onnx``  the same quantization in QDQ form.

Activations are int8, not uint8, on purpose: onnxruntime's u8s8 convolution kernels on AVX2
(vpmaddubsw) saturate the int16 sum of two products, so a uint8-activation model is not
exactly the integer model it describes; the s8s8 kernels are exact.

Calibration: ``--calib`` (1,000) training images drawn without replacement with a fixed seed
(``--seed`` 0) from the 50,000 official training images, raw 0..255 float32 like inference.
``--method auto`` (the default) tries MinMax, Percentile (99.999 and 99.99) and Entropy
calibration and keeps the one with the best QOperator top-1 on ``--select`` (5,000) other
training images, drawn from the same permutation; the test set is never used for a choice.
The float input normalisation (Sub, Mul) stays in float; the first QuantizeLinear comes
after it. Every written model gets ``ir_version`` 10 (onnxruntime 1.31 loads up to 13; onnx
1.23 writes 14) and ``metadata_props`` ``axonnx.preprocess``, ``axonnx.dataset``,
``axonnx.classes`` (and ``axonnx.quantization`` on the quantized ones).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from axonnx.data.cifar10 import CLASSES, Split, load_split  # noqa: E402

IR_VERSION = 10
PREPROCESS = {"layout": "NCHW", "dtype": "float32", "range": "0-255", "normalisation": "in graph"}


def set_metadata(model: onnx.ModelProto, extra: dict[str, str] | None = None) -> None:
    props = {
        "axonnx.preprocess": json.dumps(PREPROCESS),
        "axonnx.dataset": "cifar10",
        "axonnx.classes": json.dumps(list(CLASSES)),
        "axonnx.architecture": "resnet8 (MLPerf Tiny)",
        **(extra or {}),
    }
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)


def finish(path: Path, extra: dict[str, str] | None = None) -> None:
    model = onnx.load(str(path))
    model.ir_version = IR_VERSION
    # quant_pre_process declares every domain onnxruntime knows; keep the ones in use.
    used = {n.domain for n in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    model.producer_name = model.producer_name or "axonnx"
    set_metadata(model, extra)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


CANDIDATES = {  # --method auto tries these and keeps the best on the selection images
    "minmax": {"method": "minmax"},
    "percentile-99.999": {"method": "percentile", "percentile": 99.999},
    "percentile-99.99": {"method": "percentile", "percentile": 99.99},
    "entropy": {"method": "entropy"},
}


def training_images(args) -> tuple[np.ndarray, Split]:
    """The calibration images (float32) and the disjoint selection split (uint8)."""
    train = load_split("train", args.data)
    order = np.random.default_rng(args.seed).permutation(len(train))
    calib = np.sort(order[:args.calib])
    select = np.sort(order[args.calib:args.calib + args.select])
    return (train.images[calib].astype(np.float32),
            Split(train.images[select], train.labels[select],
                  f"{args.select} training images not used for calibration"))


def quantize(fp32: Path, out: Path, fmt: str, calib: np.ndarray, candidate: dict,
             input_name: str, exclude: list[str], symmetric_activations: bool = True) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{input_name: calib[i:i + 100]} for i in range(0, len(calib), 100)])

        def get_next(self):
            return next(self.batches, None)

    # Symmetric activations put real zero (every ReLU zero) at stored 0, which an
    # approximate multiplier maps to an exact 0. With an asymmetric int8 zero point, ReLU
    # zeros are stored as -128: every approximate product with them errs at full scale and
    # every SKIP leaves -zx*w behind, so even light approximation wrecks the network.
    extra = {"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True}
    if candidate["method"] == "percentile":
        extra["CalibPercentile"] = candidate["percentile"]
    quantize_static(
        str(fp32), str(out), Reader(),
        quant_format=QuantFormat.QOperator if fmt == "qoperator" else QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method={"minmax": CalibrationMethod.MinMax,
                          "percentile": CalibrationMethod.Percentile,
                          "entropy": CalibrationMethod.Entropy}[candidate["method"]],
        nodes_to_exclude=exclude,
        extra_options=extra,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fp32", default=str(ROOT / "zoo/resnet8/runs/e50/resnet8_fp32.onnx"))
    ap.add_argument("--out", default=str(ROOT / "zoo/resnet8"))
    ap.add_argument("--data", default=None, help="folder with cifar-10-batches-py/ (default: $AXONNX_DATA)")
    ap.add_argument("--calib", type=int, default=1000, help="number of calibration images")
    ap.add_argument("--select", type=int, default=5000,
                    help="training images (disjoint from calibration) that score --method auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", choices=("auto", *CANDIDATES), default="auto")
    ap.add_argument("--asymmetric-activations", action="store_true",
                    help="asymmetric int8 activations (zero point != 0); see quantize()")
    args = ap.parse_args()

    from onnxruntime.quantization.shape_inference import quant_pre_process

    from axonnx.evaluate import evaluate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fp32_out = out / "resnet8_fp32.onnx"
    if Path(args.fp32).resolve() != fp32_out.resolve():
        shutil.copyfile(args.fp32, fp32_out)
    finish(fp32_out)

    model = onnx.load(str(fp32_out))
    input_name = model.graph.input[0].name
    # Keep the in-graph normalisation (the ops before the first Conv) in float.
    exclude = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            break
        exclude.append(node.name)

    t0 = time.time()
    calib, select = training_images(args)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "resnet8_fp32_pre.onnx"
        quant_pre_process(str(fp32_out), str(pre))
        scores = {}
        names = list(CANDIDATES) if args.method == "auto" else [args.method]
        if len(names) > 1:
            scores["float32"] = evaluate(fp32_out, select, progress=False).top1
            for name in names:
                trial = Path(tmp) / f"{name}.onnx"
                quantize(pre, trial, "qoperator", calib, CANDIDATES[name], input_name, exclude,
                         not args.asymmetric_activations)
                scores[name] = evaluate(trial, select, progress=False).top1
                print(f"calibration {name}: top-1 {100 * scores[name]:.2f}% on {select.source}",
                      flush=True)
        best = max(names, key=lambda n: scores.get(n, 0.0))
        record = {
            "tool": "onnxruntime.quantization.quantize_static (after quant_pre_process)",
            "onnxruntime": __import__("onnxruntime").__version__,
            "weights": "int8, per-channel, symmetric",
            "activations": "int8 (QInt8), per-tensor, "
                           + ("asymmetric" if args.asymmetric_activations else "symmetric (zero point 0)"),
            "calibration": {"images": args.calib, "seed": args.seed, "split": "train",
                            **CANDIDATES[best]},
            "selection": {"images": args.select if len(names) > 1 else 0,
                          "top1": scores} if scores else None,
            "float_nodes": exclude,
        }
        for fmt, name in (("qoperator", "resnet8_int8.onnx"), ("qdq", "resnet8_int8_qdq.onnx")):
            target = out / name
            # onnxruntime 1.31's QDQ fusions mishandle Relu with symmetric int8 activations
            # (top-1 falls from 88.3% unoptimised to 56% optimised), so the QDQ variant keeps
            # asymmetric activations, which onnxruntime fuses correctly.
            symmetric = not args.asymmetric_activations and fmt == "qoperator"
            quantize(pre, target, fmt, calib, CANDIDATES[best], input_name, exclude, symmetric)
            activations = ("int8 (QInt8), per-tensor, "
                           + ("symmetric (zero point 0)" if symmetric else "asymmetric"))
            finish(target, {"axonnx.quantization": json.dumps(
                {**record, "activations": activations, "format": fmt})})
            print(f"wrote {target}", flush=True)
    print(json.dumps(record, indent=2))
    print(f"quantized in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
