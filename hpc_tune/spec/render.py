"""Rendering ``run.cmd`` templates: ``{{ name }}`` placeholders, shell-quoted values."""
from __future__ import annotations

import re
import shlex
from typing import Any, Iterable, List, Mapping

from ..errors import UserError

PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_NAME = re.compile(r"^(?:params\.|inputs\.)?([A-Za-z_][A-Za-z0-9_]*)$")
# In a YAML plain or folded scalar, `\` + newline (shell line continuation) turns into
# `\` + space, which the shell would read as an escaped space glued to the next word.
_CONTINUATION = re.compile(r"\\[ \t]*(\r?\n[ \t]*|[ \t]+|$)")


class TemplateError(UserError):
    pass


def placeholders(template: str) -> List[str]:
    """The names used in ``template``, in order; a malformed placeholder is an error."""
    names = []
    for match in PLACEHOLDER.finditer(template):
        m = _NAME.match(match.group(1))
        if not m:
            raise TemplateError(
                f"placeholder {match.group(0)!r}: only plain names such as `{{{{ learning_rate }}}}` are supported")
        names.append(m.group(1))
    return names


def unknown_names(template: str, known: Iterable[str]) -> List[str]:
    known = set(known)
    return sorted({n for n in placeholders(template) if n not in known})


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form: 0.001, 1e-06
    return str(value)


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``template``; every value is shell-quoted (``shlex.quote``)."""
    missing = unknown_names(template, values)
    if missing:
        raise TemplateError(
            f"run.cmd uses {', '.join('{{ ' + n + ' }}' for n in missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not defined; known names: {', '.join(sorted(values))}")

    def fill(match: "re.Match[str]") -> str:
        name = _NAME.match(match.group(1)).group(1)  # type: ignore[union-attr]
        return shlex.quote(format_value(values[name]))

    cmd = _CONTINUATION.sub(" ", template.strip())
    return PLACEHOLDER.sub(fill, cmd).strip()
