"""``axonnx.evaluate`` and ``axonnx eval`` on tiny models built with onnx.helper."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from axonnx.cli import eval as _eval  # noqa: F401  (registers the command)
from axonnx.cli._app import app
from axonnx.data.cifar10 import Split
from axonnx.errors import AxonnxError
from axonnx.evaluate import STANDARD_PREPROCESS, evaluate
from axonnx.zoo import model_path

WEIGHTS = np.random.default_rng(1).normal(size=(3, 10)).astype(np.float32)


def tiny_model(path, *, preprocess=STANDARD_PREPROCESS, dtype=TensorProto.FLOAT,
               shape=("N", 3, 32, 32), outputs=10):
    """logits = mean over H, W of the (cast) input @ WEIGHTS."""
    nodes, x = [], "x"
    if dtype != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
        x = "xf"
    axes = [2, 3] if shape[1] == 3 else [1, 2]
    nodes.append(helper.make_node("ReduceMean", [x], ["pooled"], axes=axes, keepdims=0))
    nodes.append(helper.make_node("MatMul", ["pooled", "w"], ["logits"]))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", dtype, list(shape))],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [shape[0], outputs])],
        initializer=[numpy_helper.from_array(WEIGHTS[:, :outputs], "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    if preprocess is not None:
        value = preprocess if isinstance(preprocess, str) else json.dumps(preprocess)
        model.metadata_props.add(key="axonnx.preprocess", value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def reference(images: np.ndarray, mean=None, std=None, scale=1.0) -> np.ndarray:
    x = images.astype(np.float32) * np.float32(scale)
    if mean is not None:
        x = (x - np.float32(mean).reshape(1, 3, 1, 1)) / np.float32(std).reshape(1, 3, 1, 1)
    return (x.mean(axis=(2, 3)) @ WEIGHTS).argmax(axis=1)


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (97, 3, 32, 32), dtype=np.uint8)
    labels = reference(images)
    labels[::3] = (labels[::3] + 1) % 10  # a third wrong
    return Split(images, labels.astype(np.int64), "synthetic")


def test_evaluate_standard_model(tmp_path, split):
    path = tiny_model(tmp_path / "m.onnx")
    result = evaluate(path, split, batch=10, threads=1, progress=False)
    expected = reference(split.images)
    np.testing.assert_array_equal(result.predictions, expected)
    hits = expected == split.labels
    assert result.n == 97 and result.correct == hits.sum()
    assert result.top1 == pytest.approx(hits.mean())
    for c, name in enumerate(result.per_class):
        mask = split.labels == c
        assert result.per_class[name] == (pytest.approx(hits[mask].mean()) if mask.any() else None)
    assert result.preprocess_source == "model metadata" and result.images_per_s > 0
    json.dumps(result.as_dict(), allow_nan=False)


def test_model_without_metadata_standard_input_is_accepted(tmp_path, split):
    path = tiny_model(tmp_path / "m.onnx", preprocess=None)
    result = evaluate(path, split, progress=False)
    assert result.preprocess_source.startswith("assumed")
    np.testing.assert_array_equal(result.predictions, reference(split.images))


@pytest.mark.parametrize("kind", ["uint8", "nhwc", "size"])
def test_model_without_metadata_other_input_is_refused(tmp_path, split, kind):
    kwargs = {"uint8": dict(dtype=TensorProto.UINT8),
              "nhwc": dict(shape=("N", 32, 32, 3)),
              "size": dict(shape=("N", 3, 28, 28))}[kind]
    path = tiny_model(tmp_path / "m.onnx", preprocess=None, **kwargs)
    with pytest.raises(AxonnxError, match="not guessed.*axonnx.preprocess"):
        evaluate(path, split, progress=False)


def test_metadata_mean_std_range_and_layout(tmp_path, split):
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    path = tiny_model(tmp_path / "m.onnx", shape=("N", 32, 32, 3), preprocess={
        "layout": "NHWC", "dtype": "float32", "range": "0-1",
        "normalisation": {"mean": mean, "std": std}})
    result = evaluate(path, split, batch=32, progress=False)
    np.testing.assert_array_equal(result.predictions,
                                  reference(split.images, mean, std, scale=1 / 255))


def test_metadata_uint8_input(tmp_path, split):
    path = tiny_model(tmp_path / "m.onnx", dtype=TensorProto.UINT8,
                      preprocess={"layout": "NCHW", "dtype": "uint8", "range": "0-255",
                                  "normalisation": "in graph"})
    result = evaluate(path, split, progress=False)
    np.testing.assert_array_equal(result.predictions, reference(split.images))


@pytest.mark.parametrize("meta, match", [
    ("{not json", "not valid JSON"),
    ('{"layout": "CHWN"}', "layout='CHWN' is not supported"),
    ('{"normalisation": {"mean": [1, 2]}}', 'normalisation needs "mean" and "std"'),
    ('{"normalisation": "per image"}', "not supported"),
])
def test_bad_metadata_is_refused(tmp_path, split, meta, match):
    path = tiny_model(tmp_path / "m.onnx", preprocess=meta)
    with pytest.raises(AxonnxError, match=match):
        evaluate(path, split, progress=False)


def test_fixed_batch_model_and_wrong_output(tmp_path, split):
    path = tiny_model(tmp_path / "fixed.onnx", shape=(4, 3, 32, 32))
    result = evaluate(path, split, batch=50, progress=False)
    assert result.batch == 4
    np.testing.assert_array_equal(result.predictions, reference(split.images))
    path = tiny_model(tmp_path / "seven.onnx", outputs=7)
    with pytest.raises(AxonnxError, match=r"expected \[N, 10\]"):
        evaluate(path, split, progress=False)


def test_unreadable_model_is_one_error(tmp_path, split):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(AxonnxError, match="is not an ONNX model"):
        evaluate(bad, split, progress=False)


def test_cli_eval_sample_json(tmp_path):
    path = tiny_model(tmp_path / "m.onnx")
    result = CliRunner().invoke(app, ["eval", str(path), "--sample", "--limit", "120",
                                      "--batch", "50", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n"] == 120 and 0 <= payload["top1"] <= 1
    assert set(payload["per_class"]) == {"airplane", "automobile", "bird", "cat", "deer",
                                         "dog", "frog", "horse", "ship", "truck"}


def test_cli_eval_human_output_and_errors(tmp_path):
    path = tiny_model(tmp_path / "m.onnx", preprocess=None)
    result = CliRunner().invoke(app, ["eval", str(path), "--sample", "--limit", "50"])
    assert result.exit_code == 0, result.output
    assert "top-1:" in result.stdout and "no axonnx.preprocess metadata" in result.stderr
    result = CliRunner().invoke(app, ["eval", "zoo:nope", "--sample"])
    assert result.exit_code == 1 and "known models are zoo:resnet8" in result.stderr
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "missing.onnx"), "--sample"])
    assert result.exit_code == 1 and "does not exist" in result.stderr


def _zoo_model(name: str):
    try:
        return model_path(name)
    except AxonnxError as exc:
        pytest.skip(f"zoo model not built yet: {exc}")


@pytest.mark.parametrize("name", ["zoo:resnet8", "zoo:resnet8-qdq", "zoo:resnet8-fp32"])
def test_zoo_models_on_the_sample(name):
    from axonnx.data import load_sample
    from axonnx.zoo import card

    _zoo_model(name)
    result = evaluate(name, load_sample(), threads=1, progress=False)
    assert result.preprocess_source == "model metadata"
    assert result.top1 > 0.8
    recorded = card(name)["top1_sample"]
    import onnxruntime

    from axonnx.zoo import get, zoo_root

    # Exact: the card is what `axonnx zoo` shows. onnxruntime fuses QDQ graphs into kernels
    # that change between versions, so an upgrade can move the QDQ figure: measure again.
    whole = json.loads((zoo_root() / get(name).folder / "card.json").read_text())
    assert result.correct == round(recorded * result.n), (
        f"{name} gets {result.top1:.1%} on the sample with onnxruntime "
        f"{onnxruntime.__version__}; its card says {recorded:.1%} (measured with onnxruntime "
        f"{whole['measured_with']['onnxruntime']}): run zoo/resnet8/make_card.py")


def test_progress_is_reported_through_a_callback(tmp_path, split):
    """The library draws nothing: it reports (kind, advance, total) and the CLI draws."""
    from axonnx.zoo import resolve_model

    calls = []
    result = evaluate(resolve_model("zoo:resnet8"), split, batch=7,
                      progress=lambda *call: calls.append(call))
    assert calls[0] == ("eval resnet8_int8.onnx", 0, result.n)
    assert sum(advance for _, advance, _ in calls) == result.n
    assert all(total is None for _, _, total in calls[1:])
