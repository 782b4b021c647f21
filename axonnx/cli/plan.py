"""``axonnx plan``: plan files, checked against the format and a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from axonnx.cli._app import JsonOption, app, emit_json, stderr, stdout
from axonnx.cli._options import InputShapeOption, MatMulOption, ModelArgument
from axonnx.errors import AxonnxError

plan_app = typer.Typer(
    name="plan",
    help="Plan files (docs/plan.md): check one against the format and a model.",
    no_args_is_help=True,
)
app.add_typer(plan_app, name="plan")


@plan_app.command("check")
def check_command(
    plan: Annotated[Path, typer.Argument(help="A plan file (YAML or JSON).")],
    model: ModelArgument,
    input_shape: InputShapeOption = None,
    matmul: MatMulOption = False,
    json_output: JsonOption = False,
) -> None:
    """Validate a plan file, then show which layers of MODEL each rule takes, the layers
    no rule matches (they stay exact) and the rules that match nothing.

    Exit status 0 when the plan fits the model, 1 with a one-line error when it does not."""
    from dataclasses import replace

    from axonnx.plan import Plan, read_plan_file, schema_errors
    from axonnx.transform import plan_coverage

    data = read_plan_file(plan)
    # The loader's message first: the one `transform --plan` gives for the same mistake.
    the_plan = Plan.from_dict(data, source=str(plan))
    disagreement = schema_errors(data)
    if disagreement:
        raise AxonnxError(f"plan {plan}: axonnx reads it, but axonnx/plan.schema.json refuses "
                          f"{disagreement[0]}; please report this")
    if matmul:
        the_plan = replace(the_plan, matmul=True)
    coverage, notes = plan_coverage(model, the_plan, input_shape)
    if json_output:
        emit_json({
            "plan": str(plan), "model": model, "fits": not coverage.unused,
            "rules": [{"rule": i + 1, **rule.to_dict(), "layers": list(won)}
                      for i, (rule, won) in enumerate(coverage.rules)],
            "unmatched": list(coverage.unmatched),
            "unused": [{"rule": n, "match": p} for n, p in coverage.unused],
            "shadowed": coverage.shadowed, "notes": notes})
    else:
        table = Table(title=f"plan {plan} on {model}: {len(coverage.layers)} layers")
        for col in ("rule", "match", "approach", "multipliers", "layers it takes"):
            table.add_column(col)
        for i, (rule, won) in enumerate(coverage.rules):
            table.add_row(str(i + 1), ", ".join(rule.match), rule.approach,
                          ", ".join(rule.multipliers) or "-",
                          f"{len(won)}: {', '.join(won)}" if won else "none")
        stdout.print(table)
        if coverage.unmatched:
            stdout.print(f"no rule matches {len(coverage.unmatched)} layers, which stay exact: "
                         f"{', '.join(coverage.unmatched)}", highlight=False, soft_wrap=True)
        for number in coverage.shadowed:
            stderr.print(f"warning: rule {number} takes no layer: every layer it matches is "
                         "taken by an earlier rule", highlight=False, soft_wrap=True)
        for note in notes:
            stderr.print(f"note: {note}", highlight=False, soft_wrap=True)
    coverage.check()  # a glob that matches no layer: the one-line error, exit 1
    if not json_output:
        stderr.print(f"plan {plan} fits {model}", highlight=False, soft_wrap=True)
