"""Energy tables, look-ups, the per-layer report (checked by hand) and the vectorised model."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from axonnx.energy import (
    SKIP, EnergyEntry, EnergyModel, EnergyTable, default_energy_lookup, energy_report,
)
from axonnx.errors import AxonnxError
from axonnx.multipliers import NAMED_STRENGTHS

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AXONNX_DATA") or REPO.parent / "shared" / "data")
EVO = DATA / "evoapprox8u"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture()
def hand_table(tmp_path) -> EnergyTable:
    """ROUP(0,0) costs 1 pJ, ROUP(1,4) 0.5 pJ, ROUP(2,6) 250 fJ."""
    return EnergyTable.from_file(write(tmp_path / "t.json", json.dumps({
        "unit": "pJ", "source": "hand", "energies": {
            "ROUP(0,0)": 1.0, "ROUP(1,4)": 0.5,
            "ROUP(2,6)": {"energy": 250, "unit": "fJ", "source": "by hand in fJ"}}})))


# -- the built-in table ------------------------------------------------------------------

def test_default_table_exact_aliases_and_skip():
    table = EnergyTable.load_default()
    exact = table.lookup("ROUP(0,0)")
    assert exact.relative == 1.0 and exact.pj > 0 and "Nangate" in exact.source
    assert table.lookup("SKIP") == SKIP and SKIP.pj == 0.0 and SKIP.relative == 0.0
    for alias, name in NAMED_STRENGTHS.items():
        assert table.lookup(alias).relative == table.lookup(name).relative < 1.0
    # names that denote the same configuration, and functionally identical ones
    assert table.lookup("ROUP(1,2)").relative == table.lookup("ROUP(1,0)").relative
    assert table.lookup("ROUP(1,8)").relative == table.lookup("ROUP(0,8)").relative
    twin = table.lookup("ROUP(0;r=8/0/0/0)")  # its row 0 rounds to zero: it is ROUP(1,0)
    assert twin.relative == table.lookup("ROUP(1,0)").relative and "identical" in twin.source
    assert table.lookup("ROUP(0;r=0/0/0/0)").relative == 1.0


def test_unknown_multiplier_is_an_error_naming_it_and_the_fix():
    table = EnergyTable.load_default()
    with pytest.raises(AxonnxError, match=r"ROUP\(1,4;N=16\).*characterize"):
        table.lookup("ROUP(1,4;N=16)")
    wide = table.lookup("ROUP(0,0;N=16)")  # exact at any width: relative 1, no 8-bit pJ
    assert wide.relative == 1.0 and wide.pj is None
    with pytest.raises(AxonnxError, match="FOO"):
        table.lookup("FOO")
    lookup = default_energy_lookup()
    assert lookup("FOO") is None and isinstance(lookup("ROUP(2,6)"), EnergyEntry)


def test_relative_energy_falls_with_perforation_in_the_default_table():
    table = EnergyTable.load_default()
    for r in (0, 6, 8):
        rel = [table.lookup(f"ROUP({p},{r})").relative for p in range(4)]
        assert rel == sorted(rel, reverse=True), (r, rel)


# -- user tables -------------------------------------------------------------------------

def test_user_json_table_overrides_and_extends(tmp_path):
    user = EnergyTable.from_file(write(tmp_path / "pt.json", json.dumps({
        "unit": "fJ", "source": "PrimeTime, TSMC 45", "energies": {
            "ROUP(0,0)": 500, "ROUP(1,4)": 300, "LUT(custom)": 100}})))
    merged = EnergyTable.load_default().merged(user)
    e = merged.lookup("ROUP(1,4)")
    assert e.pj == pytest.approx(0.3) and e.relative == pytest.approx(0.6)
    assert e.source == "PrimeTime, TSMC 45"
    assert merged.lookup("LUT(custom)").relative == pytest.approx(0.2)
    builtin = EnergyTable.load_default().lookup("ROUP(0,4)")
    assert merged.lookup("ROUP(0,4)") == builtin  # not overridden: still the built-in figure


def test_user_csv_table_relative_to_the_builtin_exact(tmp_path):
    user = EnergyTable.from_file(write(tmp_path / "t.csv",
                                       "name,energy,unit,source\n"
                                       "ROUP(3,8),0.05,pJ,my synthesis\n"
                                       "LUT(mine),0.5,relative,my paper\n"))
    base = EnergyTable.load_default()
    merged = base.merged(user)
    e = merged.lookup("ROUP(3,8)")
    assert e.pj == 0.05 and e.relative == pytest.approx(0.05 / base.exact_pj)
    assert "relative to" in e.source
    mine = merged.lookup("LUT(mine)")
    assert mine.pj is None and mine.relative == 0.5 and mine.source == "my paper"


@pytest.mark.parametrize("name,text,match", [
    ("bad.json", "{not json", "not valid JSON"),
    ("noname.csv", "energy,unit\n1,pJ\n", "'name' column"),
    ("neg.json", '{"energies": {"ROUP(1,4)": -1}}', "must be finite"),
    ("unit.json", '{"unit": "kWh", "energies": {"ROUP(1,4)": 1}}', "unknown energy unit"),
    ("text.json", '{"energies": {"ROUP(1,4)": "lots"}}', "not a number"),
    ("empty.json", '{"energies": {}}', "no rows"),
    ("noenergy.csv", "name,source\nROUP(1,4),x\n", "has no energy"),
    ("fields.csv", "name,energy,unit\nROUP(1,4),1\n", "line 2 has 2 fields"),
])
def test_bad_tables_are_one_line_errors(tmp_path, name, text, match):
    with pytest.raises(AxonnxError, match=match) as err:
        EnergyTable.from_file(write(tmp_path / name, text))
    assert "\n" not in str(err.value)


def test_missing_table_and_missing_exact(tmp_path):
    with pytest.raises(AxonnxError, match="does not exist"):
        EnergyTable.from_file(tmp_path / "nope.json")
    alone = EnergyTable.from_file(write(tmp_path / "t.json", '{"energies": {"ROUP(1,4)": 0.4}}'))
    with pytest.raises(AxonnxError, match=r"no ROUP\(0,0\) row"):
        alone.lookup("ROUP(1,4)")


# -- LUT multipliers ---------------------------------------------------------------------

def test_lut_energy_from_params_csv(tmp_path, monkeypatch):
    a = np.arange(256)[:, None]
    b = np.arange(256)[None, :]
    (tmp_path / "mul8u_1JFF.bin").write_bytes((a * b).astype("<u2").tobytes())
    (tmp_path / "mul8u_HALF.bin").write_bytes(((a * b) & ~1).astype("<u2").tobytes())
    (tmp_path / "mul8u_NONE.bin").write_bytes(((a * b) & ~3).astype("<u2").tobytes())
    (tmp_path / "mul8u_BARE.bin").write_bytes(((a * b) & ~7).astype("<u2").tobytes())
    write(tmp_path / "params.csv", "name,power_mW,area_um2\nmul8u_1JFF,0.4,700\n"
                                   "mul8u_HALF,0.1,100\nmul8u_NONE,0,0\n")
    monkeypatch.setenv("AXONNX_LUT_PATH", str(tmp_path))
    monkeypatch.delenv("AXONNX_DATA", raising=False)
    table = EnergyTable.load_default()
    assert table.lookup("LUT(mul8u_1JFF)").relative == 1.0
    half = table.lookup("LUT(mul8u_HALF)")
    assert half.relative == pytest.approx(0.25) and half.pj is None and "params.csv" in half.source
    with pytest.raises(AxonnxError, match="publishes no power"):
        table.lookup("LUT(mul8u_NONE)")
    with pytest.raises(AxonnxError, match="mul8u_BARE"):
        table.lookup("LUT(mul8u_BARE)")  # in no params.csv row


@pytest.mark.skipif(not (EVO / "params.csv").is_file(), reason=f"EvoApprox data not found at {EVO}")
def test_evoapprox_relative_power(monkeypatch):
    monkeypatch.setenv("AXONNX_DATA", str(DATA))
    monkeypatch.delenv("AXONNX_LUT_PATH", raising=False)
    table = EnergyTable.load_default()
    assert table.lookup("LUT(mul8u_1JFF)").relative == 1.0
    assert table.lookup("LUT(mul8u_2AC)").relative == pytest.approx(0.311 / 0.391)
    with pytest.raises(AxonnxError, match="publishes no power"):
        table.lookup("LUT(mul8u_199Z)")


# -- the report, by hand -----------------------------------------------------------------

def test_energy_report_by_hand(hand_table):
    counts = {"conv1": {"ROUP(0,0)": 100, "ROUP(1,4)": 200, "SKIP": 100},
              "conv2": {"ROUP(2,6)": 40}}
    report = energy_report(counts, hand_table)
    conv1, conv2 = report.layers
    # conv1: 100 x 1 pJ + 200 x 0.5 pJ + 100 x 0 = 200 pJ; conv2: 40 x 0.25 pJ = 10 pJ
    assert conv1.pj == pytest.approx(200.0) and conv2.pj == pytest.approx(10.0)
    assert conv1.multiplications == 400 and conv2.multiplications == 40
    assert conv1.relative == pytest.approx(200.0) and conv2.relative == pytest.approx(10.0)
    assert conv1.share == pytest.approx(200 / 210) and conv2.share == pytest.approx(10 / 210)
    assert conv1.gain == pytest.approx(0.5) and conv2.gain == pytest.approx(0.75)
    assert report.pj == pytest.approx(210.0) and report.multiplications == 440
    assert report.baseline_pj == pytest.approx(440.0) and report.baseline_relative == 440
    assert report.gain == pytest.approx(1 - 210 / 440)
    d = report.as_dict()
    assert d["total"]["energy_pj"] == pytest.approx(210.0)
    assert d["baseline_all_exact"]["multiplier"] == "ROUP(0,0)"
    assert d["multipliers"]["ROUP(2,6)"]["source"] == "by hand in fJ"
    json.dumps(d)


def test_report_with_relative_only_entries(hand_table, tmp_path):
    user = EnergyTable.from_file(write(tmp_path / "r.csv", "name,relative,source\nLUT(x),0.4,paper\n"))
    report = energy_report({"fc": {"LUT(x)": 10, "ROUP(0,0)": 10}}, hand_table.merged(user))
    assert report.relative == pytest.approx(14.0) and report.gain == pytest.approx(0.3)
    assert report.pj == pytest.approx(14.0) and report.estimated_pj == ["LUT(x)"]


def test_energy_report_unknown_multiplier(hand_table):
    with pytest.raises(AxonnxError, match="ROUP_Z"):
        energy_report({"l": {"ROUP_Z": 3}}, hand_table)


def test_render_energy_report(hand_table, capsys):
    from axonnx.cli.energy import render_energy_report

    report = energy_report({"conv1": {"ROUP(0,0)": 10, "ROUP(1,4)": 10}}, hand_table)
    render_energy_report(report, json_output=True)
    assert json.loads(capsys.readouterr().out)["gain"] == pytest.approx(0.25)
    render_energy_report(report, json_output=False)
    out = capsys.readouterr().out
    assert "conv1" in out and "25.0%" in out and "all exact" in out


# -- the vectorised model ----------------------------------------------------------------

def test_energy_model_matches_the_report_and_is_fast(hand_table):
    names = ["ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)", "SKIP"]
    counts = np.array([[100, 200, 50], [40, 40, 0]])  # 2 layers x 3 classes
    plan = np.array([[0, 1, 3], [2, 2, 0]])
    model = EnergyModel(counts, hand_table, multipliers=names)
    layer_counts = {}
    for l in range(2):
        layer_counts[f"l{l}"] = {}
        for g in range(3):
            name = names[plan[l, g]]
            layer_counts[f"l{l}"][name] = layer_counts[f"l{l}"].get(name, 0) + int(counts[l, g])
    report = energy_report(layer_counts, hand_table)
    assert model.relative_energy(plan) == pytest.approx(report.relative / report.multiplications)
    assert model.gain(plan) == pytest.approx(report.gain)
    assert model.energy_pj(plan) == pytest.approx(report.pj)
    batch = np.stack([plan, np.zeros_like(plan), np.full_like(plan, 3)])
    assert np.allclose(model.relative_energy(batch), [model.relative_energy(plan), 1.0, 0.0])
    per_mult = np.array([[430, 0, 0, 0], [0, 430, 0, 0]])
    assert np.allclose(model.relative_energy_of_counts(per_mult), [1.0, 0.5])
    start = time.perf_counter()
    for _ in range(2000):
        model.relative_energy(plan)
    assert (time.perf_counter() - start) / 2000 < 1e-4  # microseconds per plan


# -- operand formats ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype,zps,expected", [
    ("int8", 0, "s8"), ("uint8", 0, "u8"), ("uint8", 128, "s8"), ("uint8", 3, "s9"),
    ("int8", -128, "u8"), ("int8", [0, 0, 0], "s8"), ("int8", [0, -128], "s9"),
    ("uint8", [128, 127], "s9"), ("int8", 5, "s9"),
])
def test_operand_format_of_dtype_and_zero_points(dtype, zps, expected):
    from axonnx.multipliers.operands import operand_format

    assert operand_format(np.dtype(dtype), zps) == expected


def test_layer_formats_and_bad_names():
    from axonnx.multipliers.operands import (
        FORMATS, format_pair, layer_operand_formats, parse_formats_list,
    )

    assert layer_operand_formats(np.uint8, 0, np.int8, [0, 0]) == "u8xs8"
    assert layer_operand_formats(np.uint8, 0, np.int8, 0, encoded_operand="activation") == "s8xu8"
    assert parse_formats_list(" s8xs8, U8xS8,s8xs8") == ["s8xs8", "u8xs8"]
    assert [f.booth_digits for f in FORMATS.values()] == [4, 5, 5]
    assert [f.bits for f in FORMATS.values()] == [8, 8, 9]
    with pytest.raises(AxonnxError, match="s8xs8.*u8xs8") as err:
        format_pair("u16xs8")
    assert "\n" not in str(err.value)
    with pytest.raises(AxonnxError, match="int8 or uint8"):
        layer_operand_formats(np.int16, 0, np.int8, 0)


def test_default_table_lookup_per_format():
    table = EnergyTable.load_default()
    assert table.operand_formats() == ["s8xs8", "u8xs8", "s9xs8"]
    rows = {(r.get("formats", "s8xs8"), r["name"]): r
            for r in json.loads((REPO / "axonnx/multipliers/energy_table.json").read_text())["rows"]}
    for formats in ("s8xs8", "u8xs8", "s9xs8"):
        exact = table.lookup("ROUP(0,0)", formats)
        assert exact.relative == 1.0 and exact.formats == formats
        assert exact.pj == rows[(formats, "ROUP(0,0)")]["energy_pj"] == table.exact_pj_for(formats)
        h = table.lookup("ROUP_H", formats)
        assert h.relative == rows[(formats, "ROUP(2,6)")]["relative_energy"] and h.formats == formats
    assert table.lookup("ROUP(2,6)") == table.lookup("ROUP(2,6)", "s8xs8")
    assert table.lookup("ROUP(2,6)", "u8xs8").pj != table.lookup("ROUP(2,6)").pj
    # ROUP(0,8) and ROUP(1,8) are twins on s8 operands, not on u8 ones (round_8(200) = 256)
    assert table.lookup("ROUP(0,8)").relative == table.lookup("ROUP(1,8)").relative
    assert table.lookup("ROUP(0,8)", "u8xs8").relative != table.lookup("ROUP(1,8)", "u8xs8").relative
    assert table.lookup("SKIP", "u8xs8") == SKIP
    with pytest.raises(AxonnxError, match="unknown operand formats"):
        table.lookup("ROUP(2,6)", "x8")


def test_missing_format_falls_back_to_s8xs8_with_a_note(hand_table):
    generic = hand_table.lookup("ROUP(1,4)", "u8xs8")  # rows without formats hold for every one
    assert generic.relative == 0.5 and generic.formats == "u8xs8" and generic.source == "hand"
    s8_only = EnergyTable.from_dict({"rows": [
        {"name": n, "energy": e, "formats": "s8xs8"} for n, e in (("ROUP(0,0)", 1.0), ("ROUP(1,4)", 0.5))]})
    entry = s8_only.lookup("ROUP(1,4)", "u8xs8")
    assert entry.relative == 0.5 and entry.formats == "s8xs8"
    assert "no u8xs8 figure" in entry.source
    report = energy_report({"c1": {"ROUP(1,4)": 10}, "c2": {"ROUP(1,4)": 10}}, s8_only,
                           {"c1": "u8xs8", "c2": "s8xs8"})
    assert report.gain == pytest.approx(0.5)
    assert len(report.notes) == 1 and "c1" in report.notes[0] and "c2" not in report.notes[0]
    assert "u8xs8" in report.notes[0] and "s8xs8" in report.notes[0]
    assert report.as_dict()["notes"] == report.notes


def test_user_table_rows_per_format(tmp_path):
    user = EnergyTable.from_file(write(tmp_path / "f.json", json.dumps({"unit": "pJ", "rows": [
        {"name": "ROUP(0,0)", "energy": 1.0}, {"name": "ROUP(1,4)", "energy": 0.5},
        {"name": "ROUP(0,0)", "energy": 2.0, "formats": "u8xs8"},
        {"name": "ROUP(1,4)", "energy": 0.5, "formats": "u8xs8"}]})))
    assert user.lookup("ROUP(1,4)").relative == 0.5
    assert user.lookup("ROUP(1,4)", "u8xs8").relative == 0.25
    report = energy_report({"a": {"ROUP(1,4)": 4}, "b": {"ROUP(1,4)": 4}}, user,
                           {"a": "s8xs8", "b": "u8xs8"})
    assert [layer.gain for layer in report.layers] == [0.5, 0.75]
    assert [layer.formats for layer in report.layers] == ["s8xs8", "u8xs8"]
    assert report.pj == pytest.approx(4.0) and report.baseline_pj == pytest.approx(12.0)
    assert report.gain == pytest.approx(1 - 4 / 12) and report.notes == []
    assert "ROUP(1,4) u8xs8" in report.entries
    model = EnergyModel([[4], [4]], user, multipliers=["ROUP(0,0)", "ROUP(1,4)"],
                        formats=["s8xs8", "u8xs8"])
    plan = np.array([[1], [1]])
    assert model.gain(plan) == pytest.approx(report.gain)
    assert model.energy_pj(plan) == pytest.approx(report.pj)
    assert np.allclose(model.relative_energy(np.stack([plan, 0 * plan])), [4 / 12, 1.0])
    merged = EnergyTable.load_default().merged(user)  # per format, as for s8xs8
    assert merged.lookup("ROUP(1,4)", "u8xs8").relative == 0.25
    assert merged.lookup("ROUP(2,6)", "u8xs8") == EnergyTable.load_default().lookup("ROUP(2,6)", "u8xs8")
    with pytest.raises(AxonnxError, match="row 1.*unknown operand formats"):
        EnergyTable.from_dict({"rows": [{"name": "ROUP(0,0)", "energy": 1, "formats": "u9xs8"}]})


def test_uint8_activation_layers_use_the_u8xs8_rows(tmp_path, capsys):
    from conftest import build_float_model, quantize

    from axonnx.cli.energy import render_energy_report
    from axonnx.transform import inspect_model

    model = quantize(build_float_model(), tmp_path, activation="uint8", reduce_range=True)
    info = inspect_model(model)
    formats = info.operand_formats
    # the stem sees the raw input (an asymmetric zero point); the others follow a ReLU (zp 0)
    assert list(formats.values()) == ["s9xs8", "u8xs8", "u8xs8", "u8xs8"]
    table = EnergyTable.load_default()
    report = energy_report(info.multiplications, table, formats)
    for layer in report.layers:
        assert layer.pj == pytest.approx(layer.multiplications * table.exact_pj_for(layer.formats))
    assert table.exact_pj_for("u8xs8") != table.exact_pj_for("s8xs8")
    assert report.gain == pytest.approx(0.0) and report.notes == []
    render_energy_report(report, json_output=False)
    assert "u8xs8" in capsys.readouterr().out
