"""The offline demo: the bundled int8 ResNet-8 under a few contrasting plans, evaluated on
the packaged 1,000-image CIFAR-10 sample. Needs no network and no ../shared."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from axonnx.model import load_model, save_model_atomic
from axonnx.plan import Plan, plan_from_options
from axonnx.progress import Progress
from axonnx.transform import inspect_model, transform_model

DEMO_MODEL = "zoo:resnet8"


def demo_plans() -> dict[str, Plan]:
    """Contrasting plans: layer, filter and kernel level, and multiplication skipping."""
    return {
        "exact (all ROUP(0,0))": Plan(),
        "LLAM ROUP_M": plan_from_options(llam="ROUP_M"),
        "LLAM ROUP_H": plan_from_options(llam="ROUP_H"),
        "FLAM ROUP(0,0)/ROUP_M/ROUP_H": plan_from_options(flam="ROUP(0,0),ROUP_M,ROUP_H"),
        "KLAM-chan ROUP_L/ROUP_H": plan_from_options(klam_chan="ROUP_L,ROUP_H"),
        "KLMS k=2 (skip outside mu+-2sigma)": plan_from_options(klms=2),
    }


@dataclass
class DemoRow:
    plan: str
    top1: float
    delta_pp: float
    multiplications: dict[str, int]
    energy_gain: float | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def run_demo(model: str = DEMO_MODEL, progress: Progress = None) -> tuple[object, list[DemoRow]]:
    """Evaluate the model as shipped and under each demo plan on the offline sample."""
    from axonnx.data import load_sample
    from axonnx.energy import EnergyTable, energy_report
    from axonnx.evaluate import evaluate

    sample = load_sample()
    table = EnergyTable.load_default()
    info = inspect_model(model)
    baseline = evaluate(model, sample, progress=progress)
    rows = [DemoRow("int8 model as shipped (QLinearConv)", baseline.top1, 0.0,
                    {"exact": sum(layer.macs_per_image for layer in info.layers)}, 0.0)]
    source = load_model(model)
    with tempfile.TemporaryDirectory(prefix="axonnx-demo-") as tmp:
        for label, plan in demo_plans().items():
            transformed = transform_model(source, plan)
            path = save_model_atomic(transformed, Path(tmp) / "model.onnx")
            transformed_info = inspect_model(transformed)
            counts = transformed_info.multiplications
            report = energy_report(counts, table, transformed_info.operand_formats)
            result = evaluate(path, sample, progress=progress)
            totals: dict[str, int] = {}
            for layer_counts in counts.values():
                for name, n in layer_counts.items():
                    totals[name] = totals.get(name, 0) + n
            rows.append(DemoRow(label, result.top1, 100 * (result.top1 - baseline.top1), totals,
                                report.gain))
    return info, rows
