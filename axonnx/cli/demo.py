"""``axonnx demo``: the README's main job, offline."""

from __future__ import annotations

from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, progress_bar, stderr, stdout


@app.command("demo")
def demo_command(json_output: JsonOption = False) -> None:
    """Inspect, transform and evaluate the bundled int8 ResNet-8 under contrasting plans.

    Runs offline on the packaged 1,000-image CIFAR-10 sample (100 per class)."""
    from axonnx.cli.inspect import inspect_command
    from axonnx.demo import DEMO_MODEL, run_demo

    if not json_output:
        inspect_command(DEMO_MODEL, json_output=False)
        stderr.print("evaluating the plans on the offline 1,000-image sample ...")
    with progress_bar(not json_output) as bar:
        info, rows = run_demo(progress=bar)
    if json_output:
        emit_json({"model": DEMO_MODEL, "rows": [r.as_dict() for r in rows]})
        return
    total = sum(layer.macs_per_image for layer in info.layers)
    table = Table(title=f"{DEMO_MODEL} on the offline CIFAR-10 sample (1,000 images)")
    for col in ("plan", "top-1 %", "vs int8 (pp)", "multiplications per multiplier",
                "multiplier energy gain"):
        table.add_column(col, justify="left" if col in ("plan", "multiplications per multiplier") else "right")
    for r in rows:
        shares = ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in r.multiplications.items())
        gain = "-" if r.energy_gain is None else f"{100 * r.energy_gain:.1f}%"
        table.add_row(r.plan, f"{100 * r.top1:.1f}", f"{r.delta_pp:+.1f}", shares, gain)
    stdout.print(table)
    stdout.print("Accuracy on the 1,000-image sample, not the full test set: "
                 "run `axonnx eval MODEL --data DIR` for that. Energy: multiplier energy "
                 "relative to all-exact, from the committed characterization (axonnx multipliers).")
