"""How far an exact plan is from onnxruntime on a QDQ model with int8 activations (issue 17).

onnxruntime fuses only some DequantizeLinear -> Conv -> QuantizeLinear groups into
QLinearConv and runs the others in float, whose result can round to the neighbouring step;
an exact plan as ROUPConv nodes (``exact_layers="roup"``) computes QLinearConv's integer
result for every conv; by default the convs stay onnxruntime's, on activations stored as
uint8, which it fuses into QLinearConv where it could not before. On the zoo's QDQ
ResNet-8 and the packaged 1,000-image sample, at two onnxruntime optimization levels:

    python -P bench/qdq_exact_gap.py [--networks resnet50 mobilenet_v2]

prints the top-1 of the original and of its exact-plan rewrite, the share of the models'
output values (logits) that differ, and the share of images whose prediction differs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import axonnx
from axonnx.data import load_sample
from axonnx.plan import Plan
from axonnx.transform import transform_model
from axonnx.architectures import ARCHITECTURES, build
from axonnx.zoo import quantize_float, resolve_model

MODEL = "zoo:resnet8-qdq"


def outputs(model: onnx.ModelProto, level, images: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.register_custom_ops_library(axonnx.get_library_path())
    session = ort.InferenceSession(model.SerializeToString(), options)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images[i:i + 250]})[0]
                           for i in range(0, len(images), 250)])


def compare(original: onnx.ModelProto, images: np.ndarray, labels: np.ndarray | None,
            matmul: bool = False) -> None:
    """The exact plan against the original, both ways of running exact layers, at two
    optimization levels: output values and predictions that differ (and top-1 with labels)."""
    # No rules: every conv exact. By default the convs stay onnxruntime's, on activations
    # stored as uint8; with exact_layers="roup" every conv is a ROUPConv on the int8 values.
    for exact_layers in ("onnxruntime", "roup"):
        exact = transform_model(original, Plan(matmul=matmul), exact_layers=exact_layers)
        for title, level in (("ORT_DISABLE_ALL", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                             ("ORT_ENABLE_ALL", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)):
            a, b = outputs(original, level, images), outputs(exact, level, images)
            top = ""
            if labels is not None:
                top = (f"top-1 original {100 * (a.argmax(1) == labels).mean():.2f}%, exact plan "
                       f"{100 * (b.argmax(1) == labels).mean():.2f}%; ")
            print(f"exact_layers={exact_layers}, {title}: {top}output values differing "
                  f"{(a != b).sum():,} of {a.size:,} ({100 * (a != b).mean():.2f}%); predictions "
                  f"differing {(a.argmax(1) != b.argmax(1)).sum()} of {len(a)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="*", default=[], choices=list(ARCHITECTURES),
                        help="also ImageNet-shaped networks (224x224, random weights), quantized "
                             "with quantize_static's defaults, on 8 random inputs")
    args = parser.parse_args()
    sample = load_sample()
    images, labels = sample.images.astype(np.float32), sample.labels
    print(f"{MODEL}, {len(labels)} sample images, onnxruntime {ort.__version__}")
    compare(onnx.load(str(resolve_model(MODEL))), images, labels)
    rng = np.random.default_rng(0)
    for name in args.networks:
        with tempfile.TemporaryDirectory() as tmp:
            onnx.save(build(name, 224), Path(tmp) / "fp32.onnx")
            calibration = rng.standard_normal((4, 3, 224, 224)).astype(np.float32)
            original = onnx.load(str(quantize_float(Path(tmp) / "fp32.onnx", Path(tmp) / "q.onnx",
                                                    calibration)))
        print(f"{name}, quantize_static defaults (QDQ, int8 activations, per-tensor weights), "
              "8 random inputs")
        compare(original, rng.standard_normal((8, 3, 224, 224)).astype(np.float32), None,
                matmul=True)


if __name__ == "__main__":
    main()
