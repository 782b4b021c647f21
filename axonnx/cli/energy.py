"""Rendering of the multiplier energy report (``axonnx energy``)."""

from __future__ import annotations

from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, stderr, stdout
from axonnx.cli._options import EnergyTableOption, InputShapeOption, MatMulOption, ModelArgument
from axonnx.energy import EXACT, EnergyReport


def _fmt_pj(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.4g} µJ"
    if value >= 1e3:
        return f"{value / 1e3:.4g} nJ"
    return f"{value:.4g} pJ"


def render_energy_report(report: EnergyReport, json_output: bool) -> None:
    """Print the report: JSON on stdout, or a table (per layer: multiplications per
    multiplier, energy, share) with totals, the all-exact baseline and the gain."""
    if json_output:
        emit_json(report.as_dict())
        return
    names = list(dict.fromkeys(n for layer in report.layers for n in layer.counts))
    table = Table(title="Multiplier energy per image")
    table.add_column("layer", justify="left", no_wrap=True)
    table.add_column("operands", justify="left", no_wrap=True)
    for name in names:
        table.add_column(name, justify="right", overflow="fold")
    table.add_column("energy", justify="right", no_wrap=True)
    table.add_column("rel. to exact", justify="right")
    table.add_column("share", justify="right")
    for layer in report.layers:
        table.add_row(
            layer.name, layer.formats, *[f"{layer.counts.get(n, 0):,}" for n in names],
            _fmt_pj(layer.pj) if layer.pj is not None else f"{layer.relative:,.0f} × exact",
            f"{1 - layer.gain:.3f}", f"{100 * layer.share:.1f}%",
        )
    totals = {n: sum(layer.counts.get(n, 0) for layer in report.layers) for n in names}
    table.add_section()
    table.add_row("total", "", *[f"{totals[n]:,}" for n in names],
                  _fmt_pj(report.pj) if report.pj is not None else f"{report.relative:,.0f} × exact",
                  f"{1 - report.gain:.3f}", "100.0%", style="bold")
    table.add_row("all exact", "", *["" for _ in names],
                  _fmt_pj(report.baseline_pj) if report.baseline_pj is not None
                  else f"{report.baseline_relative:,.0f} × exact", "1.000", "")
    stdout.print(table)
    kinds = report.per_kind
    if kinds:
        per_kind = Table(title="Per layer kind")
        for col in ("kind", "layers", "multiplications", "energy", "gain"):
            per_kind.add_column(col, justify="left" if col == "kind" else "right")
        for kind, row in kinds.items():
            energy = (_fmt_pj(row["energy_pj"]) if row["energy_pj"] is not None
                      else f"{row['energy_relative']:,.0f} × exact")
            per_kind.add_row(kind, str(row["layers"]), f"{row['multiplications']:,}", energy,
                             f"{100 * row['gain']:.1f}%")
        stdout.print(per_kind)
    stdout.print(f"energy gain versus all exact ({report.multiplications:,} multiplications at "
                 f"{EXACT}): [bold]{100 * report.gain:.1f}%[/]", highlight=False)

    # Where each figure comes from (sources numbered once; they are long).
    sources: list[str] = []
    per = Table(title="Energy per multiplication", show_edge=False)
    for col in ("multiplier", "pJ", "relative", "source"):
        per.add_column(col, justify="right" if col in ("pJ", "relative", "source") else "left")
    exact_pj = report.baseline_pj / report.baseline_relative if report.baseline_pj else None
    for name, entry in report.entries.items():
        if entry.source not in sources:
            sources.append(entry.source)
        asked = name.split(" ")[0]  # the label without its operand formats
        label = name if entry.name == asked else f"{name} = {entry.name}"
        if entry.pj is not None:
            pj = f"{entry.pj:.4g}"
        elif name in report.estimated_pj and exact_pj:
            pj = f"~{entry.relative * exact_pj:.4g}"
        else:
            pj = "-"
        per.add_row(label, pj, f"{entry.relative:.3f}", f"[{sources.index(entry.source) + 1}]")
    stderr.print(per)
    for k, source in enumerate(sources, start=1):
        stderr.print(f"[{k}] {source}", highlight=False, markup=False)
    if report.estimated_pj:
        stderr.print("~ pJ estimated as relative energy × the exact multiplier's pJ "
                     f"({', '.join(report.estimated_pj)})", highlight=False)
    stderr.print("operands: rounded x encoded formats the multipliers see (s8 [-128,127], "
                 "u8 [0,255], s9 [-256,255]); each layer relative to ROUP(0,0) of its formats",
                 highlight=False)
    for note in report.notes:
        stderr.print(f"note: {note}", highlight=False, markup=False)


@app.command("energy")
def energy_command(
    model: ModelArgument,
    table: EnergyTableOption = None,
    input_shape: InputShapeOption = None,
    matmul: MatMulOption = False,
    json_output: JsonOption = False,
) -> None:
    """Multiplier energy per layer of a model, and the gain versus all-exact.

    Works on original and transformed models; SKIPped multiplications cost nothing."""
    from axonnx.energy import EnergyTable, energy_report
    from axonnx.transform import inspect_model

    energy_table = EnergyTable.load_default()
    if table is not None:
        energy_table = energy_table.merged(EnergyTable.from_file(table))
    info = inspect_model(model, input_shape, matmul=matmul or None)
    # Totals over every multiplication of the model: nodes left alone count as exact.
    report = energy_report(info.all_multiplications, energy_table, info.operand_formats,
                           info.all_kinds)
    for a in info.left_alone:
        macs = info.left_alone_macs.get(a.node)
        report.notes.append(f"{a.node} ({a.kind}) left alone, counted as exact"
                            + (f": {macs:,} multiplications" if macs else
                               ": its multiplications could not be counted")
                            + f" ({a.reason})")
    render_energy_report(report, json_output)
