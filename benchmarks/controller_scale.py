#!/usr/bin/env python
"""Controller scale: cycle cost with 1,000 live trials, journal size, replay time, peak memory.

A study of 10,000 trials (random search, concurrency 1,000) runs through the real
``hpc_tune.controller.Controller`` against ``benchmarks/sim_backend.SimBackend``: the
Backend interface without processes, on a virtual clock. Each trial appends 3 result lines
(``{"step", "loss", "time"}``) and its exit record as the trial wrapper does; the clock moves
1 s between cycles (the controller's default tick) and the benchmark makes the scheduler
poll every 30th cycle (the default 30 s poll interval), so every run does the same work.

Two workloads:

* ``delayed``: trial durations uniform in [1, 19] s (mean 10 cycles): at 1,000 live trials
  about 100 trials end and 100 start per cycle, and some result lines arrive each cycle;
  plus 10 "idle" cycles in the steady state where no trial did anything (the cost of
  looking at 1,000 live trials);
* ``instant``: every trial is over by the next cycle: 1,000 ends and 1,000 submissions per
  cycle.

Per cycle: wall time
and CPU time (``time.process_time``) of ``Controller.cycle()`` only (the simulated trials write
their files between cycles). Baseline in the same run: the bare file-system cost of looking
at 1,000 live trials (one ``os.stat`` of the result file + one ``open`` of ``exit.json`` each).

Replay: ``load_view`` (``hpc_tune.journal``) (i) on the 10,000-trial journal, (ii) on a synthetic journal
of 1,000,000 events (10,000 trials x 96 reports + their trial/submitted/state/end events,
written 1,000 trials at a time as a controller would), each without a snapshot (the full
replay of the raw journal), with a snapshot at its end, and with a snapshot that is ~10 %
of the events behind (what ``load_view`` does when the controller last snapshotted a while
ago). Baseline: ``json.loads`` of every line of the same file. Each replay runs in a fresh
process; its peak memory is that process's ``ru_maxrss``, next to the ``ru_maxrss`` of a
process that only imports hpc_tune.

    python benchmarks/controller_scale.py           # 10,000 trials, 1,000 live, 1,000,000 events
    python benchmarks/controller_scale.py --quick   # 120 trials, 12 live, 3,000 events, one process;
                                                    # README untouched

``--baseline DIR`` measures another checkout of hpc-tune in the same run, with the same
workloads (e.g. ``git worktree add /tmp/old 0faf198``, then ``--baseline /tmp/old``), and
reports today's figures as ratios of the baseline's.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import RESULTS, ROOT, append_readme, command_line, machine, machine_line, now, save_json  # noqa: E402

# A phase process measures the hpc_tune of this folder (see --baseline), not this checkout's.
CODE_ENV = "HPC_TUNE_BENCH_CODE"
if os.environ.get(CODE_ENV):
    sys.path.insert(0, os.environ[CODE_ENV])

REPORTS_PER_TRIAL = 3
POLL_EVERY = 30  # cycles between scheduler polls (default poll_interval 30 s / tick 1 s)
IDLE_CYCLES = 10
REPLAY_RUNS = 3  # fresh processes per replay measurement (the median is reported)
PROFILED_CYCLES = 3

SPEC_YAML = """\
hptuning:
  concurrency: {live}
  random_search: {{n_experiments: {trials}}}
  metric: {{name: loss, optimization: minimize}}
  matrix:
    x: {{uniform: [0, 1]}}
    lr: {{loguniform: [-9.2, -2.3]}}
    layers: {{values: [1, 2, 3]}}
run:
  cmd: python train.py --x={{{{ x }}}} --lr={{{{ lr }}}} --layers={{{{ layers }}}}
"""


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _pct(xs: Sequence[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# ----------------------------------------------------------------------------- phases
# Each phase runs in its own process (python benchmarks/controller_scale.py --phase ...) and
# prints one JSON object: a fresh process per measurement, so peak memory is its own.


def phase_imports(_: argparse.Namespace) -> Dict[str, Any]:
    import hpc_tune
    import hpc_tune.controller  # noqa: F401
    import hpc_tune.study  # noqa: F401

    return {"maxrss_mb": maxrss_mb(), "hpc_tune": os.path.dirname(os.path.dirname(hpc_tune.__file__))}


def _fold_api() -> Any:
    """(load_view, write_snapshot, SNAPSHOT_FILE) of the hpc_tune measured: the journal package,
    or hpc_tune.study before it (a --baseline of 0.1.0)."""
    try:
        from hpc_tune.journal import load_view, write_snapshot
        from hpc_tune.paths import SNAPSHOT_FILE
    except ImportError:
        from hpc_tune.study import SNAPSHOT_FILE, load_view, write_snapshot  # type: ignore[no-redef]
    return load_view, write_snapshot, SNAPSHOT_FILE


def _objective(params: Dict[str, Any]) -> List[Dict[str, Any]]:
    base = (float(params["x"]) - 0.3) ** 2
    return [{"step": k, "loss": base + 1.0 / k} for k in range(1, REPORTS_PER_TRIAL + 1)]


def _io_baseline(study_dir: str, trial_ids: Sequence[int]) -> float:
    """CPU seconds of the bare file-system work of looking at these trials once."""
    paths = [(os.path.join(study_dir, "trials", str(t), "result.jsonl"),
              os.path.join(study_dir, "trials", str(t), "exit.json")) for t in trial_ids]
    c0 = time.process_time()
    for result, exit_record in paths:
        try:
            os.stat(result)
        except FileNotFoundError:
            pass
        try:
            with open(exit_record, "rb") as fh:
                fh.read()
        except FileNotFoundError:
            pass
    return time.process_time() - c0


def phase_study(args: argparse.Namespace) -> Dict[str, Any]:
    from sim_backend import SimBackend

    from hpc_tune.controller import Controller
    from hpc_tune.spec import load_spec
    from hpc_tune.study import create_study

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    spec_path = work / "study.yml"
    spec_path.write_text(SPEC_YAML.format(live=args.live, trials=args.trials))
    spec = load_spec(str(spec_path))
    study_dir = create_study(str(spec_path), spec, str(work / "state"), backend="sim", seed=1)
    rng = random.Random(0)
    if args.mode == "instant":
        duration = lambda n: 0.0  # noqa: E731
    else:
        duration = lambda n: rng.uniform(1.0, 19.0)  # noqa: E731
    backend = SimBackend(_objective, duration=duration, reports_per_trial=REPORTS_PER_TRIAL)
    controller = Controller(study_dir, spec, backend, poll_interval=30.0, tick=0.0)
    rows: List[Dict[str, Any]] = []
    idle_rows: List[Dict[str, Any]] = []
    io_base: List[float] = []
    profile = cProfile.Profile()
    profiled = 0
    steady = 0
    t_start, c_start = time.perf_counter(), time.process_time()
    cycle = 0
    while controller.view.ended is None:
        live = len(controller.view.live())
        full = live >= 0.99 * args.live
        steady += 1 if full else 0
        # Idle cycles and profiled cycles, once, in the steady state (not in the timed rows).
        if args.mode == "delayed" and full and steady == 5 and not idle_rows:
            live_ids = [t.trial_id for t in controller.view.live()]
            for _ in range(IDLE_CYCLES):
                controller._last_poll = time.monotonic()  # no poll: nothing changed at all
                w, c = time.perf_counter(), time.process_time()
                controller.cycle()
                idle_rows.append({"live": len(controller.view.live()), "wall": time.perf_counter() - w,
                                  "cpu": time.process_time() - c})
                io_base.append(_io_baseline(study_dir, live_ids))
        if full and steady == 8 and profiled == 0:
            for _ in range(PROFILED_CYCLES):
                controller._last_poll = time.monotonic()
                profile.enable()
                controller.cycle()
                profile.disable()
                backend.advance(1.0)
                profiled += 1
            continue
        polled = cycle % POLL_EVERY == 0
        controller._last_poll = float("-inf") if polled else time.monotonic()
        n_trials = len(controller.view.trials)
        w, c = time.perf_counter(), time.process_time()
        controller.cycle()
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        rows.append({"cycle": cycle, "live": live, "polled": polled, "wall": wall, "cpu": cpu,
                     "created": len(controller.view.trials) - n_trials})
        cycle += 1
        if controller.view.ended is not None:
            break
        rows[-1]["ended_next"] = backend.advance(1.0)
        if cycle > 100 * args.trials:
            raise RuntimeError("the study does not end")
    total_wall, total_cpu = time.perf_counter() - t_start, time.process_time() - c_start
    journal = Path(study_dir) / "journal.jsonl"
    kinds: Dict[str, int] = {}
    kind_bytes: Dict[str, int] = {}
    with open(journal, "rb") as fh:
        for line in fh:
            k = json.loads(line)["e"]
            kinds[k] = kinds.get(k, 0) + 1
            kind_bytes[k] = kind_bytes.get(k, 0) + len(line)
    view = controller.view
    counts = view.counts()
    history_ms = _history_timing(view)
    return {"controller": "library", "mode": args.mode, "trials": len(view.trials), "live_target": args.live,
            "study_dir": study_dir, "end": view.ended, "counts": counts, "rows": rows, "idle_rows": idle_rows,
            "io_baseline_cpu": io_base, "total_wall": total_wall, "total_cpu": total_cpu,
            "journal_bytes": journal.stat().st_size, "events": sum(kinds.values()), "events_by_kind": kinds,
            "bytes_by_kind": kind_bytes, "maxrss_mb": maxrss_mb(), "backend_calls": dict(backend.calls),
            "profile": _profile_top(profile, profiled), "profiled_cycles": profiled, "history_ms": history_ms}


def _history_timing(view: Any, reps: int = 5) -> Dict[str, float]:
    """ms of CPU for ``StudyView.history()`` over all trials (what every cycle that fills
    slots hands the searcher), warm, median of ``reps``."""
    view.history()  # warm, as in a running controller
    times = []
    for _ in range(reps):
        c = time.process_time()
        h = view.history()
        times.append(time.process_time() - c)
    return {"now": 1000 * statistics.median(times), "trials": len(h)}


def _profile_top(profile: cProfile.Profile, cycles: int, n: int = 12) -> List[Dict[str, Any]]:
    if not cycles:
        return []
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    rows = []
    for (file, line, fn), (_cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(file).name}:{line}({fn})", "calls_per_cycle": nc / cycles,
                     "own_ms_per_cycle": 1000 * tt / cycles, "cum_ms_per_cycle": 1000 * ct / cycles})
    rows.sort(key=lambda r: -r["cum_ms_per_cycle"])
    return rows[: 4 * n]


def _event_line(e: Dict[str, Any], t: float) -> str:
    return json.dumps({"v": 1, "t": round(t, 3), **e}, separators=(",", ":"), allow_nan=False) + "\n"


def phase_synth(args: argparse.Namespace) -> Dict[str, Any]:
    """Write (or extend) a journal of trials [first, last), ``reports`` result lines each,
    ``wave`` trials at a time: trial + submitted for the wave, the reports step by step
    across the wave, a state-running event, then the ends."""
    study_dir = Path(args.study)
    study_dir.mkdir(parents=True, exist_ok=True)
    journal = study_dir / "journal.jsonl"
    rnd = random.Random(args.first)
    t = 1.7e9 + args.first
    with open(journal, "a") as fh:
        if args.first == 0:
            fh.write(_event_line({"e": "study", "id": "synthetic", "seed": 1, "file": "synthetic.yml",
                                  "cwd": str(study_dir), "base_dir": str(study_dir), "backend": "sim", "slurm": {},
                                  "metric": "loss", "optimization": "minimize", "poll_interval": 30.0,
                                  "version": "synthetic"}, t))
        for start in range(args.first, args.last, args.wave):
            ids = range(start, min(args.last, start + args.wave))
            lines = []
            for i in ids:
                params = {"x": round(rnd.random(), 12), "lr": round(10 ** rnd.uniform(-4, -1), 12),
                          "layers": rnd.choice([1, 2, 3])}
                lines.append(_event_line({"e": "trial", "id": i, "params": params, "resource": None,
                                          "meta": {"index": i}}, t))
            lines += [_event_line({"e": "submitted", "id": i, "attempt": 0, "job": f"{9000000 + i}"}, t) for i in ids]
            lines += [_event_line({"e": "state", "id": i, "state": "running", "raw": "RUNNING"}, t) for i in ids]
            end = {i: 0 for i in ids}
            for step in range(1, args.reports + 1):
                t += 1.0
                for i in ids:
                    data = {"step": step, "loss": round(rnd.random() / step, 6), "time": round(t, 3)}
                    end[i] += len(json.dumps(data)) + 1
                    lines.append(_event_line({"e": "report", "id": i, "end": end[i], "data": data}, t))
            lines += [_event_line({"e": "end", "id": i, "state": "completed", "value": 0.5, "reason": "",
                                   "raw": "exit 0"}, t) for i in ids]
            fh.write("".join(lines))
    n = sum(1 for _ in open(journal, "rb"))
    return {"events": n, "bytes": journal.stat().st_size}


def phase_snapshot(args: argparse.Namespace) -> Dict[str, Any]:
    load_view, write_snapshot, snapshot_file = _fold_api()

    snap = Path(args.study) / snapshot_file
    if snap.exists():
        snap.unlink()
    view = load_view(args.study)
    t0 = time.perf_counter()
    write_snapshot(view)
    return {"write_s": time.perf_counter() - t0, "snapshot_bytes": snap.stat().st_size, "offset": view.offset}


def phase_replay(args: argparse.Namespace) -> Dict[str, Any]:
    import gc

    load_view, _, snapshot_file = _fold_api()

    snap = Path(args.study) / snapshot_file
    if args.snapshot == "none" and snap.exists():
        snap.rename(str(snap) + ".off")  # put back below: measure the raw journal
    try:
        w, c = time.perf_counter(), time.process_time()
        view = load_view(args.study)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
    finally:
        if args.snapshot == "none" and Path(str(snap) + ".off").exists():
            os.replace(str(snap) + ".off", snap)
    gc.collect()
    return {"wall": wall, "cpu": cpu, "maxrss_mb": maxrss_mb(), "trials": len(view.trials), "offset": view.offset,
            "reports": sum(t.n_reports for t in view.trials.values())}


def phase_parse(args: argparse.Namespace) -> Dict[str, Any]:
    """Baseline: read the journal and json.loads each line, nothing else."""
    w, c = time.perf_counter(), time.process_time()
    n = 0
    with open(Path(args.study) / "journal.jsonl", "rb") as fh:
        for line in fh:
            json.loads(line)
            n += 1
    return {"wall": time.perf_counter() - w, "cpu": time.process_time() - c, "events": n, "maxrss_mb": maxrss_mb()}


PHASES = {"imports": phase_imports, "study": phase_study, "synth": phase_synth, "snapshot": phase_snapshot,
          "replay": phase_replay, "parse": phase_parse}


IN_PROCESS = False  # --quick: every phase in this process (faster; peak memory is then this process's)


def run_phase(name: str, *extra: str, timeout: float = 3600, code: Optional[Path] = None) -> Dict[str, Any]:
    """One phase in a fresh process, measuring the hpc_tune of ``code`` (default: this checkout)."""
    if IN_PROCESS and code is None:
        ns = build_parser().parse_args(["--phase", name, *extra])
        return json.loads(json.dumps(PHASES[name](ns), default=str))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", name, *extra]
    env = dict(os.environ)
    root = str(code or ROOT)
    env[CODE_ENV] = root
    env["PYTHONPATH"] = os.pathsep.join([root, str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"phase {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


run_in = run_phase  # (measure() names its own run_phase)


# ------------------------------------------------------------------------------- main


def summarise_cycles(rows: List[Dict[str, Any]], live: int) -> Dict[str, Any]:
    full = [r for r in rows if r["live"] >= 0.99 * live]
    plain = [r for r in full if not r["polled"]]
    polled = [r for r in full if r["polled"]]

    def stats(rs: List[Dict[str, Any]]) -> Dict[str, Any]:
        if not rs:
            return {"cycles": 0}
        return {"cycles": len(rs),
                "cpu_ms_median": 1000 * statistics.median(r["cpu"] for r in rs),
                "cpu_ms_p90": 1000 * _pct([r["cpu"] for r in rs], 0.9),
                "cpu_ms_max": 1000 * max(r["cpu"] for r in rs),
                "wall_ms_median": 1000 * statistics.median(r["wall"] for r in rs),
                "wall_ms_p90": 1000 * _pct([r["wall"] for r in rs], 0.9),
                "created_median": statistics.median(r["created"] for r in rs)}

    return {"all": stats(full), "without_poll": stats(plain), "with_poll": stats(polled)}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="120 trials, 12 live, 3,000 events; README untouched")
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--live", type=int, default=1_000)
    ap.add_argument("--events", type=int, default=1_000_000, help="size of the synthetic journal (approximate)")
    ap.add_argument("--modes", default="delayed,instant")
    ap.add_argument("--workdir", default=None, help="where the studies go (default: a temporary folder, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--results-dir", default=str(RESULTS))
    ap.add_argument("--baseline", default=None, metavar="DIR",
                    help="also measure the hpc_tune of this checkout (e.g. a `git worktree` of an earlier "
                         "commit) in the same run, and report ratios")
    # internal: one measurement in this process
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="delayed", help=argparse.SUPPRESS)
    ap.add_argument("--study", help=argparse.SUPPRESS)
    ap.add_argument("--snapshot", default="none", help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--last", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--reports", type=int, default=96, help=argparse.SUPPRESS)
    ap.add_argument("--wave", type=int, default=1000, help=argparse.SUPPRESS)
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    global IN_PROCESS
    args = build_parser().parse_args(argv)
    if args.phase:
        print(json.dumps(PHASES[args.phase](args), default=str))
        return 0
    if args.quick:
        args.trials, args.live, args.events = 120, 12, 3_000
        IN_PROCESS = True

    m_info = machine()
    t_start = time.perf_counter()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="hpct-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = measure(args, work)
        if args.baseline:
            base = Path(args.baseline).resolve()
            print(f"baseline: {base}", flush=True)
            result["baseline"] = measure(args, work / "baseline", code=base)
            result["baseline"]["commit"] = subprocess.run(
                ["git", "-C", str(base), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - t_start
    text = report(args, result, m_info, argv, wall)
    print(text)
    out = save_json("controller_scale", {"command": command_line("controller_scale.py", argv), "date": now(),
                                         "machine": m_info, "args": {k: v for k, v in vars(args).items()},
                                         "wall_s": wall, **result}, Path(args.results_dir))
    print(f"raw results: {out}")
    if not (args.quick or args.no_readme):
        append_readme(SECTION, SECTION_INTRO, text)
        print("appended to benchmarks/README.md")
    return 0


def measure(args: argparse.Namespace, work: Path, code: Optional[Path] = None) -> Dict[str, Any]:
    def run_phase(name: str, *extra: str) -> Dict[str, Any]:
        if name in ("replay", "parse") and not IN_PROCESS:
            # a replay is one short measurement on a shared machine: the run with the median
            # CPU time of REPLAY_RUNS fresh processes
            runs = sorted((run_in(name, *extra, code=code) for _ in range(REPLAY_RUNS)), key=lambda r: r["cpu"])
            return {**runs[len(runs) // 2], "runs_cpu": [r["cpu"] for r in runs]}
        return run_in(name, *extra, code=code)

    result: Dict[str, Any] = {"imports": run_phase("imports"), "studies": {}, "replay": {}}
    for mode in [m for m in args.modes.split(",") if m]:
        d = work / f"{mode}-library"
        print(f"study: {args.trials} trials, {args.live} live, {mode} trials ...", flush=True)
        r = run_phase("study", "--workdir", str(d), "--mode", mode, "--trials", str(args.trials),
                      "--live", str(args.live))
        r["cycles"] = summarise_cycles(r["rows"], args.live)
        print(f"  {r['total_wall']:.1f} s wall, {r['total_cpu']:.1f} s CPU; cycles at {args.live} live: "
              f"median CPU {r['cycles']['all'].get('cpu_ms_median', float('nan')):.1f} ms", flush=True)
        result["studies"][f"{mode}/library"] = r

    # replay of the 10,000-trial journal (the library controller's delayed study)
    real = result["studies"].get("delayed/library", {})
    if "study_dir" in real:
        sd = real["study_dir"]
        result["replay"]["study"] = {
            "events": real["events"], "bytes": real["journal_bytes"], "trials": real["trials"],
            "parse": run_phase("parse", "--study", sd),
            "raw": run_phase("replay", "--study", sd, "--snapshot", "none"),
            "snapshot_write": run_phase("snapshot", "--study", sd),
            "snapshot": run_phase("replay", "--study", sd, "--snapshot", "use")}

    # replay of a synthetic journal of ~args.events events
    per_trial = 96 + 4
    trials = max(10, args.events // per_trial)
    wave = min(1000, max(10, trials // 10))
    synth = work / "synthetic"
    head = trials - max(wave, trials // 10) // wave * wave  # the last ~10 %: written after the snapshot
    print(f"synthetic journal: {trials} trials x {per_trial} events ...", flush=True)
    run_phase("synth", "--study", str(synth), "--first", "0", "--last", str(head), "--wave", str(wave))
    snap_early = run_phase("snapshot", "--study", str(synth))
    info = run_phase("synth", "--study", str(synth), "--first", str(head), "--last", str(trials),
                     "--wave", str(wave))
    r1: Dict[str, Any] = {"events": info["events"], "bytes": info["bytes"], "trials": trials}
    r1["parse"] = run_phase("parse", "--study", str(synth))
    r1["snapshot_behind"] = run_phase("replay", "--study", str(synth), "--snapshot", "use")
    r1["snapshot_behind_bytes"] = info["bytes"] - snap_early["offset"]
    r1["raw"] = run_phase("replay", "--study", str(synth), "--snapshot", "none")
    r1["snapshot_write"] = run_phase("snapshot", "--study", str(synth))
    r1["snapshot"] = run_phase("replay", "--study", str(synth), "--snapshot", "use")
    result["replay"]["synthetic"] = r1
    return result


def _body(args: argparse.Namespace, res: Dict[str, Any]) -> str:
    """The tables and goal lines of one checkout's measurements."""
    from tabulate import tabulate

    L = args.live
    studies = res["studies"]
    # -- cycles
    rows = []
    io_base = None
    for key, r in studies.items():
        mode, ctl = key.split("/")
        name = ctl
        for label, s in (("without poll", r["cycles"]["without_poll"]), ("with the poll (1 in 30)",
                                                                         r["cycles"]["with_poll"])):
            if not s.get("cycles"):
                continue
            rows.append([mode, name, label, s["cycles"], f"{s['created_median']:.0f}",
                         f"{s['cpu_ms_median']:.1f}", f"{s['cpu_ms_p90']:.1f}", f"{s['wall_ms_median']:.1f}",
                         f"{s['wall_ms_p90']:.1f}"])
        if r.get("idle_rows"):
            cpu = [x["cpu"] for x in r["idle_rows"]]
            wl = [x["wall"] for x in r["idle_rows"]]
            io_base = statistics.median(r["io_baseline_cpu"])
            rows.append([mode, name, "idle (nothing new)", len(cpu), 0, f"{1000 * statistics.median(cpu):.1f}",
                         f"{1000 * _pct(cpu, 0.9):.1f}", f"{1000 * statistics.median(wl):.1f}",
                         f"{1000 * _pct(wl, 0.9):.1f}"])
    cycle_table = tabulate(rows, headers=["trials", "controller", f"cycles at {L} live", "n", "trials started",
                                          "CPU ms median", "CPU ms p90", "wall ms median", "wall ms p90"],
                           tablefmt="github")
    # -- studies
    srows = []
    for key, r in studies.items():
        mode, ctl = key.split("/")
        srows.append([mode, ctl, r["trials"], len(r["rows"]), f"{r['total_wall']:.1f}", f"{r['total_cpu']:.1f}",
                      r["events"], f"{r['journal_bytes'] / 1e6:.2f}", f"{r['journal_bytes'] / r['trials']:.0f}",
                      f"{r['maxrss_mb']:.0f}"])
    study_table = tabulate(srows, headers=["trials", "controller", "trials run", "cycles", "wall s", "CPU s",
                                           "journal events", "journal MB", "bytes / trial", "peak RSS MB"],
                           tablefmt="github")
    # -- replay
    rrows = []
    base_rss = res["imports"]["maxrss_mb"]
    goals: List[str] = []
    lib = studies.get("delayed/library", {})
    for name, r in (("library", lib),):
        if r and "cycles" in r and r["cycles"]["all"].get("cycles"):
            s = r["cycles"]["all"]
            ok = s["cpu_ms_median"] < 100
            line = (f"Cycle with {L} live trials under 100 ms CPU ({name} controller, delayed trials, all "
                    f"{s['cycles']} cycles at {L} live incl. polls): median {s['cpu_ms_median']:.1f} ms, p90 "
                    f"{s['cpu_ms_p90']:.1f} ms - " + ("met" if ok else
                                                     f"MISSED by {s['cpu_ms_median'] - 100:.1f} ms "
                                                     f"({s['cpu_ms_median'] / 100:.1f}x the goal)"))
            goals.append(line)
    for label, r in res["replay"].items():
        what = (f"controller's journal, {r['trials']} trials" if label == "study"
                else f"synthetic, {r['trials']} trials x 100")
        parse = r["parse"]
        cases = [("json.loads of every line (baseline)", parse, None)]
        if label == "synthetic":
            cases.append((f"load_view, snapshot {r['snapshot_behind_bytes'] / 1e6:.1f} MB behind",
                          r["snapshot_behind"], parse))
        cases += [("load_view, raw journal (no snapshot)", r["raw"], parse),
                  ("load_view, snapshot at the end", r["snapshot"], parse)]
        for name, x, base in cases:
            rrows.append([what, f"{r['events']:,}", f"{r['bytes'] / 1e6:.1f}", name, f"{x['wall']:.2f}",
                          f"{x['cpu']:.2f}", f"{x['cpu'] / base['cpu']:.2f}x" if base else "1",
                          f"{x['maxrss_mb']:.0f}"])
        if label == "synthetic":
            raw = r["raw"]
            ok = raw["wall"] < 5.0
            goals.append(f"Replay of {r['events']:,} events under 5 s: raw journal {raw['wall']:.2f} s wall "
                         f"({raw['cpu']:.2f} s CPU) - " + ("met" if ok else f"MISSED by {raw['wall'] - 5:.2f} s")
                         + f"; from the snapshot {r['snapshot']['wall']:.2f} s, from a snapshot "
                         f"{r['snapshot_behind_bytes'] / 1e6:.1f} MB behind {r['snapshot_behind']['wall']:.2f} s.")
    replay_table = tabulate(rrows, headers=["journal", "events", "MB", "replay", "wall s", "CPU s", "CPU vs baseline",
                                            "peak RSS MB"], tablefmt="github")
    # -- memory
    peaks = [(k, r["maxrss_mb"]) for k, r in studies.items() if "maxrss_mb" in r]
    for label, r in res["replay"].items():
        for case in ("raw", "snapshot"):
            peaks.append((f"replay {label} {case}", r[case]["maxrss_mb"]))
    worst = max(peaks, key=lambda p: p[1]) if peaks else ("-", 0.0)
    goals.append(f"Memory under 500 MB: the largest peak RSS of any measured process is {worst[1]:.0f} MB "
                 f"({worst[0]}; a process that only imports hpc_tune: {base_rss:.0f} MB) - "
                 + ("met" if worst[1] < 500 else f"MISSED by {worst[1] - 500:.0f} MB"))
    if lib.get("history_ms"):
        h = lib["history_ms"]
        goals.append(f"`StudyView.history()` at {h['trials']} trials (called by every cycle that fills slots): "
                     f"{h['now']:.1f} ms CPU")
    if io_base is not None and lib.get("idle_rows"):
        idle_cpu = statistics.median(x["cpu"] for x in lib["idle_rows"])
        goals.append(f"Idle cycle ({L} live, nothing new) vs the bare stat + open of {L} trials' files "
                     f"({1000 * io_base:.1f} ms CPU, same run): {idle_cpu / io_base:.1f}x")
    # -- profile
    prof_lines = []
    if lib.get("profile"):
        prof_lines.append(f"Where a steady-state cycle's time goes (cProfile, library controller, delayed trials, "
                          f"{lib['profiled_cycles']} cycles at {L} live; ms per cycle under the profiler, which "
                          f"inflates Python calls):\n")
        keep = [p for p in lib["profile"] if any(
                    f"{m}.py" in p["function"] for m in ("controller", "journal", "study", "trial", "loop", "core",
                                                         "fold", "log", "protocol", "trials", "stopping"))
                or "fsync" in p["function"]
                or "io.open" in p["function"] or "posix" in p["function"]]
        prof_rows = [[p["function"], f"{p['calls_per_cycle']:.0f}", f"{p['cum_ms_per_cycle']:.1f}",
                      f"{p['own_ms_per_cycle']:.1f}"] for p in keep[:14]]
        prof_lines.append(tabulate(prof_rows, headers=["function", "calls / cycle", "cumulative ms", "own ms"],
                                   tablefmt="github"))
    return (f"Per controller cycle (`Controller.cycle()` only):\n\n{cycle_table}\n\n"
            f"Whole studies:\n\n{study_table}\n\nJournal replay (`load_view`), the median of {REPLAY_RUNS} fresh "
            f"processes each:\n\n{replay_table}\n\n" + "\n".join(goals) + "\n\n" + "\n".join(prof_lines) + "\n")


def comparison(today: Dict[str, Any], base: Dict[str, Any], live: int) -> str:
    """Today's figures as ratios of the baseline's (same run, same workloads); goal: <= 1.10 each."""
    from tabulate import tabulate

    rows = []

    def add(what: str, new: Optional[float], old: Optional[float], unit: str) -> None:
        if new is None or old is None or old <= 0:
            return
        ratio = new / old
        rows.append([what, f"{old:.2f} {unit}", f"{new:.2f} {unit}", f"{ratio:.2f}",
                     "met" if ratio <= 1.10 else "MISSED"])

    for mode in ("delayed", "instant"):
        n, o = today["studies"].get(f"{mode}/library"), base["studies"].get(f"{mode}/library")
        if n and o:
            add(f"cycle CPU at {live} live, {mode} trials (median)", n["cycles"]["all"].get("cpu_ms_median"),
                o["cycles"]["all"].get("cpu_ms_median"), "ms")
            if n.get("idle_rows") and o.get("idle_rows"):
                add(f"idle cycle CPU at {live} live (median)",
                    1000 * statistics.median(x["cpu"] for x in n["idle_rows"]),
                    1000 * statistics.median(x["cpu"] for x in o["idle_rows"]), "ms")
            add(f"peak RSS, whole {mode} study", n["maxrss_mb"], o["maxrss_mb"], "MB")
    for label in ("synthetic", "study"):
        n, o = today["replay"].get(label), base["replay"].get(label)
        if not (n and o):
            continue
        what = f"{n['events']:,} events" if label == "synthetic" else f"the {n['trials']}-trial study's journal"
        add(f"replay of {what}, raw (CPU)", n["raw"]["cpu"], o["raw"]["cpu"], "s")
        add(f"replay of {what}, from the snapshot (CPU)", n["snapshot"]["cpu"], o["snapshot"]["cpu"], "s")
        if "snapshot_behind" in n:
            add(f"replay of {what}, snapshot ~10 % behind (CPU)", n["snapshot_behind"]["cpu"],
                o["snapshot_behind"]["cpu"], "s")
        add(f"peak RSS, replay of {what}, raw", n["raw"]["maxrss_mb"], o["raw"]["maxrss_mb"], "MB")
        add(f"peak RSS, replay of {what}, snapshot", n["snapshot"]["maxrss_mb"], o["snapshot"]["maxrss_mb"], "MB")
    return tabulate(rows, headers=["measure", "baseline", "today", "today / baseline", "goal <= 1.10"],
                    tablefmt="github")


def report(args: argparse.Namespace, res: Dict[str, Any], m_info: Dict[str, Any], argv: Optional[Sequence[str]],
           wall: float) -> str:
    command = command_line("controller_scale.py", argv)
    head = (f"{now()} - `{command}` - {machine_line(m_info)}\n\n"
            f"Random search, {args.trials} trials, concurrency {args.live}, {REPORTS_PER_TRIAL} result lines + exit "
            f"record per trial (SimBackend), tick 1 s of simulated time, one scheduler poll every {POLL_EVERY} "
            f"cycles. Total wall time {wall / 60:.1f} min.")
    text = f"{head}\n\n{_body(args, res)}"
    base = res.get("baseline")
    if base:
        text += (f"\nBaseline in the same run: commit {base.get('commit') or '?'} (`--baseline`), the same "
                 f"workloads:\n\n{comparison(res, base, args.live)}\n\nThe baseline's own tables:\n\n"
                 f"{_body(args, base)}")
    return text


SECTION = "controller_scale.py: controller cycle cost, journal size, replay and memory at 10,000 trials"
SECTION_INTRO = """
The real controller against a simulated backend (`benchmarks/sim_backend.py`, the Backend
interface on a virtual clock; trials write result lines and exit records like the trial
wrapper): CPU and wall time per cycle with 1,000 live trials, journal bytes per trial,
`load_view` replay time on the 10,000-trial journal and on a 1,000,000-event journal (raw and
via the snapshot), and peak memory (`ru_maxrss` of each measuring process). Runs before
2026-11-24 11:30 also measured a batching change proposed in `benchmarks/batched_controller.py`,
since then the library's own behaviour (commit 2671362).

    python benchmarks/controller_scale.py           # full run
    python benchmarks/controller_scale.py --quick   # smoke run, nothing appended here
"""


if __name__ == "__main__":
    sys.exit(main())
