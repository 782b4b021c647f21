"""Depthwise 3x3 layers of MobileNetV2's shapes, one QLinearConv each (QOperator, uint8, batch 1):
plain onnxruntime against ``axonnx transform`` exact and ROUP(1,4), runs interleaved, medians.

    python -P bench/bench_depthwise.py [--threads 2] [--runs 200] [--baseline-lib OLD.so]

``--baseline-lib`` also times the transformed models on another build of the custom-op library
(say, the one before a change), in the same interleaved runs: a side-by-side before/after.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from axonnx import get_library_path
from axonnx.plan import Plan, plan_from_options
from axonnx.transform import transform_model

SHAPES = [(960, 7, 1), (576, 14, 1), (576, 14, 2), (192, 28, 1), (192, 56, 2), (144, 56, 1),
          (96, 112, 2), (32, 112, 1)]


def depthwise_model(c, h, stride, k=3, mult=1):
    rng = np.random.default_rng(0)
    m = c * mult
    inits = [numpy_helper.from_array(np.float32(0.02), "xs"),
             numpy_helper.from_array(np.uint8(128), "xz"),
             numpy_helper.from_array(rng.integers(-100, 100, (m, 1, k, k)).astype(np.int8), "w"),
             numpy_helper.from_array((rng.random(m) * 0.01 + 0.001).astype(np.float32), "ws"),
             numpy_helper.from_array(np.zeros(m, np.int8), "wz"),
             numpy_helper.from_array(np.float32(0.05), "ys"),
             numpy_helper.from_array(np.uint8(128), "yz")]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"],
                            name="dw", group=c, strides=[stride, stride], pads=[k // 2] * 4,
                            kernel_shape=[k, k])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, c, h, h])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def transformed(model, plan):
    result = transform_model(model, plan, exact_layers="roup")  # the kernel, also for exact
    return getattr(result, "model", result)


def session(model, threads, library):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if library:
        so.register_custom_ops_library(library)
    return ort.InferenceSession(model.SerializeToString(), so)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--baseline-lib", help="another build of the custom-op library, timed beside this one")
    args = ap.parse_args()
    libs = [("", get_library_path())] + ([("old ", args.baseline_lib)] if args.baseline_lib else [])
    for c, h, s in SHAPES:
        m = depthwise_model(c, h, s)
        exact = transformed(m, Plan())
        roup = transformed(m, plan_from_options(llam="ROUP(1,4)"))
        names, sessions = ["ort"], [session(m, args.threads, None)]
        for tag, lib in libs:
            names += [f"{tag}exact", f"{tag}roup14"]
            sessions += [session(exact, args.threads, lib), session(roup, args.threads, lib)]
        x = np.random.default_rng(1).integers(0, 256, (1, c, h, h)).astype(np.uint8)
        outs = [sess.run(None, {"x": x})[0] for sess in sessions]
        for i, name in enumerate(names):  # exact equals onnxruntime; ROUP(1,4) equals across builds
            if name.endswith("exact"):
                assert (outs[i] == outs[0]).all(), name
            if name.endswith("roup14"):
                assert (outs[i] == outs[2]).all(), name
        times = [[] for _ in sessions]
        for _ in range(args.runs):
            for i, sess in enumerate(sessions):
                t0 = time.perf_counter()
                sess.run(None, {"x": x})
                times[i].append(time.perf_counter() - t0)
        med = [statistics.median(t) * 1e6 for t in times]
        cells = [f"ort {med[0]:.0f}us"] + [f"{n} {v:.0f}us ({med[0] / v:.2f}x)" for n, v in zip(names[1:], med[1:])]
        print(f"C={c} H={h} s={s}: " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
