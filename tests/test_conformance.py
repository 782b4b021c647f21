"""The ONNX backend conformance cases of the installed onnx package for the quantized products
(QLinearMatMul, MatMulInteger, QLinearConv, ConvInteger): every input but the first made an
initializer, transformed with an exact plan (--matmul --llam 'ROUP(0,0)'); each case either
gives the expected outputs bit for bit through onnxruntime with the library, or is refused
with its true reason."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.backend.test.case.node import collect_testcases

from axonnx import InferenceSession
from axonnx.errors import AxonnxError
from axonnx.plan import plan_from_options
from axonnx.transform import transform_model

OPS = ("qlinearmatmul", "matmulinteger", "qlinearconv", "convinteger")
with warnings.catch_warnings():  # building the other ops' cases warns (overflowing casts)
    warnings.simplefilter("ignore")
    CASES = {c.name: c for c in collect_testcases(None)
             if any(c.name.startswith(f"test_{op}") for op in OPS)}
# The cases that are refused, and why (the rest must be bit-identical).
REFUSED = {
    "test_convinteger_without_padding": "ConvInteger gives int32 accumulators",
    "test_convinteger_with_padding": "ConvInteger gives int32 accumulators",
}


def test_every_case_is_collected():
    assert len(CASES) == 12, sorted(CASES)  # 8 QLinearMatMul (2-D/3-D, u8/s8, f32/f16) + 4
    assert set(REFUSED) <= set(CASES)


def with_initializers(case) -> tuple[onnx.ModelProto, list[np.ndarray], list[np.ndarray]]:
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs, outputs = case.data_sets[0]
    graph = model.graph
    first, *rest = list(graph.input)
    for info, value in zip(rest, inputs[1:]):
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), info.name))
    del graph.input[1:]
    model.ir_version = min(model.ir_version, 10)
    return model, inputs[0], outputs


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_is_exact_or_refused_with_its_reason(name):
    model, first, expected = with_initializers(CASES[name])
    plan = plan_from_options(llam="ROUP(0,0)", matmul=True)
    if name in REFUSED:
        with pytest.raises(AxonnxError, match=REFUSED[name]):
            transform_model(model, plan)
        return
    rewritten = transform_model(model, plan, exact_layers="roup")
    assert any(n.domain == "com.axonnx" for n in rewritten.graph.node)
    assert not any(n.op_type in ("QLinearMatMul", "MatMulInteger", "QLinearConv")
                   for n in rewritten.graph.node)
    got = InferenceSession(rewritten.SerializeToString()).run(
        None, {model.graph.input[0].name: np.asarray(first)})
    for want, have in zip(expected, got):
        assert want.dtype == have.dtype and want.shape == have.shape
        assert want.tobytes() == have.tobytes()
