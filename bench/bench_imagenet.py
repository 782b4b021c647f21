"""ROUPConv speed on ImageNet-shaped networks (issue 20): ResNet-50 and MobileNetV2 from
``axonnx.architectures`` (224x224, random weights), each quantized by onnxruntime's
``quantize_static`` in two forms:

- ``defaults (QDQ s8)``: QDQ, int8 activations (onnxruntime 1.32's default), per-channel weights;
- ``QOperator u8``: QOperator, uint8 activations, per-channel weights.

Each form is timed as the user runs it in plain onnxruntime, and after ``axonnx transform``
with: exact (every position ROUP(0,0); the default ``--exact-layers onnxruntime``, which
leaves such layers as onnxruntime's own ops and stores int8 activations as uint8), exact
with ``--exact-layers roup`` (every layer an exact ROUPConv: the kernel's own exact speed),
ROUP(1,4) on every layer, a filter-level mix
ROUP(0,0)/ROUP(1,4)/ROUP(2,6) (FLAM, magnitude policy) and a uniform LUT (an EvoApprox
mul8u table from ``$AXONNX_DATA/evoapprox8u``; skipped when absent). The Gemm head is rewritten
too (``matmul``). Every session: 2 intra-op threads (``--threads``), one inter-op thread,
``session.intra_op.allow_spinning=0``. Per model and batch, every session of both forms runs
interleaved, in a new random order each round, and the medians are reported.

The baseline is the fastest plain-onnxruntime run of the same network and batch (over both
forms); each ratio is that baseline's median divided by the variant's median (higher is
faster; 1x is onnxruntime's own speed). ``exact = ort`` says whether the exact model gives the
plain model's output bytes (same form, batch 1).

Not a test: ``python -P bench/bench_imagenet.py [--batches 1 8] [--repeats 10]
[--models resnet50 mobilenet_v2] [--variants exact exact_roup roup14 flam lut]
[--json out.json]``.
"""

from __future__ import annotations

import os

# numpy's BLAS threads would spin beside the timed runs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,  # noqa: E402
                                      quantize_static)

from axonnx import get_library_path  # noqa: E402
from axonnx.architectures import ARCHITECTURES, build  # noqa: E402
from axonnx.plan import Plan, plan_from_options  # noqa: E402
from axonnx.transform import transform_model  # noqa: E402

LUT_NAME = "mul8u_2HH"
FORMS = {"defaults (QDQ s8)": dict(per_channel=True),
         "QOperator u8": dict(per_channel=True, quant_format=QuantFormat.QOperator,
                              activation_type=QuantType.QUInt8)}
VARIANTS = ("exact", "exact_roup", "roup14", "flam", "lut")
EXACT_LAYERS = {"exact_roup": "roup"}  # the rest: transform's default, "onnxruntime"
LABELS = {"exact": "exact", "exact_roup": "exact as ROUPConv", "roup14": "ROUP(1,4)",
          "flam": "FLAM", "lut": f"LUT({LUT_NAME})"}


def plans(wanted: list[str]) -> dict[str, Plan]:
    out = {}
    if "exact" in wanted:
        out["exact"] = Plan(matmul=True)
    if "exact_roup" in wanted:
        out["exact_roup"] = Plan(matmul=True)  # with exact_layers="roup" (EXACT_LAYERS)
    if "roup14" in wanted:
        out["roup14"] = plan_from_options(llam="ROUP(1,4)", matmul=True)
    if "flam" in wanted:
        out["flam"] = plan_from_options(flam="ROUP(0,0),ROUP(1,4),ROUP(2,6)", matmul=True)
    data = os.environ.get("AXONNX_DATA")
    if "lut" in wanted and data and (Path(data) / "evoapprox8u" / f"{LUT_NAME}.bin").exists():
        out["lut"] = plan_from_options(llam=f"LUT({LUT_NAME})", matmul=True)
    return out


def quantized(name: str, folder: Path, form: str) -> onnx.ModelProto:
    fp32 = folder / f"{name}.onnx"
    if not fp32.exists():
        onnx.save(build(name, 224), fp32)
    calibration = np.random.default_rng(0).standard_normal((4, 3, 224, 224)).astype(np.float32)
    input_name = onnx.load(fp32).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{input_name: calibration}])

        def get_next(self):
            return next(self.batches, None)

    out = folder / f"{name}_{form.split()[0]}.onnx"
    quantize_static(os.fspath(fp32), os.fspath(out), Reader(), **FORMS[form])
    model = onnx.load(out)
    model.ir_version = 10
    return model


def session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.register_custom_ops_library(get_library_path())
    return ort.InferenceSession(model.SerializeToString(), options)


def bench_model(name: str, args, folder: Path) -> list[dict]:
    chosen = plans(args.variants)
    models, identical = {}, {}
    for form in FORMS:
        original = quantized(name, folder, form)
        models[(form, "ort")] = original
        for key, plan in chosen.items():
            models[(form, key)] = transform_model(
                original, plan, exact_layers=EXACT_LAYERS.get(key, "onnxruntime"))
    sessions = {k: session(m, args.threads) for k, m in models.items()}
    input_name = models[(next(iter(FORMS)), "ort")].graph.input[0].name
    rows = []
    for batch in args.batches:
        x = {input_name: np.random.default_rng(1).standard_normal((batch, 3, 224, 224))
             .astype(np.float32)}
        if batch == args.batches[0] and "exact" in chosen:
            for form in FORMS:
                identical[form] = (sessions[(form, "exact")].run(None, x)[0].tobytes()
                                   == sessions[(form, "ort")].run(None, x)[0].tobytes())
        for s in sessions.values():  # warm-up
            s.run(None, x)
        times: dict = {k: [] for k in sessions}
        order = list(sessions)
        rng = random.Random(batch)
        for _ in range(args.repeats):  # interleaved, random order per round
            rng.shuffle(order)
            for k in order:
                t0 = time.perf_counter()
                sessions[k].run(None, x)
                times[k].append(time.perf_counter() - t0)
        med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        baseline = min(med[(form, "ort")] for form in FORMS)
        for form in FORMS:
            rows.append({"model": name, "form": form, "batch": batch, "ort_ms": med[(form, "ort")],
                         "baseline_ms": baseline,
                         "exact_equals_ort": identical.get(form),
                         "ms": {k: med[(form, k)] for k in chosen},
                         "ratio": {k: baseline / med[(form, k)] for k in chosen}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [r for name in args.models for r in bench_model(name, args, Path(tmp))]
    keys = [k for k in VARIANTS if any(k in r["ms"] for r in rows)]
    print(f"onnxruntime {ort.__version__}, 224x224, {args.threads} intra-op threads, "
          f"allow_spinning=0, interleaved, median of {args.repeats}; ratio = fastest plain "
          "onnxruntime run of the network (baseline) / variant")
    print("| model | quantization | batch | onnxruntime ms | baseline ms | "
          + " | ".join(f"{LABELS[k]} ms (ratio)" for k in keys) + " | exact = ort bytes |")
    print("|---|---|---|---|---|" + "---|" * len(keys) + "---|")
    for r in rows:
        cells = " | ".join(f"{r['ms'][k]:.1f} ({r['ratio'][k]:.2f}x)" for k in keys)
        same = {True: "yes", False: "NO", None: "-"}[r["exact_equals_ort"]]
        print(f"| {r['model']} | {r['form']} | {r['batch']} | {r['ort_ms']:.1f} | "
              f"{r['baseline_ms']:.1f} | {cells} | {same} |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v)
                                                  for k, v in vars(args).items()},
                                         "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
