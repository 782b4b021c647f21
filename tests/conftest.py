"""Shared fixtures: small float conv models, quantized by onnxruntime's own quantize_static."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

# Test modules import the model builders below with ``from conftest import ...``.
sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AXONNX_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _plans_meet_the_schema(monkeypatch):
    """Every plan the loader accepts anywhere in the suite (files, dicts, model metadata)
    also passes axonnx/plan.schema.json: the schema and the loader cannot drift apart."""
    from axonnx.plan import Plan, schema_errors

    load = Plan.from_dict.__func__
    refused: list[str] = []

    def checked(cls, data, source="plan"):
        plan = load(cls, data, source)
        refused.extend(f"{source}: {e}" for e in schema_errors(data))
        return plan

    monkeypatch.setattr(Plan, "from_dict", classmethod(checked))
    yield
    assert not refused, f"plans the loader accepts but the schema refuses: {refused}"


# Conv geometries that cover explicit, asymmetric and auto pads, strides and dilations.
GEOMETRIES = [
    dict(pads=[1, 1, 1, 1]),
    dict(pads=[0, 1, 2, 0], strides=[2, 1]),
    dict(auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(auto_pad="SAME_LOWER", strides=[1, 2]),
    dict(auto_pad="VALID", dilations=[2, 1]),
    dict(pads=[2, 2, 2, 2], dilations=[2, 2], strides=[3, 2]),
]


def shared_data_or_skip(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (set AXONNX_DATA to the shared data folder)")
    return path


@pytest.fixture
def cifar_dir() -> Path:
    """The folder holding the official CIFAR-10 batches (skips without them)."""
    return shared_data_or_skip("cifar-10-batches-py", "data_batch_5").parent


def build_float_model(seed: int = 0, depthwise: bool = True, with_fc: bool = True,
                      input_hw: int = 12) -> onnx.ModelProto:
    """conv3x3(3->8) relu, [depthwise 3x3 stride 2 relu], grouped conv (g=2, 8->8),
    conv1x1(8->6, stride 2, pad), global pool, [flatten + gemm(6->4)]."""
    rng = np.random.default_rng(seed)

    def init(name, *shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [init("w1", 8, 3, 3, 3), init("b1", 8, scale=0.1),
             init("w3", 8, 4, 3, 3), init("b3", 8, scale=0.1),
             init("w4", 6, 8, 1, 1), init("b4", 6, scale=0.1)]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="stem", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1")]
    last = "r1"
    if depthwise:
        inits += [init("w2", 8, 1, 3, 3), init("b2", 8, scale=0.1)]
        nodes += [helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="dw", group=8,
                                   pads=[1, 1, 1, 1], strides=[2, 2]),
                  helper.make_node("Relu", ["c2"], ["r2"], name="relu2")]
        last = "r2"
    nodes += [helper.make_node("Conv", [last, "w3", "b3"], ["c3"], name="grouped", group=2,
                               pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
              helper.make_node("Conv", ["r3", "w4", "b4"], ["c4"], name="pointwise",
                               strides=[2, 2]),
              helper.make_node("GlobalAveragePool", ["c4"], ["g"], name="pool")]
    out = "g"
    if with_fc:
        inits += [init("wf", 6, 4), init("bf", 4, scale=0.1)]
        nodes += [helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
                  helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc")]
        out = "logits"
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, input_hw, input_hw])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def quantize(float_model: onnx.ModelProto, tmp_path: Path, *, fmt: str = "qoperator",
             activation: str = "int8", per_channel: bool = True, reduce_range: bool = False,
             name: str | None = None, seed: int = 1) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader, QuantFormat, QuantType, quantize_static,
    )

    shape = [d.dim_value or 4 for d in float_model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.standard_normal(shape).astype(np.float32)}
                                 for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    src = tmp_path / "float.onnx"
    onnx.save(float_model, src)
    dst = tmp_path / (name or f"q_{fmt}_{activation}_{'pc' if per_channel else 'pt'}.onnx")
    quantize_static(
        str(src), str(dst), Reader(),
        quant_format=QuantFormat.QOperator if fmt == "qoperator" else QuantFormat.QDQ,
        activation_type=QuantType.QInt8 if activation == "int8" else QuantType.QUInt8,
        weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=reduce_range,
    )
    return dst


@pytest.fixture(scope="session")
def quantized_models(tmp_path_factory):
    """QOperator and QDQ, int8 and uint8 activations, per-channel and per-tensor.
    uint8 activations use reduce_range (7-bit weights), as onnxruntime advises for AVX2,
    whose u8s8 kernel otherwise saturates int16 pairs (docs/roupconv-op.md)."""
    root = tmp_path_factory.mktemp("models")
    float_model = build_float_model()
    models = {}
    for fmt in ("qoperator", "qdq"):
        for act in ("int8", "uint8"):
            for pc in (True, False):
                models[(fmt, act, pc)] = quantize(float_model, root, fmt=fmt, activation=act,
                                                  per_channel=pc, reduce_range=act == "uint8")
    return models


@pytest.fixture
def random_input():
    rng = np.random.default_rng(7)
    return lambda n=3, hw=12: rng.standard_normal((n, 3, hw, hw)).astype(np.float32)
