"""The C++ ROUPMatMul kernel (customops/roupmatmul) against its specification, the numpy oracle
axonnx/ops/roupmatmul.py, byte for byte in every CPU dispatch mode (requantized and int32
forms); exact mode against onnxruntime's QLinearMatMul and MatMulInteger; bad nodes and inputs
fail with the node's name."""

from __future__ import annotations

import textwrap

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from axonnx import InferenceSession
from axonnx.multipliers import parse
from axonnx.ops.roupmatmul import DOMAIN, make_roupmatmul_node, roup_matmul

from test_kernel import ORT_ERRORS, random_multiplier, run_in_dispatch_mode, small_error_lut

TYPES = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}
NAMES = ["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale",
         "y_zero_point", "bias"]


def model_of(node, args, b_input):
    """args[7] (y_zero_point) None: the int32 form's y."""
    a, b, zy = args[0], args[3], args[7]
    inputs = [helper.make_tensor_value_info("a", TYPES[a.dtype], None)]
    if b_input:
        inputs.append(helper.make_tensor_value_info("b", TYPES[b.dtype], None))
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in zip(NAMES, args)
             if v is not None and n != "a" and not (b_input and n == "b")]
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info(
                                  "y", TensorProto.INT32 if zy is None else TYPES[zy.dtype], None)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid(DOMAIN, 1)])
    model.ir_version = 10
    return model


def run(model, args, b_input, threads=1):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    feeds = {"a": args[0], **({"b": args[3]} if b_input else {})}
    return InferenceSession(model.SerializeToString(), options).run(None, feeds)[0]


def run_roupmatmul(args, mults, index, *, encoded="weight", b_input=False, threads=1):
    names = NAMES[:6] if args[6] is None else NAMES if args[8] is not None else NAMES[:8]
    node = make_roupmatmul_node(names, ["y"], name="mm", multipliers=mults,
                                multiplier_index=index, encoded_operand=encoded)
    return run(model_of(node, args, b_input), args, b_input, threads)


def random_case(rng):
    """Operands of random shapes: batch dims that broadcast (or none), u8/s8 everywhere,
    per-tensor or per-column b, a bias or not; an index of b's shape or one that broadcasts."""
    dts = (np.uint8, np.int8)
    adt, bdt, ydt = (dts[i] for i in rng.integers(0, 2, 3))
    m, k, n = (int(v) for v in rng.integers(1, 12, 3))
    batch = [int(v) for v in rng.integers(1, 4, rng.integers(0, 3))]
    a_batch = [d if rng.random() < 0.7 else 1 for d in batch]
    b_batch = [d if rng.random() < 0.5 else 1 for d in batch][rng.integers(0, len(batch) + 1):]
    ai, bi, yi = np.iinfo(adt), np.iinfo(bdt), np.iinfo(ydt)
    a = rng.integers(ai.min, ai.max + 1, (*a_batch, m, k)).astype(adt)
    b = rng.integers(bi.min, bi.max + 1, (*b_batch, k, n)).astype(bdt)
    cols = (n,) if rng.random() < 0.5 else ()
    args = [a, np.float32(rng.random() * 0.05 + 0.005), np.asarray(rng.integers(ai.min, ai.max + 1), adt),
            b, (rng.random(cols) * 0.02 + 0.001).astype(np.float32),
            rng.integers(bi.min, bi.max + 1, cols).astype(bdt), np.float32(1),
            np.asarray(rng.integers(yi.min, yi.max + 1), ydt),
            rng.integers(-5000, 5000, n).astype(np.int32) if rng.random() < 0.5 else None]
    index_shape = list(b.shape)
    for axis in range(len(index_shape)):
        if rng.random() < 0.3:
            index_shape[axis] = 1
    index_shape = index_shape[rng.integers(0, len(index_shape) - 1):]
    return args, index_shape


def check_random_cases(count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for case in range(count):
        args, index_shape = random_case(rng)
        mults = [random_multiplier(rng, k) for k in range(int(rng.integers(1, 5)))]
        index = rng.integers(0, len(mults), index_shape).astype(np.uint8)
        encoded = ("weight", "activation")[case % 2]
        kw = dict(multipliers=mults, multiplier_index=index, encoded_operand=encoded)
        acc = roup_matmul(*args, **kw, return_accumulator=True)
        args[6] = np.float32(args[1] * np.max(args[4]) * max(1, np.abs(acc).max()) / 150)
        if case % 4 == 3:  # the int32 form (MatMulInteger's): no y_scale, y_zero_point, bias
            args[6:] = [None] * 3
        want = roup_matmul(*args, **kw)
        got = run_roupmatmul(args, mults, index, encoded=encoded, b_input=bool(case % 3 == 0),
                             threads=1 + case % 2)
        assert got.dtype == want.dtype and got.shape == want.shape, (seed, case)
        assert got.tobytes() == want.tobytes(), (seed, case)


def test_random_cases_equal_the_oracle():
    check_random_cases(150, seed=0)


def check_bert_like_shapes() -> None:
    """Larger products in every kernel path: a fully connected [2, 37, 96] x [96, 80] (u8 GEMM
    rows, int16 rows for 9-bit b - zb, LUT rows of every width) and attention [2, 3, 37, 32] x
    [2, 3, 32, 37] (s8 and u8 b, zero points far from the middle: 9-bit rows split in two),
    exact, ROUP(1,4) and a per-position mix, 2 threads."""
    rng = np.random.default_rng(5)
    mults = [parse(s) for s in ("ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)", "SKIP")]
    mults += [small_error_lut(rng, "l8", 100), small_error_lut(rng, "l16", 3000),
              small_error_lut(rng, "l32", 2**20)]
    for adt, bdt, a_shape, b_shape, b_input in (
            (np.uint8, np.int8, (2, 37, 96), (96, 80), False),
            (np.int8, np.int8, (2, 37, 96), (96, 80), False),
            (np.int8, np.int8, (2, 3, 37, 32), (2, 3, 32, 37), True),
            (np.uint8, np.uint8, (2, 3, 37, 32), (2, 3, 32, 37), True)):
        ai = np.iinfo(adt)
        a = rng.integers(ai.min, ai.max + 1, a_shape).astype(adt)
        b = rng.integers(np.iinfo(bdt).min, np.iinfo(bdt).max + 1, b_shape).astype(bdt)
        n = b_shape[-1]
        zb = (rng.integers(-3, 3, n) if bdt == np.int8 else rng.choice([0, 40, 128, 250], n))
        args = [a, np.float32(0.02), np.asarray(3, adt), b, np.full(n, 0.01, np.float32),
                zb.astype(bdt), np.float32(8.0), np.asarray(0, adt),
                rng.integers(-500, 500, n).astype(np.int32)]
        for index in (np.zeros((1, 1), np.uint8), np.ones((1, 1), np.uint8),
                      rng.integers(0, len(mults), b_shape[-2:]).astype(np.uint8)):
            for encoded in ("weight", "activation"):
                kw = dict(multipliers=mults, multiplier_index=index, encoded_operand=encoded)
                want = roup_matmul(*args, **kw)
                got = run_roupmatmul(args, mults, index, encoded=encoded, b_input=b_input,
                                     threads=2)
                assert got.tobytes() == want.tobytes(), (a_shape, encoded)
            if index.size > 1:  # the int32 form, with the per-position mix
                integer = args[:6] + [None] * 3
                want = roup_matmul(*integer, **kw)
                got = run_roupmatmul(integer, mults, index, encoded=encoded, b_input=b_input,
                                     threads=2)
                assert got.dtype == np.int32 and got.tobytes() == want.tobytes(), a_shape


@pytest.mark.parametrize("switch", ["AXONNX_NO_AMX", "AXONNX_NO_VNNI", "AXONNX_NO_AVX2", None])
def test_every_dispatch_mode_equals_the_oracle(switch):
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        import test_roupmatmul_kernel as t
        t.check_random_cases(40, seed=1)
        t.check_bert_like_shapes()
        print("ok")
    """)
    run_in_dispatch_mode(script, switch, timeout=300)


def test_exact_equals_qlinearmatmul():
    rng = np.random.default_rng(2)
    for case in range(40):
        args, _ = random_case(rng)
        args[8] = None  # QLinearMatMul has no bias
        # onnxruntime's kernels: y of a's type; int8 a with int8 b only.
        args[7] = np.asarray(args[7]).astype(np.int16).clip(0, 127).astype(args[0].dtype)
        if args[0].dtype == np.int8:
            args[3], args[5] = args[3].view(np.int8), np.asarray(args[5]).view(np.int8)
        if args[4].ndim:  # onnxruntime takes per-column parameters of a 2-D b as [1, N]
            args[4], args[5] = ((args[4].reshape(1, -1), args[5].reshape(1, -1))
                                if args[3].ndim == 2 else (args[4][0], args[5][0]))
        if args[0].dtype == np.uint8 and args[3].dtype == np.int8:
            args[3] = (args[3] // 2).astype(np.int8)  # onnxruntime's u8s8 vpmaddubsw saturates
        args[6] = np.float32(0.5)
        node = helper.make_node("QLinearMatMul", NAMES[:8], ["y"], name="mm")
        want = run(model_of(node, args, False), args, False)
        got = run_roupmatmul(args, [parse("ROUP(0,0)")], np.zeros((1, 1), np.uint8))
        assert got.tobytes() == want.tobytes(), case


def test_exact_int32_form_equals_matmulinteger():
    rng = np.random.default_rng(4)
    for case in range(40):
        args, _ = random_case(rng)
        args[6:] = [None] * 3
        if args[4].ndim and args[3].ndim > 2:  # MatMulInteger: per-column zero points of a 2-D b only
            args[5] = args[5][0]
        if args[0].dtype == np.uint8 and args[3].dtype == np.int8:
            args[3] = (args[3] // 2).astype(np.int8)  # onnxruntime's u8s8 vpmaddubsw saturates
        a, _, za, b, _, zb = args[:6]
        node = helper.make_node("MatMulInteger", ["a", "b", "a_zero_point", "b_zero_point"],
                                ["y"], name="mm")
        inits = [numpy_helper.from_array(np.asarray(v), n)
                 for n, v in (("b", b), ("a_zero_point", za), ("b_zero_point", zb))]
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("a", TYPES[a.dtype], None)],
            [helper.make_tensor_value_info("y", TensorProto.INT32, None)], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
        model.ir_version = 10
        want = run(model, args, False)
        got = run_roupmatmul(args, [parse("ROUP(0,0)")], np.zeros((1, 1), np.uint8))
        assert got.dtype == np.int32 and got.tobytes() == want.tobytes(), case


def test_bad_nodes_and_inputs_fail_with_the_node_name():
    rng = np.random.default_rng(3)
    args, _ = random_case(rng)
    with pytest.raises(ORT_ERRORS, match=r"\[ROUPMatMul\] node 'mm': multiplier_index has shape"):
        run_roupmatmul(args, [parse("ROUP(0,0)")], np.zeros((2, 3, 4, 5, 6), np.uint8))
    with pytest.raises(ORT_ERRORS, match=r"\[ROUPMatMul\] node 'mm': multiplier_index refers"):
        run_roupmatmul(args, [parse("ROUP(0,0)")], np.ones((1, 1), np.uint8))
    node = make_roupmatmul_node(NAMES[:8], ["y"], name="mm", multipliers=[parse("ROUP(0,0)")],
                                multiplier_index=np.zeros((1, 1), np.uint8))
    node.attribute.append(helper.make_attribute("strides", [2, 2]))
    args[8] = None
    with pytest.raises(ORT_ERRORS, match=r"\[ROUPMatMul\] node 'mm': has conv attributes"):
        run(model_of(node, args, False), args, False)
    half = make_roupmatmul_node(NAMES[:7], ["y"], name="mm", multipliers=[parse("ROUP(0,0)")],
                                multiplier_index=np.zeros((1, 1), np.uint8))
    with pytest.raises(ORT_ERRORS, match=r"\[ROUPMatMul\] node 'mm': the int32 form \(no "
                                         r"y_zero_point\) takes no y_scale"):
        run(model_of(half, args[:7] + [None, None], False), args, False)
    args[0] = args[0][..., :0, :]  # M = 0: an empty output, no error
    assert run_roupmatmul(args, [parse("ROUP(0,0)")], np.zeros((1, 1), np.uint8)).size == 0
    a = np.zeros((4, 3), np.uint8)
    args = [a, np.float32(0.1), np.uint8(0), np.zeros((5, 2), np.int8), np.float32(0.1),
            np.int8(0), np.float32(0.1), np.uint8(0), None]
    with pytest.raises(ORT_ERRORS, match=r"\[ROUPMatMul\] node 'mm': a \[4, 3\] and b \[5, 2\] "
                                         "do not chain"):
        run_roupmatmul(args, [parse("ROUP(0,0)")], np.zeros((1, 1), np.uint8), b_input=True)
