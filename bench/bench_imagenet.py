"""ImageNet-scale CNN shapes: ResNet-50 and MobileNetV2 (``axonnx.architectures``, random
weights) quantized with onnxruntime's quantize_static (QOperator, random calibration data),
transformed by axonnx, and timed against onnxruntime's QLinearConv.

For each model: the transform's wall time (exact plan; ROUP(1,4) on every layer), whether
the exact plan gives the original output bytes, the inference median (batch 1, 224x224,
``--threads`` intra-op threads, runs interleaved across variants) of QLinearConv, exact
ROUPConv and ROUP(1,4) ROUPConv, and the ratio to QLinearConv; and the multiplier energy of
ROUP(1,4) per layer kind (conv, fully connected) from the built-in table. The Gemm head
is rewritten too (``matmul``). Not a test:
``python -P bench/bench_imagenet.py [--threads 2] [--repeats 20] [--activations int8|uint8]``.
"""

from __future__ import annotations

import os

# numpy's BLAS threads would spin beside the timed runs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from axonnx import InferenceSession  # noqa: E402
from axonnx.architectures import ARCHITECTURES, build  # noqa: E402
from axonnx.energy import energy_report  # noqa: E402
from axonnx.plan import Plan, plan_from_options  # noqa: E402
from axonnx.transform import inspect_model, transform_model  # noqa: E402
from axonnx.zoo import quantize_float  # noqa: E402

PLANS = {"exact ROUPConv": Plan(matmul=True),
         "ROUP(1,4) ROUPConv": plan_from_options(llam="ROUP(1,4)", matmul=True)}


def quantized(name: str, folder: Path, size: int, activations: str) -> onnx.ModelProto:
    fp32 = folder / f"{name}.onnx"
    onnx.save(build(name, size), fp32)
    calibration = np.random.default_rng(0).standard_normal((4, 3, size, size)).astype(np.float32)
    act = "sym-int8" if activations == "int8" else "uint8"
    return onnx.load(quantize_float(fp32, folder / f"{name}_int8.onnx", calibration,
                                    fmt="qoperator", activations=act))


def session(model: onnx.ModelProto, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return InferenceSession(model.SerializeToString(), sess_options=options)


def bench_model(name: str, args, folder: Path) -> dict:
    original = quantized(name, folder, args.size, args.activations)
    variants = {"QLinearConv": original}
    transform_s = {}
    for label, plan in PLANS.items():
        t0 = time.perf_counter()
        variants[label] = transform_model(original, plan)
        transform_s[label] = time.perf_counter() - t0
    x = {"input": np.random.default_rng(1).standard_normal((1, 3, args.size, args.size))
         .astype(np.float32)}
    sessions = {label: session(m, args.threads) for label, m in variants.items()}
    outputs = {label: s.run(None, x)[0] for label, s in sessions.items()}
    times: dict[str, list[float]] = {label: [] for label in sessions}
    for _ in range(args.warmup):
        for s in sessions.values():
            s.run(None, x)
    for _ in range(args.repeats):  # interleaved, so drift hits every variant alike
        for label, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, x)
            times[label].append(time.perf_counter() - t0)
    medians = {label: statistics.median(t) for label, t in times.items()}
    info = inspect_model(variants["ROUP(1,4) ROUPConv"])
    report = energy_report(info.multiplications, formats=info.operand_formats, kinds=info.kinds)
    return {
        "model": name, "layers": len(info.layers),
        "macs_per_image": sum(layer.macs_per_image for layer in info.layers),
        "transform_s": transform_s,
        "exact_bit_identical": outputs["exact ROUPConv"].tobytes() == outputs["QLinearConv"].tobytes(),
        "median_ms": {k: 1e3 * v for k, v in medians.items()},
        "ratio_to_qlinearconv": {k: v / medians["QLinearConv"] for k, v in medians.items()},
        "energy_roup14_per_kind": report.per_kind, "energy_roup14_gain": report.gain,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--activations", choices=("int8", "uint8"), default="int8")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench_model(name, args, Path(tmp)) for name in args.models]
    print(f"onnxruntime {ort.__version__}, batch 1, {args.size}x{args.size}, {args.threads} "
          f"threads, {args.activations} activations (QOperator, per-tensor weights), median of "
          f"{args.repeats}")
    print("| model | layers | MACs/image | transform s (exact / ROUP(1,4)) | exact = QLinearConv bytes "
          "| QLinearConv ms | exact ROUPConv ms (ratio) | ROUP(1,4) ms (ratio) | ROUP(1,4) energy gain |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ms, ratio, ts = r["median_ms"], r["ratio_to_qlinearconv"], r["transform_s"]
        print(f"| {r['model']} | {r['layers']} | {r['macs_per_image'] / 1e9:.2f} G | "
              f"{ts['exact ROUPConv']:.2f} / {ts['ROUP(1,4) ROUPConv']:.2f} | "
              f"{'yes' if r['exact_bit_identical'] else 'NO'} | {ms['QLinearConv']:.1f} | "
              f"{ms['exact ROUPConv']:.1f} ({ratio['exact ROUPConv']:.2f}x) | "
              f"{ms['ROUP(1,4) ROUPConv']:.1f} ({ratio['ROUP(1,4) ROUPConv']:.2f}x) | "
              f"{100 * r['energy_roup14_gain']:.1f}% |")
    for r in results:
        kinds = ", ".join(f"{k}: {v['multiplications']:,} mults, gain {100 * v['gain']:.1f}%"
                          for k, v in r["energy_roup14_per_kind"].items())
        print(f"{r['model']} ROUP(1,4) energy per layer kind: {kinds}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
