"""Reading a Liberty (.lib) standard-cell library: units, cell areas, pin capacitances,
logic functions, internal-power tables and leakage.

Parsing is done by the ``liberty-parser`` package (PyPI); this module turns its syntax tree
into the few numbers the energy model needs, with SI units attached:

* internal-power table values are energies in ``capacitive_load_unit * voltage_unit^2``
  (the convention of the Liberty reference and of OpenSTA);
* leakage in ``leakage_power_unit``; times in ``time_unit``; capacitances in
  ``capacitive_load_unit``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from axonnx import signed
from axonnx.errors import AxonnxError

_SI = {"": 1.0, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15, "a": 1e-18}


# -- boolean functions -------------------------------------------------------------------

class BoolExpr:
    """A Liberty boolean function (``function``/``when``), compiled to bitwise numpy ops.

    Grammar (Liberty reference): ``!x`` and ``x'`` invert, then ``^``, then AND (``&``, ``*``
    or juxtaposition), then OR (``|``, ``+``); ``0``/``1`` are constants.
    """

    _TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_\[\]\.]*)|(?P<const>[01])\b|(?P<op>[!'^&*|+()]))")

    def __init__(self, text: str):
        self.text = text
        self._tokens = self._lex(text)
        self._pos = 0
        self.tree = self._or()
        if self._pos != len(self._tokens):
            raise ValueError(f"unexpected {self._tokens[self._pos][1]!r} in {text!r}")
        self.names = sorted(self._collect(self.tree))

    def _lex(self, text: str) -> list[tuple[str, str]]:
        tokens, pos, text = [], 0, text.strip()
        while pos < len(text):
            match = self._TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise ValueError(f"cannot read {text[pos:]!r} in {text!r}")
            kind = match.lastgroup
            tokens.append((kind, match[kind]))
            pos = match.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        return tokens

    def _peek(self):
        return self._tokens[self._pos] if self._pos < len(self._tokens) else (None, None)

    def _take(self):
        tok = self._peek()
        self._pos += 1
        return tok

    def _or(self):
        node = self._and()
        while self._peek()[1] in ("|", "+"):
            self._take()
            node = ("or", node, self._and())
        return node

    def _starts_operand(self) -> bool:
        kind, value = self._peek()
        return kind in ("name", "const") or value in ("!", "(")

    def _and(self):
        node = self._xor()
        while True:
            if self._peek()[1] in ("&", "*"):
                self._take()
            elif not self._starts_operand():
                return node
            node = ("and", node, self._xor())

    def _xor(self):
        node = self._unary()
        while self._peek()[1] == "^":
            self._take()
            node = ("xor", node, self._unary())
        return node

    def _unary(self):
        kind, value = self._take()
        if value == "!":
            node = ("not", self._unary())
        elif value == "(":
            node = self._or()
            if self._take()[1] != ")":
                raise ValueError(f"missing ')' in {self.text!r}")
        elif kind == "name":
            node = ("var", value)
        elif kind == "const":
            node = ("const", int(value))
        else:
            raise ValueError(f"unexpected {value!r} in {self.text!r}")
        while self._peek()[1] == "'":
            self._take()
            node = ("not", node)
        return node

    def _collect(self, node) -> set[str]:
        if node[0] == "var":
            return {node[1]}
        if node[0] == "const":
            return set()
        return set().union(*(self._collect(child) for child in node[1:]))

    def evaluate(self, env: dict[str, np.ndarray], ones: np.ndarray) -> np.ndarray:
        """Evaluate on packed words; ``ones`` is the all-true vector (for constants)."""
        def ev(node):
            op = node[0]
            if op == "var":
                return env[node[1]]
            if op == "const":
                return ones if node[1] else np.zeros_like(ones)
            if op == "not":
                return ~ev(node[1])
            left, right = ev(node[1]), ev(node[2])
            return left & right if op == "and" else left | right if op == "or" else left ^ right
        return ev(self.tree)


# -- tables ------------------------------------------------------------------------------

_SLEW_VARS = {"input_transition_time", "input_net_transition", "related_pin_transition"}
_LOAD_VARS = {"total_output_net_capacitance"}


@dataclass
class Table:
    """A 0-, 1- or 2-D lookup table; ``variables`` name its axes."""

    variables: tuple[str, ...]
    indices: tuple[np.ndarray, ...]
    values: np.ndarray

    def at(self, slew: float, load: float) -> float:
        """Value at an input slew and output load (library units), interpolated linearly
        and clamped at the table's edges."""
        values = self.values
        if values.size == 1:
            return float(values.ravel()[0])
        coords = []
        for var, index in zip(self.variables, self.indices):
            coords.append(slew if var in _SLEW_VARS else load if var in _LOAD_VARS else index[0])
        if values.ndim == 1:
            return float(np.interp(coords[0], self.indices[0], values))
        # bilinear: interpolate along axis 2 for every row, then along axis 1
        rows = np.array([np.interp(coords[1], self.indices[1], row) for row in values])
        return float(np.interp(coords[0], self.indices[0], rows))


@dataclass
class PowerGroup:
    """One ``internal_power`` group: energy per rise/fall of its pin (output pins:
    per output transition caused by ``related``; input pins: per input transition)."""

    related: tuple[str, ...]
    when: BoolExpr | None
    rise: Table | None
    fall: Table | None


@dataclass
class Pin:
    name: str
    direction: str
    capacitance: float  # library capacitance units
    function: BoolExpr | None = None
    power: list[PowerGroup] = field(default_factory=list)


@dataclass
class Cell:
    name: str
    area: float
    leakage: float  # cell_leakage_power, library leakage units
    leakage_states: list[tuple[BoolExpr, float]]
    pins: dict[str, Pin]
    data_pins: tuple[str, ...] = ()  # the next_state inputs of a flip-flop or latch
    sequential: bool = False

    @property
    def inputs(self) -> list[str]:
        return [p.name for p in self.pins.values() if p.direction == "input"]

    @property
    def outputs(self) -> list[str]:
        return [p.name for p in self.pins.values() if p.direction == "output"]


@dataclass
class Library:
    name: str
    path: str
    sha256: str
    voltage: float  # volts
    cap_unit: float  # farads per library capacitance unit
    time_unit: float  # seconds per library time unit
    leakage_unit: float  # watts per library leakage unit
    corner: dict
    cells: dict[str, Cell]

    @property
    def energy_unit(self) -> float:
        """Joules per internal-power table unit (capacitance unit x volt^2)."""
        return self.cap_unit

    def cell(self, name: str) -> Cell:
        try:
            return self.cells[name]
        except KeyError:
            raise AxonnxError(
                f"cell {name!r} is not in the Liberty library {self.name} ({self.path}); "
                "synthesize against the same library you characterize with"
            ) from None

    def register_input_cap(self) -> float:
        """Input capacitance (library units) of the data pin of the smallest flip-flop, or
        of the smallest inverter when the library has no flip-flop: the default load on
        each multiplier output (the product register it would drive)."""
        for seq in (True, False):
            best = None
            for c in self.cells.values():
                if seq and c.sequential and c.data_pins:
                    cap = min(c.pins[p].capacitance for p in c.data_pins if p in c.pins)
                elif not seq and len(c.inputs) == 1 and len(c.outputs) == 1 and \
                        c.pins[c.outputs[0]].function is not None and \
                        c.pins[c.outputs[0]].function.tree[0] == "not":
                    cap = c.pins[c.inputs[0]].capacitance
                else:
                    continue
                if best is None or c.area < best[0]:
                    best = (c.area, cap)
            if best is not None:
                return best[1]
        return 0.0

    def describe(self) -> dict:
        return {"library": self.name, "file": os.path.basename(self.path),
                "sha256": self.sha256, "corner": self.corner}


# -- reading -----------------------------------------------------------------------------

def _unit(text, kind: str, path: str) -> float:
    match = re.fullmatch(r"\s*([0-9.eE+-]*)\s*([kmunpfa]?)(?:s|w|v|f|a|ohm)?\s*", str(text).strip('"').lower())
    if not match:
        raise AxonnxError(f"Liberty file {path}: cannot read the {kind} unit {text!r}")
    value = float(match[1]) if match[1] else 1.0
    return value * _SI[match[2]]


def _cap_unit(lib, path: str) -> float:
    value = lib.get("capacitive_load_unit")
    if value is None:
        return 1e-12  # the Liberty default is 1 pF
    try:
        number, unit = value[0], str(value[1]).strip('"').lower()
        return float(number) * {"ff": 1e-15, "pf": 1e-12, "nf": 1e-9}[unit]
    except (KeyError, IndexError, TypeError, ValueError):
        raise AxonnxError(f"Liberty file {path}: cannot read capacitive_load_unit {value!r}") from None


def _text(value) -> str:
    return str(getattr(value, "value", value)).strip('"').strip()


def _array(group, key: str) -> np.ndarray:
    raw = group.get(key)
    if raw is None:
        return np.zeros(0)
    items = raw if isinstance(raw, list) else [raw]
    rows = [[float(v) for v in _text(item).replace("\\", "").split(",") if v.strip()]
            for item in items]
    return np.array(rows[0] if len(rows) == 1 and key.startswith("index") else rows, dtype=float)


def _table(group, templates: dict) -> Table:
    template = templates.get(_text(group.args[0]) if group.args else "scalar", {})
    values = _array(group, "values")
    indices, variables = [], []
    for axis in (1, 2, 3):
        index = _array(group, f"index_{axis}")
        if index.size == 0:
            index = template.get(f"index_{axis}", np.zeros(0))
        if index.size == 0:
            break
        indices.append(np.asarray(index, dtype=float).ravel())
        variables.append(template.get(f"variable_{axis}", ""))
    if len(indices) == 1:
        values = values.ravel()
    elif len(indices) == 2:
        values = values.reshape(len(indices[0]), len(indices[1]))
    return Table(tuple(variables), tuple(indices), values)


def _power_group(group, templates: dict) -> PowerGroup:
    related = tuple(_text(group.get("related_pin", "")).split())
    when = group.get("when")
    rise = group.get_groups("rise_power")
    fall = group.get_groups("fall_power")
    power = group.get_groups("power")  # a single table for both directions
    rise_t = _table(rise[0], templates) if rise else (_table(power[0], templates) if power else None)
    fall_t = _table(fall[0], templates) if fall else (_table(power[0], templates) if power else None)
    return PowerGroup(related, BoolExpr(_text(when)) if when is not None else None, rise_t, fall_t)


def _pins(cell_group, templates: dict, default_cap: float) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    groups = list(cell_group.get_groups("pin"))
    for bus in cell_group.get_groups("bus") + cell_group.get_groups("bundle"):
        groups += bus.get_groups("pin")
    for g in groups:
        direction = _text(g.get("direction", "internal"))
        cap = g.get("capacitance")
        if cap is None:
            rise, fall = g.get("rise_capacitance"), g.get("fall_capacitance")
            cap = (float(rise) + float(fall)) / 2 if rise is not None and fall is not None else default_cap
        function = g.get("function")
        for name in (_text(a) for a in g.args):
            pins[name] = Pin(
                name, direction, float(cap) if direction == "input" else 0.0,
                BoolExpr(_text(function)) if function is not None else None,
                [_power_group(p, templates) for p in g.get_groups("internal_power")],
            )
    return pins


def _decompressed(raw: bytes, path) -> bytes:
    """The bytes of a Liberty file, gunzipped when gzip-compressed. A broken .gz raises
    EOFError, which click would report as Ctrl-C: it becomes a one-line error here."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise AxonnxError(f"Liberty file {path} is not a valid .gz file ({type(exc).__name__}: "
                          f"{exc or 'truncated'}); give an intact .lib or .lib.gz") from None


def _parse(path: str) -> Library:
    from liberty.parser import parse_liberty

    p = Path(path)
    if not p.is_file():
        raise AxonnxError(f"Liberty file {path} does not exist")
    raw = _decompressed(p.read_bytes(), path)
    text = raw.decode("utf-8", errors="replace")
    try:
        lib = parse_liberty(text)
    except Exception as exc:  # the parser raises plain exceptions with a line number
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AxonnxError(f"Liberty file {path} cannot be parsed: {message[:200]}") from None
    if getattr(lib, "group_name", "") != "library":
        raise AxonnxError(f"Liberty file {path}: the top group is not library(...)")
    try:
        templates = {}
        for kind in ("lu_table_template", "power_lut_template"):
            for t in lib.get_groups(kind):
                entry = {}
                for axis in (1, 2, 3):
                    if t.get(f"variable_{axis}") is not None:
                        entry[f"variable_{axis}"] = _text(t.get(f"variable_{axis}"))
                        entry[f"index_{axis}"] = _array(t, f"index_{axis}")
                templates[_text(t.args[0])] = entry
        voltage = lib.get("nom_voltage")
        conditions = lib.get_groups("operating_conditions")
        default_oc = _text(lib.get("default_operating_conditions", ""))
        chosen = next((c for c in conditions if _text(c.args[0]) == default_oc),
                      conditions[0] if conditions else None)
        if chosen is not None and chosen.get("voltage") is not None:
            voltage = chosen.get("voltage")
        if voltage is None:
            raise AxonnxError(f"Liberty file {path}: no nom_voltage or operating voltage")
        corner = {
            "operating_conditions": _text(chosen.args[0]) if chosen is not None else None,
            "process": float(chosen.get("process", lib.get("nom_process", 1.0))) if chosen is not None else None,
            "voltage_V": float(voltage),
            "temperature_C": float(chosen.get("temperature", lib.get("nom_temperature", 25.0)))
            if chosen is not None else float(lib.get("nom_temperature", 25.0)),
        }
        default_cap = float(lib.get("default_input_pin_cap", 0.0))
        cells = {}
        for g in lib.get_groups("cell"):
            name = _text(g.args[0])
            states = [(BoolExpr(_text(lp.get("when"))), float(lp.get("value")))
                      for lp in g.get_groups("leakage_power")
                      if lp.get("when") is not None and lp.get("value") is not None]
            seq_groups = g.get_groups("ff") + g.get_groups("latch") + g.get_groups("ff_bank")
            data = set()
            for sg in seq_groups:
                for key in ("next_state", "data_in"):
                    if sg.get(key) is not None:
                        data |= set(BoolExpr(_text(sg.get(key))).names)
            cells[name] = Cell(
                name=name, area=float(g.get("area", 0.0)),
                leakage=float(g.get("cell_leakage_power", lib.get("default_cell_leakage_power", 0.0))),
                leakage_states=states, pins=_pins(g, templates, default_cap),
                data_pins=tuple(sorted(data)), sequential=bool(seq_groups),
            )
        if not cells:
            raise AxonnxError(f"Liberty file {path} holds no cells")
        return Library(
            name=_text(lib.args[0]) if lib.args else p.stem,
            path=str(p.resolve()), sha256=hashlib.sha256(raw).hexdigest(),
            voltage=float(voltage),
            cap_unit=_cap_unit(lib, path),
            time_unit=_unit(lib.get("time_unit", "1ns"), "time", path),
            leakage_unit=_unit(lib.get("leakage_power_unit", "1uW"), "leakage power", path),
            corner=corner, cells=cells,
        )
    except AxonnxError:
        raise
    except (ValueError, TypeError, AssertionError, IndexError) as exc:
        raise AxonnxError(f"Liberty file {path} is malformed: {exc}") from None


CACHE_VERSION = 2  # 2: signed (axonnx.signed)


def cache_dir() -> Path:
    """Where parsed libraries are cached: ``liberty/`` in axonnx's cache folder."""
    return signed.cache_root() / "liberty"


@lru_cache(maxsize=8)
def _cached(path: str, mtime: float, size: int) -> Library:
    """Parsing a large library takes seconds, so the extracted data is pickled on disk,
    keyed by the file's SHA-256 (a changed file is parsed again)."""
    raw = Path(path).read_bytes()
    digest = hashlib.sha256(_decompressed(raw, path)).hexdigest()
    cached = cache_dir() / f"{digest}.v{CACHE_VERSION}.pickle"
    if cached.is_file():
        try:
            lib = signed.loads(cached.read_bytes(), f"liberty cache {cached}")
            if isinstance(lib, Library) and lib.sha256 == digest:
                lib.path = path
                return lib
        except Exception:  # a stale or broken cache entry: parse again
            pass
    lib = _parse(path)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(signed.dumps(lib))
        os.replace(tmp, cached)
    except OSError:
        pass
    return lib


def read_liberty(path: str | os.PathLike) -> Library:
    """Parse a Liberty file (plain or gzip-compressed); cached per file and modification."""
    p = Path(path)
    if not p.is_file():
        raise AxonnxError(f"Liberty file {path} does not exist")
    stat = p.stat()
    return _cached(str(p.resolve()), stat.st_mtime, stat.st_size)


def plain_liberty(path: str | os.PathLike, workdir: str | os.PathLike) -> str:
    """A path Yosys can read: ``.gz`` files are decompressed into ``workdir``."""
    p = Path(path)
    with open(p, "rb") as fh:
        magic = fh.read(2)
    if magic != b"\x1f\x8b":
        return str(p)
    out = Path(workdir) / (p.name[:-3] if p.name.endswith(".gz") else p.name + ".lib")
    out.write_bytes(_decompressed(p.read_bytes(), p))
    return str(out)

