"""Parameter definitions (``matrix`` entries) into ``space`` objects.

Both spellings are read: v0 ``{name: {linspace: "0:1:5"}}`` and v1
``{name: {kind: linspace, value: "0:1:5"}}``. Every numeric kind takes a string
``"a:b:c"``, a list ``[a, b, c]`` or a mapping with named keys.
"""
from __future__ import annotations

import difflib
import math
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..space import (
    Discrete,
    Normal,
    Param,
    Uniform,
    clean_number,
    numpy_geomspace,
    numpy_linspace,
    numpy_logspace,
    numpy_range,
)
from .source import Section, short

# kind -> (named keys in order, number of required keys)
NUMERIC_KINDS: Dict[str, Tuple[Tuple[str, ...], int]] = {
    "range": (("start", "stop", "step"), 3),
    "linspace": (("start", "stop", "num"), 3),
    "logspace": (("start", "stop", "num", "base"), 3),
    "geomspace": (("start", "stop", "num"), 3),
    "uniform": (("low", "high"), 2),
    "quniform": (("low", "high", "q"), 3),
    "loguniform": (("low", "high"), 2),
    "qloguniform": (("low", "high", "q"), 3),
    "normal": (("loc", "scale"), 2),
    "qnormal": (("loc", "scale", "q"), 3),
    "lognormal": (("loc", "scale"), 2),
    "qlognormal": (("loc", "scale", "q"), 3),
}
V1_ALIASES = {"choice": "values", "pchoice": "pvalues"}
# range/linspace/logspace/geomspace are materialised: bound them (`num: 1e12` would
# ask numpy for terabytes; 1e9 would take minutes), far above any useful grid axis.
MAX_VALUES = 1_000_000
ALL_KINDS = ("values", "pvalues") + tuple(NUMERIC_KINDS)
NAN_MESSAGE = ("NaN is not a value a trial can be given: it equals nothing, so a study holding it could not be "
               "resumed or searched; remove it (or quote it, \"nan\", to pass the text)")


def parse_matrix(sec: Section, warnings: List[str]) -> Dict[str, Param]:
    """``sec`` is the mapping of parameter names to definitions."""
    if not isinstance(sec.data, dict) or not sec.data:
        sec.fail("expected a mapping of parameter names to definitions, "
                 "e.g. `lr: {uniform: [0.001, 0.1]}`")
    params: Dict[str, Param] = {}
    for name in sec.data:
        if not isinstance(name, str) or not name.isidentifier():
            sec.fail(f"parameter name {short(name)} must be an identifier (letters, digits, _)", key=name)
        params[name] = parse_param(sec.child(name), warnings)
    return params


def parse_param(sec: Section, warnings: List[str]) -> Param:
    data = sec.data
    if not isinstance(data, dict):
        sec.fail(f"expected a definition such as `{{values: [1, 2]}}` or `{{kind: choice, value: [1, 2]}}`, "
                 f"got {short(data)}")
    if "kind" in data:  # v1
        kind = data["kind"]
        extra = set(data) - {"kind", "value"}
        if extra:
            extra_keys = sorted(extra, key=str)  # keys may be numbers as well as strings
            sec.fail(f"unexpected key(s) {extra_keys}: a v1 parameter has only `kind` and `value`",
                     key=extra_keys[0])
        if "value" not in data:
            sec.fail("missing `value`", key="kind")
        if not isinstance(kind, str) or V1_ALIASES.get(kind, kind) not in ALL_KINDS:
            kinds = ", ".join(sorted(set(ALL_KINDS) | set(V1_ALIASES)))
            sec.fail(f"unknown kind {short(kind)}; expected one of: {kinds}", key="kind")
        return _build(sec.child("value"), V1_ALIASES.get(kind, kind), sec, warnings)
    if not data:
        sec.fail("empty definition; expected one kind, e.g. `{values: [1, 2]}` or `{uniform: [0, 1]}`")
    keys = [k for k in data if k in ALL_KINDS or k in V1_ALIASES]
    if len(keys) != 1 or len(data) != 1:
        if not keys:
            first = str(next(iter(data)))
            close = difflib.get_close_matches(first, ALL_KINDS + tuple(V1_ALIASES), n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"expected one of: {', '.join(ALL_KINDS)}"
            sec.fail(f"unknown parameter kind `{first}`; {hint}", key=next(iter(data)))
        sec.fail(f"a parameter takes exactly one kind, got {sorted(map(str, data))}")
    kind = keys[0]
    return _build(sec.child(kind), V1_ALIASES.get(kind, kind), sec, warnings)


def _build(vsec: Section, kind: str, psec: Section, warnings: List[str]) -> Param:
    if kind == "values":
        return _values(vsec, warnings)
    if kind == "pvalues":
        return _pvalues(vsec, warnings)
    names, required = NUMERIC_KINDS[kind]
    if kind == "range" and isinstance(vsec.data, list) and len(vsec.data) > 3 \
            and all(_is_num(x) for x in vsec.data):
        # A public example writes `range: [3, 4, 5, 6]`; Polyaxon would reject it.
        # The intent is plain: read it as a list of values, and say so.
        warnings.append(f"{vsec.where()}: `range` takes [start, stop, step]; the list "
                        f"{vsec.data} is read as `values: {vsec.data}`")
        return Discrete(tuple(clean_number(x) for x in vsec.data), kind="values")
    args = _numbers(vsec, kind, names, required)
    try:
        if kind == "range":
            if args[2] != 0 and (args[1] - args[0]) / args[2] > MAX_VALUES:
                vsec.fail(f"range({args[0]:g}, {args[1]:g}, {args[2]:g}) would have more than {MAX_VALUES:,} values")
            return numpy_range(*args)
        if kind in ("linspace", "geomspace", "logspace"):
            num = args[2]
            if num != int(num) or num < 1:
                vsec.fail(f"`num` of {kind} must be a whole number >= 1, got {num}")
            if num > MAX_VALUES:
                vsec.fail(f"`num` of {kind} must be at most {MAX_VALUES:,}, got {num:g}")
            if kind == "linspace":
                return numpy_linspace(args[0], args[1], int(num))
            if kind == "geomspace":
                return numpy_geomspace(args[0], args[1], int(num))
            _warn_small_exponents(vsec, args[0], args[1], warnings)
            return numpy_logspace(args[0], args[1], int(num), *(args[3:] or [10.0]))
        if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
            log = "log" in kind
            if log:
                _warn_log_bounds(vsec, args[0], args[1], warnings)
            return Uniform(args[0], args[1], q=args[2] if kind.startswith("q") else None, log=log, kind=kind)
        return Normal(args[0], args[1], q=args[2] if kind.startswith("q") else None,
                      log="log" in kind, kind=kind)
    except ValueError as exc:
        vsec.fail(f"invalid {kind}: {exc}")
    raise AssertionError("unreachable")


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _finite(x: float) -> bool:
    """Finite, and for an int within float range (``math.isfinite(10**400)`` raises)."""
    return abs(x) <= sys.float_info.max if isinstance(x, int) else math.isfinite(x)


def _numbers(vsec: Section, kind: str, names: Sequence[str], required: int) -> List[float]:
    data = vsec.data
    shape = f"`{kind}: {':'.join(names[:required])}`, a list [{', '.join(names[:required])}] " \
            f"or a mapping {{{', '.join(n + ': ...' for n in names[:required])}}}"
    if isinstance(data, str):
        parts = [p.strip() for p in data.split(":")]
        try:
            values: List[Any] = [float(p) if any(c in p for c in ".eEn") else int(p) for p in parts]
        except ValueError:
            vsec.fail(f"expected numbers in {shape}, got {short(data)}")
    elif isinstance(data, list):
        values = list(data)
    elif isinstance(data, dict):
        unknown = [k for k in data if k not in names]
        if unknown:
            vsec.fail(f"unknown key {short(unknown[0])} for {kind}; expected {', '.join(names)}", key=unknown[0])
        missing = [n for n in names[:required] if n not in data]
        if missing:
            vsec.fail(f"missing {', '.join(missing)} for {kind}; expected {shape}")
        values = [data[n] for n in names if n in data]
    else:
        vsec.fail(f"expected {shape}, got {short(data)}")
    if not required <= len(values) <= len(names):
        vsec.fail(f"{kind} takes {required} numbers ({', '.join(names[:required])}"
                  + (f"[, {names[-1]}]" if len(names) > required else "") + f"), got {len(values)}: {short(data)}")
    for i, v in enumerate(values):
        if not _is_num(v) or not _finite(v):
            shown = f"an integer of {len(str(abs(v)))} digits" if isinstance(v, int) and _is_num(v) else repr(v)
            vsec.fail(f"`{names[i]}` of {kind} must be a finite number, got {shown}")
    return [float(v) if isinstance(v, float) else v for v in values]


def _values(vsec: Section, warnings: List[str]) -> Discrete:
    data = vsec.data
    if isinstance(data, str) or not isinstance(data, list):
        vsec.fail(f"expected a list of values, e.g. `values: [0.1, 0.01]`, got {short(data)}")
    if not data:
        vsec.fail("the list of values is empty")
    out: List[Any] = []
    for i, v in enumerate(data):
        if isinstance(v, (dict, list)):
            vsec.child(i).fail(f"a value must be a number, a string or a boolean, got {short(v)}")
        if isinstance(v, float) and math.isnan(v):
            vsec.child(i).fail(NAN_MESSAGE)
        v = clean_number(v)
        if any(v == o and type(v) is type(o) for o in out):
            warnings.append(f"{vsec.where(i)}: {short(v)} is listed twice; counted once")
            continue
        out.append(v)
    return Discrete(tuple(out), kind="values")


def _pvalues(vsec: Section, warnings: List[str]) -> Discrete:
    data = vsec.data
    if not isinstance(data, list) or not data:
        vsec.fail(f"expected a list of [value, probability] pairs, e.g. `[[adam, 0.7], [sgd, 0.3]]`, got {short(data)}")
    values, probs = [], []
    for i, pair in enumerate(data):
        if isinstance(pair, dict) and len(pair) == 1:  # v1 also allows {value: p}
            pair = list(next(iter(pair.items())))
        if not isinstance(pair, list) or len(pair) != 2 or not _is_num(pair[1]):
            vsec.child(i).fail(f"expected [value, probability], got {short(pair)}")
        if isinstance(pair[0], (dict, list)):
            vsec.child(i).fail(f"a value must be a number, a string or a boolean, got {short(pair[0])}")
        if isinstance(pair[0], float) and math.isnan(pair[0]):
            vsec.child(i).fail(NAN_MESSAGE)
        if not _finite(pair[1]) or math.isnan(pair[1]):
            vsec.child(i).fail(f"probability must be in [0, 1], got {pair[1]}")
        p = float(pair[1])
        if not 0 <= p <= 1:
            vsec.child(i).fail(f"probability must be in [0, 1], got {p}")
        values.append(clean_number(pair[0]))
        probs.append(p)
    total = sum(probs)
    if total > 1 + 1e-9:
        vsec.fail(f"probabilities sum to {total:g}; they must not exceed 1")
    if total <= 0:
        vsec.fail("probabilities sum to 0: nothing could ever be drawn")
    if total < 1 - 1e-9:
        warnings.append(f"{vsec.where()}: probabilities sum to {total:g}; scaled to 1")
        probs = [p / total for p in probs]
    return Discrete(tuple(values), probabilities=tuple(probs), kind="pvalues")


def _warn_small_exponents(vsec: Section, start: float, stop: float, warnings: List[str]) -> None:
    if all(0 < abs(x) < 1 for x in (start, stop)):
        warnings.append(
            f"{vsec.where()}: logspace takes exponents: {start:g}:{stop:g} gives values "
            f"{10 ** start:.3g}..{10 ** stop:.3g}. For values from {start:g} to {stop:g} use "
            f"`geomspace: {start:g}:{stop:g}:NUM`")


def _warn_log_bounds(vsec: Section, low: float, high: float, warnings: List[str]) -> None:
    if 0 < low < 1 and 0 < high < 1:
        warnings.append(
            f"{vsec.where()}: loguniform bounds are natural logs: [{low:g}, {high:g}] samples "
            f"{math.exp(low):.4g}..{math.exp(high):.4g}. For values from {low:g} to {high:g} write "
            f"[{math.log(low):.4g}, {math.log(high):.4g}]")


def mapping_space(values: Sequence[Dict[str, Any]]) -> Dict[str, Param]:
    """The space of an explicit list of parameter sets: each name's observed values."""
    names: List[str] = []
    for row in values:
        for k in row:
            if k not in names:
                names.append(k)
    out: Dict[str, Param] = {}
    for n in names:
        seen: List[Any] = []
        for row in values:
            v = clean_number(row.get(n))
            if not any(v == s and type(v) is type(s) for s in seen):
                seen.append(v)
        out[n] = Discrete(tuple(seen), kind="values")
    return out


def optional_int(x: Any) -> Optional[int]:
    return None if x is None else int(x)
