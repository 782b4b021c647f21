"""``axonnx multipliers``: the ROUP family with its error metrics (and energy, when known)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, stdout
from axonnx.multipliers import NAMED_STRENGTHS, error_metrics, roup_family


@app.command("multipliers")
def multipliers_command(
    bits: Annotated[int, typer.Option(help="Operand width N (even, 4..16).")] = 8,
    json_output: JsonOption = False,
) -> None:
    """List every ROUP(P,R) configuration with its exhaustive error metrics."""
    from axonnx.energy import default_energy_lookup

    energy_of = default_energy_lookup() if bits == 8 else (lambda name: None)
    aliases = {v: k for k, v in NAMED_STRENGTHS.items()}
    rows = []
    for m in roup_family(bits):
        metrics = error_metrics(m).as_dict()
        energy = energy_of(m.name)
        rows.append({"name": m.name, "alias": aliases.get(m.name, ""), **metrics,
                     "relative_energy": None if energy is None else energy.relative,
                     "energy_pj": None if energy is None else energy.pj})
    if json_output:
        emit_json(rows)
        return
    table = Table(title=f"ROUP multipliers, N={bits} ({'exhaustive' if bits <= 8 else 'sampled'} metrics)")
    for col in ("name", "alias", "ER %", "mean err", "MED", "MRED %", "NMED %", "WCE", "variance", "rel. energy"):
        table.add_column(col, justify="left" if col in ("name", "alias") else "right")
    for r in rows:
        table.add_row(
            r["name"], r["alias"], f"{100 * r['error_rate']:.2f}", f"{r['mean_error']:.3g}",
            f"{r['med']:.4g}", f"{100 * r['mred']:.3f}", f"{100 * r['nmed']:.4f}", str(r["wce"]),
            f"{r['variance']:.4g}",
            "-" if r["relative_energy"] is None else f"{r['relative_energy']:.3f}",
        )
    stdout.print(table)
