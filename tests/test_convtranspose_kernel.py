"""The C++ ROUPConvTranspose kernel (customops/roupconvtranspose) against its specification,
the numpy oracle axonnx/ops/roupconvtranspose.py, byte for byte, on random geometries in every
CPU dispatch mode; the oracle's geometry against onnxruntime's ConvTranspose; bad nodes failing
with a message that names the node."""

from __future__ import annotations

import textwrap

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from axonnx import InferenceSession
from axonnx.errors import AxonnxError
from axonnx.multipliers import parse
from axonnx.ops.roupconv import make_roupconv_node
from axonnx.ops.roupconvtranspose import OP_TYPE, roup_conv_transpose

import test_kernel as tk


def transpose_args(rng, *, xdt, wdt, ydt, n, c_in, c_out, hw, kernel, group, per_channel, bias):
    """QLinearConv's nine operands for a ConvTranspose: w is [C_in, C_out/group, kH, kW];
    w_scale, w_zero_point and B hold one value per output channel (or a scalar)."""
    args = tk.random_args(rng, xdt=xdt, wdt=wdt, ydt=ydt, n=n, c=c_in, m=c_out, hw=hw,
                          kernel=kernel, per_channel=per_channel, bias=bias)
    wi = np.iinfo(wdt)
    args[3] = rng.integers(wi.min, wi.max + 1, (c_in, c_out // group, *kernel)).astype(wdt)
    return args


def oracle(args, attrs, *, multipliers=("ROUP(0,0)",), index=None, encoded="weight", **kw):
    return roup_conv_transpose(*args, multipliers=list(multipliers), multiplier_index=index,
                               encoded_operand=encoded, **attrs, **kw)


def run_transpose(args, attrs, *, multipliers=("ROUP(0,0)",), index=None, encoded="weight",
                  threads=1, weight_input=False):
    mults = [parse(m) if isinstance(m, str) else m for m in multipliers]
    index = np.zeros(args[3].shape, np.uint8) if index is None else index
    node = make_roupconv_node(tk.node_inputs(args), ["y"], name="up", multipliers=mults,
                              multiplier_index=index, encoded_operand=encoded,
                              conv_attributes=attrs, op_type=OP_TYPE)
    model = tk.single_node_model(node, args, weight_input=weight_input)
    return tk.run(model, args, threads=threads, weight_input=weight_input)


def random_case(rng):
    """A random geometry (stride 1-3, dilation, pads or auto_pad or output_shape,
    output_padding, groups, depthwise-transposed), dtypes, a multiplier mix and its plan."""
    dt = [np.uint8, np.int8]
    xdt, wdt, ydt = (dt[int(rng.integers(2))] for _ in range(3))
    if rng.integers(3) == 0:  # depthwise-transposed: one input channel per group
        group = int(rng.integers(1, 6))
        c_in, c_out = group, group * int(rng.integers(1, 3))
    else:
        group = int(rng.integers(1, 4))
        c_in, c_out = group * int(rng.integers(1, 5)), group * int(rng.integers(1, 5))
    kernel = tuple(int(k) for k in rng.integers(1, 5, 2))
    strides = [int(s) for s in rng.integers(1, 4, 2)]
    dilations = [int(d) for d in rng.integers(1, 3, 2)]
    hw = tuple(int(s) for s in rng.integers(1, 8, 2))
    attrs = dict(strides=strides, dilations=dilations, group=group)
    if rng.integers(2):
        attrs["output_padding"] = [int(rng.integers(0, s)) for s in strides]
    mode = rng.choice(["pads", "pads", "same_upper", "same_lower", "output_shape"])
    natural = [(hw[a] - 1) * strides[a] + attrs.get("output_padding", [0, 0])[a]
               + (kernel[a] - 1) * dilations[a] + 1 for a in range(2)]
    if mode == "pads":
        attrs["pads"] = [int(rng.integers(0, max(1, natural[a % 2] // 2))) for a in range(4)]
    elif mode == "output_shape":
        attrs["output_shape"] = [int(rng.integers(max(1, natural[a] - 3), natural[a] + 1))
                                 for a in range(2)]
    else:
        attrs["auto_pad"] = "SAME_UPPER" if mode == "same_upper" else "SAME_LOWER"
    args = transpose_args(rng, xdt=xdt, wdt=wdt, ydt=ydt, n=int(rng.integers(1, 3)), c_in=c_in,
                          c_out=c_out, hw=hw, kernel=kernel, group=group,
                          per_channel=bool(rng.integers(2)), bias=bool(rng.integers(2)))
    mults = [tk.random_multiplier(rng, k) for k in range(int(rng.integers(1, 5)))]
    style = rng.choice(["uniform", "filter", "kernel", "position"])
    index = transpose_index(rng, style, len(mults), args[3].shape, group)
    encoded = "weight" if rng.integers(3) else "activation"
    # y_scale spreads the outputs over the output range, so that few saturate.
    acc = oracle(args, attrs, multipliers=mults, index=index, encoded=encoded,
                 return_accumulator=True)
    args[6] = np.float32(args[1] * np.max(args[4]) * max(1, np.abs(acc).max()) / 150)
    return args, attrs, mults, index, encoded


def transpose_index(rng, style, n_mults, w_shape, group):
    """Plans in ConvTranspose's layout: a filter is an output channel (axis 1 within a group),
    a kernel an (input channel, output channel) pair."""
    c_in, o_g, kh, kw = w_shape
    if style == "uniform":
        index = np.full(w_shape, rng.integers(n_mults))
    elif style == "filter":
        per_out = rng.integers(0, n_mults, (group, 1, o_g, 1, 1))
        index = np.broadcast_to(per_out, (group, c_in // group, o_g, kh, kw)).reshape(w_shape)
    elif style == "kernel":
        index = np.broadcast_to(rng.integers(0, n_mults, (c_in, o_g, 1, 1)), w_shape)
    else:
        index = rng.integers(0, n_mults, w_shape)
    return np.ascontiguousarray(index).astype(np.uint8)


def check_random_cases(seed: int, count: int) -> None:
    rng = np.random.default_rng(seed)
    for case in range(count):
        args, attrs, mults, index, encoded = random_case(rng)
        kw = dict(multipliers=mults, index=index, encoded=encoded)
        want = oracle(args, attrs, **kw)
        got = run_transpose(args, attrs, threads=int(rng.integers(1, 3)),
                            weight_input=bool(rng.integers(2)), **kw)
        assert got.shape == want.shape and got.tobytes() == want.tobytes(), (seed, case, attrs)


def test_kernel_equals_oracle_on_random_geometries():
    check_random_cases(seed=1, count=150)


@pytest.mark.parametrize("switch", ["AXONNX_NO_AMX", "AXONNX_NO_VNNI", "AXONNX_NO_AVX2"])
def test_dispatch_modes_equal_oracle(switch):
    """AVX-512 without AMX, AVX2 and the portable loops give the oracle's bytes too."""
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        import test_convtranspose_kernel as t
        t.check_random_cases(seed=2, count=40)
        t.check_decoder_layer()
        print("ok")
    """)
    tk.run_in_dispatch_mode(script, switch, timeout=300)


def decoder_layer(seed=5, xdt=np.uint8):
    """A decoder-shaped upsampler: 32 -> 16 channels, 4x4 kernel, stride 2, pads 1, 12x10."""
    rng = np.random.default_rng(seed)
    args = transpose_args(rng, xdt=xdt, wdt=np.int8, ydt=xdt, n=2, c_in=32, c_out=16,
                          hw=(12, 10), kernel=(4, 4), group=1, per_channel=True, bias=True)
    args[3] = rng.integers(-60, 61, args[3].shape).astype(np.int8)  # AVX2-exact u8s8 pairs
    return rng, args, dict(strides=[2, 2], pads=[1, 1, 1, 1])


def check_decoder_layer():
    rng, args, attrs = decoder_layer()
    mults = [parse(n) for n in ("ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)", "SKIP")]
    mults.append(tk.small_error_lut(rng, "l", 3000))
    shape = args[3].shape
    for index, encoded in ((np.zeros(shape, np.uint8), "weight"),
                           (np.ones(shape, np.uint8), "weight"),
                           (transpose_index(rng, "filter", 3, shape, 1), "weight"),
                           (transpose_index(rng, "position", len(mults), shape, 1), "weight"),
                           (np.ones(shape, np.uint8), "activation")):
        kw = dict(multipliers=mults, index=index, encoded=encoded)
        want = oracle(args, attrs, **kw)
        for threads in (1, 2):
            assert run_transpose(args, attrs, threads=threads, **kw).tobytes() == want.tobytes()


def test_decoder_layer_equals_oracle():
    check_decoder_layer()


# ---- the oracle's geometry is onnxruntime's ConvTranspose --------------------------------------

GEOMETRIES = [
    dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
    dict(strides=[3, 2], dilations=[2, 1], pads=[0, 1, 2, 0], output_padding=[1, 0], group=2),
    dict(strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(strides=[2, 3], auto_pad="SAME_LOWER"),
    dict(strides=[3, 3], auto_pad="SAME_UPPER"),  # a kernel below the stride: natural size
    dict(strides=[2, 2], output_shape=[10, 10]),
    dict(strides=[2, 2], auto_pad="SAME_UPPER", output_shape=[10, 9]),
    dict(strides=[2, 2], output_shape=[12, 13]),  # past the natural size: bias only there
    dict(strides=[1, 1], dilations=[2, 3], pads=[2, 0, 0, 1]),
]


@pytest.mark.parametrize("attrs", GEOMETRIES)
def test_oracle_geometry_is_onnxruntimes(attrs):
    """Exact products of small integers are exact in float: onnxruntime's float ConvTranspose
    gives the oracle's accumulators wherever the geometry puts each product."""
    rng = np.random.default_rng(0)
    group = attrs.get("group", 1)
    x = rng.integers(-5, 6, (2, 4, 5, 6)).astype(np.int8)
    w = rng.integers(-5, 6, (4, 2, 3, 2)).astype(np.int8)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, None)],
                              [helper.make_tensor_value_info("y", 1, None)],
                              [numpy_helper.from_array(w.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]
                               ).run(None, {"x": x.astype(np.float32)})[0]
    acc = roup_conv_transpose(x, 1.0, np.int8(0), w, 1.0, np.int8(0), 1.0, np.int8(0),
                              return_accumulator=True, **attrs)
    assert group and got.shape == acc.shape and np.array_equal(got, acc)


def test_geometry_onnxruntime_refuses_is_refused():
    rng = np.random.default_rng(0)
    args = transpose_args(rng, xdt=np.uint8, wdt=np.int8, ydt=np.uint8, n=1, c_in=2, c_out=2,
                          hw=(5, 5), kernel=(3, 3), group=1, per_channel=False, bias=False)
    for attrs, message in ((dict(strides=[2, 2], output_shape=[14, 14]), "does not fit"),
                           (dict(strides=[1, 1], dilations=[3, 3], output_padding=[2, 1]),
                            "output_padding")):
        with pytest.raises(AxonnxError, match=message):
            oracle(args, attrs)
        with pytest.raises(tk.ORT_ERRORS, match=rf"\[{OP_TYPE}\] node 'up': .*{message}"):
            run_transpose(args, attrs)


def test_bad_index_shape_fails_at_session_creation():
    rng = np.random.default_rng(0)
    args = transpose_args(rng, xdt=np.uint8, wdt=np.int8, ydt=np.uint8, n=1, c_in=2, c_out=4,
                          hw=(5, 5), kernel=(3, 3), group=1, per_channel=False, bias=False)
    with pytest.raises(tk.ORT_ERRORS, match=rf"\[{OP_TYPE}\] node 'up': multiplier_index has shape"):
        run_transpose(args, dict(strides=[2, 2]), index=np.zeros((4, 2, 3, 3), np.uint8))
