"""Documentation that cannot drift: docs/cli.md is every command's --help, and the README's
plan example transforms the zoo models as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_cli_reference_matches_the_commands():
    from axonnx.cli.reference import render

    page = REPO / "docs" / "cli.md"
    assert page.read_text() == render(), (
        "docs/cli.md differs from --help: regenerate it with "
        ".venv/bin/python -P -m axonnx.cli.reference > docs/cli.md")


def readme_plan() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("A plan file (YAML or JSON)")
    return re.search(r"```yaml\n(.*?)```", text[start:], re.S).group(1)


@pytest.mark.parametrize("model", ["zoo:resnet8", "zoo:resnet8-qdq"])
def test_readme_plan_example_works_verbatim_on_the_zoo(tmp_path, model):
    from axonnx.plan import Plan
    from axonnx.transform import inspect_model, transform_with_summary
    from axonnx.zoo import resolve_model

    path = tmp_path / "plan.yaml"
    path.write_text(readme_plan())
    plan = Plan.load(path)
    out, summary = transform_with_summary(str(resolve_model(model)), plan)
    assert [name for name, _ in summary.exact] == ["/stem/Conv" + ("_quant" if model == "zoo:resnet8" else "")]
    assert len(summary.approximated) == 8
    rules = [layer.rule for layer in inspect_model(out).layers]
    assert rules[0]["approach"] == "exact" and {r["approach"] for r in rules[1:]} == {"flam"}
