"""Characterization: synthesize, verify, simulate and measure multipliers, and build the
energy table (``axonnx/multipliers/energy_table.json``).

For every configuration: generate the structural Verilog, synthesize it with Yosys onto the
Liberty library, simulate the mapped netlist exhaustively against the golden model (a
mismatch is an error), then simulate it on the operand stream for its activity-based energy.
Functionally identical configurations (equal product tables) are characterized once and
merged into one row with aliases.

Each configuration is characterized per operand format pair (``rounded x encoded``, see
``axonnx.multipliers.operands``): the hardware for u8 activations differs from the s8 one,
and so does its energy. Rows carry their ``formats``; a row without one is s8xs8.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from axonnx.energy import product_digest
from axonnx.errors import AxonnxError
from axonnx.hw.generator import roup_verilog
from axonnx.hw.liberty import Library, read_liberty
from axonnx.hw.mapped import MappedNetlist
from axonnx.hw.power import EnergyOptions, EnergyResult, activity_energy
from axonnx.hw.yosys import synthesize
from axonnx.multipliers import ROUP, error_metrics, roup_family
from axonnx.multipliers.base import Multiplier
from axonnx.multipliers.operands import (
    DEFAULT_FORMATS, format_grid, format_pair, parse_formats_list,
)

TABLE_FORMAT = "axonnx-energy-table/2"  # /2: rows may carry "formats"; /1 is all s8xs8
DEFAULT_CHARACTERIZED_FORMATS = "s8xs8,u8xs8,s9xs8"
DEFAULT_STREAM_SAMPLES = 1 << 16
DEFAULT_SEED = 0


# -- operand streams ---------------------------------------------------------------------

@dataclass
class Stream:
    a: np.ndarray
    b: np.ndarray
    description: str

    def describe(self) -> dict:
        return {"description": self.description, "pairs": int(len(self.a))}


def uniform_stream(samples: int = DEFAULT_STREAM_SAMPLES, seed: int = DEFAULT_SEED, bits: int = 8,
                   signed: bool = True) -> Stream:
    """Independent uniformly random operands (the default characterization stream)."""
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    rng = np.random.default_rng(seed)
    a = rng.integers(lo, hi, samples)
    b = rng.integers(lo, hi, samples)
    kind = "signed" if signed else "unsigned"
    return Stream(a, b, f"uniform random {kind} {bits}-bit operands, numpy PCG64 seed {seed}")


def format_stream(formats: str = DEFAULT_FORMATS, samples: int = DEFAULT_STREAM_SAMPLES,
                  seed: int = DEFAULT_SEED) -> Stream:
    """Operands uniform over a format pair's ranges (s8xs8: exactly :func:`uniform_stream`)."""
    if formats == DEFAULT_FORMATS:
        return uniform_stream(samples, seed)
    fa, fb = format_pair(formats)
    rng = np.random.default_rng(seed)
    a = rng.integers(fa.lo, fa.hi + 1, samples)
    b = rng.integers(fb.lo, fb.hi + 1, samples)
    return Stream(a, b, f"uniform random operands a in {fa.describe()}, b in {fb.describe()}, "
                        f"numpy PCG64 seed {seed}")


def load_stream(path: str | os.PathLike, bits: int = 8, signed: bool = True,
                formats: str | None = None) -> Stream:
    """A captured stream of (a, b) pairs: ``.npy`` of shape [K, 2], ``.npz`` with arrays
    ``a`` and ``b``, or a CSV/text file with two integer columns (a header line is skipped).
    With ``formats``, a and b must lie in that operand format pair's ranges."""
    p = Path(path)
    if not p.is_file():
        raise AxonnxError(f"operand stream {path} does not exist")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as data:
                if not {"a", "b"} <= set(data.files):
                    raise AxonnxError(f"operand stream {path}: an .npz stream needs arrays 'a' and 'b'")
                a, b = data["a"].ravel(), data["b"].ravel()
        elif p.suffix == ".npy":
            pairs = np.load(p, allow_pickle=False)
            if pairs.ndim != 2 or pairs.shape[1] != 2:
                raise AxonnxError(f"operand stream {path}: an .npy stream must have shape [K, 2], "
                                  f"got {list(pairs.shape)}")
            a, b = pairs[:, 0], pairs[:, 1]
        else:
            text = p.read_text().splitlines()
            rows = [ln.replace(",", " ").split() for ln in text if ln.strip() and not ln.startswith("#")]
            if rows and not rows[0][0].lstrip("-").isdigit():
                rows = rows[1:]
            pairs = np.array([[int(r[0]), int(r[1])] for r in rows], dtype=np.int64)
            if pairs.size == 0:
                raise AxonnxError(f"operand stream {path} holds no (a, b) pairs")
            a, b = pairs[:, 0], pairs[:, 1]
    except (ValueError, IndexError) as exc:
        raise AxonnxError(f"operand stream {path} cannot be read: {exc}") from None
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if len(a) != len(b) or len(a) < 2:
        raise AxonnxError(f"operand stream {path} needs at least two (a, b) pairs")
    if formats is not None:
        for label, values, fmt in zip("ab", (a, b), format_pair(formats)):
            if values.min() < fmt.lo or values.max() > fmt.hi:
                raise AxonnxError(f"operand stream {path}: operand {label} outside the "
                                  f"{fmt.name} range [{fmt.lo}, {fmt.hi}] of {formats}")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if formats is None and (min(a.min(), b.min()) < lo or max(a.max(), b.max()) > hi):
        raise AxonnxError(f"operand stream {path}: operands outside the {bits}-bit "
                          f"{'signed' if signed else 'unsigned'} range [{lo}, {hi}]")
    digest = hashlib.sha256(np.stack([a, b]).astype("<i8").tobytes()).hexdigest()[:16]
    return Stream(a, b, f"captured stream {p.name} ({len(a)} pairs, sha256 {digest}...)")


def exhaustive_operands(bits: int = 8, signed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    a, b = np.meshgrid(np.arange(lo, hi), np.arange(lo, hi), indexing="ij")
    return a.ravel(), b.ravel()


# -- single designs ----------------------------------------------------------------------

@dataclass
class Measurement:
    name: str
    top: str
    area: float
    cells: int
    cell_counts: dict[str, int]
    energy: EnergyResult
    yosys_version: str
    netlist: MappedNetlist
    products: np.ndarray | None = None  # exhaustive product table of the mapped netlist
    secondary: EnergyResult | None = None  # the same stream under another delay model


def _ports(net: MappedNetlist) -> tuple[str, str, str]:
    ins, outs = list(net.inputs), list(net.outputs)
    if "a" in ins and "b" in ins and "p" in outs:
        return "a", "b", "p"
    if len(ins) == 2 and len(outs) == 1:
        return ins[0], ins[1], outs[0]
    raise AxonnxError(
        f"{net.name}: a multiplier needs two input ports and one output port "
        f"(a, b, p); found inputs {ins} and outputs {outs}"
    )


def measure(verilog: str | os.PathLike, library: Library, liberty_path: str | os.PathLike,
            stream: Stream, options: EnergyOptions = EnergyOptions(), *, top: str | None = None,
            text: bool = False, golden: Multiplier | None = None, name: str | None = None,
            signed: bool = True, exhaustive: bool = True, formats: str | None = None) -> Measurement:
    """Synthesize one design, check it (against ``golden`` when given) and measure it.
    ``formats``: a ROUP netlist for that operand format pair, checked on all its pairs."""
    syn = synthesize(verilog, liberty=liberty_path, top=top, text=text)
    net = MappedNetlist(syn.module, library, syn.top)
    pa, pb, pp = _ports(net)
    bits_a, bits_b = len(net.inputs[pa]), len(net.inputs[pb])
    products, a = None, None
    if exhaustive and formats is not None:
        a, b = format_grid(formats)
    elif exhaustive and bits_a == bits_b and bits_a <= 8:
        a, b = exhaustive_operands(bits_a, signed)
    if a is not None:
        sim = net.simulate({pa: a, pb: b})
        products = net.port_values(sim, pp, signed=signed or formats is not None)
        if golden is not None:
            expected = golden.multiply(a, b)
            bad = np.flatnonzero(products != expected)
            if bad.size:
                k = bad[0]
                raise AxonnxError(
                    f"{golden.name}: the synthesized netlist differs from the golden model on "
                    f"{bad.size} of {a.size} operand pairs (first: a={a[k]}, b={b[k]}: "
                    f"{products[k]} != {expected[k]})"
                )
    sim = net.simulate({pa: stream.a, pb: stream.b})
    energy = activity_energy(net, sim, options)
    return Measurement(name or syn.top, syn.top, net.area(), len(net.instances), net.cell_counts(),
                       energy, syn.version, net, products)


# -- the ROUP table ----------------------------------------------------------------------

def distinct_configurations(bits: int = 8, formats: str = DEFAULT_FORMATS
                            ) -> list[tuple[ROUP, list[str]]]:
    """Every ROUP(P,R) with P in [0, N/2) and R in [0, N], functionally identical ones merged
    (equal product tables on the formats' operands); the first in (P, R) order names the group."""
    groups: dict[str, tuple[ROUP, list[str]]] = {}
    for m in roup_family(bits):
        key = product_digest(m, formats)
        if key in groups:
            groups[key][1].append(m.name)
        else:
            groups[key] = (m, [])
    return list(groups.values())


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance(library: Library, stream: Stream, options: EnergyOptions, yosys: str,
               flow: str) -> dict:
    return {
        **library.describe(),
        "tools": {"yosys": yosys, "axonnx": _version("axonnx") or "source tree",
                  "liberty-parser": _version("liberty-parser"), "python": platform.python_version(),
                  "numpy": np.__version__},
        "flow": flow,
        "stream": stream.describe(),
        "energy_model": options.describe(library),
        "date": datetime.date.today().isoformat(),
    }


ProgressFn = Callable[[str], None]


def characterize_roup(liberty: str | os.PathLike, *, bits: int = 8,
                      configurations: list[tuple[ROUP, list[str]]] | None = None,
                      stream: Stream | None = None, options: EnergyOptions = EnergyOptions(),
                      progress: ProgressFn | None = None,
                      secondary_delay_model: str | None = None,
                      formats: str = DEFAULT_FORMATS) -> dict:
    """The energy table of the ROUP family (every distinct configuration by default) for
    one operand format pair; :func:`combine_tables` joins the tables of several.

    ``secondary_delay_model`` (e.g. ``"unit"``) adds a second energy figure per row,
    ``energy_pj_<model>`` and ``relative_energy_<model>``, as a sensitivity check."""
    formats = parse_formats_list(formats)[0]
    native = formats == DEFAULT_FORMATS
    if not native and bits != 8:
        raise AxonnxError(f"operand formats other than {DEFAULT_FORMATS} apply to 8-bit multipliers only")
    library = read_liberty(liberty)
    stream = stream or (uniform_stream(bits=bits) if native else format_stream(formats))
    configs = (configurations if configurations is not None
               else distinct_configurations(bits, formats))
    exact = ROUP(0, 0, bits=bits)
    if all(m.name != exact.name for m, _ in configs):
        configs = [(exact, [])] + list(configs)
    rows, measured, version = [], {}, None
    for m, aliases in configs:
        if progress:
            progress(m.name)
        meas = measure(roup_verilog(m, formats=formats), library, liberty, stream, options,
                       text=True, golden=m, name=m.name, exhaustive=bits <= 8,
                       formats=None if native else formats)
        version = meas.yosys_version
        measured[m.name] = meas
        if secondary_delay_model:
            sim = meas.netlist.simulate({"a": stream.a, "b": stream.b})
            meas.secondary = activity_energy(meas.netlist, sim, replace(
                options, delay_model=secondary_delay_model))
        metrics = error_metrics(m, formats=None if native else formats).as_dict()
        rows.append({
            "name": m.name, "aliases": list(aliases), "bits": bits, "formats": formats,
            "perforation": m.perforation, "widths": list(m.widths),
            "area_um2": round(meas.area, 4), "cells": meas.cells,
            "energy_pj": round(meas.energy.total_pj, 6),
            "breakdown_pj": {k: round(v, 6) for k, v in (
                ("switching", meas.energy.switching_pj), ("internal", meas.energy.internal_pj),
                ("leakage", meas.energy.leakage_pj))},
            "toggles_per_op": round(meas.energy.toggles_per_op, 3),
            "error": {k: (round(v, 9) if isinstance(v, float) else v) for k, v in metrics.items()},
            "product_sha256": product_digest(m, formats) if bits <= 8 else None,
        })
    base = measured[exact.name]
    flow = "generated structural Verilog; yosys: synth -flatten; abc -liberty; opt_clean"
    prov = provenance(library, stream, options, version, flow)
    if secondary_delay_model:
        prov["secondary_energy_model"] = replace(
            options, delay_model=secondary_delay_model).describe(library)["delay_model"]
    short = (f"axonnx hw characterize{'' if native else ' (' + formats + ')'}: {library.name} ({prov['corner']['voltage_V']} V, "
             f"{prov['corner']['temperature_C']} C), {version.split(' (')[0]}, "
             f"{stream.describe()['pairs']} pairs of {stream.description}, "
             f"clock {options.clock_ns} ns, {options.delay_model}-delay activity")
    for row in rows:
        meas = measured[row["name"]]
        row["relative_energy"] = round(meas.energy.total_pj / base.energy.total_pj, 6)
        row["relative_area"] = round(meas.area / base.area, 6)
        if secondary_delay_model:
            key = secondary_delay_model
            row[f"energy_pj_{key}_delay"] = round(meas.secondary.total_pj, 6)
            row[f"relative_energy_{key}_delay"] = round(
                meas.secondary.total_pj / base.secondary.total_pj, 6)
        row["source"] = short
        row["provenance"] = {k: prov[k] for k in ("library", "file", "corner", "tools", "stream")} | {
            "clock_ns": options.clock_ns}
    from axonnx.multipliers.names import NAMED_STRENGTHS

    prov["streams"] = {formats: prov["stream"]}
    table = {"format": TABLE_FORMAT, "unit": "pJ", "exact": exact.name, "provenance": prov,
             "named_strengths": dict(NAMED_STRENGTHS), "rows": rows}
    if bits == 8 and len(rows) > 3:
        table[_suggested_key(formats)] = suggest_strengths(rows)
    return table


def _suggested_key(formats: str) -> str:
    return "suggested_strengths" if formats == DEFAULT_FORMATS else f"suggested_strengths_{formats}"


def row_formats(row: dict) -> str:
    """A table row's operand formats (rows of /1 tables, and rows without one: s8xs8)."""
    return str(row.get("formats") or DEFAULT_FORMATS)


def read_table(path: str | os.PathLike) -> dict:
    """A characterization table (JSON) to extend; a bad file is a one-line error."""
    import json

    p = Path(path)
    if not p.is_file():
        raise AxonnxError(f"energy table {path} does not exist")
    try:
        table = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise AxonnxError(f"energy table {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(table, dict) or not isinstance(table.get("rows"), list) or not table["rows"]:
        raise AxonnxError(f"energy table {path} holds no rows to extend")
    return table


def combine_tables(tables: list[dict]) -> dict:
    """One table from several (e.g. one per operand format, or an existing table and new
    rows): later tables replace the rows of the formats they cover. The first table's
    provenance is kept, with every format's stream under ``provenance.streams``."""
    if not tables:
        raise AxonnxError("no energy tables to combine")
    out = {k: v for k, v in tables[0].items() if k != "rows"}
    out["format"] = TABLE_FORMAT
    out["provenance"] = dict(out.get("provenance") or {})
    streams = dict(out["provenance"].get("streams") or {})
    rows: list[dict] = []
    for table in tables:
        covered = {row_formats(r) for r in table["rows"]}
        rows = [r for r in rows if row_formats(r) not in covered]
        rows += [{**r, "formats": row_formats(r)} for r in table["rows"]]
        prov = table.get("provenance") or {}
        for f in covered:
            if f in (prov.get("streams") or {}):
                streams[f] = prov["streams"][f]
            elif "stream" in prov:
                streams[f] = prov["stream"]
        for key, value in table.items():
            if key.startswith("suggested_strengths"):
                out[key] = value
    out["provenance"]["streams"] = streams
    out["rows"] = rows
    return out


def characterize_external(verilog: str | os.PathLike, top: str | None, liberty: str | os.PathLike,
                          *, stream: Stream | None = None, options: EnergyOptions = EnergyOptions(),
                          signed: bool = True, name: str | None = None,
                          progress: ProgressFn | None = None) -> dict:
    """An external multiplier netlist characterized the same way, with ROUP(0,0) of the
    same library and stream as its baseline; its error metrics come from its simulated
    product table (exhaustive at 8 bits or less)."""
    from axonnx.multipliers.lut import LUT

    library = read_liberty(liberty)
    if progress:
        progress(top or Path(verilog).stem)
    probe = synthesize(verilog, liberty=None, top=top)
    net = MappedNetlist(probe.module, None, probe.top)
    pa, pb, _ = _ports(net)
    bits = len(net.inputs[pa])
    if len(net.inputs[pb]) != bits:
        raise AxonnxError(f"{probe.top}: operands of different widths ({bits} and "
                          f"{len(net.inputs[pb])} bits) are not supported")
    stream = stream or uniform_stream(bits=bits, signed=signed)
    meas = measure(verilog, library, liberty, stream, options, top=top, signed=signed,
                   name=name or probe.top)
    row = {"name": name or meas.top, "aliases": [], "bits": bits, "signed": signed,
           "area_um2": round(meas.area, 4), "cells": meas.cells,
           "energy_pj": round(meas.energy.total_pj, 6),
           "breakdown_pj": {"switching": round(meas.energy.switching_pj, 6),
                            "internal": round(meas.energy.internal_pj, 6),
                            "leakage": round(meas.energy.leakage_pj, 6)},
           "toggles_per_op": round(meas.energy.toggles_per_op, 3)}
    if meas.products is not None and bits == 8:
        table = meas.products.reshape(256, 256)
        lut = LUT(meas.top, table, a_signed=signed, b_signed=signed)
        row["error"] = error_metrics(lut).as_dict()
    if progress:
        progress("ROUP(0,0) baseline")
    base_m = ROUP(0, 0, bits=bits) if bits % 2 == 0 and 4 <= bits <= 16 else None
    if base_m is None:
        raise AxonnxError(f"{probe.top}: no ROUP(0,0) baseline exists for {bits}-bit operands")
    base_stream = stream if signed else uniform_stream(len(stream.a), bits=bits, signed=True)
    base = measure(roup_verilog(base_m), library, liberty, base_stream, options, text=True,
                   golden=base_m, exhaustive=bits <= 8)
    row["relative_energy"] = round(meas.energy.total_pj / base.energy.total_pj, 6)
    row["relative_area"] = round(meas.area / base.area, 6)
    flow = f"external Verilog {Path(verilog).name}; yosys: synth -flatten; abc -liberty; opt_clean"
    prov = provenance(library, stream, options, meas.yosys_version, flow)
    row["source"] = (f"axonnx hw characterize --verilog {Path(verilog).name}: {library.name}, "
                     f"{stream.describe()['pairs']} pairs, relative to ROUP(0,0) on the same library")
    base_row = {"name": base_m.name, "aliases": [], "bits": bits, "area_um2": round(base.area, 4),
                "cells": base.cells, "energy_pj": round(base.energy.total_pj, 6),
                "relative_energy": 1.0, "relative_area": 1.0, "source": row["source"]}
    return {"format": TABLE_FORMAT, "unit": "pJ", "exact": base_m.name, "provenance": prov,
            "rows": [base_row, row]}


# -- the named strengths -----------------------------------------------------------------

STRENGTH_TARGETS = {"ROUP_L": 0.10, "ROUP_M": 0.20, "ROUP_H": 0.60}


def pareto_rows(rows: list[dict], error: str = "mred") -> list[dict]:
    """Rows not dominated in (relative energy, error metric): nothing is both cheaper and
    more accurate."""
    from axonnx.pareto import pareto_mask

    if not rows:
        return []
    keep = pareto_mask([[r["relative_energy"], r["error"][error]] for r in rows])
    front = [r for r, k in zip(rows, keep) if k]
    return sorted(front, key=lambda r: -r["relative_energy"])


def suggest_strengths(rows: list[dict], targets: dict[str, float] = STRENGTH_TARGETS) -> dict:
    """For each named strength, the Pareto-optimal (energy vs MRED) configuration whose
    energy saving is nearest its target (paper: L ~10 %, M ~20 %; H a strong ~60 %)."""
    front = [r for r in pareto_rows(rows) if r["relative_energy"] < 1.0]
    out = {}
    for alias, target in targets.items():
        best = min(front, key=lambda r: abs((1 - r["relative_energy"]) - target))
        out[alias] = {"name": best["name"], "saving": round(1 - best["relative_energy"], 4),
                      "mred": best["error"]["mred"], "nmed": best["error"]["nmed"],
                      "target_saving": target}
    return out
