"""The plan format: axonnx/plan.schema.json and the loader agree (every plan the suite loads is
also checked against the schema, see conftest.py), invalid plans are refused by both with the
loader's one-line message, docs/plan.md's examples fit the zoo models, and `axonnx plan check`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from axonnx.cli._app import app
from axonnx.errors import AxonnxError
from axonnx.ops.roupconv import ENCODED_OPERANDS
from axonnx.plan import (_RULE_KEYS, APPROACHES, KLMS_SIDES, POLICIES, Plan, plan_from_options,
                         read_plan_file, schema, schema_errors)

REPO = Path(__file__).resolve().parents[1]
ZOO = ["zoo:resnet8", "zoo:resnet8-qdq"]


def test_schema_lists_the_loaders_keys_and_values():
    top = schema()
    rule = top["$defs"]["rule"]["properties"]
    assert set(top["properties"]) == {"version", "encoded_operand", "matmul", "layers"}
    assert set(rule) == _RULE_KEYS
    assert tuple(rule["approach"]["enum"]) == APPROACHES
    assert tuple(rule["policy"]["enum"]) == POLICIES
    assert tuple(rule["keep"]["enum"]) == KLMS_SIDES
    assert tuple(top["properties"]["encoded_operand"]["enum"]) == ENCODED_OPERANDS


@pytest.mark.parametrize("options", [
    {"llam": "ROUP_M"}, {"flam": "ROUP(0,0),ROUP(1,4),ROUP(2,6)", "policy": "index"},
    {"klam_chan": "ROUP_L,SKIP"}, {"klam_row": "ROUP(0,0),ROUP_H"}, {"klam_col": "ROUP(0,0),ROUP_M"},
    {"klms": 2}, {"klms": 1, "klms_keep": "outside", "klms_multiplier": "ROUP(1,4)"},
    {"llam": "ROUP(1,4)", "encoded_operand": "activation", "matmul": True, "layers": "/stem*,x"},
])
def test_plans_axonnx_writes_meet_the_schema(options):
    """What --save-plan, explore's Pareto plans and a model's metadata hold."""
    data = plan_from_options(**options).with_exact_first("/stem/Conv").to_dict()
    assert schema_errors(data) == []
    assert schema_errors(json.loads(json.dumps(data))) == []


def test_committed_plans_meet_the_schema():
    plans = sorted((REPO / "bench" / "results").rglob("pareto/*.yaml"))
    if not plans:
        pytest.skip("no committed Pareto plans in this checkout")
    for path in plans:
        assert schema_errors(read_plan_file(path)) == [], path
        Plan.load(path)


# Invalid plans: the loader's message, and whether the schema refuses them too (names, counts
# and sums are beyond a schema: YAML splits [ROUP(0,0), ROUP(1,4)] into four strings).
def rule(**raw):
    return {"version": 1, "layers": [raw]}


INVALID = [
    (rule(approach="banana"), "unknown approach 'banana'", True),
    (rule(approach="LLAM", multipliers=["ROUP_M"]), "unknown approach 'LLAM'", True),
    (rule(match="*"), "unknown approach None", True),
    (rule(approach="llam", multipliers=["ROUP(1,4)", "ROUP(2,6)"]), "exactly one", False),
    (rule(approach="flam"), "one multiplier per class", True),
    (rule(approach="flam", multipliers=[]), "one multiplier per class", True),
    (rule(approach="flam", multipliers=["ROUP(9,9)"]), "perforation", False),
    (rule(approach="flam", multipliers=["FOO"]), "unknown multiplier", False),
    (rule(approach="flam", multipliers=["ROUP(1,4;N=16)"]), "N=8", False),
    (rule(approach="klms", k=3), "k = 1 or 2", True),
    (rule(approach="klms", k="2"), "k = 1 or 2", True),
    (rule(approach="klms"), "k = 1 or 2", True),
    (rule(approach="klms", k=1, keep="left"), "'inside' or 'outside'", True),
    (rule(approach="llam", multipliers="ROUP_M", k=2), "'k' applies to klms only", True),
    (rule(approach="flam", multipliers=["ROUP_M"], keep="inside"), "'keep' applies to klms only",
     True),
    (rule(approach="flam", multipliers=["SKIP", "ROUP(0,0)"], fractions=[0.9, 0.9]),
     "summing to 1", False),
    (rule(approach="flam", multipliers=["SKIP", "ROUP(0,0)"], fractions=["0.5", "0.5"]),
     "list of numbers", True),
    (rule(approach="llam", multipliers=["ROUP_M"], fractions=[1.0]), "flam and klam-\\* only",
     True),
    (rule(approach="flam", multipliers=["SKIP"], colour="red"), "unknown key", True),
    (rule(approach="exact", multipliers=["ROUP(0,0)"]), "exact rule takes no multipliers", True),
    (rule(approach="exact", multipliers=[]), "exact rule takes no multipliers", True),
    (rule(approach="flam", multipliers=["SKIP"], policy="Index"), "unknown policy", True),
    (rule(approach="exact", match=[]), "'match' is empty", True),
    (rule(approach="exact", match=[3]), "non-empty glob strings", True),
    (rule(approach="exact", match=""), "non-empty glob strings", True),
    ({"version": 2, "layers": []}, "version 2", True),
    ({"version": True, "layers": []}, "version True", True),
    ({"layers": {"match": "*"}}, "'layers' must be a list", True),
    ({"encoded_operand": "input"}, "weight or activation", True),
    ({"matmul": "yes"}, "'matmul' must be true or false", True),
    ({"rules": []}, "unknown key", True),
    ([], "a plan is a mapping", True),
]


@pytest.mark.parametrize("data, message, schema_refuses", INVALID,
                         ids=[f"{i}-{m[:24]}" for i, (_, m, _) in enumerate(INVALID)])
def test_invalid_plans_are_refused_by_the_loader_and_the_schema(data, message, schema_refuses):
    with pytest.raises(AxonnxError, match=message) as info:
        Plan.from_dict(data, source="plan.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("plan.yaml")
    if schema_refuses:
        assert schema_errors(data), "the schema accepts a plan the loader refuses"


def docs_examples() -> list[tuple[str, str]]:
    """(language, text) of every plan block of docs/plan.md."""
    page = (REPO / "docs" / "plan.md").read_text()
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(yaml|json)\n(.*?)```", page, re.S)]


def report_matmul(text: str) -> bool:
    return bool(yaml.safe_load(text).get("matmul"))


def check(*args: str):
    return CliRunner().invoke(app, ["plan", "check", *args])


def test_docs_has_examples_of_every_approach_and_key():
    examples = [yaml.safe_load(text) for _, text in docs_examples()]
    rules = [r for data in examples for r in data.get("layers", [])]
    assert {r["approach"] for r in rules} == set(APPROACHES)
    assert set().union(*rules) == _RULE_KEYS
    assert set().union(*examples) == {"version", "encoded_operand", "matmul", "layers"}


@pytest.mark.parametrize("model", ZOO)
def test_docs_examples_fit_the_zoo_models(tmp_path, model):
    for i, (language, text) in enumerate(docs_examples()):
        path = tmp_path / f"example{i}.{language}"
        path.write_text(text)
        result = check(str(path), model, "--json")
        assert result.exit_code == 0, (text, result.output)
        report = json.loads(result.stdout)
        assert report["fits"] and not report["unused"]
        taken = [layer for r in report["rules"] for layer in r["layers"]]
        everything = taken + report["unmatched"]  # each layer once: 9 convs (+ the Gemm)
        assert len(everything) == len(set(everything)) == 9 + bool(report_matmul(text))


def test_plan_check_table_unmatched_and_shadowed(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("version: 1\nlayers:\n"
                    "  - {match: '/stack1/*', approach: llam, multipliers: [ROUP(1,4)]}\n"
                    "  - {match: '/stack1/conv1/*', approach: exact}\n")
    result = check(str(path), "zoo:resnet8")
    assert result.exit_code == 0, result.output
    assert "/stack1/conv2/Conv_quant" in result.stdout
    assert "no rule matches 7 layers, which stay exact: /stem/Conv_quant" in result.stdout
    assert "rule 2 takes no layer" in result.stderr and "fits zoo:resnet8" in result.stderr


def test_plan_check_errors_are_one_line(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("version: 1\nlayers:\n  - {match: 'stem*', approach: exact}\n")
    result = check(str(path), "zoo:resnet8")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: plan rule 1 names 'stem*', which matches no quantized")
    path.write_text("version: 1\nlayers:\n  - {match: '*', approach: klms, k: 2, keep: left}\n")
    result = check(str(path), "zoo:resnet8")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {path}, rule 1: klms 'keep' must be 'inside' or 'outside', got 'left'"]
    result = check(str(tmp_path / "missing.yaml"), "zoo:resnet8")
    assert result.exit_code == 1 and "cannot read plan" in result.stderr
