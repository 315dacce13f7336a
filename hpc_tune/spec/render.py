"""Rendering the command template: ``{{ name }}`` placeholders filled so that every value
reaches the trial's program exactly as written, as one argument, and never runs as shell code.

A command is read one of three ways (``Command.reading``):

* ``shell``: a shell line (a string ``cmd``). A placeholder is filled according to where it
  stands: outside quotes with the shell-quoted value, inside ``"..."`` with ``\\``, ``$``,
  backquote and ``"`` escaped, inside ``'...'`` with each ``'`` written ``'\\''``.
* ``argv``: a list (a v1 list ``cmd``, or ``container: {command, args}``), read as Kubernetes
  reads it: each element is one argument, filled with the plain value. The script after a
  shell's ``-c`` (``[bash, -c, "..."]``) is itself a shell line and filled by the rule above.
* ``commands``: a v0 list ``cmd`` (gens A-C), which Polyaxon ran as its commands joined by
  ``&&``: each element is a shell line.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shlex
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import UserError

PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)
_NAME = re.compile(r"^(?:params\.|inputs\.)?([A-Za-z_][A-Za-z0-9_]*)$")
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "yash"})
READINGS = {
    "shell": "a shell line",
    "argv": "an argv list (each element one argument)",
    "commands": "a v0 list of shell commands joined by &&",
}


class TemplateError(UserError):
    pass


class Command(str):
    """A command template. As a string it is what ``plan`` shows: the shell line, or the
    argv as a JSON list, with its placeholders. ``reading`` says how it was read; for an argv,
    ``argv`` holds its elements and ``script_index`` the element that is a shell's ``-c``
    script (None if there is none)."""

    reading: str
    argv: Optional[Tuple[str, ...]]
    script_index: Optional[int]

    def __new__(cls, text: str, reading: str = "shell", argv: Optional[Sequence[str]] = None,
                script_index: Optional[int] = None) -> "Command":
        self = super().__new__(cls, text)
        self.reading = reading
        self.argv = tuple(argv) if argv is not None else None
        self.script_index = script_index
        return self

    def __reduce__(self) -> Any:
        return (Command, (str(self), self.reading, self.argv, self.script_index))

    @classmethod
    def shell(cls, line: str) -> "Command":
        return cls(line, "shell")

    @classmethod
    def commands(cls, lines: Sequence[str]) -> "Command":
        return cls(" && ".join(line.strip() for line in lines), "commands")

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> "Command":
        argv = [str(a) for a in argv]
        # Shown (in `plan`) as the list it is: as one line, a `-c` script's own quoting would
        # be ambiguous.
        return cls(json.dumps(argv, ensure_ascii=False), "argv", argv, shell_script_index(argv))

    def templates(self) -> List[str]:
        """Every piece of text that holds placeholders."""
        return list(self.argv) if self.argv is not None else [str(self)]


def shell_script_index(argv: Sequence[str]) -> Optional[int]:
    """The index of the script in ``[sh|bash|..., (options,) -c, SCRIPT, ...]``, else None."""
    if not argv or os.path.basename(argv[0]) not in SHELLS:
        return None
    for i in range(1, len(argv)):
        a = argv[i]
        if not a.startswith("-") or a.startswith("--") or a == "-":
            return None  # an operand (a script file) before any -c
        if "c" in a[1:]:
            return i + 1 if i + 1 < len(argv) else None
    return None


# ----------------------------------------------------------------------- placeholders


def placeholders(template: str) -> List[str]:
    """The names used in ``template``, in order. An unclosed ``{{`` or a placeholder that
    is not a plain name is an error."""
    return list(_placeholders(template))


@functools.lru_cache(maxsize=64)
def _placeholders(template: str) -> Tuple[str, ...]:
    names: List[str] = []
    pos = 0
    while True:
        start = template.find("{{", pos)
        if start < 0:
            return tuple(names)
        match = PLACEHOLDER.match(template, start)
        if match is None:
            line = template.count("\n", 0, start) + 1
            snippet = template[start:start + 30].splitlines()[0]
            raise TemplateError(f"unclosed `{{{{` (line {line} of the command, at {snippet!r}): a placeholder is "
                                f"written `{{{{ name }}}}`")
        m = _NAME.match(match.group(1))
        if not m:
            shown = match.group(0) if len(match.group(0)) <= 60 else match.group(0)[:57] + "..."
            raise TemplateError(
                f"placeholder {shown!r}: only plain names such as `{{{{ learning_rate }}}}` are supported")
        names.append(m.group(1))
        pos = match.end()


def command_placeholders(cmd: str) -> List[str]:
    templates = cmd.templates() if isinstance(cmd, Command) else [cmd]
    return [n for t in templates for n in placeholders(t)]


def unknown_names(template: str, known: Iterable[str]) -> List[str]:
    known = set(known)
    return sorted({n for n in command_placeholders(template) if n not in known})


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form: 0.001, 1e-06
    return str(value)


# ------------------------------------------------------------------------- rendering


def render(template: str, values: Mapping[str, Any]) -> str:
    """The command as one shell line, every value filled as the template's reading says."""
    missing = unknown_names(template, values)
    if missing:
        raise TemplateError(
            f"run.cmd uses {', '.join('{{ ' + n + ' }}' for n in missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not defined; known names: {', '.join(sorted(values))}")
    if isinstance(template, Command) and template.argv is not None:
        return render_argv(template.argv, values, template.script_index)
    return render_shell(str(template), values)


def render_argv(argv: Sequence[str], values: Mapping[str, Any], script_index: Optional[int] = None) -> str:
    """Each element one argument: plain values inside, the whole joined with shell quoting."""
    out = []
    for i, element in enumerate(argv):
        if i == script_index:
            out.append(shlex.quote(render_shell(element, values)))
        else:
            out.append(shlex.quote(PLACEHOLDER.sub(lambda m: format_value(values[_name(m)]), element)))
    return " ".join(out)


def _name(match: "re.Match[str]") -> str:
    return _NAME.match(match.group(1)).group(1)  # type: ignore[union-attr]


def _in_double_quotes(value: str) -> str:
    return re.sub(r'([\\$`"])', r"\\\1", value)


def _in_single_quotes(value: str) -> str:
    return value.replace("'", "'\\''")


# Inside `$( )` and `( )` the shell reads words as it does outside quotes.
_PLAIN = ("plain", "subst", "paren", "backquote")


def render_shell(template: str, values: Mapping[str, Any]) -> str:
    """Fill a shell line: each placeholder as the quoting around it requires. A backslash
    before white space outside quotes continues the line (YAML's folding turns `\\` + newline
    into `\\` + space)."""
    out = [piece if isinstance(piece, str) else _fill(format_value(values[piece[0]]), piece[1])
           for piece in _shell_pieces(template)]
    return "".join(out).strip()


def _fill(value: str, ctx: str) -> str:
    if ctx == "single":
        return _in_single_quotes(value)
    if ctx == "double":
        return _in_double_quotes(value)
    return shlex.quote(value)


@functools.lru_cache(maxsize=64)
def _shell_pieces(template: str) -> Tuple[Union[str, Tuple[str, str]], ...]:
    """The shell line read once (a study renders the same template for every trial): its
    literal text, and each placeholder as (name, the quoting context it stands in)."""
    text = template.strip()
    pieces: List[Union[str, Tuple[str, str]]] = []
    out: List[str] = []  # literal text since the last placeholder
    stack = ["plain"]
    i, n = 0, len(text)
    while i < n:
        ctx = stack[-1]
        if text.startswith("{{", i):
            match = PLACEHOLDER.match(text, i)
            if match is None:
                raise TemplateError("unclosed `{{` in the command")
            pieces += ["".join(out), (_name(match), ctx)]
            out = []
            i = match.end()
            continue
        c = text[i]
        if ctx == "single":
            if c == "'":
                stack.pop()
            out.append(c)
            i += 1
            continue
        if c == "\\":
            cont = re.match(r"\\[ \t]*\r?\n[ \t]*", text[i:]) if ctx == "double" else \
                re.match(r"\\[ \t\r\n]+|\\$", text[i:]) if ctx in _PLAIN else None
            if cont:  # a line continuation
                out.append(" " if ctx != "double" else "")
                i += cont.end()
                continue
            out.append(text[i:i + 2])  # an escaped character, kept as written
            i += 2
            continue
        if ctx == "double":
            if c == '"':
                stack.pop()
            elif text.startswith("$(", i):
                stack.append("subst")
                out.append("$(")
                i += 2
                continue
            elif c == "`":
                stack.append("backquote")
        else:  # plain, subst, paren, backquote
            if c == "'":
                stack.append("single")
            elif c == '"':
                stack.append("double")
            elif c == "`":
                if ctx == "backquote":
                    stack.pop()
                else:
                    stack.append("backquote")
            elif text.startswith("$(", i):
                stack.append("subst")
                out.append("$(")
                i += 2
                continue
            elif c == "(":
                stack.append("paren")
            elif c == ")" and ctx in ("subst", "paren"):
                stack.pop()
        out.append(c)
        i += 1
    pieces.append("".join(out))
    return tuple(pieces)
