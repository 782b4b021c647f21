"""``axonnx hw``: structural Verilog of ROUP multipliers and their energy characterization."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, stderr, stdout
from axonnx.errors import AxonnxError
from axonnx.model import check_outputs

hw_app = typer.Typer(
    name="hw",
    help="Hardware: structural Verilog, Yosys synthesis and activity-based energy of multipliers.",
    no_args_is_help=True,
)
app.add_typer(hw_app, name="hw")


@hw_app.command("verilog")
def verilog_command(
    multiplier: Annotated[str, typer.Argument(help="A ROUP name, e.g. 'ROUP(1,4)', 'ROUP(1;r=4/2/0)' or ROUP_M.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write the Verilog here (default: stdout).")] = None,
    top: Annotated[Optional[str], typer.Option("--top", help="Module name (default: derived from the configuration, e.g. roup_p1_r4).")] = None,
    formats: Annotated[str, typer.Option("--formats", help="Operand formats, rounded x encoded: s8xs8, u8xs8, s9xs8, ... (s8 [-128,127], u8 [0,255], s9 [-256,255]).")] = "s8xs8",
    json_output: JsonOption = False,
) -> None:
    """Write one structural Verilog module p = ROUP(a, b): inputs a (rounded) and b (radix-4 encoded), N-bit two's complement by default (see --formats), and the product p."""
    from axonnx.hw import roup_netlist
    from axonnx.multipliers import ROUP, parse

    m = parse(multiplier)
    if not isinstance(m, ROUP):
        raise AxonnxError(f"{m.name}: only ROUP multipliers have a Verilog generator")
    netlist = roup_netlist(m, top, formats)
    text = netlist.verilog()
    check_outputs([output])
    summary = {"multiplier": m.name, "module": netlist.name, "bits": m.bits, "formats": formats,
               "gates": netlist.gate_count, "structures": netlist.counts,
               "output": str(output) if output else None}
    if output is not None:
        output.write_text(text)
    else:
        if json_output:
            summary["verilog"] = text
        else:
            stdout.out(text, end="", highlight=False)
    if json_output:
        emit_json(summary)
    elif output is not None:
        gates = sum(netlist.gate_count.values())
        stderr.print(f"wrote {output}: module {netlist.name} ({m.name}, {gates} gates, "
                     + ", ".join(f"{v} {k}s" for k, v in netlist.counts.items()) + ")",
                     highlight=False)


def _summary_table(table: dict, title: str) -> Table:
    from axonnx.hw.characterize import row_formats
    from axonnx.multipliers import NAMED_STRENGTHS

    aliases = {v: k for k, v in NAMED_STRENGTHS.items()}
    out = Table(title=title)
    extra = next((k for k in table["rows"][0] if k.startswith("relative_energy_")), None)
    several = len({row_formats(r) for r in table["rows"]}) > 1
    cols = ["name", "alias"] + (["formats"] if several else []) + ["area µm²", "energy pJ", "rel. energy"]
    if extra:
        cols.append(f"rel. ({extra[len('relative_energy_'):].replace('_', ' ')})")
    for col in cols + ["rel. area", "MRED %", "NMED %"]:
        out.add_column(col, justify="left" if col in ("name", "alias", "formats") else "right",
                       no_wrap=col in ("name", "alias", "formats"))
    for row in table["rows"]:
        err = row.get("error") or {}
        name = row["name"] + (" = " + ", ".join(row["aliases"]) if row.get("aliases") else "")
        out.add_row(name, aliases.get(row["name"], ""), *([row_formats(row)] if several else []),
                    f"{row['area_um2']:.2f}",
                    f"{row['energy_pj']:.4f}", f"{row['relative_energy']:.3f}",
                    *([f"{row[extra]:.3f}"] if extra else []),
                    f"{row['relative_area']:.3f}",
                    f"{100 * err['mred']:.3f}" if "mred" in err else "-",
                    f"{100 * err['nmed']:.4f}" if "nmed" in err else "-")
    return out


@hw_app.command("characterize")
def characterize_command(
    liberty: Annotated[Path, typer.Option("--liberty", help="Liberty (.lib or .lib.gz) library to map onto.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write the energy table (JSON) here.")] = None,
    verilog: Annotated[Optional[Path], typer.Option("--verilog", help="Characterize this external multiplier netlist instead of the ROUP family.")] = None,
    top: Annotated[Optional[str], typer.Option("--top", help="Top module of --verilog (ports: two operand inputs, one product output).")] = None,
    unsigned: Annotated[bool, typer.Option("--unsigned", help="--verilog multiplies unsigned operands.")] = False,
    only: Annotated[Optional[str], typer.Option("--multipliers", "--only", help="Comma-separated ROUP names to characterize (default: every distinct configuration).")] = None,
    formats: Annotated[Optional[str], typer.Option("--formats", help="Operand format pairs (rounded x encoded) to characterize each ROUP configuration for, comma-separated: s8 [-128,127], u8 [0,255], s9 [-256,255]; the default stream is uniform over each format's ranges. Default: s8xs8,u8xs8,s9xs8, or s8xs8 with --stream.")] = None,
    merge: Annotated[Optional[Path], typer.Option("--merge", help="Start from this energy table: its rows of formats not characterized now are kept (e.g. add u8xs8 rows to the built-in table).")] = None,
    bits: Annotated[int, typer.Option(help="Operand width N of the ROUP family.")] = 8,
    stream: Annotated[Optional[Path], typer.Option("--stream", help="Captured operand stream: .npy [K,2], .npz (a, b) or CSV of a,b pairs.")] = None,
    samples: Annotated[int, typer.Option(help="Length of the default uniform random stream.")] = 65536,
    seed: Annotated[int, typer.Option(help="Seed of the default stream.")] = 0,
    clock_ns: Annotated[float, typer.Option("--clock-ns", help="Clock period over which leakage is integrated.")] = 1.0,
    slew_ns: Annotated[float, typer.Option("--slew-ns", help="Nominal input slew for the internal-power tables.")] = 0.02,
    output_load_ff: Annotated[Optional[float], typer.Option("--output-load-ff", help="Load on each product bit (default: the library's smallest flip-flop data pin).")] = None,
    delay_model: Annotated[str, typer.Option("--delay-model", help="zero: functional transitions only; unit: unit-delay simulation that also counts glitches.")] = "zero",
    glitch_column: Annotated[bool, typer.Option("--glitch-column/--no-glitch-column", help="ROUP table: add the other delay model's energy to every row as a sensitivity check.")] = True,
    json_output: JsonOption = False,
) -> None:
    """Synthesize with Yosys onto a Liberty library, verify against the golden model, and measure area and activity-based energy per multiplication; write the energy table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from axonnx.hw.characterize import (
        DEFAULT_CHARACTERIZED_FORMATS, characterize_external, characterize_roup, combine_tables,
        distinct_configurations, format_stream, load_stream, read_table, uniform_stream,
    )
    from axonnx.multipliers.operands import DEFAULT_FORMATS, parse_formats_list
    from axonnx.hw.power import EnergyOptions
    from axonnx.multipliers import ROUP, parse_list

    if samples < 2:
        raise AxonnxError("--samples must be at least 2")
    if clock_ns <= 0 or slew_ns <= 0:
        raise AxonnxError("--clock-ns and --slew-ns must be positive")
    if delay_model not in ("zero", "unit"):
        raise AxonnxError(f"--delay-model {delay_model!r}: use zero or unit")
    check_outputs([output], [liberty, verilog, stream, merge])  # before any synthesis
    options = EnergyOptions(clock_ns=clock_ns, slew_ns=slew_ns, output_load_ff=output_load_ff,
                            delay_model=delay_model)
    signed = not unsigned
    if verilog is None and top is not None:
        raise AxonnxError("--top names the top module of --verilog; give --verilog too")
    format_keys = parse_formats_list(formats or (DEFAULT_FORMATS if stream is not None
                                                 else DEFAULT_CHARACTERIZED_FORMATS))
    if verilog is None and bits != 8:
        format_keys = [DEFAULT_FORMATS]  # the formats are those of 8-bit multipliers
    if stream is not None and verilog is None and len(format_keys) > 1:
        raise AxonnxError("--stream holds the operands of one format pair; give one --formats")
    if verilog is not None and merge is not None:
        raise AxonnxError("--merge extends a ROUP table; it does not apply to --verilog")
    op_bits = bits
    ops = (load_stream(stream, op_bits, signed, None if verilog is not None or bits != 8
                       else format_keys[0]) if stream is not None else None)

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[current]}"), TimeElapsedColumn(),
                        console=stderr, transient=False)
    with progress:
        if verilog is not None:
            task = progress.add_task("characterizing", total=2, current="")

            def step(name: str) -> None:
                progress.update(task, advance=0 if progress.tasks[0].fields["current"] == "" else 1,
                                current=name)

            table = characterize_external(verilog, top, liberty, stream=ops, options=options,
                                          signed=signed, progress=step)
            progress.update(task, completed=2, current="done")
        else:
            if only:
                chosen = []
                for m in parse_list(only):
                    if not isinstance(m, ROUP):
                        raise AxonnxError(f"--multipliers: {m.name} is not a ROUP configuration")
                    chosen.append((m, []))
            plans = {f: chosen if only else distinct_configurations(bits, f) for f in format_keys}
            exact = ROUP(0, 0, bits=bits).name
            total = sum(len(c) + all(m.name != exact for m, _ in c) for c in plans.values())
            task = progress.add_task("characterizing", total=total, current="")
            seen = []

            def step(name: str) -> None:
                if seen:
                    progress.advance(task)
                seen.append(name)
                progress.update(task, current=name)

            tables = [read_table(merge)] if merge is not None else []
            for f, configs in plans.items():
                tables.append(characterize_roup(
                    liberty, bits=bits, configurations=configs, formats=f,
                    stream=ops or (uniform_stream(samples, seed, bits) if f == DEFAULT_FORMATS
                                   else format_stream(f, samples, seed)),
                    options=options, progress=lambda name, f=f: step(f"{name} {f}"),
                    secondary_delay_model=(("unit" if delay_model == "zero" else "zero")
                                           if glitch_column else None)))
            table = combine_tables(tables) if len(tables) > 1 else tables[0]
            progress.update(task, completed=total, current="done")
    if output is not None:
        output.write_text(json.dumps(table, indent=1) + "\n")
    if json_output:
        emit_json(table)
        return
    prov = table["provenance"]
    title = (f"{prov['library']} ({prov['corner']['voltage_V']} V), {prov['tools']['yosys'].split(' (')[0]}, "
             f"{prov['stream']['pairs']} pairs")
    stdout.print(_summary_table(table, title))
    for key in [k for k in table if k.startswith("suggested_strengths")]:
        current = table["named_strengths"]
        where = key[len("suggested_strengths_"):] or DEFAULT_FORMATS
        for alias, s in table[key].items():
            mark = "" if current.get(alias) == s["name"] else f" (NAMED_STRENGTHS has {current.get(alias)})"
            stderr.print(f"{alias} ({where}): Pareto-optimal nearest {100 * s['target_saving']:.0f}% "
                         f"saving is {s['name']} ({100 * s['saving']:.1f}%, MRED {100 * s['mred']:.2f}%){mark}",
                         highlight=False)
    if output is not None:
        stderr.print(f"wrote {output}", highlight=False)
