"""Models quantized as users do (onnxruntime's quantize_static defaults, uint8 activations)
lose no more under a perforated plan than the same network with symmetric int8 activations:
the multiplier sees zero-point-free operands (SPEC.md). Offline: the zoo's float ResNet-8,
calibrated and scored on the packaged 1,000-image test sample."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from axonnx.data import load_sample
from axonnx.data.cifar10 import Split
from axonnx.evaluate import evaluate
from axonnx.plan import LayerRule, Plan
from axonnx.transform import transform_model
from axonnx.zoo import quantize_float, resolve_model


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """top-1 per (activations, format, plan) on 600 sample images; the other 400 calibrate."""
    folder = tmp_path_factory.mktemp("real")
    sample = load_sample()
    calibration = sample.images[600:].astype(np.float32)
    split = Split(sample.images[:600], sample.labels[:600], "600 sample images")
    plan = Plan((LayerRule(("*",), "llam", ("ROUP(1,4)",)),), "weight")
    top1 = {}
    for activations in ("uint8", "sym-int8", "defaults"):
        for fmt in ("qdq", "qoperator"):
            path = quantize_float(resolve_model("zoo:resnet8-fp32"),
                                  folder / f"{activations}_{fmt}.onnx", calibration, fmt=fmt,
                                  activations=activations)
            approx = folder / f"{activations}_{fmt}_roup.onnx"
            onnx.save(transform_model(onnx.load(str(path)), plan), str(approx))
            for label, model in (("exact", path), ("ROUP(1,4)", approx)):
                top1[activations, fmt, label] = evaluate(model, split, progress=False).top1
    return top1


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
@pytest.mark.parametrize("activations", ["uint8", "defaults"])
def test_defaults_lose_no_more_than_symmetric_int8(scored, activations, fmt):
    loss = scored[activations, fmt, "exact"] - scored[activations, fmt, "ROUP(1,4)"]
    reference = scored["sym-int8", fmt, "exact"] - scored["sym-int8", fmt, "ROUP(1,4)"]
    assert loss <= reference + 0.02, (loss, reference)
    assert scored[activations, fmt, "ROUP(1,4)"] > 0.5  # far from chance (10%)


def test_quantizations_are_what_they_say(tmp_path):
    from axonnx.passes import GraphIndex
    from axonnx.transform import prepared

    images = load_sample().images[:50].astype(np.float32)
    for activations, dtype, symmetric in (("uint8", np.uint8, False), ("sym-int8", np.int8, True)):
        path = quantize_float(resolve_model("zoo:resnet8-fp32"), tmp_path / f"{activations}.onnx",
                              images, activations=activations)
        model = onnx.load(str(path))
        assert model.ir_version == 10
        assert any(p.key == "axonnx.preprocess" for p in model.metadata_props)
        work, layers, _ = prepared(model)
        zero = np.asarray(GraphIndex(work.graph).constant(layers[1].inputs[2]))
        assert zero.dtype == dtype and (int(zero) == 0) == (symmetric or dtype == np.uint8)
