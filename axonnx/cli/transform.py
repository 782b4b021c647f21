"""``axonnx transform``: rewrite a quantized model's convolutions into ROUPConv."""

from __future__ import annotations

from collections import Counter

from pathlib import Path
from typing import Annotated, Optional

import typer

from axonnx.cli._app import JsonOption, app, emit_json, stderr
from axonnx.cli._options import (
    CalibDataOption, CalibOption, DataOption, EncodedOption, FlamOption, InputShapeOption,
    KlamChanOption,
    KlamColOption, KlamRowOption, KlmsKeepOption, KlmsMultOption, KlmsOption, LayersOption,
    LlamOption, MatMulOption, ModelArgument, PlanOption, PolicyOption, RecoveryOption,
    PreprocessOption, SampleOption, SkipFirstOption, data_options,
)
from axonnx.errors import AxonnxError
from axonnx.ops.roupconv import DOMAIN


def build_plan(model, plan_file, *, skip_first: bool, encoded_operand: str,
               matmul: bool = False, input_shape=None, **compact):
    """A plan from a file or from the compact options (not both); ``matmul`` (--matmul)
    turns on the matrix products of either."""
    from dataclasses import replace

    from axonnx.plan import Plan, plan_from_options
    from axonnx.transform import prepared

    given = any(v is not None for k, v in compact.items() if k not in ("klms_keep", "policy", "layers", "klms_multiplier"))
    if plan_file and given:
        raise AxonnxError("give either --plan or one of the compact options, not both")
    if plan_file:
        plan = Plan.load(plan_file)
    else:
        plan = plan_from_options(encoded_operand=encoded_operand, **compact)
    if matmul:
        plan = replace(plan, matmul=True)
    if skip_first:
        _, layers, _ = prepared(model, plan.matmul, input_shape)
        plan = plan.with_exact_first(layers[0].name)
    return plan


def _warn_range(data, model) -> None:
    from axonnx.data.load import input_range_note

    note = input_range_note(data, model, f"the calibration data ({data.source})")
    if note:
        stderr.print(f"warning: {note}", soft_wrap=True, highlight=False)


@app.command("transform")
def transform_command(
    model: ModelArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the rewritten model.")],
    plan: PlanOption = None,
    llam: LlamOption = None, flam: FlamOption = None, klam_chan: KlamChanOption = None,
    klam_row: KlamRowOption = None, klam_col: KlamColOption = None, klms: KlmsOption = None,
    klms_keep: KlmsKeepOption = "inside", klms_multiplier: KlmsMultOption = None,
    policy: PolicyOption = "magnitude", layers: LayersOption = None,
    skip_first: SkipFirstOption = False, encoded_operand: EncodedOption = "weight",
    matmul: MatMulOption = False, input_shape: InputShapeOption = None,
    save_plan: Annotated[Optional[Path], typer.Option("--save-plan", help="Also write the resolved plan (YAML or JSON).")] = None,
    recovery: RecoveryOption = "none", calib: CalibOption = 512,
    calib_data: CalibDataOption = None, data: DataOption = None, sample: SampleOption = False,
    preprocess: PreprocessOption = None,
    exact_layers: Annotated[str, typer.Option(
        "--exact-layers", help="Where layers the plan keeps exact run: onnxruntime (the "
        "model's own op where onnxruntime runs it faster: uint8 activations, transposed "
        "convs) or roup (always an exact ROUP node).")] = "onnxruntime",
    json_output: JsonOption = False,
) -> None:
    """Rewrite every quantized 2-D conv into ROUPConv as the plan says (others stay exact)."""
    from axonnx.analysis.data import calibration_data
    from axonnx.recovery import canonical_recovery, measure_activations, recovery_flags
    from axonnx.diagnostics import error_warnings, estimate_errors
    from axonnx.energy import no_saving_warnings
    from axonnx.model import (check_model_valid, check_outputs, load_model, model_files,
                              save_model_atomic)
    from axonnx.zoo import resolve_model
    from axonnx.recovery import Recovery
    from axonnx.transform import check_exact_layers, notes_of, plan_of, transform_with_summary

    check_exact_layers(exact_layers)
    inputs = model_files(resolve_model(model)) + ([Path(plan)] if plan else [])
    if calib_data is not None:
        inputs.append(Path(calib_data))
    check_outputs([output, save_plan], inputs)
    loaded = load_model(model)
    check_model_valid(loaded, f"model {model}", loads=False)  # before any work
    the_plan = build_plan(loaded, plan, skip_first=skip_first, encoded_operand=encoded_operand,
                          llam=llam, flam=flam, klam_chan=klam_chan, klam_row=klam_row,
                          klam_col=klam_col, klms=klms, klms_keep=klms_keep,
                          klms_multiplier=klms_multiplier, policy=policy, layers=layers,
                          matmul=matmul, input_shape=input_shape)
    recovery = canonical_recovery(recovery)
    fixer = None
    if recovery != "none" or calib_data is not None:
        # Calibration on the user's --calib-data, else on training images (as axonnx explore
        # does, so that a Pareto plan of a recovery run gives the same model); without them,
        # the packaged sample, said so.
        from axonnx.data import load_sample
        from axonnx.data.load import cifar_dataset

        if recovery == "none":
            raise AxonnxError("--calib-data feeds the recovery statistics: add --recovery tune, "
                              "bias or tune+bias, or drop --calib-data")
        options = data_options(data, sample=sample, preprocess=preprocess)
        fallback = None if calib_data or not options.cifar else cifar_dataset(load_sample(), loaded)
        calibration = calibration_data(options, loaded, calib, calib_data=calib_data,
                                       fallback=fallback)
        _warn_range(calibration, loaded)
        stats = measure_activations(loaded, data=calibration, matmul=the_plan.matmul)
        tune, bias = recovery_flags(recovery)
        fixer = Recovery(stats, tune_weights=tune, correct_bias=bias)
        stderr.print(f"recovery {recovery}: statistics from {stats.source}", soft_wrap=True,
                     highlight=False)
    verdict = None
    if fixer is None:
        out_model, summary = transform_with_summary(loaded, the_plan, input_shape=input_shape,
                                                    exact_layers=exact_layers)
    else:  # recovery is kept only where it brings the outputs closer to the exact model's
        from axonnx.recovery.guard import guarded_transform

        out_model, summary, verdict = guarded_transform(loaded, the_plan, fixer, calibration,
                                                        input_shape=input_shape,
                                                        exact_layers=exact_layers)
        stderr.print(verdict.line(recovery), soft_wrap=True, highlight=False)
        if not verdict.kept:
            fixer = None
    written = save_model_atomic(out_model, output, protect=inputs)
    resolved = plan_of(out_model)
    if save_plan:
        resolved.save(save_plan)
    for line in notes_of(out_model):
        stderr.print(f"note: {line}", soft_wrap=True, highlight=False)
    warnings = error_warnings(estimate_errors(loaded, the_plan, recovery=fixer,
                                              input_shape=input_shape))
    # A multiplier that costs more than exact on a layer's operand formats (e.g. ROUP_L on
    # uint8 activations) is a plan that defeats its purpose: say so.
    warnings += no_saving_warnings(summary.multipliers, summary.operand_formats)
    for line in warnings:
        stderr.print(f"warning: {line}", soft_wrap=True, highlight=False)
    if json_output:
        emit_json({"output": str(written), "plan": resolved.to_dict(), "digest": resolved.digest(),
                   "warnings": warnings, "summary": summary.as_dict(),
                   "recovery": None if verdict is None else verdict.as_dict()})
        return
    # Name the ops the layers became: a matrix product is a ROUPMatMul, a transposed conv a
    # ROUPConvTranspose.
    ops = Counter(n.op_type for n in out_model.graph.node if n.domain == DOMAIN)
    rewritten = ", ".join(f"{count} as {op}" for op, count in sorted(ops.items())) or "none"
    stderr.print(f"wrote {written}: layers rewritten: {rewritten} (plan digest "
                 f"{resolved.digest()})", soft_wrap=True, highlight=False)
    for line in summary.lines():
        stderr.print(line, soft_wrap=True, highlight=False, markup=False)
