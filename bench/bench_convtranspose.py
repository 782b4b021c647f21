"""ROUPConvTranspose speed (issue 22): one decoder-shaped upsampler, ConvTranspose 64 -> 32
channels, 4x4 kernel, stride 2, pads 1, 32x32 -> 64x64 (plus a 1x1 conv after it, so that the
quantized ConvTranspose has a QuantizeLinear consumer as in a real decoder), quantized with
``axonnx.zoo.quantize_float`` in QDQ (onnxruntime's defaults, int8; and uint8). onnxruntime 1.32
runs a QDQ ConvTranspose as DequantizeLinear -> float ConvTranspose -> QuantizeLinear.

Timed side by side, interleaved in a new random order each round, medians: plain onnxruntime,
and the model after ``axonnx transform`` exact and ROUP(1,4). 2 intra-op threads, spinning off.

Not a test: ``python -P bench/bench_convtranspose.py [--batch 4] [--repeats 15]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from axonnx import get_library_path  # noqa: E402
from axonnx.plan import Plan, plan_from_options  # noqa: E402
from axonnx.transform import transform_model  # noqa: E402
from axonnx.zoo import quantize_float  # noqa: E402


def upsampler(cin=64, cout=32, size=32) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((cin, cout, 4, 4)) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((cout, cout, 1, 1)) * 0.2).astype(np.float32)
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["up"], name="up", strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["up"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="mix")]
    graph = helper.make_graph(
        nodes, "upsampler", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cin, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(cout, np.float32), "b"),
         numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.register_custom_ops_library(get_library_path())
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    onnx.save(upsampler(), root / "fp32.onnx")
    calibration = np.random.default_rng(1).random((16, 64, 32, 32)).astype(np.float32)
    x = np.random.default_rng(2).random((args.batch, 64, 32, 32)).astype(np.float32)
    print(f"ConvTranspose 64->32, 4x4, stride 2, 32x32 -> 64x64, batch {args.batch}, "
          f"{args.threads} threads, onnxruntime {ort.__version__}; medians of {args.repeats}")
    for activations in ("defaults", "uint8"):
        plain = onnx.load(quantize_float(root / "fp32.onnx", root / f"{activations}.onnx",
                                         calibration, activations=activations))
        sessions = {"onnxruntime": session(plain, args.threads),
                    "exact": session(transform_model(plain, Plan(), exact_layers="roup"),  # the kernel
                                     args.threads),
                    "ROUP(1,4)": session(transform_model(plain, plan_from_options(llam="ROUP(1,4)")),
                                         args.threads)}
        times = {name: [] for name in sessions}
        for s in sessions.values():  # warm-up
            s.run(None, {"x": x})
        for _ in range(args.repeats):
            order = list(sessions)
            random.shuffle(order)
            for name in order:
                time.sleep(0.05)
                start = time.perf_counter()
                sessions[name].run(None, {"x": x})
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["onnxruntime"])
        cells = [f"{name} {statistics.median(t) * 1e3:.2f} ms ({base / statistics.median(t):.2f}x)"
                 for name, t in times.items()]
        print(f"QDQ {activations}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
