"""A cursor into parsed YAML that knows its file, key path and line, so that
every check can fail with a message pointing at the exact place."""
from __future__ import annotations

import difflib
import math
import re
import reprlib
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, NoReturn, Optional, Tuple

from ..errors import SpecError
from .yaml12 import dotted

_MISSING = object()

# A value shown in a message is cut short: an alias bomb or a long list must not turn one
# line of error into megabytes.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict = 2, 4, 4, 4
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 80, 80, 40


def short(value: Any) -> str:
    """``repr(value)``, at most a line long."""
    return _SHORT.repr(value)


def snake(key: str) -> str:
    """``numInitialRuns`` -> ``num_initial_runs`` (v1 files are camelCase)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


@dataclass(frozen=True)
class Source:
    file: str
    lines: Dict[Tuple[Any, ...], int]

    def line(self, path: Tuple[Any, ...]) -> Optional[int]:
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


@dataclass(frozen=True)
class Section:
    data: Any
    path: Tuple[Any, ...]
    source: Source

    # -- navigation -------------------------------------------------------------
    def key_for(self, name: str) -> Optional[str]:
        """The key as the user spelled it (``name`` or its camelCase form)."""
        if not isinstance(self.data, dict):
            return None
        for k in self.data:
            if isinstance(k, str) and snake(k) == name:
                return k
        return None

    def has(self, name: str) -> bool:
        return self.key_for(name) is not None

    def child(self, key: Any) -> "Section":
        if isinstance(key, str) and isinstance(self.data, dict) and key not in self.data:
            key = self.key_for(key) or key
        data = self.data.get(key) if isinstance(self.data, dict) else (
            self.data[key] if isinstance(self.data, list) and isinstance(key, int) else None)
        return Section(data, self.path + (key,), self.source)

    def get(self, name: str, default: Any = _MISSING) -> Any:
        key = self.key_for(name)
        if key is None:
            if default is _MISSING:
                self.fail(f"missing required key `{name}`")
            return default
        return self.data[key]

    # -- typed getters -----------------------------------------------------------
    def number(self, name: str, default: Any = _MISSING, *, integer: bool = False,
               minimum: Optional[float] = None, exclusive: bool = False) -> Any:
        value = self.get(name, default)
        if value is default and default is not _MISSING:
            return value
        what = "a whole number" if integer else "a number"
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(value, float) and not math.isfinite(value):  # .nan, .inf: no count, bound or rate
            self.fail(f"expected a finite number, got {short(value)}", key=name)
        if ok and isinstance(value, int) and abs(value) > sys.float_info.max:  # overflows every float computation
            self.fail(f"expected {what} within ±{sys.float_info.max:.3g}, got an integer of "
                      f"{len(str(abs(value)))} digits", key=name)
        if ok and integer and value != int(value):
            ok = False
        if not ok:
            self.fail(f"expected {what}, got {short(value)}", key=name)
        if minimum is not None and (value <= minimum if exclusive else value < minimum):
            self.fail(f"expected {what} {'>' if exclusive else '>='} {minimum:g}, got {short(value)}", key=name)
        return int(value) if integer else value

    def string(self, name: str, default: Any = _MISSING, choices: Optional[Iterable[str]] = None) -> Any:
        value = self.get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            self.fail(f"expected a string, got {short(value)}", key=name)
        if choices is not None:
            choices = list(choices)
            if value.lower() not in choices:
                self.fail(f"expected one of {', '.join(choices)}, got {short(value)}", key=name)
            value = value.lower()
        return value

    def boolean(self, name: str, default: Any = _MISSING) -> Any:
        value = self.get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, bool):
            self.fail(f"expected true or false, got {short(value)}", key=name)
        return value

    def mapping(self, name: str, required: bool = False) -> "Section":
        if not self.has(name):
            if required:
                self.fail(f"missing required section `{name}`")
            return Section({}, self.path + (name,), self.source)
        sec = self.child(name)
        if sec.data is None:
            return Section({}, sec.path, sec.source)
        if not isinstance(sec.data, dict):
            sec.fail(f"expected a mapping, got {short(sec.data)}")
        return sec

    # -- checks and messages -----------------------------------------------------
    def check_keys(self, allowed: Iterable[str], ignored: Iterable[str] = (),
                   on_ignored: Optional[Callable[[str, "Section"], None]] = None) -> None:
        """Unknown keys are errors, with the nearest allowed key suggested."""
        allowed = set(allowed)
        ignored = set(ignored)
        if not isinstance(self.data, dict):
            return
        for key in self.data:
            name = snake(key) if isinstance(key, str) else key
            if name in allowed:
                continue
            if name in ignored:
                if on_ignored:
                    on_ignored(str(key), self.child(key))
                continue
            close = difflib.get_close_matches(str(name), sorted(allowed), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else f"; expected one of: {', '.join(sorted(allowed))}"
            self.fail(f"unknown key `{key}`{hint}", key=key)

    def keypath(self, key: Any = None) -> str:
        return dotted(self.path + ((key,) if key is not None else ()))

    def where(self, key: Any = None) -> str:
        path = self.path + ((key,) if key is not None else ())
        line = self.source.line(path)
        return f"{self.source.file}:{line}: {dotted(path)}" if line else f"{self.source.file}: {dotted(path)}"

    def fail(self, message: str, key: Any = None) -> NoReturn:
        if key is not None and isinstance(key, str) and isinstance(self.data, dict) and key not in self.data:
            key = self.key_for(key) or key
        path = self.path + ((key,) if key is not None else ())
        raise SpecError(message, self.source.file, self.source.line(path), dotted(path) or None)
