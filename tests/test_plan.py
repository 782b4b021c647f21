"""Plans: parsing, validation, resolution and the per-position assignment of each approach,
checked against an independent, loop-based computation of the policies."""

import json

import numpy as np
import pytest

from axonnx.assign import assign_layer
from axonnx.errors import AxonnxError
from axonnx.multipliers import NAMED_STRENGTHS
from axonnx.plan import LayerRule, Plan, make_rule, plan_from_options

RNG = np.random.default_rng(3)
WEIGHT = RNG.standard_normal((6, 4, 3, 3))


def names_of(assignment):
    return np.asarray([m.name for m in assignment.multipliers], dtype=object)[assignment.index]


def expected_classes(groups_importance: dict, k: int, policy: str, fractions=None):
    """Independent policy: sort keys (largest L1 first, ties by key order) and cut."""
    keys = list(groups_importance)
    if policy == "magnitude":
        keys = sorted(keys, key=lambda g: (-groups_importance[g], keys.index(g)))
    fractions = fractions or [1 / k] * k
    out, start = {}, 0
    cumulative = 0.0
    for cls, f in enumerate(fractions):
        cumulative += f
        end = len(keys) if cls == k - 1 else int(np.floor(len(keys) * cumulative + 0.5))
        for g in keys[start:end]:
            out[g] = cls
        start = end
    return out


GROUP_OF = {
    "flam": lambda m, c, i, j: (m,),
    "klam-chan": lambda m, c, i, j: (m, c),
    "klam-row": lambda m, c, i, j: (m, c, i),
    "klam-col": lambda m, c, i, j: (m, c, j),
}


@pytest.mark.parametrize("approach", list(GROUP_OF))
@pytest.mark.parametrize("policy", ["magnitude", "index"])
@pytest.mark.parametrize("fractions", [None, (0.5, 0.25, 0.25)])
def test_classed_approaches_match_independent_policy(approach, policy, fractions):
    mults = ["ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)"]
    rule = make_rule({"approach": approach, "multipliers": mults, "policy": policy,
                      **({"fractions": list(fractions)} if fractions else {})}, "test")
    got = names_of(assign_layer(rule, WEIGHT))
    importance = {}
    for pos in np.ndindex(WEIGHT.shape):
        g = GROUP_OF[approach](*pos)
        importance[g] = importance.get(g, 0.0) + abs(WEIGHT[pos])
    classes = expected_classes(importance, 3, policy, list(fractions) if fractions else None)
    for pos in np.ndindex(WEIGHT.shape):
        assert got[pos] == mults[classes[GROUP_OF[approach](*pos)]], (approach, pos)
    # every class is used, and the most important group gets the first multiplier
    assert set(got.ravel()) == set(mults)


def test_llam_and_exact():
    assert set(names_of(assign_layer(make_rule({"approach": "llam", "multipliers": ["ROUP_H"]}, "t"), WEIGHT)).ravel()) == {"ROUP(2,6)"}
    assert set(names_of(assign_layer(LayerRule(approach="exact"), WEIGHT)).ravel()) == {"ROUP(0,0)"}


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("keep", ["inside", "outside"])
def test_klms_skips_exactly_outside_mu_k_sigma(k, keep):
    rule = make_rule({"approach": "klms", "k": k, "keep": keep}, "t")
    got = names_of(assign_layer(rule, WEIGHT))
    mu = sum(WEIGHT.ravel()) / WEIGHT.size
    sigma = (sum((v - mu) ** 2 for v in WEIGHT.ravel()) / WEIGHT.size) ** 0.5
    for pos in np.ndindex(WEIGHT.shape):
        inside = mu - k * sigma <= WEIGHT[pos] <= mu + k * sigma
        performed = inside if keep == "inside" else not inside
        assert got[pos] == ("ROUP(0,0)" if performed else "SKIP")
    assert (got == "SKIP").any()


def test_k_that_does_not_fit_the_layer_takes_the_first_classes():
    names = [f"ROUP(0,{r})" for r in range(7)]
    rule = make_rule({"approach": "flam", "multipliers": names, "policy": "index"}, "t")
    got = assign_layer(rule, WEIGHT, "conv1")
    assert "only 6 filters" in got.note and "first 6 classes" in got.note
    per_filter = [got.multipliers[got.index[m].flat[0]].name for m in range(6)]
    assert per_filter == names[:6]  # index policy: filter m takes class m
    assert assign_layer(make_rule({"approach": "flam", "multipliers": names[:6]}, "t"),
                        WEIGHT, "conv1").note == ""


def test_resolve_first_match_wins_and_unknown_layer_is_an_error():
    plan = Plan.from_dict({"layers": [
        {"match": "conv1", "approach": "exact"},
        {"match": "conv*", "approach": "llam", "multipliers": ["ROUP(1,4)"]},
    ]})
    resolved = plan.resolve(["conv1", "conv2", "fc_conv"])
    assert [r.approach for r in resolved.rules] == ["exact", "llam", "exact"]
    assert [r.match for r in resolved.rules] == [("conv1",), ("conv2",), ("fc_conv",)]
    with pytest.raises(AxonnxError, match="matches no quantized conv layer"):
        Plan.from_dict({"layers": [{"match": "nope*", "approach": "exact"}]}).resolve(["conv1"])


def test_yaml_and_json_files_round_trip(tmp_path):
    plan = plan_from_options(klam_chan="ROUP(0,0),ROUP_M,ROUP(2,6)", layers="conv*,stem",
                             policy="index")
    for suffix in (".yaml", ".json"):
        path = tmp_path / f"plan{suffix}"
        plan.save(path)
        again = Plan.load(path)
        assert again == plan
        assert again.digest() == plan.digest()
    assert plan.rules[0].multipliers == ("ROUP(0,0)", NAMED_STRENGTHS["ROUP_M"], "ROUP(2,6)")


def test_bad_plan_files(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AxonnxError, match="not valid JSON"):
        Plan.load(tmp_path / "bad.json")
    (tmp_path / "v2.json").write_text(json.dumps({"version": 2, "layers": []}))
    with pytest.raises(AxonnxError, match="version 2"):
        Plan.load(tmp_path / "v2.json")
    with pytest.raises(AxonnxError, match="cannot read plan"):
        Plan.load(tmp_path / "missing.yaml")


def test_command_line_forms():
    with pytest.raises(AxonnxError, match="exactly one"):
        plan_from_options(llam="ROUP(1,4)", klms=2)
    plan = plan_from_options(klms=2, klms_keep="outside").with_exact_first("stem")
    assert [r.approach for r in plan.rules] == ["exact", "klms"]
    assert plan.rules[1].k == 2 and plan.rules[1].keep == "outside"


def test_readme_yaml_plan_loads_with_its_flow_list(tmp_path):
    """The README's plan writes `multipliers: [ROUP(0,0), ROUP(1,4), ROUP(2,6)]`, which YAML
    splits at every comma; the names are rejoined outside parentheses."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", readme, re.S).group(1)
    path = tmp_path / "plan.yaml"
    path.write_text(block)
    plan = Plan.load(path)
    assert plan.rules[1].multipliers == ("ROUP(0,0)", "ROUP(1,4)", "ROUP(2,6)")
    assert plan.rules[0].approach == "exact"
    # One quoted string works too; an unbalanced name is still a clear error.
    path.write_text("version: 1\nlayers:\n  - {match: '*', approach: flam, "
                    "multipliers: 'ROUP(0,0), ROUP_H'}\n")
    assert Plan.load(path).rules[0].multipliers == ("ROUP(0,0)", "ROUP(2,6)")
    path.write_text("version: 1\nlayers:\n  - {match: '*', approach: llam, multipliers: [ROUP(1]}\n")
    with pytest.raises(AxonnxError, match="unknown multiplier"):
        Plan.load(path)
