"""``axonnx inspect``: the quantized conv layers of a model (with --matmul its matrix
products too), and its plan if transformed."""

from __future__ import annotations

from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, stdout
from axonnx.cli._options import InputShapeOption, MatMulOption, ModelArgument


@app.command("inspect")
def inspect_command(model: ModelArgument, input_shape: InputShapeOption = None,
                    matmul: MatMulOption = False, json_output: JsonOption = False) -> None:
    """List the quantized conv layers, with the plan of a transformed model.

    For each layer: weight shape, stride, MACs per image and the multiplications per
    multiplier."""
    from axonnx.transform import inspect_model

    info = inspect_model(model, input_shape, matmul=matmul or None)
    if json_output:
        emit_json(info.as_dict())
        return
    table = Table(title=f"quantized layers of {model}")
    for col in ("layer", "kind", "form", "weight", "stride", "group", "out", "MACs/image", "approach",
                "multiplications per multiplier"):
        table.add_column(col, justify="right" if col == "MACs/image" else "left")
    for layer in info.layers:
        rule = layer.rule or {}
        approach = rule.get("approach", "-")
        if rule.get("approach") == "klms":
            approach += f" k={rule['k']:g} {rule['keep']}"
        counts = ", ".join(f"{k}: {v:,}" for k, v in layer.multiplications.items())
        table.add_row(layer.name, layer.kind, layer.form, "x".join(map(str, layer.weight_shape)),
                      "x".join(map(str, layer.strides)), str(layer.group),
                      "x".join(map(str, layer.output_hw)), f"{layer.macs_per_image:,}",
                      approach, counts)
    stdout.print(table)
    total = sum(layer.macs_per_image for layer in info.layers)
    kinds = {}
    for layer in info.layers:
        kinds[layer.kind] = kinds.get(layer.kind, 0) + 1
    described = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "no"
    stdout.print(f"{described} layers, {total:,} MACs per image")
    for name, kind in info.fully_connected.items():
        stdout.print(f"{kind} layer {name}: stays exact (--matmul, or a plan's matmul: true, "
                     "approximates it)")
    for node, reason in info.refused:
        stdout.print(f"left alone: {node} ({reason})")
    if info.plan is not None:
        state = "matches the attributes" if info.plan_verified else "does NOT match the attributes"
        stdout.print(f"plan recorded by axonnx {info.axonnx_version}: {state}")
