"""``axonnx zoo``: the named models shipped with axonnx, with their accuracy."""

from __future__ import annotations

from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, stdout


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


@app.command("zoo")
def zoo_command(json_output: JsonOption = False) -> None:
    """List the zoo models (use the name wherever a MODEL is expected) with their top-1."""
    from axonnx.zoo import list_models

    rows = list_models()
    if json_output:
        emit_json(rows)
        return
    table = Table(caption="top-1: full CIFAR-10 test set; sample: eval --sample",
                  caption_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("format", no_wrap=True)
    table.add_column("top-1 %", justify="right")
    table.add_column("sample %", justify="right")
    table.add_column("size", justify="right", no_wrap=True)
    for r in rows:
        size = "missing" if not r["present"] else f"{r['size_bytes'] / 1024:.0f} KiB"
        table.add_row(r["name"], r["format"], _pct(r.get("top1")),
                      _pct(r.get("top1_sample")), size)
    stdout.print(table)
