"""How far an exact plan is from onnxruntime on a QDQ model with int8 activations (issue 17).

onnxruntime fuses only some DequantizeLinear -> Conv -> QuantizeLinear groups into
QLinearConv and runs the others in float, whose result can round to the neighbouring step;
an exact plan as ROUPConv nodes (``exact_layers="roup"``) computes QLinearConv's integer
result for every conv; by default the convs stay onnxruntime's, on activations stored as
uint8, which it fuses into QLinearConv where it could not before. On the zoo's QDQ
ResNet-8 and the packaged 1,000-image sample, at two onnxruntime optimization levels:

    python -P bench/qdq_exact_gap.py

prints the top-1 of the original and of its exact-plan rewrite, the share of the models'
output values (logits) that differ, and the share of images whose prediction differs.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

import axonnx
from axonnx.data import load_sample
from axonnx.plan import Plan
from axonnx.transform import transform_model
from axonnx.zoo import resolve_model

MODEL = "zoo:resnet8-qdq"


def outputs(model: onnx.ModelProto, level, images: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.register_custom_ops_library(axonnx.get_library_path())
    session = ort.InferenceSession(model.SerializeToString(), options)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images[i:i + 250]})[0]
                           for i in range(0, len(images), 250)])


def main() -> None:
    sample = load_sample()
    images, labels = sample.images.astype(np.float32), sample.labels
    original = onnx.load(str(resolve_model(MODEL)))
    print(f"{MODEL}, {len(labels)} sample images, onnxruntime {ort.__version__}")
    # No rules: every conv exact. By default the convs stay onnxruntime's, on activations
    # stored as uint8; with exact_layers="roup" every conv is a ROUPConv on the int8 values.
    for exact_layers in ("onnxruntime", "roup"):
        exact = transform_model(original, Plan(), exact_layers=exact_layers)
        for title, level in (("ORT_DISABLE_ALL", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                             ("ORT_ENABLE_ALL", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)):
            a, b = outputs(original, level, images), outputs(exact, level, images)
            top_a = (a.argmax(1) == labels).mean()
            top_b = (b.argmax(1) == labels).mean()
            print(f"exact_layers={exact_layers}, {title}: top-1 original {100 * top_a:.2f}%, "
                  f"exact plan {100 * top_b:.2f}%; output values differing {(a != b).sum():,} "
                  f"of {a.size:,} ({100 * (a != b).mean():.2f}%); predictions differing "
                  f"{(a.argmax(1) != b.argmax(1)).sum()} of {len(labels)}")


if __name__ == "__main__":
    main()
