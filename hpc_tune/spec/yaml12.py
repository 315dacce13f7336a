"""YAML reading that keeps line numbers and reads numbers the YAML 1.2 way.

PyYAML implements YAML 1.1, where ``1e-3`` (no dot) is a *string*; real study files
write learning rates that way, so floats are resolved with the YAML 1.2 core rule.
Every key and list item keeps the line it came from, so errors can point at it.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Tuple

import yaml

from ..errors import SpecError

Path_ = Tuple[Any, ...]

_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_INT_12 = re.compile(r"^[-+]?[0-9]+$")
# YAML 1.1's int rule minus its base-60 form: PyYAML reads `1:5` as 65 and `2:00:00`
# as 7200, which turns `uniform: 1:5` or `time: 2:00:00` into nonsense.
_INT_NO_SEXAGESIMAL = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)


# Deeper than any study file needs, and well within Python's recursion limit.
MAX_DEPTH = 100
_IN_PROGRESS = object()


class _Loader(yaml.SafeLoader):
    pass


# Copy the resolver table so SafeLoader itself is left untouched, then replace the
# YAML 1.1 float rule by the 1.2 one and the int rule by one without base 60 (ints keep
# priority: they are tried first).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:int", "tag:yaml.org,2002:bool")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# YAML 1.2 booleans: only true and false. YAML 1.1 also read yes/no/on/off/y/n, which turns
# the country code NO, or a choice `[on, off]`, into booleans.
_BOOL_12 = re.compile(r"^(?:true|false)$", re.I)
for _first in "tTfF":
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).append(("tag:yaml.org,2002:bool", _BOOL_12))
for _first in list("-+0123456789"):
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).append(("tag:yaml.org,2002:int", _INT_NO_SEXAGESIMAL))
for _first in list("-+0123456789."):
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).append(("tag:yaml.org,2002:float", _FLOAT_12))


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = loader.construct_scalar(node)
    if _INT_12.match(text):
        return int(text)
    special = {".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}.get(text.lower())
    if special is not None:  # YAML's spelling, which Python's float() does not read
        return float(special)
    return float(text.replace("_", ""))


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def load_yaml(text: str, filename: str) -> Tuple[Any, Dict[Path_, int]]:
    """Parse ``text``; return the data and a map from key paths to line numbers."""
    lines: Dict[Path_, int] = {}
    try:
        loader = _Loader(text)  # checks every character at once
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        raise SpecError(f"not valid YAML: special character #x{exc.character:04x} is not allowed", filename,
                        line) from None
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # PyYAML's composer recurses once per nesting level
            raise SpecError(f"not valid YAML: nested more than {MAX_DEPTH} levels deep", filename,
                            loader.get_mark().line + 1) from None
        if node is None:
            return None, lines
        try:
            return _convert(loader, node, (), lines, filename, {}), lines
        except RecursionError:  # a merge key (`<<: *a`) inside the mapping it merges
            raise SpecError("not valid YAML: a merge key (`<<: *name`) includes the mapping that contains it",
                            filename) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"not valid YAML: {exc.problem or exc}{_opened_at(exc)}", filename, line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", filename) from None
    finally:
        loader.dispose()


_OPENERS = {"flow sequence": "the `[`", "flow mapping": "the `{`", "quoted scalar": "the quote",
            "block mapping": "the mapping", "block collection": "the block", "plain scalar": "the value"}


def _opened_at(exc: yaml.MarkedYAMLError) -> str:
    """Where the construct that the error interrupts started (an unclosed `[`, `{` or quote
    is reported where the parser gave up, often many lines later)."""
    context, start, problem = exc.context or "", exc.context_mark, exc.problem_mark
    if start is None or (problem is not None and start.line == problem.line):
        return ""
    what = next((v for k, v in _OPENERS.items() if k in context), None)
    if what is None:
        return f" ({context} that started on line {start.line + 1})" if context else ""
    return f" ({what} opened on line {start.line + 1}, column {start.column + 1}, is not closed)" \
        if what in ("the `[`", "the `{`", "the quote") else f" ({what} that started on line {start.line + 1})"


def _convert(loader: _Loader, node: yaml.Node, path: Path_, lines: Dict[Path_, int], filename: str,
             done: Dict[int, Any]) -> Any:
    """``done`` holds the collections already converted, by node: an alias (``*name``)
    is the very node of its anchor, and is converted once (as PyYAML does), so that
    aliases of aliases cannot expand exponentially."""
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and id(node) in done:
        if done[id(node)] is _IN_PROGRESS:
            raise SpecError("an alias (`*name`) refers to a node that contains it; recursive structures are not "
                            "allowed", filename, _line_of(lines, path), _dotted(path) or None)
        lines.setdefault(path, node.start_mark.line + 1)
        return done[id(node)]
    lines.setdefault(path, node.start_mark.line + 1)
    if len(path) > MAX_DEPTH:
        raise SpecError(f"nested more than {MAX_DEPTH} levels deep", filename, node.start_mark.line + 1,
                        _dotted(path))
    if isinstance(node, yaml.SequenceNode):
        done[id(node)] = _IN_PROGRESS
        items = [_convert(loader, item, path + (i,), lines, filename, done) for i, item in enumerate(node.value)]
        done[id(node)] = items
        return items
    if isinstance(node, yaml.MappingNode):
        done[id(node)] = _IN_PROGRESS
        own = {id(k) for k, _ in node.value}  # the keys written here, not merged in by `<<: *name`
        loader.flatten_mapping(node)  # merged pairs first: a key written here overrides them
        out: Dict[Any, Any] = {}
        written = set()
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node, path, filename)
            if isinstance(key, (list, dict)):
                raise SpecError("a mapping key must be a plain value", filename, key_node.start_mark.line + 1,
                                _dotted(path))
            if id(key_node) in own:
                if key in written:
                    raise SpecError(f"key '{key}' appears twice in the same mapping", filename,
                                    key_node.start_mark.line + 1, _dotted(path + (key,)))
                written.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _convert(loader, value_node, path + (key,), lines, filename, done)
        done[id(node)] = out
        return out
    return _scalar(loader, node, path, filename)


_TAG_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "timestamp": "a date"}


def _scalar(loader: _Loader, node: yaml.Node, path: Path_, filename: str) -> Any:
    """PyYAML's constructors raise plain Python errors on some scalars: an integer of
    more than 4300 digits (Python's int-from-string limit), or an explicit tag on a
    value it does not fit (``!!int abc``, ``!!bool maybe``, ``!!timestamp soon``)."""
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, TypeError, LookupError, AttributeError, OverflowError) as exc:
        text = str(node.value)
        shown = text if len(text) <= 40 else f"{text[:20]}...{text[-10:]} ({len(text)} characters)"
        tag = str(node.tag).rsplit(":", 1)[-1]
        why = ": too many digits" if "digits" in str(exc) else ""
        raise SpecError(f"cannot read `{shown}` as {_TAG_NAMES.get(tag, '!!' + tag)}{why}", filename,
                        node.start_mark.line + 1, _dotted(path) or None) from None


def _line_of(lines: Dict[Path_, int], path: Path_) -> Any:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path)


def _dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


dotted = _dotted
