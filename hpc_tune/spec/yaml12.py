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


class _Loader(yaml.SafeLoader):
    pass


# Copy the resolver table so SafeLoader itself is left untouched, then replace the
# YAML 1.1 float rule by the 1.2 one and the int rule by one without base 60 (ints keep
# priority: they are tried first).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:int")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
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
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _convert(loader, node, (), lines, filename), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"not valid YAML: {exc.problem or exc}", filename, line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", filename) from None
    finally:
        loader.dispose()


def _convert(loader: _Loader, node: yaml.Node, path: Path_, lines: Dict[Path_, int], filename: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: Dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise SpecError("a mapping key must be a plain value", filename, key_node.start_mark.line + 1,
                                _dotted(path))
            if key in out:
                raise SpecError(f"key '{key}' appears twice in the same mapping", filename,
                                key_node.start_mark.line + 1, _dotted(path + (key,)))
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _convert(loader, value_node, path + (key,), lines, filename)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, path + (i,), lines, filename) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


dotted = _dotted
