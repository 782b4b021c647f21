"""Plans: which approximation approach applies to which conv layer.

A plan is a human-editable YAML or JSON file::

    version: 1
    encoded_operand: weight        # or activation
    layers:                        # first matching rule wins; unmatched layers stay exact
      - match: "/stem/*"           # glob (or list of globs) on the node name
        approach: exact
      - match: "*"
        approach: flam             # exact | llam | flam | klam-chan | klam-row | klam-col | klms
        multipliers: [ROUP(0,0), ROUP(1,4), ROUP(2,6)]   # class 0 = most important
        policy: magnitude          # or index
        fractions: [0.5, 0.25, 0.25]   # optional class sizes (default: equal)

``matmul: true`` also approximates the quantized matrix products (MatMul/Gemm: fully
connected layers and activation x activation attention products), rewritten as 1x1
ROUPConv; without it they stay exact, as the conv-only plans of earlier versions did.

KLMS rules take ``k`` (1 or 2 sigma), ``keep`` (``inside``: only weights within
mu +- k sigma are multiplied, the rest are skipped; ``outside``: the reverse) and an
optional ``multipliers: [M]`` for the multiplications that are kept (default exact).

The format's reference is ``docs/plan.md``; ``axonnx/plan.schema.json`` (shipped in the
package, :func:`schema`) describes the same keys for editors and other tools.

``Plan.resolve(layer_names)`` binds rules to concrete layers; a resolved plan is what a
transformed model stores, and reads back.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from axonnx.errors import AxonnxError
from axonnx.multipliers import parse
from axonnx.multipliers.names import split_names

PLAN_VERSION = 1
APPROACHES = ("exact", "llam", "flam", "klam-chan", "klam-row", "klam-col", "klms")
CLASSED_APPROACHES = ("flam", "klam-chan", "klam-row", "klam-col")
POLICIES = ("magnitude", "index")
KLMS_SIDES = ("inside", "outside")
_RULE_KEYS = {"match", "approach", "multipliers", "policy", "fractions", "k", "keep"}



def check_encoded_operand(value: str) -> str:
    """The option value, or a one-line error naming the two choices."""
    from axonnx.ops.roupconv import ENCODED_OPERANDS

    if value not in ENCODED_OPERANDS:
        raise AxonnxError(f"the encoded operand (--encoded-operand, a plan's encoded_operand) "
                          f"must be weight or activation, not {value!r}")
    return value


@dataclass(frozen=True)
class LayerRule:
    """One approach with its parameters, for the layers its globs match."""

    match: tuple[str, ...] = ("*",)
    approach: str = "exact"
    multipliers: tuple[str, ...] = ()
    policy: str = "magnitude"
    fractions: tuple[float, ...] | None = None
    k: float | None = None
    keep: str = "inside"

    @property
    def classes(self) -> int:
        return len(self.multipliers)

    def matches(self, layer: str) -> bool:
        return any(name_matches(layer, pattern) for pattern in self.match)

    def to_dict(self, with_match: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if with_match:
            out["match"] = self.match[0] if len(self.match) == 1 else list(self.match)
        out["approach"] = self.approach
        if self.approach == "exact":
            return out
        if self.approach == "klms":
            out["k"] = self.k
            out["keep"] = self.keep
            if self.multipliers:
                out["multipliers"] = list(self.multipliers)
            return out
        out["multipliers"] = list(self.multipliers)
        if self.approach in CLASSED_APPROACHES:
            out["policy"] = self.policy
            if self.fractions is not None:
                out["fractions"] = list(self.fractions)
        return out


# onnxruntime's QOperator quantizer names a QLinearConv after its Conv plus this suffix; QDQ
# keeps the Conv's name. Matching ignores it, so one plan serves both forms of a model.
QOPERATOR_SUFFIX = "_quant"


def _base_name(name: str) -> str:
    return name[:-len(QOPERATOR_SUFFIX)] if name.endswith(QOPERATOR_SUFFIX) else name


def name_matches(layer: str, pattern: str) -> bool:
    """A layer's node name against a plan glob, with or without the QOperator suffix."""
    return (fnmatch.fnmatchcase(layer, pattern)
            or fnmatch.fnmatchcase(_base_name(layer), _base_name(pattern)))


def _as_tuple(value, what: str, where: str) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise AxonnxError(f"{where}: '{what}' must be a string or a list, got {type(value).__name__}")


def make_rule(raw: dict[str, Any], where: str) -> LayerRule:
    """Validate one rule from a plan file or the command line."""
    if not isinstance(raw, dict):
        raise AxonnxError(f"{where}: a rule must be a mapping with 'match' and 'approach'")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise AxonnxError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}")
    # One spelling per value, as axonnx/plan.schema.json has it: what the loader accepts,
    # the schema accepts (tests/test_plan_schema.py).
    approach = raw.get("approach")
    if approach not in APPROACHES:
        raise AxonnxError(f"{where}: unknown approach {approach!r}; use one of "
                          f"{', '.join(APPROACHES)}")
    match = _as_tuple(raw.get("match", "*"), "match", where)
    if not match:
        raise AxonnxError(f"{where}: 'match' is empty")
    if not all(isinstance(m, str) and m for m in match):
        raise AxonnxError(f"{where}: 'match' takes non-empty glob strings, e.g. \"/stem/*\"")
    if approach == "exact" and "multipliers" in raw:
        raise AxonnxError(f"{where}: an exact rule takes no multipliers")
    for key in ("k", "keep"):
        if key in raw and approach != "klms":
            raise AxonnxError(f"{where}: '{key}' applies to klms only")
    items = [str(m) for m in _as_tuple(raw.get("multipliers"), "multipliers", where)]
    # Rejoined, then split only at commas outside parentheses: a YAML flow list such as
    # [ROUP(0,0), ROUP(1,4)] arrives split inside the names, as "ROUP(0", "0)", ...
    try:
        names = tuple(split_names(",".join(items))) if items else ()
        mults = [parse(n) for n in names]  # validates, canonicalises aliases
    except AxonnxError as exc:
        raise AxonnxError(f"{where}: {exc}") from None
    wide = [m.name for m in mults if m.bits != 8]
    if wide:
        raise AxonnxError(f"{where}: {', '.join(wide)}: ROUPConv's operands are 8-bit, so its "
                          "multipliers need N=8 (drop ';N=...')")
    names = tuple(m.name for m in mults)
    from axonnx.ops.roupconv import MAX_MULTIPLIERS

    if len(set(names)) > MAX_MULTIPLIERS:
        raise AxonnxError(f"{where}: {len(set(names))} distinct multipliers; a layer holds at most "
                          f"{MAX_MULTIPLIERS} (ROUPConv indexes them with one byte): use fewer")
    policy = raw.get("policy", "magnitude")
    if policy not in POLICIES:
        raise AxonnxError(f"{where}: unknown policy {policy!r}; use 'magnitude' or 'index'")
    fractions = raw.get("fractions")
    k = raw.get("k")
    keep = raw.get("keep", "inside")

    if approach == "exact":
        if names:
            raise AxonnxError(f"{where}: an exact rule takes no multipliers")
        return LayerRule(match, "exact")
    if approach == "klms":
        if isinstance(k, bool) or not isinstance(k, (int, float)):
            raise AxonnxError(f"{where}: klms needs k = 1 or 2 (sigmas)")
        k = float(k)
        if k not in (1.0, 2.0):
            raise AxonnxError(f"{where}: klms needs k = 1 or 2 (sigmas), got {k:g}")
        if keep not in KLMS_SIDES:
            raise AxonnxError(f"{where}: klms 'keep' must be 'inside' or 'outside', got {keep!r}")
        if len(names) > 1:
            raise AxonnxError(f"{where}: klms takes at most one multiplier for the kept "
                              "multiplications")
        return LayerRule(match, "klms", names, k=k, keep=keep)
    if approach == "llam" and len(names) != 1:
        raise AxonnxError(f"{where}: llam takes exactly one multiplier, got {len(names)}")
    if approach in CLASSED_APPROACHES and not names:
        raise AxonnxError(f"{where}: {approach} needs one multiplier per class")
    if fractions is not None:
        if approach not in CLASSED_APPROACHES:
            raise AxonnxError(f"{where}: 'fractions' applies to flam and klam-* only")
        if not isinstance(fractions, (list, tuple)) or not all(
                isinstance(f, (int, float)) and not isinstance(f, bool) for f in fractions):
            raise AxonnxError(f"{where}: 'fractions' must be a list of numbers")
        fractions = tuple(float(f) for f in fractions)
        if (len(fractions) != len(names) or not all(math.isfinite(f) and f >= 0 for f in fractions)
                or abs(sum(fractions) - 1) > 1e-6):
            raise AxonnxError(f"{where}: 'fractions' needs {len(names)} non-negative numbers "
                              "summing to 1, one per multiplier")
    return LayerRule(match, approach, names, policy, fractions)


def _load_yaml(text: str):
    """safe_load without anchors and aliases: a plan never needs them, and nested aliases
    (a "billion laughs") expand a few hundred bytes into gigabytes."""
    import yaml

    class _NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent) or getattr(self.peek_event(), "anchor", None):
                raise AxonnxError("it uses YAML anchors or aliases (&name, *name); write each "
                                  "value out in full")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=_NoAliases)  # noqa: S506 - a SafeLoader subclass


def read_plan_file(path: str | Path) -> Any:
    """The data of a YAML (.yaml/.yml) or JSON plan file, before any validation."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AxonnxError(f"cannot read plan {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise AxonnxError(f"plan {path} is not UTF-8 text; write the plan as a YAML or "
                          "JSON text file") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = _load_yaml(text)
        else:
            data = json.loads(text)
    except AxonnxError as exc:
        raise AxonnxError(f"plan {path}: {exc}") from None
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        first = str(exc).splitlines()[0]
        raise AxonnxError(f"plan {path} is not valid {path.suffix[1:].upper() or 'JSON'}: "
                          f"{first}") from None
    return data


def schema() -> dict[str, Any]:
    """The plan format's JSON Schema (``axonnx/plan.schema.json``, package data)."""
    from importlib import resources

    return json.loads((resources.files("axonnx") / "plan.schema.json").read_text())


@functools.cache
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(schema())


def schema_errors(data: Any) -> list[str]:
    """Where ``data`` (a plan file's content) breaks the JSON Schema: one line per error."""
    validator = _validator()
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}"
            for e in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))]


@dataclass(frozen=True)
class Coverage:
    """Which layers each rule of a plan takes (the first matching rule wins)."""

    rules: tuple[tuple[LayerRule, tuple[str, ...]], ...]  # every rule with the layers it wins
    unmatched: tuple[str, ...]  # layers no rule matches: they stay exact
    unused: tuple[tuple[int, str], ...]  # (rule number, glob) of globs matching no layer
    layers: tuple[str, ...]

    @property
    def shadowed(self) -> list[int]:
        """Rule numbers whose globs match layers, all of which an earlier rule took."""
        unused = {number for number, _ in self.unused}
        return [i + 1 for i, (_, won) in enumerate(self.rules) if not won and i + 1 not in unused]

    def check(self) -> None:
        """A glob that matches no layer is a plan for another model (or a typo)."""
        if self.unused:
            number, pattern = self.unused[0]
            raise AxonnxError(
                f"plan rule {number} names {pattern!r}, which matches no quantized conv "
                f"layer; known layers: {', '.join(self.layers)}")


@dataclass(frozen=True)
class Plan:
    rules: tuple[LayerRule, ...] = ()
    encoded_operand: str = "weight"
    version: int = PLAN_VERSION
    matmul: bool = False  # also approximate quantized MatMul/Gemm layers

    def __post_init__(self) -> None:
        check_encoded_operand(self.encoded_operand)  # every way of building a plan

    # ---- building --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "plan") -> "Plan":
        if not isinstance(data, dict):
            raise AxonnxError(f"{source}: a plan is a mapping with 'version' and 'layers'")
        unknown = set(data) - {"version", "encoded_operand", "matmul", "layers"}
        if unknown:
            raise AxonnxError(f"{source}: unknown key(s) {sorted(unknown)}; a plan has "
                              "'version', 'encoded_operand', 'matmul' and 'layers'")
        matmul = data.get("matmul", False)
        if not isinstance(matmul, bool):
            raise AxonnxError(f"{source}: 'matmul' must be true or false, not {matmul!r}")
        version = data.get("version", PLAN_VERSION)
        if version != PLAN_VERSION:
            raise AxonnxError(f"{source}: plan version {version!r} is not supported "
                              f"(this axonnx reads version {PLAN_VERSION})")
        encoded = data.get("encoded_operand", "weight")
        try:
            check_encoded_operand(encoded)
        except AxonnxError as exc:
            raise AxonnxError(f"{source}: {exc}") from None
        layers = data.get("layers", [])
        if isinstance(version, bool):  # True == 1 in Python, not in a plan
            raise AxonnxError(f"{source}: plan version {version!r} is not supported "
                              f"(this axonnx reads version {PLAN_VERSION})")
        if not isinstance(layers, list):
            raise AxonnxError(f"{source}: 'layers' must be a list of rules")
        rules = tuple(make_rule(r, f"{source}, rule {i + 1}") for i, r in enumerate(layers))
        return cls(rules, encoded, matmul=matmul)

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        return cls.from_dict(read_plan_file(path), source=str(path))

    @classmethod
    def uniform(cls, rule: LayerRule, encoded_operand: str = "weight",
                matmul: bool = False) -> "Plan":
        return cls((rule,), encoded_operand, matmul=matmul)

    def with_exact_first(self, layer: str) -> "Plan":
        """Prepend an exact rule for one layer (``--skip-first``)."""
        return replace(self, rules=(LayerRule((layer,), "exact"),) + self.rules)

    # ---- using -----------------------------------------------------------------------
    def rule_for(self, layer: str) -> LayerRule:
        for rule in self.rules:
            if rule.matches(layer):
                return rule
        return LayerRule((layer,), "exact")

    def coverage(self, layers: Sequence[str]) -> Coverage:
        won: list[list[str]] = [[] for _ in self.rules]
        unmatched = []
        for layer in layers:
            number = next((i for i, rule in enumerate(self.rules) if rule.matches(layer)), None)
            (unmatched if number is None else won[number]).append(layer)
        unused = tuple((i + 1, pattern) for i, rule in enumerate(self.rules)
                       for pattern in rule.match
                       if not any(name_matches(layer, pattern) for layer in layers))
        return Coverage(tuple((rule, tuple(w)) for rule, w in zip(self.rules, won)),
                        tuple(unmatched), unused, tuple(layers))

    def resolve(self, layers: Sequence[str]) -> "Plan":
        """One explicit rule per layer, in model order; checks every glob matches."""
        self.coverage(layers).check()
        resolved = tuple(replace(self.rule_for(layer), match=(layer,)) for layer in layers)
        return replace(self, rules=resolved)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "encoded_operand": self.encoded_operand}
        if self.matmul:  # written only when set: conv-only plans keep their digests
            out["matmul"] = True
        out["layers"] = [r.to_dict() for r in self.rules]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            path.write_text(self.to_json() + "\n")

    @property
    def multiplier_names(self) -> list[str]:
        names = []
        for rule in self.rules:
            for n in rule.multipliers:
                if n not in names:
                    names.append(n)
        return names


def plan_from_options(*, llam: str | None = None, flam: str | None = None,
                      klam_chan: str | None = None, klam_row: str | None = None,
                      klam_col: str | None = None, klms: float | None = None,
                      klms_keep: str = "inside", klms_multiplier: str | None = None,
                      policy: str = "magnitude", layers: str | None = None,
                      encoded_operand: str = "weight", matmul: bool = False) -> Plan:
    """The compact command-line forms: exactly one approach, optionally limited to
    ``layers`` (comma-separated globs)."""
    from axonnx.multipliers import parse_list

    given = {"llam": llam, "flam": flam, "klam-chan": klam_chan, "klam-row": klam_row,
             "klam-col": klam_col, "klms": klms}
    chosen = [(k, v) for k, v in given.items() if v is not None]
    if len(chosen) != 1:
        raise AxonnxError("give exactly one of --llam, --flam, --klam-chan, --klam-row, "
                          "--klam-col, --klms (or a --plan file)")
    approach, value = chosen[0]
    match = tuple(p.strip() for p in layers.split(",")) if layers else ("*",)
    # Option values are forgiving about case (--policy Index); plan files take one spelling.
    raw: dict[str, Any] = {"match": list(match), "approach": approach, "policy": policy.lower()}
    if approach == "klms":
        raw.update(k=value, keep=klms_keep.lower())
        if klms_multiplier:
            raw["multipliers"] = [klms_multiplier]
    else:
        raw["multipliers"] = [m.name for m in parse_list(value)]
    return Plan((make_rule(raw, "command line"),), encoded_operand, matmul=matmul)
