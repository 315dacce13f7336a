"""docs/architecture.md, checked: which part may import which, and the pure parts stay pure."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, Set

PACKAGE = Path(__file__).resolve().parent.parent / "hpc_tune"

# part -> the parts it may import (docs/architecture.md, "Which part may import which")
ALLOWED: Dict[str, Set[str]] = {
    "errors": set(),
    "protocol": set(),
    "trials": set(),
    "trial": {"protocol"},
    "paths": {"protocol"},
    "space": {"errors"},
    "spec": {"errors", "space"},
    "search": {"errors", "space", "spec", "trials"},
    "journal": {"errors", "paths", "trials"},
    "backends": {"errors", "protocol", "trial", "spec"},
    "study": {"errors", "journal", "paths", "spec"},
    "controller": {"backends", "errors", "journal", "paths", "protocol", "search", "spec", "study", "trials"},
    "tuner": {"search", "spec", "trials"},
    "plan": {"search", "spec", "tuner"},
    "summary": {"controller", "journal", "paths", "trials"},
    "status_view": {"errors", "journal", "search", "spec", "study", "summary", "trials"},
    "results": {"errors", "journal", "paths", "protocol", "study", "summary"},
    "htmlreport": {"errors", "results"},
    "cli": {"backends", "controller", "errors", "htmlreport", "journal", "plan", "results", "spec", "study", "summary",
            "status_view", "tuner"},
    "__main__": {"cli"},
}
# modules that do no I/O, read no clock and start no process
PURE = ["controller/core.py", "controller/stopping.py", "journal/events.py", "journal/fold.py"]
IO_MODULES = {"os", "subprocess", "socket", "time", "pathlib", "shutil", "signal", "threading", "glob"}


def imports(path: Path):
    """(hpc_tune parts, top-level modules) imported by one file."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    pkg = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    if rel.name == "__init__":
        pkg = list(rel.parts[:-1])
    parts, top = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
                if len(target) == 1:  # `from . import x` / `from .. import __version__`
                    target += [a.name for a in node.names][:1]
            else:
                target = (node.module or "").split(".")
            if target[0] == "hpc_tune":
                parts.add(target[1] if len(target) > 1 else "")
            else:
                top.add(target[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                t = a.name.split(".")
                (parts.add(t[1]) if t[0] == "hpc_tune" and len(t) > 1 else top.add(t[0]))
    return parts, top


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_part_imports_only_what_it_may():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = part_of(path)
        if part == "__init__":
            continue
        assert part in ALLOWED, f"{path}: a part docs/architecture.md does not know"
        parts, _ = imports(path)
        bad = parts - ALLOWED[part] - {part, "__version__", ""}
        if bad:
            wrong.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert not wrong, wrong


def test_the_pure_parts_do_no_io():
    for name in PURE:
        _, top = imports(PACKAGE / name)
        assert not (top & IO_MODULES), f"{name} imports {sorted(top & IO_MODULES)}"
    for path in (PACKAGE / "search").glob("*.py"):
        _, top = imports(path)
        assert not (top & (IO_MODULES - {"time"})) and "time" not in top, f"searcher {path.name} imports {top}"


def test_the_job_side_is_standard_library_only_and_light():
    for name in ("protocol.py", "trial.py"):
        parts, top = imports(PACKAGE / name)
        assert parts <= {"protocol"}, (name, parts)
        assert all(m in sys.stdlib_module_names or m == "__future__" for m in top), (name, top)
    # what a Slurm trial job imports to run: no numpy, scipy or the spec
    code = ("import sys, hpc_tune.backends.slurm, hpc_tune.trial; "
            "print(sorted(m for m in ('numpy', 'scipy', 'sklearn', 'hpc_tune.spec', 'hpc_tune.journal', "
            "'hpc_tune.controller') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_backends_never_see_a_metric():
    for path in (PACKAGE / "backends").glob("*.py"):
        parts, _ = imports(path)
        assert not parts & {"journal", "trials", "search", "controller"}, path.name
