#!/usr/bin/env python
"""Report at scale: `hpc-tune report` of a study of 10,000 trials with 100 reported steps each.

Goals (issue 11): the report written in <= 10 s, the file <= 25 MB, opened and drawn in headless
Chromium in <= 3 s.

The study is written event by event (tests/report/synthetic.py: random search over three
parameters, two metrics per step, 5 % of the trials resubmitted, 8 % stopped, 7 % failed;
about 940,000 journal events). Measured, each in a fresh process:

* floor: ``json.loads`` of every journal line (what any reader of the journal pays);
* ``python -m hpc_tune report STUDY -o FILE``: the whole command, imports included (wall and CPU
  time of the process), and the file's size;
* Debian's Chromium, headless, from file://: navigation to the load event plus two animation
  frames (every figure and the table laid out), median of 3 fresh browsers; and the checks of
  the tests (no console error, nothing fetched, every figure's pixels drawn).

Peer in the same run: Optuna's plotly figures of the same trials (optimisation history,
parallel coordinates, intermediate values, parameter importances) written as one offline
HTML page (plotly.js inline), and opened in the same browser. Each peer step has a time limit.

    python benchmarks/report_scale.py            # 10,000 trials x 100 steps, README updated
    python benchmarks/report_scale.py --quick    # 300 trials x 20 steps, README untouched
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from _common import ROOT, append_readme, command_line, machine, machine_line, save_json

TITLE = "report_scale.py: `hpc-tune report` of 10,000 trials x 100 steps"
INTRO = """\
`python benchmarks/report_scale.py`: the HTML report of a study of 10,000 trials with 100
reported steps each (two metrics per step, about 940,000 journal events): written (the whole
command), its size, and opened and drawn in headless Chromium (load event plus two animation
frames). Goals: <= 10 s, <= 25 MB, <= 3 s. Floor: `json.loads` of every journal line. Peer:
Optuna's plotly figures of the same trials as one offline HTML page.
"""


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


synthetic = _load("synthetic", ROOT / "tests" / "report" / "synthetic.py")
headless = _load("headless_chromium", ROOT / "tests" / "report" / "headless_chromium.py")


def timed_process(argv: List[str], timeout: float, cwd: Optional[str] = None) -> Dict[str, Any]:
    """Run ``argv``; wall and CPU seconds (user + system of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return {"ok": False, "wall_s": timeout, "cpu_s": None, "error": f"over the {timeout:g} s limit"}
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = {"ok": res.returncode == 0, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}
    if res.returncode != 0:
        out["error"] = (res.stderr or res.stdout)[-500:]
    last = res.stdout.strip().splitlines()[-1:] if res.stdout else []
    if last and last[0].startswith("{"):
        out.update({k: round(v, 2) for k, v in json.loads(last[0]).items() if isinstance(v, float)})
    return out


FLOOR = """
import json, sys
n = 0
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        json.loads(line); n += 1
print(n)
"""

PEER = """
import json, math, sys, time
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
import plotly

optuna.logging.set_verbosity(optuna.logging.ERROR)
study_dir, out = sys.argv[1], sys.argv[2]
trials, params, inter, state, value = {}, {}, {}, {}, {}
with open(study_dir + "/journal.jsonl") as fh:
    for line in fh:
        e = json.loads(line)
        if e["e"] == "trial":
            params[e["id"]] = e["params"]
        elif e["e"] == "report":
            inter.setdefault(e["id"], {})[int(e["data"]["step"])] = e["data"]["loss"]
        elif e["e"] == "end":
            state[e["id"]], value[e["id"]] = e["state"], e["value"]
dists = {"lr": FloatDistribution(math.exp(-9.2), math.exp(-2.3), log=True),
         "width": CategoricalDistribution([16, 32, 64, 128]),
         "act": CategoricalDistribution(["relu", "tanh"])}
study = optuna.create_study(direction="minimize")
states = {"completed": TrialState.COMPLETE, "stopped": TrialState.PRUNED, "failed": TrialState.FAIL}
study.add_trials([create_trial(state=states[state[i]], value=value[i] if state[i] == "completed" else None,
                               params=params[i], distributions=dists, intermediate_values=inter.get(i, {}))
                  for i in sorted(params)])
t0 = time.perf_counter()
from optuna import visualization as vis
figs = [vis.plot_optimization_history(study), vis.plot_parallel_coordinate(study),
        vis.plot_intermediate_values(study), vis.plot_param_importances(study)]
parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
with open(out, "w") as fh:
    fh.write("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>" + "".join(parts) + "</body></html>")
print(json.dumps({"figures_s": time.perf_counter() - t0}))
"""

# `hpc-tune report` as the command runs it, with the CPU of the main process and of the two
# drawing processes apart (they draw at the same time: the command's critical path is the main
# process plus about half of theirs)
REPORT = """
import json, resource, sys
from hpc_tune.cli import main
rc = main(["report", sys.argv[1], "-o", sys.argv[2]])
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"main_cpu_s": me.ru_utime + me.ru_stime, "drawing_cpu_s": kids.ru_utime + kids.ru_stime}))
sys.exit(rc)
"""

DRAWN_JS = """
Array.from(document.querySelectorAll('svg.plot, .js-plotly-plot')).map(el => {
  const r = el.getBoundingClientRect();
  return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height};
})
"""


def open_in_chromium(path: Path, repeats: int, check: bool) -> Dict[str, Any]:
    times, problems = [], []
    for i in range(repeats):
        with headless.HeadlessChromium(timeout=180) as browser:
            page = browser.open(path.as_uri())
            times.append(page.load_seconds)
            if check and i == 0:
                problems += page.console_errors
                problems += [f"fetched {u}" for u in page.requests if not u.startswith(("file:", "data:"))]
                for f in page.evaluate(DRAWN_JS):
                    if f["width"] < 100 or f["height"] < 50:
                        problems.append(f"a figure of {f['width']}x{f['height']} px")
                rows = page.evaluate("document.querySelectorAll('#trials-table tbody tr').length")
                if rows is not None and rows <= 0:
                    problems.append("an empty trial table")
    return {"open_s": [round(t, 2) for t in times], "median_s": round(statistics.median(times), 2),
            "problems": problems}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-timeout", type=float, default=300.0)
    parser.add_argument("--no-peer", action="store_true", help="skip Optuna's plotly figures")
    parser.add_argument("--quick", action="store_true", help="300 trials x 20 steps; README untouched")
    parser.add_argument("--results-dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.steps, args.repeats = 300, 20, 1
    m = machine()
    with tempfile.TemporaryDirectory(prefix="report-scale-") as tmp:
        study_dir = Path(tmp) / "scale-study"
        t = time.perf_counter()
        synthetic.write_study(str(study_dir), n_trials=args.trials, n_steps=args.steps, kind="random", seed=0)
        journal = study_dir / "journal.jsonl"
        n_events = sum(1 for _ in open(journal, "rb"))
        print(f"study: {args.trials} trials x {args.steps} steps, {n_events} events, "
              f"{journal.stat().st_size / 1e6:.0f} MB journal ({time.perf_counter() - t:.0f} s to write)", flush=True)

        floor = timed_process([sys.executable, "-c", FLOOR, str(journal)], timeout=600)
        print(f"floor (json.loads of every line): {floor}", flush=True)
        out = Path(tmp) / "report.html"
        ours = timed_process([sys.executable, "-c", REPORT, str(study_dir), str(out)], timeout=600, cwd=str(ROOT))
        ours["size_mb"] = round(out.stat().st_size / 1e6, 2) if out.exists() else None
        print(f"hpc-tune report: {ours}", flush=True)
        ours_open = open_in_chromium(out, args.repeats, check=True) if out.exists() else {}
        print(f"opened in chromium: {ours_open}", flush=True)

        peer: Dict[str, Any] = {"skipped": True}
        if not args.no_peer:
            peer_out = Path(tmp) / "optuna.html"
            peer = timed_process([sys.executable, "-c", PEER, str(study_dir), str(peer_out)],
                                 timeout=args.peer_timeout)
            peer["size_mb"] = round(peer_out.stat().st_size / 1e6, 2) if peer_out.exists() else None
            print(f"peer (Optuna + plotly): {peer}", flush=True)
            if peer.get("ok"):
                try:
                    peer["open"] = open_in_chromium(peer_out, args.repeats, check=False)
                except Exception as exc:  # a page too heavy for the browser's time limit
                    peer["open"] = {"error": str(exc)[:200]}
                print(f"peer opened in chromium: {peer['open']}", flush=True)

    payload = {"machine": m, "trials": args.trials, "steps": args.steps, "events": n_events, "floor": floor,
               "report": ours, "report_open": ours_open, "peer": peer}
    path = save_json("report_scale", payload, Path(args.results_dir) if args.results_dir else None)
    print(f"raw results: {path}")
    if args.quick:
        return 0 if ours.get("ok") and not ours_open.get("problems") else 1
    append_readme(TITLE, INTRO, _entry(payload, command_line("report_scale.py", argv)))
    return 0 if ours.get("ok") else 1


def _fmt(v: Any, unit: str = "") -> str:
    return "n/a" if v is None else f"{v}{unit}"


def _entry(p: Dict[str, Any], command: str) -> str:
    r, o, peer, floor = p["report"], p["report_open"], p["peer"], p["floor"]
    po = peer.get("open", {}) if isinstance(peer, dict) else {}
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    lines = [
        f"`{command}`; {machine_line(p['machine'])}.",
        "",
        f"{p['trials']:,} trials x {p['steps']} steps, {p['events']:,} journal events.",
        "",
        "| | written: wall (CPU) | file | opened and drawn in Chromium (median of runs) |",
        "| --- | --- | --- | --- |",
        f"| `hpc-tune report` | {r['wall_s']} s ({_fmt(r.get('cpu_s'), ' s')}) | {_fmt(r.get('size_mb'), ' MB')} | "
        f"{_fmt(o.get('median_s'), ' s')} ({', '.join(map(str, o.get('open_s', [])))}) |",
        "| Optuna 5 + plotly, same trials | "
        + (f"{peer['wall_s']} s ({_fmt(peer.get('cpu_s'), ' s')})" if "wall_s" in peer else "skipped")
        + (f" {peer['error'][:80]}" if peer.get("error") else "")
        + f" | {_fmt(peer.get('size_mb'), ' MB')} | "
        + (f"{po['median_s']} s" if "median_s" in po else po.get("error", "n/a")[:80]) + " |",
        f"| floor: `json.loads` of every journal line | {floor['wall_s']} s ({_fmt(floor.get('cpu_s'), ' s')}) | | |",
        "",
        f"Goals: written <= 10 s: {met(r['wall_s'] <= 10)}; file <= 25 MB: "
        f"{met((r.get('size_mb') or 1e9) <= 25)}; drawn <= 3 s: {met((o.get('median_s') or 1e9) <= 3)}. "
        f"Browser checks (no console error, nothing fetched, every figure drawn): "
        + ("passed." if not o.get("problems") else f"FAILED: {o['problems'][:3]}"),
    ]
    if r.get("cpu_s") and floor.get("cpu_s"):
        lines.append(f"The report's CPU time is {r['cpu_s'] / floor['cpu_s']:.2f}x the floor's"
                     + (f"; {r['main_cpu_s']} s in the main process (imports, reading the journal, the page) and "
                        f"{r['drawing_cpu_s']} s in the two processes that draw the figures at the same time"
                        if "main_cpu_s" in r else "") + ".")
    if peer.get("cpu_s") and r.get("cpu_s"):
        drawn = "median_s" in po and o.get("median_s")
        lines.append(f"Against the peer: {peer['cpu_s'] / r['cpu_s']:.1f}x less CPU to write, "
                     f"{(peer.get('size_mb') or 0) / max(r.get('size_mb') or 1e-9, 1e-9):.1f}x smaller, "
                     + (f"{po['median_s'] / o['median_s']:.0f}x faster to draw." if drawn
                        else "its page did not draw in time."))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
