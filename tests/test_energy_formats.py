"""Energy that holds for every operand format: named strengths on uint8 activations, user
tables on u8 models, and a search that never offers a dominated multiplier (issue 17)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from axonnx.energy import EnergyTable, energy_report, no_saving_warnings
from axonnx.errors import AxonnxError


def axonnx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-P", "-m", "axonnx", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def u8_model(tmp_path_factory) -> Path:
    """quantize_static's defaults: QDQ, uint8 activations, int8 per-tensor weights."""
    from conftest import build_float_model, quantize

    return quantize(build_float_model(), tmp_path_factory.mktemp("u8"), fmt="qdq",
                    activation="uint8", per_channel=False)


def test_roup_l_on_uint8_activations_saves_energy_or_warns(u8_model, tmp_path):
    out = tmp_path / "l.onnx"
    result = axonnx("transform", str(u8_model), "-o", str(out), "--llam", "ROUP_L")
    assert result.returncode == 0, result.stderr
    energy = axonnx("energy", str(out), "--json")
    assert energy.returncode == 0, energy.stderr
    gain = json.loads(energy.stdout)["gain"]
    warned = "warning: ROUP(0,4) (ROUP_L) saves no energy on u8xs8 operands" in result.stderr
    assert gain > 0 or warned, (gain, result.stderr)
    # the committed characterization: ROUP(0,4) costs more than exact on u8xs8, so it warns,
    # and names the format's own low strength
    assert warned and "u8xs8 the characterization's ROUP_L is ROUP(0,5)" in result.stderr
    assert "s9xs8" not in result.stderr  # ROUP(0,4) saves energy on the stem's s9xs8 operands


def test_no_saving_warnings_only_for_costly_approximate_multipliers():
    table = EnergyTable.load_default()
    layers = {"a": ("ROUP(0,0)", "ROUP(0,4)", "SKIP"), "b": ("ROUP(0,4)",), "c": ("ROUP(2,6)",)}
    lines = no_saving_warnings(layers, {"a": "u8xs8", "b": "s8xs8", "c": "u8xs8"}, table)
    assert len(lines) == 1 and "(a)" in lines[0] and "1 layer " in lines[0]
    assert no_saving_warnings(layers, {}, table) == []  # s8xs8: every one saves


def test_generic_user_rows_hold_for_every_format(u8_model, tmp_path):
    table = tmp_path / "mine.csv"
    table.write_text("name,energy,unit,source\nROUP(0,0),1.0,pJ,my flow\nROUP(1,4),0.5,pJ,my flow\n")
    out = tmp_path / "m.onnx"
    assert axonnx("transform", str(u8_model), "-o", str(out), "--llam", "ROUP(1,4)").returncode == 0
    result = axonnx("energy", str(out), "--table", str(table), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {layer["operand_formats"] for layer in report["layers"]} >= {"u8xs8"}
    convs = [layer for layer in report["layers"] if layer["kind"] == "conv"]
    assert len(convs) == 4
    for layer in convs:  # the user's 50%, whatever the layer's formats (s9xs8, u8xs8)
        assert layer["gain"] == pytest.approx(0.5), layer
    assert 0.45 < report["gain"] < 0.5  # the fully connected head, left alone, is exact


def test_user_rows_for_other_formats_are_an_error_not_silence(tmp_path):
    user = EnergyTable.from_dict({"rows": [
        {"name": "ROUP(0,0)", "energy": 1.0, "formats": "s8xs8"},
        {"name": "ROUP(1,4)", "energy": 0.5, "formats": "s8xs8"}]}, origin="mine.json")
    merged = EnergyTable.load_default().merged(user)
    assert merged.lookup("ROUP(1,4)").relative == 0.5
    with pytest.raises(AxonnxError, match=r"mine.json.*ROUP\(1,4\) rows are for s8xs8.*u8xs8") as err:
        energy_report({"c": {"ROUP(1,4)": 4}}, merged, {"c": "u8xs8"})
    assert "\n" not in str(err.value) and "formats" in str(err.value)
    assert merged.lookup("ROUP(2,6)", "u8xs8").relative < 1  # not in the user's table: built-in


def test_a_row_that_names_no_multiplier_is_an_error(tmp_path):
    with pytest.raises(AxonnxError, match="row 2: 'mul8u_XYZ' is not a multiplier name"):
        EnergyTable.from_csv("name,energy,unit\nROUP(0,0),1,pJ\nmul8u_XYZ,0.5,pJ\n", "t.csv")


def test_search_never_offers_a_dominated_multiplier(u8_model):
    from axonnx.analysis.cost import PlanCost
    from axonnx.analysis.space import SearchSpace, parse_library, substitutes

    assert substitutes(("A", "B", "C"), [1.0, 1.1, 0.5], [0.0, 2.0, 3.0]) == (0, 0, 2)
    assert substitutes(("A", "B"), [1.0, 1.0], [1.0, 1.0]) == (0, 0)  # twins: the first

    library = parse_library("ROUP(0,0),ROUP_L,ROUP_M,ROUP_H")
    cost = PlanCost.for_model(u8_model)
    subs, notes = cost.substitutes(library)
    layers = [layer.name for layer in cost.layers]
    formats = cost.formats["weight"]
    table = EnergyTable.load_default()
    for layer, sub in zip(layers, subs):
        kept = [library[j] for j in set(sub)]
        energy = {n: table.lookup(n, formats[layer]).relative for n in kept}
        assert all(e < 1.0 for n, e in energy.items() if n != "ROUP(0,0)"), (layer, energy)
    assert any("u8xs8" in n and "ROUP(0,4) by ROUP(0,0)" in n for n in notes), notes
    space = SearchSpace("flam", tuple(layers), library, classes=2, substitutes=subs)
    genomes = space.canonical(np.random.default_rng(0).integers(0, 4, (64, space.n_var)))
    for x in genomes:
        for layer, rule in zip(layers, space.plan(x).rules):
            if formats[layer] == "u8xs8":
                assert "ROUP(0,4)" not in (rule.multipliers or ()), (layer, rule)
