"""axonnx.enable(): applications that build their own onnxruntime sessions run
transformed models unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime import InferenceSession as EarlyReference  # taken before enable()

import axonnx
from axonnx.plan import LayerRule, Plan
from axonnx.transform import transform_model
from axonnx.zoo import resolve_model


def an_existing_app(path, sess_options=None):
    """What deployment code looks like: its own session, no custom-op hook."""
    session = EarlyReference(str(path), sess_options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 32, 32)).astype(np.float32)
    return session, session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture
def transformed(tmp_path):
    model = transform_model(onnx.load(str(resolve_model("zoo:resnet8"))),
                            Plan((LayerRule(("*",), "llam", ("ROUP(1,4)",)),)))
    path = tmp_path / "roup.onnx"
    onnx.save(model, str(path))
    yield path
    axonnx.disable()


def test_enable_registers_the_library_for_later_sessions(transformed):
    with pytest.raises(Exception, match="ROUPConv"):
        an_existing_app(transformed)
    axonnx.enable()
    axonnx.enable()  # idempotent
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session, scores = an_existing_app(transformed, options)
    assert session.get_session_options().intra_op_num_threads == 1
    reference = axonnx.InferenceSession(transformed)
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 32, 32)).astype(np.float32)
    assert np.array_equal(scores, reference.run(None, {reference.get_inputs()[0].name: x})[0])
    axonnx.disable()
    with pytest.raises(Exception, match="ROUPConv"):
        an_existing_app(transformed)


def test_plain_register_recipe(transformed):
    """The README's recipe without enable(): register the library on the options."""
    options = ort.SessionOptions()
    options.register_custom_ops_library(axonnx.get_library_path())
    _, scores = an_existing_app(transformed, options)
    assert scores.shape == (2, 10)


def test_enable_keeps_every_setting_of_the_applications_options(transformed):
    axonnx.enable()
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    first, scores = an_existing_app(transformed, options)
    second, again = an_existing_app(transformed, options)  # options reused: registered once
    for session in (first, second):
        kept = session.get_session_options()
        assert kept.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert kept.intra_op_num_threads == 1
        assert kept.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert np.array_equal(scores, again)


def test_inference_session_keeps_the_config_entries_of_its_options(transformed):
    # axonnx.InferenceSession used to copy the options, which dropped config entries such as
    # allow_spinning=0 (onnxruntime cannot list them to copy).
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = 1
    for _ in range(2):  # the same options twice: the library is registered once
        session = axonnx.InferenceSession(transformed, sess_options=options)
        kept = session.get_session_options()
        assert kept.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert kept.intra_op_num_threads == 1
