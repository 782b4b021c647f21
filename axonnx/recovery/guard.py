"""Recovery that never makes things worse: the model is transformed with and without it,
both are scored against the exact model's outputs on the calibration data, and the closer
one is kept (and the choice said). Bias correction assumes the error of each product is
independent of the others; where a layer's errors cancel or compound differently, the
correction can overshoot, so its effect is measured, not trusted."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from axonnx.plan import Plan


@dataclass
class RecoveryVerdict:
    kept: bool  # the recovered model is the one returned
    score_with: float
    score_without: float
    metric: str = "snr"
    samples: int = 0

    def line(self, label: str) -> str:
        unit = " dB" if self.metric == "snr" else ""
        return (f"recovery {label} {'kept' if self.kept else 'dropped'}: output {self.metric} "
                f"vs the exact model on the {self.samples} calibration samples "
                f"{self.score_with:.2f}{unit} with it, {self.score_without:.2f}{unit} without"
                + ("" if self.kept else "; the model is written without it"))

    def as_dict(self) -> dict:
        return {"kept": self.kept, "metric": self.metric, "with": self.score_with,
                "without": self.score_without, "samples": self.samples}


def guarded_transform(model: onnx.ModelProto, plan: Plan, recovery, data, *,
                      input_shape=None, metric: str = "snr", exact_layers: str = "onnxruntime"):
    """(model, summary, verdict): the transform with ``recovery`` if it scores at least as
    well as the one without it on ``data`` (a Dataset; the calibration data), else the one
    without."""
    from axonnx.evaluate import Runner, evaluate
    from axonnx.transform import transform_with_summary

    recovered = transform_with_summary(model, plan, recovery=recovery, input_shape=input_shape,
                                       exact_layers=exact_layers)
    plain = transform_with_summary(model, plan, input_shape=input_shape,
                                   exact_layers=exact_layers)
    # The reference is the exact plan's model: the integer result the approximation departs
    # from (the original equals it but where onnxruntime runs a QDQ conv in float, one step
    # away, and a QDQ ConvTranspose always in float): ROUP nodes throughout.
    exact = transform_with_summary(model, Plan(matmul=plan.matmul), input_shape=input_shape,
                                   exact_layers="roup")
    reference = Runner(exact[0]).outputs(data)
    score_with = evaluate(recovered[0], data, metric, reference=reference).score
    score_without = evaluate(plain[0], data, metric, reference=reference).score
    verdict = RecoveryVerdict(score_with >= score_without, score_with, score_without, metric,
                              len(data))
    chosen = recovered if verdict.kept else plain
    return chosen[0], chosen[1], verdict
