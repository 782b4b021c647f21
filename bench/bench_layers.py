"""Single conv layers, one QLinearConv each (QOperator, uint8, batch 1): plain onnxruntime
against ``axonnx transform`` with every layer a ROUPConv (``exact_layers="roup"``: the
kernel itself, also for exact), exact, ROUP(1,4) and, where the EvoApprox tables are there,
LUT(mul8u_2HH). Runs interleaved, medians.

- ``--shapes depthwise`` (default): MobileNetV2's depthwise 3x3 layers, (channels, size, stride);
- ``--shapes resnet50``: ResNet-50's dense layers, (channels in = out, size, kernel).

    python -P bench/bench_layers.py [--shapes depthwise|resnet50] [--threads 2] [--runs 200]
        [--baseline-lib OLD.so]

``--baseline-lib`` also times the transformed models on another build of the custom-op library
(say, the one before a change), in the same interleaved runs: a side-by-side before/after.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from axonnx import get_library_path
from axonnx.plan import Plan, plan_from_options
from axonnx.transform import transform_model

SHAPES = {
    "depthwise": [(960, 7, 1), (576, 14, 1), (576, 14, 2), (192, 28, 1), (192, 56, 2),
                  (144, 56, 1), (96, 112, 2), (32, 112, 1)],
    "resnet50": [(512, 7, 3), (256, 14, 3), (128, 28, 3), (64, 56, 3), (1024, 14, 1)],
}
LUT_NAME = "mul8u_2HH"


def conv_model(c, h, *, k=3, stride=1, depthwise=False):
    rng = np.random.default_rng(0)
    shape = (c, 1 if depthwise else c, k, k)
    # Depthwise: uniform weights; dense: normal ones spread like quantize_static's per-channel
    # int8 weights (most near 0), which decides how often a LUT's error rows repeat.
    w = (rng.integers(-100, 100, shape) if depthwise
         else np.clip(np.rint(rng.standard_normal(shape) * 30), -127, 127))
    inits = [numpy_helper.from_array(np.float32(0.02), "xs"),
             numpy_helper.from_array(np.uint8(128), "xz"),
             numpy_helper.from_array(w.astype(np.int8), "w"),
             numpy_helper.from_array((rng.random(c) * 0.01 + 0.001).astype(np.float32), "ws"),
             numpy_helper.from_array(np.zeros(c, np.int8), "wz"),
             numpy_helper.from_array(np.float32(0.05), "ys"),
             numpy_helper.from_array(np.uint8(128), "yz")]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"],
                            name="conv", group=c if depthwise else 1, strides=[stride, stride],
                            pads=[k // 2] * 4, kernel_shape=[k, k])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, c, h, h])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def plans() -> dict:
    out = {"exact": Plan(), "roup14": plan_from_options(llam="ROUP(1,4)")}
    data = os.environ.get("AXONNX_DATA")
    if data and (Path(data) / "evoapprox8u" / f"{LUT_NAME}.bin").exists():
        out["lut"] = plan_from_options(llam=f"LUT({LUT_NAME})")
    return out


def session(model, threads, library):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if library:
        so.register_custom_ops_library(library)
    return ort.InferenceSession(model.SerializeToString(), so)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", choices=list(SHAPES), default="depthwise")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--baseline-lib", help="another build of the custom-op library, timed beside this one")
    args = ap.parse_args()
    libs = [("", get_library_path())] + ([("old ", args.baseline_lib)] if args.baseline_lib else [])
    chosen = plans()
    for shape in SHAPES[args.shapes]:
        if args.shapes == "depthwise":
            c, h, s = shape
            m = conv_model(c, h, stride=s, depthwise=True)
        else:
            c, h, k = shape
            m = conv_model(c, h, k=k)
        rewritten = {key: transform_model(m, plan, exact_layers="roup") for key, plan in chosen.items()}
        names, sessions = ["ort"], [session(m, args.threads, None)]
        for tag, lib in libs:
            for key, model in rewritten.items():
                names.append(f"{tag}{key}")
                sessions.append(session(model, args.threads, lib))
        x = np.random.default_rng(1).integers(0, 256, (1, c, h, h)).astype(np.uint8)
        outs = dict(zip(names, (sess.run(None, {"x": x})[0] for sess in sessions)))
        for name, out in outs.items():  # exact equals onnxruntime; the rest equal across builds
            key = name.removeprefix("old ")
            assert (out == outs["ort" if key == "exact" else key]).all(), name
        times = [[] for _ in sessions]
        for _ in range(args.runs):
            for i, sess in enumerate(sessions):
                t0 = time.perf_counter()
                sess.run(None, {"x": x})
                times[i].append(time.perf_counter() - t0)
        med = [statistics.median(t) * 1e6 for t in times]
        cells = [f"ort {med[0]:.0f}us"] + [f"{n} {v:.0f}us ({med[0] / v:.2f}x)" for n, v in zip(names[1:], med[1:])]
        print(f"{args.shapes} {shape}: " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
