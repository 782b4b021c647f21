"""The hardware flow: Verilog generator (exhaustively against the golden model), the
bit-parallel simulators, Liberty reading, the Yosys driver and activity-based energy.

Tests that need Yosys or the Nangate library skip with the reason when those are absent.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from axonnx.errors import AxonnxError
from axonnx.hw import bits as bv
from axonnx.hw import roup_netlist, roup_verilog
from axonnx.hw.liberty import BoolExpr, read_liberty
from axonnx.hw.mapped import MappedNetlist
from axonnx.hw.power import EnergyOptions, activity_energy
from axonnx.hw.yosys import find_yosys
from axonnx.multipliers import ROUP

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AXONNX_DATA") or REPO.parent / "shared" / "data")
NANGATE = DATA / "nangate45" / "nangate45_typ.lib.gz"
TABLE = REPO / "axonnx" / "multipliers" / "energy_table.json"

needs_yosys = pytest.mark.skipif(find_yosys() is None,
                                 reason="Yosys is not installed (apt-get install -y yosys)")
needs_nangate = pytest.mark.skipif(not NANGATE.is_file(),
                                   reason=f"Nangate45 Liberty not found at {NANGATE} (set AXONNX_DATA)")

A8, B8 = (x.ravel() for x in np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij"))
REPRESENTATIVE = [ROUP(0, 0), ROUP(1, 4), ROUP(2, 6), ROUP(0, 3), ROUP(0, None, widths=(3, 3, 1, 1))]


# -- the generator -----------------------------------------------------------------------

@pytest.mark.parametrize("m", REPRESENTATIVE, ids=lambda m: m.name)
def test_generated_netlist_equals_golden_on_all_65536_pairs(m):
    netlist = roup_netlist(m)
    assert np.array_equal(netlist.simulate({"a": A8, "b": B8})["p"], m.multiply(A8, B8))


@pytest.mark.parametrize("n", [4, 6, 10, 16])
def test_generator_other_widths(n):
    lo, hi = -(1 << (n - 1)), 1 << (n - 1)
    if n <= 6:
        a, b = (x.ravel() for x in np.meshgrid(np.arange(lo, hi), np.arange(lo, hi), indexing="ij"))
    else:
        rng = np.random.default_rng(n)
        a, b = rng.integers(lo, hi, 20000), rng.integers(lo, hi, 20000)
        a[:4], b[:4] = [lo, lo, hi - 1, hi - 1], [lo, hi - 1, lo, hi - 1]
    for m in (ROUP(0, 0, bits=n), ROUP(1, 3, bits=n), ROUP(n // 2 - 1, n, bits=n), ROUP(0, n, bits=n)):
        assert np.array_equal(roup_netlist(m).simulate({"a": a, "b": b})["p"], m.multiply(a, b)), m.name


def _golden_over_formats(m, a, b):
    """eq. (1) with b's digits taken from 10 bits (enough for 9-bit operands): digits past
    the 8-bit multiplier's N/2 - 1 are exact (r = 0)."""
    from axonnx.multipliers import booth_digits, round_half_up_array

    digits = booth_digits(b, 10)
    widths = list(m.widths) + [0] * (5 - m.bits // 2)
    return sum(round_half_up_array(a, r) * digits[:, j] * 4**j
               for j, r in enumerate(widths, start=m.perforation))


@pytest.mark.parametrize("formats", ["u8xs8", "s9xs8", "s8xu8", "u8xs9"])
@pytest.mark.parametrize("m", REPRESENTATIVE + [ROUP(0, 8), ROUP(3, 8)], ids=lambda m: m.name)
def test_generated_netlist_equals_golden_on_all_pairs_of_a_format(m, formats):
    from axonnx.multipliers.operands import format_grid, format_pair

    a, b = format_grid(formats)
    assert a.size == len(format_pair(formats)[0].values()) * len(format_pair(formats)[1].values())
    p = roup_netlist(m, formats=formats).simulate({"a": a, "b": b})["p"]
    assert np.array_equal(p, _golden_over_formats(m, a, b))
    assert np.array_equal(p, m.multiply(a, b))


def test_operand_formats_shape_the_ports_and_leave_s8xs8_alone():
    m = ROUP(1, 4)
    assert roup_verilog(m) == roup_verilog(m, formats="s8xs8")
    u8 = roup_verilog(m, formats="u8xs8")
    assert "module roup_p1_r4_u8xs8 (" in u8
    assert "input  wire [7:0] a" in u8 and "input  wire signed [7:0] b" in u8  # zero-extended a
    assert "output wire signed [16:0] p" in u8
    s9 = roup_netlist(m, formats="s8xs9")
    assert len(s9.inputs["b"]) == 9 and s9.counts["booth encoder"] == 4  # digits 1..4 (P = 1)
    assert roup_netlist(ROUP(0, 0), formats="s8xu8").counts["partial-product row"] == 5
    with pytest.raises(AxonnxError, match="u8xs8"):
        roup_netlist(m, formats="u7xs8")
    with pytest.raises(AxonnxError, match="8-bit"):
        roup_netlist(ROUP(1, 4, bits=16), formats="u8xs8")


def test_verilog_is_one_structural_module():
    text = roup_verilog(ROUP(1, 4))
    assert len(re.findall(r"^module ", text, re.M)) == 1
    assert "module roup_p1_r4 (" in text
    assert "input  wire signed [7:0] a" in text and "input  wire signed [7:0] b" in text
    assert "output wire signed [15:0] p" in text
    body = [ln for ln in text.splitlines() if ln.strip().startswith("assign")]
    assert body and not any(op in ln for ln in body for op in ("*", "+", "-", "?"))
    assert "module mul8" in roup_verilog(ROUP(0, 0), "mul8")
    with pytest.raises(AxonnxError):
        roup_verilog(ROUP(0, 0), "bad name")


def test_structure_shrinks_with_perforation_and_rounding():
    sizes = {(p, r): len(roup_netlist(ROUP(p, r)).gates) for p in range(4) for r in (0, 4, 8)}
    for r in (0, 4, 8):
        assert sizes[(0, r)] >= sizes[(1, r)] > sizes[(2, r)] > sizes[(3, r)]
    exact, rounded = roup_netlist(ROUP(0, 0)), roup_netlist(ROUP(0, 4))
    assert exact.counts["partial-product row"] == 4 and exact.counts["booth encoder"] == 4
    assert roup_netlist(ROUP(2, 0)).counts["partial-product row"] == 2  # perforated rows absent
    assert len(rounded.gates) < len(exact.gates)  # rounding removes bits, adds no incrementer


# -- bit vectors and boolean functions ---------------------------------------------------

def test_pack_unpack_and_previous():
    rng = np.random.default_rng(1)
    for k in (1, 63, 64, 65, 200):
        bits = rng.random(k) < 0.5
        words = bv.pack(bits)
        assert np.array_equal(bv.unpack(words, k), bits)
        assert np.array_equal(bv.unpack(bv.previous(words, k), k), np.roll(bits, 1))
    values = rng.integers(-128, 128, 100)
    assert np.array_equal(bv.planes_to_int(bv.int_planes(values, 8), 100, True), values)


def test_liberty_boolean_functions():
    ones = bv.ones(4)
    env = {"A": bv.pack([0, 1, 0, 1]), "B": bv.pack([0, 0, 1, 1]), "C": bv.pack([1, 1, 0, 0])}
    cases = {"(A B)": [0, 0, 0, 1], "!((A B)+C)": [0, 0, 1, 0], "A' * B": [0, 0, 1, 0],
             "A ^ B": [0, 1, 1, 0], "(A & B) | C": [1, 1, 0, 1], "!(A | B)": [1, 0, 0, 0],
             "A | B ^ C": [1, 1, 1, 1], "1": [1, 1, 1, 1], "A & 0": [0, 0, 0, 0]}
    for text, expected in cases.items():
        got = bv.unpack(BoolExpr(text).evaluate(env, ones) & ones, 4)
        assert list(got.astype(int)) == expected, text
    with pytest.raises(ValueError):
        BoolExpr("(A & B")


# -- a tiny hand-written library: energy arithmetic checked by hand ----------------------

TINY_LIB = r"""
library (tiny) {
  time_unit : "1ns";
  voltage_unit : "1V";
  current_unit : "1mA";
  leakage_power_unit : "1nW";
  capacitive_load_unit (1,ff);
  nom_process : 1.0;
  nom_voltage : 1.0;
  nom_temperature : 25.0;
  cell (INV) {
    area : 1.0;
    cell_leakage_power : 10.0;
    pin (A) { direction : input; capacitance : 1.0; }
    pin (Y) {
      direction : output;
      function : "!A";
      internal_power () {
        related_pin : "A";
        rise_power (scalar) { values ("2.0"); }
        fall_power (scalar) { values ("1.0"); }
      }
    }
  }
  cell (NAND2) {
    area : 2.0;
    cell_leakage_power : 20.0;
    pin (A) { direction : input; capacitance : 1.5; }
    pin (B) { direction : input; capacitance : 2.5; }
    pin (Y) {
      direction : output;
      function : "!(A & B)";
      internal_power () {
        related_pin : "A";
        rise_power (scalar) { values ("4.0"); }
        fall_power (scalar) { values ("2.0"); }
      }
      internal_power () {
        related_pin : "B";
        rise_power (scalar) { values ("6.0"); }
        fall_power (scalar) { values ("2.0"); }
      }
    }
  }
  cell (NOR2) {
    area : 2.0;
    cell_leakage_power : 20.0;
    pin (A) { direction : input; capacitance : 1.5; }
    pin (B) { direction : input; capacitance : 1.5; }
    pin (Y) {
      direction : output;
      function : "!(A | B)";
      internal_power () { related_pin : "A"; rise_power (scalar) { values ("3.0"); } fall_power (scalar) { values ("1.0"); } }
      internal_power () { related_pin : "B"; rise_power (scalar) { values ("3.0"); } fall_power (scalar) { values ("1.0"); } }
    }
  }
  cell (BUF) {
    area : 1.5;
    cell_leakage_power : 12.0;
    pin (A) { direction : input; capacitance : 1.0; }
    pin (Y) {
      direction : output;
      function : "A";
      internal_power () { related_pin : "A"; rise_power (scalar) { values ("2.0"); } fall_power (scalar) { values ("2.0"); } }
    }
  }
  cell (XOR2) {
    area : 4.0;
    cell_leakage_power : 30.0;
    pin (A) { direction : input; capacitance : 2.0; }
    pin (B) { direction : input; capacitance : 2.0; }
    pin (Y) {
      direction : output;
      function : "(A ^ B)";
      internal_power () { related_pin : "A"; rise_power (scalar) { values ("5.0"); } fall_power (scalar) { values ("5.0"); } }
      internal_power () { related_pin : "B"; rise_power (scalar) { values ("5.0"); } fall_power (scalar) { values ("5.0"); } }
    }
  }
}
"""


@pytest.fixture()
def tiny_lib(tmp_path, monkeypatch):
    monkeypatch.setenv("AXONNX_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tiny.lib"
    path.write_text(TINY_LIB)
    return path


def _one_cell(cell: str, pins: dict[str, int], out: str = "Y") -> dict:
    ports = {name.lower(): {"direction": "input", "bits": [bit]} for name, bit in pins.items()}
    ports["y"] = {"direction": "output", "bits": [9]}
    return {"ports": ports, "cells": {"u1": {"type": cell, "connections": {
        **{pin: [bit] for pin, bit in pins.items()}, out: [9]}}}}


def test_tiny_library_units_and_cells(tiny_lib):
    lib = read_liberty(tiny_lib)
    assert lib.name == "tiny" and lib.voltage == 1.0 and lib.cap_unit == 1e-15
    assert lib.cells["NAND2"].area == 2.0 and lib.cells["NAND2"].pins["B"].capacitance == 2.5
    assert lib.cells["INV"].pins["Y"].power[0].rise.at(0.02, 1.0) == 2.0


def test_energy_of_an_inverter_by_hand(tiny_lib):
    lib = read_liberty(tiny_lib)
    net = MappedNetlist(_one_cell("INV", {"A": 2}), lib)
    sim = net.simulate({"a": np.array([0, 1, 0, 1])})
    assert list(net.port_values(sim, "y", signed=False)) == [1, 0, 1, 0]
    e = activity_energy(net, sim, EnergyOptions(clock_ns=1.0, output_load_ff=3.0))
    # 4 cyclic transitions of a (load 1 fF) and of y (load 3 fF) at 1 V: (4*0.5*1 + 4*0.5*3) fJ;
    # internal: 2 rises x 2 fJ + 2 falls x 1 fJ; leakage 10 nW x 1 ns = 0.01 fJ per operation.
    assert e.switching_pj == pytest.approx(8e-3 / 4)
    assert e.internal_pj == pytest.approx(6e-3 / 4)
    assert e.leakage_pj == pytest.approx(1e-5)
    assert e.total_pj == pytest.approx(3.51e-3)
    assert e.toggles_per_op == pytest.approx(2.0)


def test_simultaneous_inputs_share_the_arc_energy(tiny_lib):
    lib = read_liberty(tiny_lib)
    net = MappedNetlist(_one_cell("NAND2", {"A": 2, "B": 3}), lib)
    sim = net.simulate({"a": np.array([0, 1, 0, 1]), "b": np.array([0, 1, 0, 1])})
    e = activity_energy(net, sim, EnergyOptions(output_load_ff=0.0))
    # both inputs switch in every transition: each output event costs the mean of the arcs,
    # rises (4+6)/2 and falls (2+2)/2, two of each over four operations.
    assert e.internal_pj == pytest.approx((2 * 5.0 + 2 * 2.0) * 1e-3 / 4)
    assert e.switching_pj == pytest.approx(4 * 0.5 * (1.5 + 2.5) * 1e-3 / 4)


def test_unit_delay_counts_glitches(tiny_lib):
    """y = a ^ ~a is constantly 1, but with one time step per cell the inverter is late and
    y pulses to 0 on every change of a: two extra transitions per operation."""
    lib = read_liberty(tiny_lib)
    module = {"ports": {"a": {"direction": "input", "bits": [2]},
                        "y": {"direction": "output", "bits": [4]}},
              "cells": {"inv": {"type": "INV", "connections": {"A": [2], "Y": [3]}},
                        "xor": {"type": "XOR2", "connections": {"A": [2], "B": [3], "Y": [4]}}}}
    net = MappedNetlist(module, lib)
    assert net.depth() == 2
    sim = net.simulate({"a": np.array([0, 1, 0, 1])})
    assert list(net.port_values(sim, "y", signed=False)) == [1, 1, 1, 1]
    zero = activity_energy(net, sim, EnergyOptions(output_load_ff=0.0))
    unit = activity_energy(net, sim, EnergyOptions(output_load_ff=0.0, delay_model="unit"))
    assert zero.toggles_per_op == 2.0 and unit.toggles_per_op == 4.0
    # the glitch: 2 XOR output transitions (5 fJ each, caused by A then by B) per operation
    assert unit.internal_pj - zero.internal_pj == pytest.approx(2 * 5.0e-3)
    with pytest.raises(AxonnxError, match="delay model"):
        activity_energy(net, sim, EnergyOptions(delay_model="sdf"))


def test_bad_liberty_files_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("AXONNX_CACHE", str(tmp_path / "cache"))
    with pytest.raises(AxonnxError, match="does not exist"):
        read_liberty(tmp_path / "missing.lib")
    bad = tmp_path / "bad.lib"
    bad.write_text("library (x) { cell (INV) { area : 1.0; \n")
    with pytest.raises(AxonnxError, match="cannot be parsed") as err:
        read_liberty(bad)
    assert "\n" not in str(err.value)
    empty = tmp_path / "empty.lib"
    empty.write_text('library (x) { nom_voltage : 1.0; capacitive_load_unit (1,ff); }\n')
    with pytest.raises(AxonnxError, match="no cells"):
        read_liberty(empty)


def test_unknown_cells_and_sequential_designs_are_rejected(tiny_lib):
    lib = read_liberty(tiny_lib)
    with pytest.raises(AxonnxError, match="unknown"):
        MappedNetlist(_one_cell("AOI21", {"A": 2}), lib)


# -- Yosys -------------------------------------------------------------------------------

@needs_yosys
def test_generated_verilog_through_yosys_equals_golden():
    """The Verilog text itself (not only the in-memory netlist): Yosys reads it, our
    simulator runs Yosys's gate netlist on all 65,536 pairs."""
    from axonnx.hw.yosys import synthesize

    for m in (ROUP(1, 4), ROUP(0, None, widths=(3, 3, 1, 1))):
        syn = synthesize(roup_verilog(m), liberty=None, text=True)
        net = MappedNetlist(syn.module, None, syn.top)
        assert np.array_equal(net.port_values(net.simulate({"a": A8, "b": B8}), "p"),
                              m.multiply(A8, B8))


@needs_yosys
def test_characterize_on_a_tiny_library(tiny_lib):
    from axonnx.hw.characterize import characterize_roup, uniform_stream

    configs = [(ROUP(0, 0), []), (ROUP(1, 4), []), (ROUP(3, 0), [])]
    table = characterize_roup(tiny_lib, configurations=configs, stream=uniform_stream(2048))
    rows = {r["name"]: r for r in table["rows"]}
    assert rows["ROUP(0,0)"]["relative_energy"] == 1.0
    assert rows["ROUP(0,0)"]["area_um2"] > rows["ROUP(1,4)"]["area_um2"] > rows["ROUP(3,0)"]["area_um2"]
    assert 0 < rows["ROUP(3,0)"]["relative_energy"] < rows["ROUP(1,4)"]["relative_energy"] < 1
    prov = table["provenance"]
    assert prov["library"] == "tiny" and "Yosys" in prov["tools"]["yosys"]
    assert prov["stream"]["pairs"] == 2048 and prov["energy_model"]["clock_ns"] == 1.0


@needs_yosys
def test_yosys_errors_are_one_line():
    from axonnx.hw.yosys import synthesize

    with pytest.raises(AxonnxError, match="Yosys failed"):
        synthesize("module broken(input a, output b); assign b = ; endmodule", liberty=None, text=True)


@needs_yosys
@needs_nangate
def test_more_perforation_never_costs_more_area_on_nangate():
    from axonnx.hw.characterize import measure, uniform_stream

    lib = read_liberty(NANGATE)
    stream = uniform_stream(1024)
    areas = [measure(roup_verilog(ROUP(p, 6)), lib, NANGATE, stream, exhaustive=False).area
             for p in range(4)]  # the committed table covers every R
    assert areas == sorted(areas, reverse=True), areas


@needs_yosys
@needs_nangate
def test_external_netlist_is_characterized_like_roup(tmp_path):
    from axonnx.hw.characterize import characterize_external, uniform_stream

    src = tmp_path / "ymul.v"
    src.write_text("module ymul(input signed [7:0] x, input signed [7:0] y, output signed [15:0] z);\n"
                   "  assign z = x * y;\nendmodule\n")
    table = characterize_external(src, "ymul", NANGATE, stream=uniform_stream(4096))
    base, row = table["rows"]
    assert base["name"] == "ROUP(0,0)" and row["name"] == "ymul"
    assert row["error"]["error_rate"] == 0.0  # Yosys's $mul is exact
    assert row["area_um2"] > 0 and row["relative_energy"] > 0


# -- the committed table -----------------------------------------------------------------

def test_committed_table_is_consistent():
    from axonnx.hw.characterize import distinct_configurations
    from axonnx.multipliers import NAMED_STRENGTHS, error_metrics, parse

    table = json.loads(TABLE.read_text())
    assert table["format"] == "axonnx-energy-table/2"
    by_format = {}
    for r in table["rows"]:
        by_format.setdefault(r.get("formats", "s8xs8"), {})[r["name"]] = r
    assert set(by_format) == {"s8xs8", "u8xs8", "s9xs8"} == set(table["provenance"]["streams"])
    for formats, rows in by_format.items():
        assert rows["ROUP(0,0)"]["relative_energy"] == 1.0
        assert sorted(rows) == sorted(m.name for m, _ in distinct_configurations(8, formats))
        for alias, name in NAMED_STRENGTHS.items():
            assert parse(alias).name in rows, (formats, alias)
        for r in rows.values():
            assert {"library", "corner", "tools", "stream", "clock_ns"} <= set(r["provenance"])
            want = error_metrics(parse(r["name"]), formats=None if formats == "s8xs8" else formats)
            assert r["error"]["mred"] == pytest.approx(want.mred, rel=1e-6)
    assert "u8 [0, 255]" in by_format["u8xs8"]["ROUP(0,0)"]["provenance"]["stream"]["description"]
    rows = by_format["s8xs8"]
    # perforation never costs more area (same library, same R)
    for r_ in range(9):
        areas = [rows[parse(f"ROUP({p},{r_})").name]["area_um2"] if parse(f"ROUP({p},{r_})").name in rows
                 else next(x["area_um2"] for x in rows.values() if parse(f"ROUP({p},{r_})").name in x["aliases"])
                 for p in range(4)]
        assert areas == sorted(areas, reverse=True), (r_, areas)


# -- the command line --------------------------------------------------------------------

def test_cli_hw_verilog(tmp_path):
    from typer.testing import CliRunner

    from axonnx.cli import hw as _hw  # noqa: F401  (registers the hw commands)
    from axonnx.cli._app import app

    out = tmp_path / "m.v"
    result = CliRunner().invoke(app, ["hw", "verilog", "ROUP(1,4)", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "module roup_p1_r4" in out.read_text()
    result = CliRunner().invoke(app, ["hw", "verilog", "ROUP_H", "--top", "h", "--json"])
    assert result.exit_code == 0 and '"module": "h"' in result.output


def test_operand_streams(tmp_path):
    from axonnx.hw.characterize import load_stream, uniform_stream

    pairs = np.array([[1, -2], [127, -128], [0, 5]])
    np.save(tmp_path / "s.npy", pairs)
    np.savez(tmp_path / "s.npz", a=pairs[:, 0], b=pairs[:, 1])
    (tmp_path / "s.csv").write_text("a,b\n1,-2\n127,-128\n0,5\n")
    for name in ("s.npy", "s.npz", "s.csv"):
        s = load_stream(tmp_path / name)
        assert list(s.a) == [1, 127, 0] and list(s.b) == [-2, -128, 5], name
    np.save(tmp_path / "big.npy", np.array([[300, 0], [0, 0]]))
    with pytest.raises(AxonnxError, match="outside"):
        load_stream(tmp_path / "big.npy")
    np.save(tmp_path / "flat.npy", np.arange(6))
    with pytest.raises(AxonnxError, match=r"shape \[K, 2\]"):
        load_stream(tmp_path / "flat.npy")
    u = uniform_stream(1000, seed=3)
    assert u.a.min() >= -128 and u.b.max() <= 127 and "seed 3" in u.description


@needs_yosys
def test_cli_hw_characterize_per_operand_format_and_merge(tiny_lib, tmp_path):
    from typer.testing import CliRunner

    from axonnx.cli import hw as _hw  # noqa: F401
    from axonnx.cli._app import app
    from axonnx.energy import EnergyTable

    first, out = tmp_path / "s8.json", tmp_path / "all.json"
    base = ["hw", "characterize", "--liberty", str(tiny_lib), "--only", "ROUP(0,0),ROUP(2,6)",
            "--samples", "1024", "--no-glitch-column"]
    result = CliRunner().invoke(app, base + ["--formats", "s8xs8", "-o", str(first)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, base + ["--formats", "u8xs8", "--merge", str(first), "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = json.loads(out.read_text())
    assert [(r["formats"], r["name"]) for r in table["rows"]] == [
        ("s8xs8", "ROUP(0,0)"), ("s8xs8", "ROUP(2,6)"), ("u8xs8", "ROUP(0,0)"), ("u8xs8", "ROUP(2,6)")]
    s8 = json.loads(first.read_text())["rows"]
    assert table["rows"][1]["energy_pj"] == s8[1]["energy_pj"]  # merged rows kept as they were
    u8 = table["rows"][3]
    assert "a in u8 [0, 255]" in u8["provenance"]["stream"]["description"]
    assert set(table["provenance"]["streams"]) == {"s8xs8", "u8xs8"}
    user = EnergyTable.from_file(out)
    assert user.lookup("ROUP(2,6)", "u8xs8").relative == pytest.approx(u8["relative_energy"])
    assert user.lookup("ROUP(2,6)").relative == pytest.approx(table["rows"][1]["relative_energy"])
    result = CliRunner().invoke(app, base + ["--formats", "q8xs8"])
    assert result.exit_code == 1 and "error:" in result.stderr and "s8xs8" in result.stderr


@needs_yosys
def test_cli_hw_characterize_with_a_captured_stream(tiny_lib, tmp_path):
    from typer.testing import CliRunner

    from axonnx.cli import hw as _hw  # noqa: F401
    from axonnx.cli._app import app

    rng = np.random.default_rng(0)
    np.save(tmp_path / "stream.npy", rng.integers(-8, 8, (512, 2)))  # small operands
    out = tmp_path / "table.json"
    result = CliRunner().invoke(app, ["hw", "characterize", "--liberty", str(tiny_lib), "--only",
                                      "ROUP(0,0),ROUP(2,6)", "--stream", str(tmp_path / "stream.npy"),
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = json.loads(out.read_text())
    assert [r["name"] for r in table["rows"]] == ["ROUP(0,0)", "ROUP(2,6)"]
    assert "stream.npy" in table["provenance"]["stream"]["description"]
    from axonnx.energy import EnergyTable

    user = EnergyTable.from_file(out)  # a characterization output is a valid user table
    assert user.lookup("ROUP(2,6)").relative == pytest.approx(table["rows"][1]["relative_energy"])


OSU018 = Path(os.environ.get("AXONNX_SECOND_LIBERTY", "/usr/share/qflow/tech/osu018/osu018_stdcells.lib"))


@needs_yosys
@pytest.mark.skipif(not OSU018.is_file(), reason=f"second Liberty library not found at {OSU018} "
                    "(apt-get install qflow-tech-osu018, or set AXONNX_SECOND_LIBERTY)")
def test_a_second_library_works_too():
    from axonnx.hw.characterize import characterize_roup, uniform_stream

    table = characterize_roup(OSU018, configurations=[(ROUP(0, 0), []), (ROUP(2, 6), [])],
                              stream=uniform_stream(4096))
    exact, h = table["rows"]
    assert exact["energy_pj"] > 0 and 0 < h["relative_energy"] < 1 and 0 < h["relative_area"] < 1
    assert table["provenance"]["corner"]["voltage_V"] == read_liberty(OSU018).voltage
