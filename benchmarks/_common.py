"""Shared helpers of the benchmarks in this folder: machine line, raw JSON, README sections.

Each benchmark owns one ``## <title>`` section of ``benchmarks/README.md``; a run appends
one ``### Run of ...`` entry at the end of its own section and never touches the others.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "benchmarks" / "README.md"
README_INTRO = "Each benchmark runs with one command; figures are appended by the benchmark itself.\n"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine() -> Dict[str, Any]:
    """What the figures were measured on (`uname -m`, `nproc`, Python, load at the start)."""
    try:
        load = os.getloadavg()
    except OSError:  # not on every platform
        load = (float("nan"),) * 3
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    return {"uname_m": platform.machine(), "nproc": nproc, "python": platform.python_version(),
            "loadavg_1m": round(load[0], 2)}


def machine_line(m: Optional[Dict[str, Any]] = None) -> str:
    m = m or machine()
    return (f"`uname -m` = {m['uname_m']}, nproc = {m['nproc']}, Python {m['python']}, "
            f"load average {m['loadavg_1m']} at the start (the machine is shared with other engineers' "
            f"test runs and a one-node Slurm cluster)")


def command_line(script: str, argv: Optional[Sequence[str]]) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python", f"benchmarks/{script}"] + [shlex.quote(a) for a in args])


def now() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M")


def save_json(name: str, payload: Dict[str, Any], results_dir: Optional[Path] = None) -> Path:
    out_dir = Path(results_dir) if results_dir else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=1, default=_json_default))
    return path


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def append_readme(title: str, intro: str, entry: str, readme: Optional[Path] = None) -> None:
    """Append ``entry`` under a ``### Run of <date>`` heading at the end of the section
    ``## title`` (created with ``intro`` the first time), leaving every other section as it is."""
    path = Path(readme) if readme else README
    heading = f"## {title}"
    entry = f"### Run of {now()}\n\n{entry.strip()}"
    current = path.read_text() if path.exists() else README_INTRO  # read as late as possible
    if heading not in current:
        current = current.rstrip("\n") + "\n\n" + heading + "\n\n" + intro.strip("\n") + "\n"
    start = current.index(heading)
    nxt = current.find("\n## ", start + len(heading))
    end = len(current) if nxt < 0 else nxt + 1
    before, after = current[:end].rstrip("\n"), current[end:]
    path.write_text(before + "\n\n" + entry.strip("\n") + "\n" + ("\n" + after if after else ""))
