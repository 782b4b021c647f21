"""Throughput of the ROUPConv kernel against onnxruntime's QLinearConv, on a whole
ResNet-8-shaped QOperator model (CIFAR-10 input, batch 64, random weights; int8 activations
by default, ``--activations uint8`` for onnxruntime's u8s8 path).

Variants: the QOperator model as quantized (QLinearConv), and the same model with every
QLinearConv replaced by ROUPConv running: exact ROUP(0,0); uniform ROUP(1,4); a filter-level
mix of ROUP(0,0)/ROUP(1,4)/ROUP(2,6); uniform ROUP(1,4) with the activation encoded; a uniform
LUT (an EvoApprox mul8u table from $AXONNX_DATA/evoapprox8u when present, else a*b + noise).
Runs are interleaved across variants, in a new random order each round, with an idle pause
before each timed run (``--gap-ms``, default 150): after a run, onnxruntime's intra-op workers
spin for tens of milliseconds of CPU, and without the pause each variant would share the cores
with the spinning workers of the variants run just before it (on a 2-core machine the ratios
then mostly measure the run order: the variant after the slow LUT run gains ~2x). The table
gives median latency and throughput relative to QLinearConv. Not a test:
``python -P bench/bench_kernel.py [--threads 1 2] [--repeats 15] [--gap-ms 0]``.
"""

from __future__ import annotations

import os

# numpy's BLAS threads would spin beside the timed runs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from axonnx import InferenceSession  # noqa: E402
from axonnx.multipliers import LUT, ROUP  # noqa: E402
from axonnx.ops.roupconv import DOMAIN, make_roupconv_node  # noqa: E402

LUT_NAME = "mul8u_2HH"


class Builder:
    """A QOperator graph built layer by layer with random per-channel int8 weights and int8 or
    uint8 activations (uint8 with 7-bit weights, as onnxruntime's reduce_range does for its
    saturating AVX2 u8s8 kernel)."""

    def __init__(self, activations: str, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.act = np.int8 if activations == "int8" else np.uint8
        self.low = -128 if activations == "int8" else 0  # the zero point that folds a ReLU
        self.w_max = 127 if activations == "int8" else 63
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def conv(self, x: str, x_scale: str, x_zp: str, cin: int, cout: int, k: int, stride: int,
             relu: bool) -> tuple[str, str, str]:
        i = self.count = self.count + 1
        w = self.rng.integers(-self.w_max, self.w_max + 1, (cout, cin, k, k)).astype(np.int8)
        fan_in = cin * k * k
        names = [x, x_scale, x_zp,
                 self.const(f"w{i}", w),
                 self.const(f"ws{i}", (self.rng.random(cout) * 0.5 + 0.75).astype(np.float32) / self.w_max),
                 self.const(f"wz{i}", np.zeros(cout, np.int8)),
                 self.const(f"ys{i}", np.float32(0.05 * np.sqrt(fan_in) / 8)),
                 self.const(f"yz{i}", self.act(self.low if relu else self.low + 128)),
                 self.const(f"b{i}", self.rng.integers(-2000, 2000, cout).astype(np.int32))]
        self.nodes.append(helper.make_node("QLinearConv", names, [f"c{i}"], name=f"conv{i}",
                                           pads=[k // 2] * 4, strides=[stride, stride]))
        return f"c{i}", f"ys{i}", f"yz{i}"

    def add(self, a: tuple[str, str, str], b: tuple[str, str, str]) -> tuple[str, str, str]:
        i = self.count = self.count + 1
        scale, zp = self.const(f"as{i}", np.float32(0.08)), self.const(f"az{i}", self.act(self.low))
        self.nodes.append(helper.make_node("QLinearAdd", [*a, *b, scale, zp], [f"add{i}"],
                                           name=f"add{i}", domain="com.microsoft"))
        return f"add{i}", scale, zp


def resnet8(batch: int, activations: str = "int8") -> onnx.ModelProto:
    """stem 3x3/16; three stacks of two 3x3 convs at 16, 32, 64 filters (strides 1, 2, 2) with
    1x1 stride-2 shortcuts on stacks 2 and 3; residual QLinearAdd (ReLU folded into the zero
    point); global average pool; dense 10."""
    b = Builder(activations)
    x = ("x", b.const("xs", np.float32(1 / 64)), b.const("xz", b.act(b.low + 128)))
    h = b.conv(*x, 3, 16, 3, 1, relu=True)
    cin = 16
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = b.conv(*h, cin, filters, 3, stride, relu=True)
        y = b.conv(*y, filters, filters, 3, 1, relu=False)
        shortcut = h if stride == 1 else b.conv(*h, cin, filters, 1, stride, relu=False)
        h, cin = b.add(y, shortcut), filters
    b.nodes += [
        helper.make_node("DequantizeLinear", list(h), ["hf"], name="dequant"),
        helper.make_node("GlobalAveragePool", ["hf"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", b.const("fw", b.rng.standard_normal((64, 10)).astype(np.float32)),
                                  b.const("fb", np.zeros(10, np.float32))], ["logits"], name="dense"),
    ]
    graph = helper.make_graph(
        b.nodes, "resnet8",
        [helper.make_tensor_value_info("x", TensorProto.INT8 if activations == "int8" else TensorProto.UINT8,
                                       [batch, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid("com.microsoft", 1),
                                                    helper.make_opsetid(DOMAIN, 1)])
    model.ir_version = 10
    return model


def with_roupconv(model: onnx.ModelProto, choose, encoded: str = "weight") -> onnx.ModelProto:
    """Every QLinearConv replaced by ROUPConv; ``choose(weight) -> (multipliers, index)``."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    weights = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    for i, node in enumerate(out.graph.node):
        if node.op_type != "QLinearConv":
            continue
        mults, index = choose(weights[node.input[3]])
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        out.graph.node[i].CopyFrom(make_roupconv_node(
            node.input, node.output, name=node.name, multipliers=mults, multiplier_index=index,
            encoded_operand=encoded, conv_attributes=attrs))
    return out


def lut_multiplier() -> LUT:
    data = os.environ.get("AXONNX_DATA")
    path = Path(data) / "evoapprox8u" / f"{LUT_NAME}.bin" if data else None
    if path and path.exists():
        return LUT.from_file(path)
    rng = np.random.default_rng(0)
    a = np.arange(256)
    return LUT("noisy", a[:, None] * a[None, :] + rng.integers(-64, 64, (256, 256)), source="a*b+noise")


def variants(model: onnx.ModelProto) -> dict[str, onnx.ModelProto]:
    exact, roup14, roup26 = ROUP(0, 0), ROUP(1, 4), ROUP(2, 6)
    lut = lut_multiplier()

    def uniform(m):
        return lambda w: ([m], np.zeros(w.shape, np.uint8))

    def filter_mix(w):  # filters in thirds: exact, ROUP(1,4), ROUP(2,6)
        cls = (np.arange(w.shape[0]) * 3 // w.shape[0]).astype(np.uint8)
        return [exact, roup14, roup26], np.broadcast_to(cls[:, None, None, None], w.shape).copy()

    return {
        "QLinearConv": model,
        "ROUPConv exact": with_roupconv(model, uniform(exact)),
        "ROUP(1,4)": with_roupconv(model, uniform(roup14)),
        "FLAM 0,0/1,4/2,6": with_roupconv(model, filter_mix),
        "ROUP(1,4) act-enc": with_roupconv(model, uniform(roup14), encoded="activation"),
        f"{lut.name}": with_roupconv(model, uniform(lut)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--activations", choices=["int8", "uint8"], default="int8")
    parser.add_argument("--gap-ms", type=float, default=150.0,
                        help="idle pause before each timed run, so that the previous run's "
                             "spinning intra-op workers are asleep (0: back to back, fixed order)")
    args = parser.parse_args()

    model = resnet8(args.batch, args.activations)
    models = variants(model)
    dtype = np.int8 if args.activations == "int8" else np.uint8
    info = np.iinfo(dtype)
    x = np.random.default_rng(1).integers(info.min, info.max + 1, (args.batch, 3, 32, 32)).astype(dtype)
    print(f"onnxruntime {ort.__version__}, {args.activations} activations, batch {args.batch}, "
          f"{args.repeats} interleaved runs"
          f"{f' in random order, {args.gap_ms:g} ms idle before each' if args.gap_ms else ', back to back'}, "
          f"default session options (ORT_ENABLE_ALL); "
          f"throughput relative to QLinearConv")
    for threads in args.threads:
        sessions = {}
        for name, m in models.items():
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            sessions[name] = InferenceSession(m, options)
        reference = sessions["QLinearConv"].run(None, {"x": x})[0]
        exact = sessions["ROUPConv exact"].run(None, {"x": x})[0]
        same = "identical" if exact.tobytes() == reference.tobytes() else "DIFFERENT"
        times: dict[str, list[float]] = {name: [] for name in sessions}
        order = list(sessions)
        shuffle = np.random.default_rng(threads)
        for rep in range(args.warmup + args.repeats):
            if args.gap_ms:
                shuffle.shuffle(order)
            for name in order:
                session = sessions[name]
                if args.gap_ms:
                    time.sleep(args.gap_ms / 1e3)
                start = time.perf_counter()
                session.run(None, {"x": x})
                if rep >= args.warmup:
                    times[name].append(time.perf_counter() - start)
        base = statistics.median(times["QLinearConv"])
        print(f"\nintra-op threads: {threads}   (ROUPConv exact vs QLinearConv outputs: {same})")
        print(f"{'variant':<22}{'median ms':>11}{'img/s':>9}{'vs QLinearConv':>16}")
        for name, t in times.items():
            med = statistics.median(t)
            print(f"{name:<22}{med * 1e3:>11.1f}{args.batch / med:>9.0f}{base / med:>15.2f}x")


if __name__ == "__main__":
    main()
