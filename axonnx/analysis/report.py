"""The study's ``report.md``: Fig. 3, the operand-encoding table, Fig. 4, Table I and
recovery at equal energy, rendered from the summary ``axonnx.analysis.reproduce`` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from axonnx.analysis.study import (
    ENCODING_RECOVERIES, RECOVERY_VARIANTS, SENSITIVITY_MULTIPLIERS, StudyConfig,
)


def _strengths() -> list[str]:
    from axonnx.multipliers import NAMED_STRENGTHS

    return [f"{k} = {v}" for k, v in NAMED_STRENGTHS.items()]


def _fmt(v, scale=100, digits=1) -> str:
    return "–" if v is None else f"{scale * v:.{digits}f}"


def write_report(out: Path, s: dict, runs, config: StudyConfig) -> Path:
    lines = []
    add = lines.append
    n_eval = s["evaluation"]["images"]
    add("# MAX-DNN reproduction on ResNet-8 (axonnx)\n")
    add(f"Model `{s['model']}`, int8 baseline top-1 **{100 * s['baseline']:.2f}%** on "
        f"{n_eval:,} CIFAR-10 test images ({s['evaluation']['source']}). Study mode "
        f"`{config.name}`; machine {s['machine']}; total {s['timings']['total'] / 60:.1f} min.\n")
    add(f"Energy: multiplier energy only (paper's model, #multiplications x energy per "
        f"multiplication, SKIP free), relative to the all-exact model; table: "
        f"`{s['energy_table']}`. Accuracy loss: percentage points vs the int8 baseline. "
        f"Recovery statistics (weight tuning, bias correction): {s['calibration']}.\n")

    # headline
    table1 = s["table1"]
    best1 = max((r for r in table1 if r["max_loss"] == 0.01 and r["gain"] is not None),
                key=lambda r: r["gain"], default=None)
    best4 = max((r for r in table1 if r["max_loss"] == 0.04 and r["gain"] is not None),
                key=lambda r: r["gain"], default=None)
    add("## Headline\n")
    add("| target | best found | run | plan |\n|---|---|---|---|")
    for target, best, need in (("≥54% gain at ≤1 pp loss", best1, 0.54),
                               ("≥65% gain at ≤4 pp loss", best4, 0.65)):
        if best is None:
            add(f"| {target} | – | – | – |")
            continue
        mark = "met" if best["gain"] >= need else "not met"
        add(f"| {target} | **{_fmt(best['gain'])}%** gain at {_fmt(best['loss'], digits=2)} pp "
            f"({mark}) | {best['run']} | `{Path(best['plan']).relative_to(out)}` |")
    add("")

    add("## Fig. 3: layer sensitivity (LLAM)\n")
    sens = s["sensitivity"]
    first = next(iter(sens.values()))
    add(f"ROUP_L, ROUP_M, ROUP_H as named by axonnx ({', '.join(_strengths())}); "
        f"{first.get('encoded_operand', 'weight')} operand radix-4 encoded, recovery "
        f"{first.get('recovery', 'none')}.\n")
    for mode, fig in (("single", "3a: one layer at a time"), ("cumulative", "3b: layers 1..m")):
        r = sens[mode]
        add(f"Fig. {fig} ({r['images']:,} images, baseline {100 * r['baseline']:.2f}%)\n")
        add(f"![sensitivity {mode}](sensitivity/sensitivity_{mode}.png)\n")
        aliases = list(dict.fromkeys(row["alias"] for row in r["rows"]))
        add("| layer | " + " | ".join(f"{a} top-1 %" for a in aliases) + " |")
        add("|---|" + "---|" * len(aliases))
        for m, layer in enumerate(r["layers"], start=1):
            cells = {row["alias"]: row for row in r["rows"] if row["layer"] == m}
            add(f"| {m} `{layer}` | " + " | ".join(_fmt(cells[a]["score"], digits=2)
                                                  for a in aliases) + " |")
        add("")

    add("### Which operand to encode\n")
    add("Uniform LLAM on every layer, top-1 accuracy. Perforating the encoded operand's low "
        "radix-4 digits drops `d_j 4^j` times the other operand from each product. With the "
        "weight encoded, the dropped digits are fixed per weight: the error of a channel has "
        "a mean (ReLU activations are non-negative) that bias correction removes, and weight "
        "tuning picks weights whose dropped digits are small. With the activation encoded, "
        "the dropped digits follow the data and no weight choice avoids them.\n")
    enc = s["encodings"]
    base_row = next((r for r in enc if r["multiplier"] == "baseline"), None)
    if base_row:
        add(f"Baseline {100 * base_row['accuracy']:.2f}% on {first['images']:,} images.\n")
    keys = [(e, r) for e in ("weight", "activation") for r in ENCODING_RECOVERIES]
    add("| multiplier | energy gain | " + " | ".join(
        f"{e} enc.{'' if r == 'none' else ' + ' + r}" for e, r in keys) + " |")
    add("|---|---|" + "---|" * len(keys))
    for m in SENSITIVITY_MULTIPLIERS:
        cell = {(r["encoded_operand"], r["recovery"]): r for r in enc if r["multiplier"] == m}
        if not cell:
            continue
        gain = next(iter(cell.values()))["gain"]
        add(f"| {m} | {_fmt(gain)}% | " + " | ".join(
            _fmt(cell[k]["accuracy"], digits=2) + "%" if k in cell else "–" for k in keys) + " |")
    add("")

    add("## Fig. 4: exploration of every approach\n")
    add(f"NSGA-II (pymoo), population {config.pop}, {config.gens} generations, seed "
        f"{config.seed}, searched on {s['search']['images']:,} images of the search split "
        f"({s['search']['source']}; accuracy floor: its baseline − "
        f"{100 * config.floor_drop:.0f} pp), Pareto plans re-scored on the {n_eval:,} images "
        f"of the report split ({s['evaluation']['source']}), disjoint from it. Library: "
        f"{', '.join(f'{k}={m}' for k, m in enumerate(config.library))}; a plan's label "
        "lists, per conv layer, the library index of each class (most important class "
        "first); KLMS genes: 0 exact, 1 skip outside μ±1σ, 2 skip outside μ±2σ.\n")
    add("![Fig. 4](fig4_explore.png)\n")
    add("| run | evaluated | Pareto plans | search time |\n|---|---|---|---|")
    for run in runs:
        add(f"| {run.name} | {len(run.records)} | {len(run.pareto)} | "
            f"{run.info.get('seconds', 0):.0f} s |")
    add("")

    add("## Table I: best Pareto plans per approach, and uniform EvoApprox\n")
    evo_n = s.get("evo_images") or n_eval
    add("Energy gain vs the all-exact model; accuracy loss vs the int8 baseline, on the "
        f"{n_eval:,} evaluation images ({evo_n:,} for the EvoApprox rows, whose table-driven "
        "kernel is slower).\n")
    add("| approach / recovery | max loss | plan | energy gain | accuracy loss |")
    add("|---|---|---|---|---|")
    for r in table1:
        add(f"| {r['run']} | {_fmt(r['max_loss'], digits=0)} pp | "
            f"{'–' if r['label'] is None else '`' + r['label'] + '`'} | {_fmt(r['gain'])}% | "
            f"{_fmt(r['loss'], digits=2)} pp |")
    for r in s["evoapprox"]:
        if r.get("unavailable"):
            add(f"| uniform LUT({r['name']}) | – | not available: {r['unavailable']} | – | – |")
            continue
        rec = "" if r["recovery"] == "none" else f" +{r['recovery']}"
        add(f"| uniform LUT({r['name']}){rec} | – | llam, every layer | {_fmt(r['gain'])}% | "
            f"{_fmt(r['loss'], digits=2)} pp |")
    add("")

    add("## Accuracy recovery without retraining, at equal energy\n")
    add("The most energy-saving Pareto plans of the runs without recovery, scored again with "
        "weight tuning (ALWANN-style, per input channel activation histograms), bias "
        "correction, and both; the plans, hence the energy, are unchanged.\n")
    rec = s["recovery"]
    if rec:
        add("| run | plan | energy gain | top-1 without | + tune | + bias | + tune+bias |")
        add("|---|---|---|---|---|---|---|")
        keys = list(dict.fromkeys((r["run"], r["label"]) for r in rec))
        for key in keys:
            group = {r["recovery"]: r for r in rec if (r["run"], r["label"]) == key}
            first = next(iter(group.values()))
            add(f"| {key[0]} | `{key[1]}` | {_fmt(first['gain'])}% | "
                f"{_fmt(first['accuracy_none'], digits=2)}% | " +
                " | ".join(f"{_fmt(group[v]['accuracy'], digits=2)}% "
                           f"({'+' if group[v]['recovered'] >= 0 else ''}"
                           f"{_fmt(group[v]['recovered'], digits=2)})"
                           for v in RECOVERY_VARIANTS) + " |")
        mean = {v: float(np.mean([r["recovered"] for r in rec if r["recovery"] == v]))
                for v in RECOVERY_VARIANTS}
        add("\nMean accuracy recovered: " + ", ".join(f"{v} {100 * m:+.2f} pp"
                                                     for v, m in mean.items()) + ".\n")
    else:
        add("(no plan to score)\n")

    add("## Time\n")
    add("| step | seconds |\n|---|---|")
    for k, v in s["timings"].items():
        add(f"| {k} | {v:.0f} |")
    add("")
    add("## Caveats\n")
    add("- The search never sees the report split: with the training batches it searches "
        "a validation split of them (`data_batch_5`) and every accuracy reported here is on "
        "the test set; the front is therefore not tuned on the data it is reported on.")
    add("- Energy covers the conv layers' multipliers only (the classifier stays exact), "
        "as in the paper.")
    add("- Recovery statistics come from training images outside the validation split "
        "(`data_batch_1..4`), never from the test set, when the training batches are available.")
    add("- KLMS performs only the multiplications whose weight lies within μ±kσ, as the paper "
        "describes: it skips the *largest* weights, which this model does not survive (its "
        "plans fall below the accuracy floor). `axonnx explore --approach klms --klms-keep "
        "outside` skips the small weights instead.")
    add("- Weight tuning minimises each product's expected squared error (its variance when bias "
        "correction follows) under per-channel activation histograms; it helps with the weight "
        "encoded, but can hurt with the activation encoded, where per-product errors are "
        "correlated across a window.")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
