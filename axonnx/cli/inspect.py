"""``axonnx inspect``: the quantized conv layers of a model, and its plan if transformed."""

from __future__ import annotations

from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, stdout
from axonnx.cli._options import InputShapeOption, ModelArgument


@app.command("inspect")
def inspect_command(model: ModelArgument, input_shape: InputShapeOption = None,
                    json_output: JsonOption = False) -> None:
    """List the quantized conv layers, with the plan of a transformed model.

    For each layer: weight shape, stride, MACs per image and the multiplications per
    multiplier."""
    from axonnx.transform import inspect_model

    info = inspect_model(model, input_shape)
    if json_output:
        emit_json(info.as_dict())
        return
    table = Table(title=f"quantized 2-D conv layers of {model}")
    for col in ("layer", "form", "weight", "stride", "group", "out", "MACs/image", "approach",
                "multiplications per multiplier"):
        table.add_column(col, justify="right" if col == "MACs/image" else "left")
    for layer in info.layers:
        rule = layer.rule or {}
        approach = rule.get("approach", "-")
        if rule.get("approach") == "klms":
            approach += f" k={rule['k']:g} {rule['keep']}"
        counts = ", ".join(f"{k}: {v:,}" for k, v in layer.multiplications.items())
        table.add_row(layer.name, layer.form, "x".join(map(str, layer.weight_shape)),
                      "x".join(map(str, layer.strides)), str(layer.group),
                      "x".join(map(str, layer.output_hw)), f"{layer.macs_per_image:,}",
                      approach, counts)
    stdout.print(table)
    total = sum(layer.macs_per_image for layer in info.layers)
    stdout.print(f"{len(info.layers)} conv layers, {total:,} MACs per image")
    for name in info.fully_connected:
        stdout.print(f"fully connected layer {name}: stays exact (not approximated yet)")
    for node, reason in info.refused:
        stdout.print(f"left alone: {node} ({reason})")
    if info.plan is not None:
        state = "matches the attributes" if info.plan_verified else "does NOT match the attributes"
        stdout.print(f"plan recorded by axonnx {info.axonnx_version}: {state}")
