#!/usr/bin/env python
"""GPU-slot utilisation and scheduler load of hpc-tune on the real Slurm cluster.

Issue items 1 and 2. For each trial length L (default 10 s and 60 s), in the same run:

* **hpc-tune**: ``hpc-tune submit STUDY --backend slurm --foreground`` with the DEFAULT
  settings (poll interval 30 s; exit records read every 0.25 s while few trials are live): a
  grid of ``--trials`` trials (x: linspace 0:1:N), ``concurrency: 4``, ``slurm: {gpus: 1}``,
  each trial ``slot_trial.sh L x`` (sleep L, then append ``{"loss": x}`` to ``$HPC_TUNE_RESULT_FILE``);
* **baseline**: one plain ``sbatch --array=0-(N-1)%4 --gres=gpu:1`` of the same script,
  whose completion this benchmark watches with one ``sacct`` every 2 s.

Makespan = the first submission (sacct ``Submit``) to the last trial's end (sacct ``End``),
the same clock and the same 1 s resolution for both; also the wall time of the whole
``hpc-tune submit --foreground`` process, and the ideal ``N*L/4``. Scheduler calls are counted
by wrapper scripts named sbatch/sacct/squeue/scancel/scontrol put first on PATH, which log
each call and exec the real binary. Where a slot's time goes between two trials is measured
from the trial script's own start/end times, the exit records, the journal and sacct.

Then two checks, with trivially short trials:

* **arrays**: a generation-D grid of ``--array-trials`` (1000) trials without concurrency
  and ``--time 1``: its first submission wave must take at most ceil(N / MaxArraySize)
  sbatch calls; the study is then cancelled with ``hpc-tune cancel`` and nothing of it may
  stay in squeue;
* **busy**: a PATH ``sbatch`` that fails the first ``--busy-failures`` calls with "Socket
  timed out on send/recv operation" (BackendBusy): the study must back off and finish.

    python benchmarks/slot_utilisation.py                    # L = 10 s and 60 s, 40 trials (~30 min)
    python benchmarks/slot_utilisation.py --lengths 10 --trials 16
    python benchmarks/slot_utilisation.py --quick            # smoke run: 8 trials of 3 s, README untouched

Results go to stdout, to ``benchmarks/results/slot_utilisation-<time>.json`` (raw) and,
unless ``--quick`` or ``--no-readme``, to a dated section of ``benchmarks/README.md``. Work
files (studies, logs, call logs) stay under ``/tmp/slot_utilisation-<time>/``.

Noise: the cluster is shared; other people's jobs (seen by sampling squeue every 5 s) and
the machine's load average are recorded with each run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "benchmarks" / "README.md"
README_INTRO = "Each benchmark runs with one command; figures are appended by the benchmark itself.\n"
TRIAL_SCRIPT = ROOT / "benchmarks" / "slot_trial.sh"
COMMANDS = ("sbatch", "sacct", "squeue", "scancel", "scontrol")
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "BOOT_FAIL", "DEADLINE", "REVOKED"}
OUR_NAMES = ("hpct-slot", "slotbase-")  # job names of this benchmark (hpc-tune: hpct-<study id>-...)
BUSY_MESSAGE = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"
CONCURRENCY = 4
TIME_LIMIT = "10:00"  # --time of every trial job, hpc-tune and baseline alike
BASELINE_POLL_S = 2.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Counting scheduler calls: wrapper scripts first on PATH


def real_binary(name: str) -> str:
    for d in ("/usr/bin", "/usr/local/bin", "/bin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: this benchmark needs a Slurm cluster (scripts/slurm-cluster.sh up)")
    return found


def write_wrappers(bin_dir: Path) -> None:
    """sbatch/sacct/squeue/scancel/scontrol that append "EPOCH NAME ARGS" to $SLOT_CALL_LOG and
    exec the real binary. sbatch fails while $SLOT_SBATCH_FAIL_FILE holds a count > 0 (the
    busy test), logged as "sbatch-failed"."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        real = real_binary(name)
        fail = ""
        if name == "sbatch":
            fail = f"""if [ -n "$SLOT_SBATCH_FAIL_FILE" ] && [ -s "$SLOT_SBATCH_FAIL_FILE" ]; then
  n=$(cat "$SLOT_SBATCH_FAIL_FILE")
  if [ "$n" -gt 0 ] 2>/dev/null; then
    echo $((n - 1)) > "$SLOT_SBATCH_FAIL_FILE"
    printf '%s sbatch-failed %s\\n' "$(date +%s.%N)" "$*" >> "${{SLOT_CALL_LOG:-/dev/null}}"
    echo {shlex.quote(BUSY_MESSAGE)} >&2
    exit 1
  fi
fi
"""
        text = f"""#!/bin/sh
# slot_utilisation.py: count this call, then run the real {name}.
{fail}printf '%s {name} %s\\n' "$(date +%s.%N)" "$*" >> "${{SLOT_CALL_LOG:-/dev/null}}"
exec {real} "$@"
"""
        path = bin_dir / name
        path.write_text(text)
        path.chmod(0o755)


def read_calls(path: Path) -> List[Tuple[float, str, str]]:
    out = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        parts = line.split(" ", 2)
        if len(parts) >= 2:
            try:
                out.append((float(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
            except ValueError:
                pass
    return out


def count_calls(calls: Sequence[Tuple[float, str, str]]) -> Dict[str, int]:
    counts = {name: 0 for name in COMMANDS}
    counts["sbatch-failed"] = 0
    for _, name, _ in calls:
        counts[name] = counts.get(name, 0) + 1
    return counts


# ---------------------------------------------------------------------------------------------
# Slurm helpers (uncounted: measurement, not the runs' own load)


def run(argv: Sequence[str], timeout: float = 60, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env)


def sacct_times(job_ids: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    """job id (123, 123_4) -> {"submit", "start", "end" (epoch s, None if unknown), "state"}."""
    bases = sorted({j.split("_")[0] for j in job_ids})
    if not bases:
        return {}
    env = dict(os.environ, SLURM_TIME_FORMAT="%s")
    res = run([real_binary("sacct"), "-X", "-P", "-n", "-o", "JobID,Submit,Start,End,State", "-j", ",".join(bases)],
              env=env)
    out: Dict[str, Dict[str, Any]] = {}

    def num(s: str) -> Optional[float]:
        return float(s) if s.isdigit() else None

    for line in res.stdout.splitlines():
        f = line.split("|")
        if len(f) < 5 or "[" in f[0]:
            continue
        out[f[0]] = {"submit": num(f[1]), "start": num(f[2]), "end": num(f[3]), "state": f[4].split()[0]}
    return out


def squeue_rows() -> List[Dict[str, str]]:
    res = run([real_binary("squeue"), "-h", "-r", "-o", "%i|%j|%T|%b|%u|%P"], timeout=30)
    rows = []
    for line in res.stdout.splitlines():
        f = line.split("|")
        if len(f) >= 6:
            rows.append({"id": f[0], "name": f[1], "state": f[2], "tres": f[3], "user": f[4], "partition": f[5]})
    return rows


def ours(row: Dict[str, str]) -> bool:
    return row["name"].startswith(OUR_NAMES)


class ForeignMonitor:
    """Samples squeue every 5 s: other people's jobs on the shared cluster are noise."""

    def __init__(self, every: float = 5.0):
        self.every = every
        self.samples: List[Dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.load_start = os.getloadavg()[0]

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                rows = [r for r in squeue_rows() if not ours(r)]
                running = [r for r in rows if r["state"] in ("RUNNING", "COMPLETING")]
                self.samples.append({"t": time.time(), "running": len(running),
                                     "gpu_running": sum(1 for r in running if "gpu" in r["tres"]),
                                     # partition `high` preempts (requeues) jobs of `debug`, ours included
                                     "high": sum(1 for r in rows if r["partition"] == "high"),
                                     "pending": sum(1 for r in rows if r["state"] == "PENDING"),
                                     "load1": os.getloadavg()[0]})
            except Exception:  # noqa: BLE001 - a missed sample is no reason to stop a benchmark
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> "ForeignMonitor":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=35)

    def summary(self) -> Dict[str, Any]:
        s = self.samples
        return {
            "samples": len(s),
            "foreign_running_max": max((x["running"] for x in s), default=0),
            "foreign_gpu_running_max": max((x["gpu_running"] for x in s), default=0),
            "foreign_high_partition_max": max((x.get("high", 0) for x in s), default=0),
            "foreign_busy_fraction": round(sum(1 for x in s if x["running"]) / len(s), 3) if s else None,
            "load1_mean": round(statistics.mean(x["load1"] for x in s), 2) if s else None,
        }


def wait_for_free_node(max_wait: float = 180.0) -> float:
    """Wait (at most max_wait) until nobody else's job holds a GPU; returns the seconds waited."""
    t0 = time.time()
    while time.time() - t0 < max_wait:
        rows = [r for r in squeue_rows() if not ours(r) and r["state"] in ("RUNNING", "COMPLETING")]
        if not any("gpu" in r["tres"] for r in rows):
            return time.time() - t0
        time.sleep(3)
    log(f"other jobs still hold GPUs after {max_wait:.0f} s: measuring anyway (noted in the results)")
    return time.time() - t0


def sweep_our_jobs() -> List[str]:
    """Cancel, by id, any job of this benchmark still in squeue; returns the ids cancelled."""
    ids = sorted({r["id"].split("_")[0] if "[" in r["id"] else r["id"] for r in squeue_rows() if ours(r)})
    if ids:
        run([real_binary("scancel"), *ids])
    return ids


# ---------------------------------------------------------------------------------------------
# Reading a study directory


def read_jsonl(path: Path) -> List[Dict[str, Any]]:
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except FileNotFoundError:
        pass
    return out


def read_timing(path: Path) -> Dict[str, Dict[str, float]]:
    """slot_trial.sh's timing file -> trial key -> {"start", "end", "job"}."""
    out: Dict[str, Dict[str, Any]] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        f = line.split()
        if len(f) >= 3 and f[0] in ("start", "end"):
            rec = out.setdefault(f[2], {})
            rec[f[0]] = float(f[1])
            if len(f) > 3:
                rec["job"] = f[3]
    return out


_SUBMITIT_TS = re.compile(r"submitit INFO \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\) - (.*)")


def submitit_marks(study_dir: Path, job_id: str) -> Dict[str, float]:
    """Times from submitit's job log: "python" (submitit started in the job: python + submitit
    import), "unpickle" (it starts loading the pickled TrialJob)."""
    marks: Dict[str, float] = {}
    for path in sorted((study_dir / "slurm" / job_id).glob("*_log.out")):
        for line in path.read_text(errors="replace").splitlines():
            m = _SUBMITIT_TS.search(line)
            if not m:
                continue
            t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
            if m.group(3).startswith("Starting with") and "python" not in marks:
                marks["python"] = t
            elif m.group(3).startswith("Loading pickle") and "unpickle" not in marks:
                marks["unpickle"] = t
    return marks


# ---------------------------------------------------------------------------------------------
# Statistics helpers


def mean(xs: Iterable[Optional[float]]) -> Optional[float]:
    vals = [x for x in xs if x is not None]
    return statistics.mean(vals) if vals else None


def rnd(x: Optional[float], nd: int = 1) -> Optional[float]:
    return None if x is None else round(x, nd)


def busy_fraction(timing: Dict[str, Dict[str, float]], makespan: Optional[float], slots: int) -> Optional[float]:
    busy = sum(r["end"] - r["start"] for r in timing.values() if "start" in r and "end" in r)
    return busy / (slots * makespan) if makespan else None


# ---------------------------------------------------------------------------------------------
# The hpc-tune run


def study_yaml(trials: int, length: float, timing: Path, concurrency: int = CONCURRENCY) -> str:
    return f"""# slot_utilisation.py: {trials} trials of {length:g} s, 1 GPU each, concurrency {concurrency}
version: 1
kind: group
hptuning:
  concurrency: {concurrency}
  grid_search: {{}}
  metric: {{name: loss, optimization: minimize}}
  matrix:
    x: {{linspace: "0:1:{trials}"}}
slurm:
  gpus: 1
  time: "{TIME_LIMIT}"
run:
  cmd: |-
    bash {shlex.quote(str(TRIAL_SCRIPT))} {length:g} {{{{ x }}}} {shlex.quote(str(timing))}
"""


def hpc_env(work: Path, call_log: Path, **extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{work / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["SLOT_CALL_LOG"] = str(call_log)
    env.update(extra)
    return env


def hpc_tune_argv(*args: str) -> List[str]:
    return [sys.executable, "-m", "hpc_tune", *args]


def start_study(work: Path, name: str, yml: str, call_log: Path, extra_args: Sequence[str] = (),
                **env_extra: str) -> Tuple[subprocess.Popen, Path, float]:
    """Start ``hpc-tune submit FILE --backend slurm --foreground`` (default poll interval)."""
    run_dir = work / name
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"{name}.yml"
    path.write_text(yml)
    out = open(run_dir / "hpc-tune.out", "w")
    argv = hpc_tune_argv("submit", str(path), "--backend", "slurm", "--foreground",
                         "--state-dir", str(work / "studies"), *extra_args)
    env = hpc_env(work, call_log, **env_extra)
    t0 = time.time()
    proc = subprocess.Popen(argv, cwd=run_dir, stdout=out, stderr=subprocess.STDOUT, env=env)
    out.close()
    return proc, run_dir, t0


def find_study_dir(run_dir: Path, proc: subprocess.Popen, timeout: float = 60) -> Path:
    t0 = time.time()
    while time.time() - t0 < timeout:
        m = re.search(r"^study \S+ created in (\S+)$", (run_dir / "hpc-tune.out").read_text(), re.MULTILINE)
        if m:
            return Path(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"hpc-tune did not create its study; see {run_dir / 'hpc-tune.out'}")


def cancel_study(work: Path, study_dir: Path, call_log: Path) -> Tuple[float, str]:
    t0 = time.time()
    res = subprocess.run(hpc_tune_argv("cancel", str(study_dir)), capture_output=True, text=True, timeout=180,
                         env=hpc_env(work, call_log), cwd=work)
    return time.time() - t0, (res.stdout + res.stderr).strip()


def wait_proc(proc: subprocess.Popen, timeout: float) -> Optional[int]:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def stop_proc(proc: subprocess.Popen) -> None:
    """SIGTERM (the controller finishes its cycle and exits), then SIGKILL: only our own child."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        if wait_proc(proc, 30) is None:
            proc.kill()
            proc.wait()


def run_hpc_tune(work: Path, length: float, trials: int) -> Dict[str, Any]:
    name = f"slot-L{length:g}"
    call_log = work / name / "calls.log"
    timing = work / name / "timing.log"
    (work / name).mkdir(parents=True, exist_ok=True)
    ideal = trials * length / CONCURRENCY
    limit = 6 * ideal + 600
    proc, run_dir, t0 = start_study(work, name, study_yaml(trials, length, timing), call_log)
    study_dir = find_study_dir(run_dir, proc)
    label = "hpc-tune"
    log(f"{label} L={length:g}s: study {study_dir.name} (pid {proc.pid}); ideal {ideal:.0f} s")
    code = wait_proc(proc, limit)
    wall = time.time() - t0
    timed_out = code is None
    if timed_out:
        log(f"hpc-tune L={length:g}s did not finish within {limit:.0f} s: cancelling it")
        cancel_study(work, study_dir, call_log)
        stop_proc(proc)
    return analyse_hpc_tune(study_dir, call_log, timing, wall, t0, trials, length, code)


def analyse_hpc_tune(study_dir: Path, call_log: Path, timing_path: Path, wall: float, t0: float, trials: int,
                     length: float, code: Optional[int]) -> Dict[str, Any]:
    journal = read_jsonl(study_dir / "journal.jsonl")
    ended = next((e for e in journal if e.get("e") == "study_end"), None)
    created = {e["id"]: e["t"] for e in journal if e.get("e") == "trial"}
    submitted: Dict[int, Dict[str, Any]] = {}
    for e in journal:
        if e.get("e") == "submitted":
            submitted[e["id"]] = {"t": e["t"], "job": e["job"]}
    ends = [e for e in journal if e.get("e") == "end"]
    states: Dict[str, int] = {}
    for e in ends:
        states[e["state"]] = states.get(e["state"], 0) + 1
    timing = read_timing(timing_path)
    jobs = {tid: s["job"] for tid, s in submitted.items()}
    sacct = sacct_times(jobs.values())
    calls = read_calls(call_log)
    counts = count_calls(calls)
    sbatch_calls = [c for c in calls if c[1] == "sbatch"]
    first_sbatch = min((c[0] for c in sbatch_calls), default=None)

    per_trial = []
    for tid in sorted(created):
        job = jobs.get(tid)
        s = sacct.get(job or "", {})
        tdir = study_dir / "trials" / str(tid)
        try:
            exit_rec = json.loads((tdir / "exit.json").read_text())
        except (OSError, ValueError):
            exit_rec = {}
        marks = submitit_marks(study_dir, job) if job else {}
        tm = timing.get(str(tid), {})
        per_trial.append({
            "id": tid, "job": job, "created": created.get(tid), "submitted": submitted.get(tid, {}).get("t"),
            "slurm_submit": s.get("submit"), "slurm_start": s.get("start"), "slurm_end": s.get("end"),
            "state": s.get("state"), "python": marks.get("python"), "unpickle": marks.get("unpickle"),
            "wrapper_start": exit_rec.get("started"), "script_start": tm.get("start"), "script_end": tm.get("end"),
            "exit_ended": exit_rec.get("ended"),
            "detected": next((e["t"] for e in ends if e["id"] == tid), None),
        })
    by_id = {r["id"]: r for r in per_trial}

    submits = [r["slurm_submit"] for r in per_trial if r["slurm_submit"] is not None]
    slurm_ends = [r["slurm_end"] for r in per_trial if r["slurm_end"] is not None]
    starts = [r["slurm_start"] for r in per_trial if r["slurm_start"] is not None]
    makespan = (max(slurm_ends) - min(submits)) if submits and slurm_ends else None
    script_ends = [r["script_end"] for r in per_trial if r["script_end"] is not None]

    # Refills: the k-th trial end the controller saw freed the slot of trial C + k.
    end_order = sorted((e["t"], i, e["id"]) for i, e in enumerate(ends))
    refills = []
    for k, (_, _, freed) in enumerate(end_order):
        new = by_id.get(CONCURRENCY + k)
        old = by_id.get(freed)
        if new is None or old is None:
            continue
        refills.append(_refill_hpc(old, new))
    first_wave = [r for r in per_trial if r["id"] < CONCURRENCY]

    return {
        "runner": "hpc-tune", "length_s": length, "trials": trials, "exit_code": code,
        "study": study_dir.name, "study_dir": str(study_dir), "study_end": ended,
        "trial_states": states,
        # resubmissions: a trial job that got SIGUSR2 (preempted by a `high` job, or its time limit)
        "retries": [{"id": e["id"], "reason": e.get("reason")} for e in journal if e.get("e") == "retry"],
        "wall_s": wall,
        "makespan_s": makespan,
        "first_start_to_last_end_s": (max(slurm_ends) - min(starts)) if starts and slurm_ends else None,
        "makespan_precise_s": (max(script_ends) - first_sbatch) if script_ends and first_sbatch else None,
        "controller_start_to_first_sbatch_s": (first_sbatch - t0) if first_sbatch else None,
        "last_end_to_exit_s": (t0 + wall - max(slurm_ends)) if slurm_ends else None,
        "ideal_s": trials * length / CONCURRENCY,
        "busy_fraction": busy_fraction(timing, makespan, CONCURRENCY),
        "calls": counts,
        "state_queries_per_poll": ((counts["sacct"] + counts["squeue"]) / counts["sacct"]) if counts["sacct"] else None,
        "max_state_queries_in_one_poll": max(_polls(calls), default=0),
        "max_ids_per_sacct": max((len(c[2].split("-j ", 1)[1].split(",")) for c in calls
                                  if c[1] == "sacct" and "-j " in c[2]), default=0),
        "trials_per_sbatch": _submission_sizes(journal),
        "first_wave": {
            "sbatch_to_slurm_start": mean(r["slurm_start"] - r["submitted"] for r in first_wave
                                          if r["slurm_start"] and r["submitted"]),
            "slurm_start_to_script": mean(r["script_start"] - r["slurm_start"] for r in first_wave
                                          if r["script_start"] and r["slurm_start"]),
        },
        "refill": _refill_summary(refills),
        "startup": {
            "slurm_start_to_python": mean(r["python"] - r["slurm_start"] for r in per_trial
                                          if r["python"] and r["slurm_start"]),
            "python_to_unpickle": mean(r["unpickle"] - r["python"] for r in per_trial if r["unpickle"] and r["python"]),
            "unpickle_to_wrapper": mean(r["wrapper_start"] - r["unpickle"] for r in per_trial
                                        if r["wrapper_start"] and r["unpickle"]),
            "wrapper_to_script": mean(r["script_start"] - r["wrapper_start"] for r in per_trial
                                      if r["script_start"] and r["wrapper_start"]),
            "script_end_to_slurm_end": mean(r["slurm_end"] - r["script_end"] for r in per_trial
                                            if r["slurm_end"] and r["script_end"]),
        },
        "per_trial": per_trial,
        "refills": refills,
        "call_log": [list(c) for c in calls],
    }


def _polls(calls: Sequence[Tuple[float, str, str]]) -> List[int]:
    """State queries per poll: a poll is one sacct plus the squeue that follows it within 3 s."""
    polls: List[List[float]] = []
    for t, name, _ in calls:
        if name == "sacct":
            polls.append([t])
        elif name == "squeue" and polls and t - polls[-1][0] < 3.0:
            polls[-1].append(t)
    return [len(p) for p in polls]


def _submission_sizes(journal: List[Dict[str, Any]]) -> List[int]:
    """Trials per sbatch, in submission order (an array's tasks share the id before "_")."""
    sizes: Dict[str, int] = {}
    for e in journal:
        if e.get("e") == "submitted":
            base = str(e["job"]).split("_")[0]
            sizes[base] = sizes.get(base, 0) + 1
    return list(sizes.values())


def _refill_hpc(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Any]:
    def d(a: Optional[float], b: Optional[float]) -> Optional[float]:
        return None if a is None or b is None else a - b

    return {
        "freed_by": old["id"], "new": new["id"],
        "gap": d(new["script_start"], old["script_end"]),
        # script end -> the controller has seen the trial end (exit record, checked every tick)
        "seen_free": d(old["detected"], old["script_end"]),
        # seen -> the next job's sbatch returned (suggest, journal, sbatch)
        "submit": d(new["submitted"], old["detected"]),
        # sbatch returned -> Slurm started the job (sacct Start: whole seconds)
        "slurm": d(new["slurm_start"], new["submitted"]),
        # job start -> the trial's command runs (python, submitit, unpickle, wrapper)
        "startup": d(new["script_start"], new["slurm_start"]),
    }


def _refill_summary(refills: List[Dict[str, Any]]) -> Dict[str, Any]:
    keys = ("gap", "seen_free", "submit", "slurm", "startup")
    gaps = [r["gap"] for r in refills if r["gap"] is not None]
    return {"n": len(refills), **{k: mean(r[k] for r in refills) for k in keys},
            "gap_median": statistics.median(gaps) if gaps else None,
            # a refill that waited > 10 s for Slurm: someone else's job took the slot first
            "slurm_waits_over_10s": sum(1 for r in refills if r["slurm"] is not None and r["slurm"] > 10)}


# ---------------------------------------------------------------------------------------------
# The baseline: one plain sbatch --array


def run_baseline(work: Path, length: float, trials: int) -> Dict[str, Any]:
    name = f"base-L{length:g}"
    run_dir = work / name
    (run_dir / "results").mkdir(parents=True, exist_ok=True)
    call_log = run_dir / "calls.log"
    poll_log = run_dir / "poll-calls.log"
    timing = run_dir / "timing.log"
    script = run_dir / "baseline.sh"
    script.write_text(f"""#!/bin/bash
# slot_utilisation.py baseline: array task i runs slot_trial.sh with x = i / (N - 1), like hpc-tune's grid.
export HPC_TUNE_TRIAL_ID=$SLURM_ARRAY_TASK_ID
export HPC_TUNE_RESULT_FILE={shlex.quote(str(run_dir / 'results'))}/$SLURM_ARRAY_TASK_ID.jsonl
x=$(awk -v i="$SLURM_ARRAY_TASK_ID" -v n={trials} 'BEGIN {{ printf "%.12g", (n > 1) ? i / (n - 1) : 0 }}')
exec bash {shlex.quote(str(TRIAL_SCRIPT))} {length:g} "$x" {shlex.quote(str(timing))}
""")
    argv = ["sbatch", "--parsable", f"--array=0-{trials - 1}%{CONCURRENCY}", "--gres=gpu:1", f"--time={TIME_LIMIT}",
            f"--job-name=slotbase-L{length:g}", f"--output={run_dir}/slurm-%A_%a.out", str(script)]
    t0 = time.time()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=run_dir,
                         env=hpc_env(work, call_log))
    if res.returncode != 0:
        raise RuntimeError(f"baseline sbatch failed: {res.stderr.strip()}")
    job = res.stdout.strip().split(";")[0]
    log(f"baseline L={length:g}s: sbatch {' '.join(argv[2:5])} -> job {job}")
    limit = 6 * trials * length / CONCURRENCY + 600
    done_at = None
    poll_env = hpc_env(work, poll_log)
    while time.time() - t0 < limit:
        time.sleep(BASELINE_POLL_S)
        out = subprocess.run(["sacct", "-X", "-P", "-n", "-o", "JobID,State", "-j", job], capture_output=True,
                             text=True, timeout=60, env=poll_env).stdout
        rows = [line.split("|") for line in out.splitlines() if "|" in line]
        finished = [r for r in rows if "[" not in r[0] and r[1].split()[0] in FINAL]
        if len(finished) >= trials and len(finished) == len(rows):
            done_at = time.time()
            break
    if done_at is None:
        log(f"baseline L={length:g}s did not finish within {limit:.0f} s: cancelling job {job}")
        run([real_binary("scancel"), job])
    wall = (done_at or time.time()) - t0
    sacct = sacct_times([job])
    tasks = {k: v for k, v in sacct.items() if k.startswith(job + "_")}
    timing_recs = read_timing(timing)
    per_task = []
    for k in sorted(tasks, key=lambda j: int(j.split("_")[1])):
        i = k.split("_")[1]
        tm = timing_recs.get(i, {})
        per_task.append({"task": int(i), "job": k, **{f"slurm_{x}": tasks[k][x] for x in ("submit", "start", "end")},
                         "state": tasks[k]["state"], "script_start": tm.get("start"), "script_end": tm.get("end")})
    by_task = {r["task"]: r for r in per_task}
    submits = [r["slurm_submit"] for r in per_task if r["slurm_submit"] is not None]
    ends = [r["slurm_end"] for r in per_task if r["slurm_end"] is not None]
    starts = [r["slurm_start"] for r in per_task if r["slurm_start"] is not None]
    makespan = (max(ends) - min(submits)) if submits and ends else None
    # Refills: the k-th task to end (script end) freed the slot that task C + k started in.
    order = sorted((r["script_end"], r["task"]) for r in per_task if r["script_end"] is not None)
    refills = []
    for k, (_, freed) in enumerate(order):
        new, old = by_task.get(CONCURRENCY + k), by_task[freed]
        if new is None:
            continue

        def d(a: Optional[float], b: Optional[float]) -> Optional[float]:
            return None if a is None or b is None else a - b

        refills.append({"freed_by": freed, "new": new["task"], "gap": d(new["script_start"], old["script_end"]),
                        "seen_free": d(old["slurm_end"], old["script_end"]), "submit": 0.0,
                        "slurm": d(new["slurm_start"], old["slurm_end"]),
                        "startup": d(new["script_start"], new["slurm_start"])})
    script_ends = [r["script_end"] for r in per_task if r["script_end"] is not None]
    states: Dict[str, int] = {}
    for r in per_task:
        states[r["state"]] = states.get(r["state"], 0) + 1
    history = run([real_binary("sacct"), "-D", "-X", "-P", "-n", "-o", "JobID,State", "-j", job]).stdout
    preempted = [line.split("|")[0] for line in history.splitlines()
                 if line.count("|") >= 1 and line.split("|")[1].split()[0] in ("PREEMPTED", "REQUEUED")]
    return {
        "runner": "sbatch --array", "length_s": length, "trials": trials, "job": job, "argv": argv,
        "trial_states": states,
        "retries": [{"id": j, "reason": "preempted/requeued (sacct -D)"} for j in preempted],
        "wall_s": wall,
        "makespan_s": makespan,
        "first_start_to_last_end_s": (max(ends) - min(starts)) if starts and ends else None,
        "makespan_precise_s": (max(script_ends) - t0) if script_ends else None,
        "ideal_s": trials * length / CONCURRENCY,
        "busy_fraction": busy_fraction(timing_recs, makespan, CONCURRENCY),
        "calls": count_calls(read_calls(call_log)),
        "poll_calls": count_calls(read_calls(poll_log)),
        "first_wave": {
            "sbatch_to_slurm_start": mean(r["slurm_start"] - t0 for r in per_task
                                          if r["task"] < CONCURRENCY and r["slurm_start"]),
            "slurm_start_to_script": mean(r["script_start"] - r["slurm_start"] for r in per_task
                                          if r["task"] < CONCURRENCY and r["script_start"] and r["slurm_start"]),
        },
        "refill": _refill_summary(refills),
        "per_trial": per_task,
        "refills": refills,
    }


# ---------------------------------------------------------------------------------------------
# Arrays: 1000 trials without concurrency


def task_states(job_ids: Sequence[str]) -> Dict[str, int]:
    """Slurm's final word on every task of these jobs, ``123_[8-999%1000]`` ranges counted task by task
    (a task listed on its own row as well wins over the range)."""
    if not job_ids:
        return {}
    res = run([real_binary("sacct"), "-X", "-P", "-n", "-o", "JobID,State", "-j", ",".join(job_ids)])
    ranged: Dict[str, str] = {}
    single: Dict[str, str] = {}
    for line in res.stdout.splitlines():
        f = line.split("|")
        if len(f) < 2:
            continue
        state = f[1].split()[0]
        m = re.match(r"^(\d+)_\[([0-9,\-]+)", f[0])
        if m:
            for part in m.group(2).split(","):
                lo, _, hi = part.partition("-")
                for i in range(int(lo), int(hi or lo) + 1):
                    ranged[f"{m.group(1)}_{i}"] = state
        else:
            single[f[0]] = state
    out: Dict[str, int] = {}
    for state in {**ranged, **single}.values():
        out[state] = out.get(state, 0) + 1
    return out


def max_array_size() -> int:
    res = run([real_binary("scontrol"), "show", "config"])
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", res.stdout, re.MULTILINE)
    return int(m.group(1)) if m else 1001


def run_arrays(work: Path, n: int) -> Dict[str, Any]:
    name = f"slot-arrays{n}"
    call_log = work / name / "calls.log"
    (work / name).mkdir(parents=True, exist_ok=True)
    yml = f"""# slot_utilisation.py: {n} trivially short trials, generation D grid without concurrency
version: 1.1
kind: operation
matrix:
  kind: grid
  params:
    x: {{kind: linspace, value: "0:1:{n}"}}
run:
  cmd: |-
    true; printf '{{"loss": %s}}\\n' {{{{ x }}}} >> "$HPC_TUNE_RESULT_FILE"
"""
    mas = max_array_size()
    proc, run_dir, t0 = start_study(work, name, yml, call_log, extra_args=("--time", "1"))
    study_dir = find_study_dir(run_dir, proc)
    log(f"arrays: study {study_dir.name} of {n} trials (pid {proc.pid}); MaxArraySize = {mas}")
    journal_path = study_dir / "journal.jsonl"
    submitted_at = None
    while time.time() - t0 < 300 and proc.poll() is None:
        events = read_jsonl(journal_path)
        if sum(1 for e in events if e.get("e") == "submitted") >= n:
            submitted_at = time.time()
            break
        time.sleep(0.25)
    first_wave = read_calls(call_log)
    wave_counts = count_calls(first_wave)
    events = read_jsonl(journal_path)
    jobs = sorted({e["job"] for e in events if e.get("e") == "submitted"})
    array_ids = sorted({j.split("_")[0] for j in jobs})
    log(f"arrays: {len(jobs)} trials submitted in {(submitted_at or time.time()) - t0:.1f} s with "
        f"{wave_counts['sbatch']} sbatch call(s) (arrays {', '.join(array_ids)}); cancelling")
    time.sleep(2)  # let the controller's first poll happen: one sacct for every live trial
    cancel_t0 = time.time()
    cancel_s, cancel_out = cancel_study(work, study_dir, call_log)
    code = wait_proc(proc, 90)
    if code is None:
        stop_proc(proc)
    # Nothing of this study may stay in squeue.
    left: List[str] = []
    t_check = time.time()
    while time.time() - t_check < 90:
        rows = squeue_rows()
        left = [r["id"] for r in rows if r["id"].split("_")[0] in array_ids or study_dir.name in r["name"]]
        if not left:
            break
        time.sleep(2)
    swept: List[str] = []
    if left:
        swept = sorted({x.split("_")[0] for x in left})
        run([real_binary("scancel"), *swept])
    all_calls = read_calls(call_log)
    sacct_calls = [c for c in all_calls if c[1] == "sacct" and c[0] < cancel_t0]
    events = read_jsonl(journal_path)
    states: Dict[str, int] = {}
    for e in events:
        if e.get("e") == "end":
            states[e["state"]] = states.get(e["state"], 0) + 1
    time.sleep(5)  # sacct (slurmdbd) lags seconds behind slurmctld on this machine
    slurm_states = task_states(array_ids)
    return {
        "trials": n, "max_array_size": mas, "study": study_dir.name,
        "submitted": len(jobs), "array_ids": array_ids,
        "first_wave_calls": wave_counts,
        "sbatch_goal": math.ceil(n / mas),
        "time_to_submit_all_s": (submitted_at - t0) if submitted_at else None,
        "cancel_s": cancel_s, "cancel_output": cancel_out, "controller_exit_code": code,
        "left_in_squeue_after_cancel": left, "swept_by_benchmark": swept,
        "calls_total": count_calls(all_calls),
        "calls_before_cancel": count_calls([c for c in all_calls if c[0] < cancel_t0]),
        "calls_during_cancel": count_calls([c for c in all_calls if c[0] >= cancel_t0]),
        "call_log": [[round(c[0] - t0, 2), c[1], c[2][:120]] for c in all_calls],
        "sacct_calls": [c[2] for c in sacct_calls],
        "trial_states": states, "slurm_states": slurm_states,
        "study_end": next((e for e in events if e.get("e") == "study_end"), None),
    }


# ---------------------------------------------------------------------------------------------
# Busy: sbatch fails with "Socket timed out" a few times


def run_busy(work: Path, failures: int, trials: int, length: float) -> Dict[str, Any]:
    name = f"slot-busy{failures}"
    run_dir = work / name
    run_dir.mkdir(parents=True, exist_ok=True)
    call_log = run_dir / "calls.log"
    timing = run_dir / "timing.log"
    fail_file = run_dir / "sbatch-failures-left"
    fail_file.write_text(f"{failures}\n")
    proc, run_dir, t0 = start_study(work, name, study_yaml(trials, length, timing), call_log,
                                    SLOT_SBATCH_FAIL_FILE=str(fail_file))
    study_dir = find_study_dir(run_dir, proc)
    log(f"busy: study {study_dir.name}: the first {failures} sbatch calls fail with {BUSY_MESSAGE!r}")
    limit = 600 + 6 * trials * length / CONCURRENCY
    code = wait_proc(proc, limit)
    wall = time.time() - t0
    if code is None:
        log("busy: the study did not finish in time: cancelling it")
        cancel_study(work, study_dir, call_log)
        stop_proc(proc)
    calls = read_calls(call_log)
    events = read_jsonl(study_dir / "journal.jsonl")
    states: Dict[str, int] = {}
    for e in events:
        if e.get("e") == "end":
            states[e["state"]] = states.get(e["state"], 0) + 1
    try:
        clog = (study_dir / "controller" / "controller.log").read_text().splitlines()
    except OSError:
        clog = []
    busy_lines = [line for line in clog if "busy" in line]
    attempts = [c for c in calls if c[1] in ("sbatch", "sbatch-failed")]
    return {
        "failures_injected": failures, "trials": trials, "length_s": length, "study": study_dir.name,
        "exit_code": code, "wall_s": wall,
        "study_end": next((e for e in events if e.get("e") == "study_end"), None),
        "trial_states": states, "calls": count_calls(calls),
        "sbatch_attempt_offsets_s": [round(c[0] - t0, 1) for c in attempts],
        "sbatch_attempt_results": [c[1] for c in attempts],
        "controller_busy_log": busy_lines,
    }


# ---------------------------------------------------------------------------------------------
# Job startup: what a trial job imports before its command runs


def startup_probe(parallel: int = CONCURRENCY) -> Dict[str, Any]:
    """Wall time of ``parallel`` concurrent python processes importing what a trial job imports
    today (unpickling TrialJob imports hpc_tune.backends.slurm) against the minimum a job needs
    (submitit + hpc_tune.trial), on this (shared, loaded) machine."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out: Dict[str, Any] = {"load1": os.getloadavg()[0]}
    for label, stmt in (("python -c pass", "pass"),
                        ("import submitit, hpc_tune.trial", "import submitit, submitit.helpers, hpc_tune.trial"),
                        ("import hpc_tune.backends.slurm (what a job unpickles)", "import hpc_tune.backends.slurm")):
        walls = []
        for _ in range(3):
            t = time.time()
            procs = [subprocess.Popen([sys.executable, "-c", stmt], env=env) for _ in range(parallel)]
            for p in procs:
                p.wait()
            walls.append(time.time() - t)
        out[label] = statistics.median(walls)
    return out


# ---------------------------------------------------------------------------------------------
# Report


RUNNER_KEYS = ("hpc_tune", "light", "tick", "baseline")  # light, tick: variants in runs before 2026-11-24 11:00


def runners(pair: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [pair[k] for k in RUNNER_KEYS if k in pair]


def fmt(x: Optional[float], nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def tables(result: Dict[str, Any]) -> str:
    parts = []
    rows = []
    for pair in result["pairs"]:
        base = pair["baseline"]
        for r in runners(pair):
            c = r["calls"]
            minutes = r["wall_s"] / 60
            state = c["sacct"] + c["squeue"]
            own_poll = r.get("poll_calls", {}).get("sacct")
            rows.append([
                f"{r['length_s']:g}", r["runner"], f"{r['trials']}",
                fmt(r["makespan_s"], 0), fmt(r["wall_s"]), fmt(r["ideal_s"], 0),
                fmt(r["makespan_s"] / r["ideal_s"] if r["makespan_s"] else None, 2),
                fmt(r["makespan_s"] / base["makespan_s"] if r["makespan_s"] and base["makespan_s"] else None, 3),
                fmt(r["wall_s"] / base["wall_s"], 3),
                fmt(r["busy_fraction"], 2),
                c["sbatch"], c["sacct"] if own_poll is None else f"{c['sacct']} (+{own_poll} own polls)",
                c["squeue"], c["scancel"], c["scontrol"],
                fmt((c["sbatch"] + state + c["scancel"]) / minutes, 2),
                fmt(state / minutes, 2) if own_poll is None else fmt((state + own_poll) / minutes, 1),
            ])
    parts.append(tabulate(rows, headers=[
        "L s", "runner", "N", "makespan s", "wall s", "ideal s", "/ideal", "/array (makespan)", "/array (wall)",
        "GPU busy", "sbatch", "sacct", "squeue", "scancel", "scontrol", "sched calls/min", "state queries/min"],
        disable_numparse=True))

    rows = []
    for pair in result["pairs"]:
        for r in runners(pair):
            f, rf = r["first_wave"], r["refill"]
            rows.append([f"{r['length_s']:g}", r["runner"], fmt(f["sbatch_to_slurm_start"]),
                         fmt(f["slurm_start_to_script"]), rf["n"], fmt(rf["gap"]), fmt(rf.get("gap_median")),
                         fmt(rf["seen_free"]), fmt(rf["submit"]), fmt(rf["slurm"]), fmt(rf["startup"]),
                         rf.get("slurm_waits_over_10s", "-")])
    parts.append("Where a GPU slot's time goes (mean seconds). First wave: sbatch -> Slurm start -> the trial's\n"
                 "command runs. Refill (a trial ends, the next one starts in its slot): gap = previous script end ->\n"
                 "next script start = seen free (hpc-tune: exit record read by the controller; array: sacct End)\n"
                 "+ submit (hpc-tune: controller -> sbatch returned) + Slurm (-> sacct Start, whole seconds)\n"
                 "+ startup (job start -> command runs; hpc-tune: python, submitit, unpickle, wrapper).\n"
                 + "Slurm waits > 10 s: refills whose job waited that long (another user's job took the slot).\n"
                 + tabulate(rows, headers=["L s", "runner", "1st: sbatch->start", "1st: start->cmd", "refills",
                                           "gap", "gap median", "seen free", "submit", "Slurm", "startup",
                                           "Slurm waits > 10 s"], disable_numparse=True))

    rows = []
    for r in (r for pair in result["pairs"] for r in runners(pair) if "startup" in r):
        s = r["startup"]
        rows.append([f"{r['length_s']:g}", r["runner"], fmt(s["slurm_start_to_python"]),
                     fmt(s["python_to_unpickle"], 2), fmt(s["unpickle_to_wrapper"], 2), fmt(s["wrapper_to_script"], 2),
                     fmt(s["script_end_to_slurm_end"])])
    parts.append("hpc-tune job startup, mean s (sacct Start is whole seconds): Start -> submitit running\n"
                 "(python + submitit import), -> unpickle begins, unpickle -> run_trial starts (imports of\n"
                 "TrialJob's module), -> bash command starts; and script end -> sacct End.\n"
                 + tabulate(rows, headers=["L s", "runner", "start->python", "python->unpickle", "unpickle->wrapper",
                                           "wrapper->cmd", "cmd end->End"], disable_numparse=True))
    if result.get("startup_probe"):
        p = result["startup_probe"]
        parts.append(f"{CONCURRENCY} concurrent imports (median of 3 wall times, load1 {p['load1']:.1f}): "
                     + "; ".join(f"`{k}` {v:.2f} s" for k, v in p.items() if k != "load1"))

    rows = []
    for pair in result["pairs"]:
        for r in runners(pair):
            n = r["noise"]
            retries = r.get("retries")
            rows.append([f"{r['length_s']:g}", r["runner"], fmt(r["waited_for_free_node_s"], 0), n["samples"],
                         n["foreign_running_max"], n["foreign_gpu_running_max"],
                         n.get("foreign_high_partition_max", "-"), n["foreign_busy_fraction"],
                         fmt(n["load1_mean"], 2), "-" if retries is None else len(retries),
                         json.dumps(r["trial_states"])])
    parts.append("Noise (other people's jobs on the shared cluster, squeue every 5 s; 1-minute load average;\n"
                 "jobs in partition `high` preempt ours; preempted = trial jobs of ours preempted and rerun):\n"
                 + tabulate(rows, headers=["L s", "runner", "waited s", "samples", "foreign running max",
                                           "foreign GPU jobs max", "foreign in `high` max", "fraction with foreign",
                                           "load1", "preempted", "trial states"],
                            disable_numparse=True))

    lines = []
    a = result.get("arrays")
    if a:
        lines.append(
            f"Arrays: {a['trials']} trials (gen D grid, no concurrency, --time 1): {a['submitted']} submitted in "
            f"{fmt(a['time_to_submit_all_s'])} s with {a['first_wave_calls']['sbatch']} sbatch call(s) "
            f"(goal <= ceil({a['trials']}/MaxArraySize {a['max_array_size']}) = {a['sbatch_goal']}), arrays "
            f"{', '.join(a['array_ids'])}; state queries while {a['submitted']} trials were live: "
            f"{len(a['sacct_calls'])} sacct ({'; '.join(a['sacct_calls'][:3])}), "
            f"{a.get('calls_before_cancel', a['calls_total'])['squeue']} squeue; `hpc-tune cancel` took "
            f"{a['cancel_s']:.1f} s: {a['calls_total']['scancel']} scancel call(s) for all trials"
            + (f", {a['calls_during_cancel']['squeue']} squeue (cancel's search by job name)"
               if "calls_during_cancel" in a else "") + "; left in squeue afterwards: "
            f"{len(a['left_in_squeue_after_cancel'])}{' (swept by the benchmark)' if a['swept_by_benchmark'] else ''}; "
            f"task states in sacct (may miss cancelled pending ones) {json.dumps(a['slurm_states'])}.")
    b = result.get("busy")
    if b:
        end = b["study_end"] or {}
        lines.append(
            f"Busy: the first {b['failures_injected']} sbatch calls failed with \"{BUSY_MESSAGE.split(': ', 2)[-1]}\"; "
            f"sbatch attempts at {b['sbatch_attempt_offsets_s']} s ({', '.join(b['sbatch_attempt_results'])}); "
            f"study {end.get('state', 'did not end')} ({end.get('reason', '')}) after {b['wall_s']:.0f} s, trials "
            f"{json.dumps(b['trial_states'])}; controller log: "
            + " | ".join(line.split(" ", 3)[-1] for line in b["controller_busy_log"][:5]))
    if lines:
        parts.append("\n".join(lines))
    parts.append(goals_text(result))
    return "\n\n".join(parts)


GOALS = {10.0: 1.10, 60.0: 1.03}


def goals_text(result: Dict[str, Any]) -> str:
    rows = []
    for pair in result["pairs"]:
        hpc, base = pair["hpc_tune"], pair["baseline"]
        goal = GOALS.get(hpc["length_s"])
        if goal is not None and hpc["makespan_s"] and base["makespan_s"]:
            for r in runners(pair)[:-1]:
                ratio = r["makespan_s"] / base["makespan_s"]
                wall_ratio = r["wall_s"] / base["wall_s"]
                verdict = "met" if max(ratio, wall_ratio) <= goal else (
                    "met (makespan), missed (wall)" if ratio <= goal else f"MISSED by {100 * (ratio / goal - 1):.0f} %")
                rows.append([f"makespan / array at L={r['length_s']:g} s ({r['runner']})", f"<= {goal:.2f}",
                             f"{ratio:.3f} (wall {wall_ratio:.3f})", verdict if r is hpc else f"({verdict})"])
        c = hpc["calls"]
        polls = _polls([tuple(x) for x in hpc.get("call_log", [])])
        extra = sum(1 for n in polls if n > 1)
        rows.append([f"state queries per poll at L={hpc['length_s']:g} s", "1",
                     f"{c['sacct']} polls: {c['sacct']} sacct + {c['squeue']} squeue; max {max(polls, default=0)} "
                     f"in one poll; up to {hpc['max_ids_per_sacct']} job ids in one sacct",
                     "met" if not extra else f"met for sacct; {extra} poll(s) also ran squeue (sacct lag)"])
    a = result.get("arrays")
    if a:
        rows.append([f"sbatch calls for {a['trials']} trials", f"<= {a['sbatch_goal']}",
                     str(a["first_wave_calls"]["sbatch"]),
                     "met" if a["first_wave_calls"]["sbatch"] <= a["sbatch_goal"] and a["submitted"] == a["trials"]
                     else "MISSED"])
        before = a.get("calls_before_cancel", a["calls_total"])
        rows.append([f"state queries with {a['submitted']} live trials", "1 per poll",
                     f"{len(a['sacct_calls'])} sacct, {before['squeue']} squeue",
                     "met" if len(a["sacct_calls"]) <= 1 and before["squeue"] == 0 else
                     "met for sacct; squeue too (sacct lag after sbatch)"])
        rows.append(["nothing left in squeue after cancel", "0", str(len(a["left_in_squeue_after_cancel"])),
                     "met" if not a["left_in_squeue_after_cancel"] else "MISSED"])
    b = result.get("busy")
    if b:
        state = (b["study_end"] or {}).get("state")
        rows.append(["busy scheduler: back off, study finishes", "finished",
                     f"{state}, {b['trial_states']}", "met" if state == "finished" else "MISSED"])
    return "Goals:\n" + tabulate(rows, headers=["goal", "target", "measured", ""], disable_numparse=True)


def append_readme(text: str, command: str, result: Dict[str, Any]) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    section = (
        f"\n## slot_utilisation.py: GPU-slot utilisation and scheduler load ({result['date']})\n\n"
        f"Machine: {machine} (`uname -m`: {result['uname_m']}, `nproc`: {result['nproc']}); "
        f"{result['slurm_version']}, one node, 4 fake GPUs, sched_interval=5 s. Command:\n\n"
        f"```\n{command}\n```\n\n"
        f"hpc-tune runs with its defaults (poll interval 30 s; exit records read every 0.25 s with up to "
        f"50 live trials); the baseline is one "
        f"`sbatch --array=0-(N-1)%4 --gres=gpu:1` of the same trial script (`benchmarks/slot_trial.sh`), "
        f"watched by one sacct every 2 s. Makespans are sacct Submit -> last End. Noise: the cluster and "
        f"the machine are shared with other engineers' test jobs and CPU-heavy work, so single runs vary "
        f"(see the noise table). Raw data: `benchmarks/results/{result['json_name']}`.\n\n"
        f"```\n{text}\n```\n"
    )
    if not README.exists():
        with open(README, "a", encoding="utf-8") as fh:
            if fh.tell() == 0:
                fh.write(README_INTRO)
    with open(README, "a", encoding="utf-8") as fh:
        fh.write(section)


# ---------------------------------------------------------------------------------------------


def measured_run(fn: Any, *args: Any) -> Dict[str, Any]:
    waited = wait_for_free_node()
    with ForeignMonitor() as mon:
        r = fn(*args)
    r["waited_for_free_node_s"] = waited
    r["noise"] = mon.summary()
    return r


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=float, nargs="+", default=[10.0, 60.0], help="trial lengths L in seconds")
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--quick", action="store_true", help="smoke run: 8 trials of 3 s; README untouched")
    p.add_argument("--results-dir", default=str(RESULTS), help="where the raw JSON goes (default benchmarks/results)")
    p.add_argument("--array-trials", type=int, default=1000, help="trials of the array check (0: skip it)")
    p.add_argument("--busy-failures", type=int, default=3, help="failing sbatch calls of the busy check (0: skip)")
    p.add_argument("--no-readme", action="store_true")
    p.add_argument("--skip-pairs", action="store_true", help="only the array and busy checks")
    p.add_argument("--report", metavar="JSON", help="only print the tables of an earlier run's raw JSON")
    args = p.parse_args(argv)
    if args.report:
        print(tables(json.loads(Path(args.report).read_text())))
        return 0
    if args.quick:
        args.lengths, args.trials = [3.0], 8

    for name in COMMANDS:
        real_binary(name)
    if run([real_binary("sinfo"), "-h"]).returncode != 0:
        raise SystemExit("sinfo failed: start the cluster with scripts/slurm-cluster.sh up")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    work = Path(f"/tmp/slot_utilisation-{stamp}")
    write_wrappers(work / "bin")
    command = "python benchmarks/slot_utilisation.py" + (" " + " ".join(shlex.quote(a) for a in sys.argv[1:])
                                                         if argv is None and sys.argv[1:] else "")
    result: Dict[str, Any] = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "command": command,
        "uname_m": platform.machine(), "nproc": os.cpu_count(),
        "slurm_version": run([real_binary("sinfo"), "--version"]).stdout.strip(),
        "hpc_tune_git": run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).stdout.strip(),
        "work_dir": str(work), "concurrency": CONCURRENCY, "time_limit": TIME_LIMIT,
        "pairs": [],
    }
    log(f"work dir {work}")
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    json_name = f"slot_utilisation-{stamp}.json"
    result["json_name"] = json_name
    try:
        if not args.skip_pairs:
            result["startup_probe"] = startup_probe()
            for i, length in enumerate(args.lengths):
                # Alternate the order, so that drift in the cluster's load does not favour one runner.
                order = ["baseline", "hpc_tune"]
                order = order if i % 2 == 0 else order[::-1]
                pair: Dict[str, Any] = {}
                for which in order:
                    if which == "baseline":
                        pair[which] = measured_run(run_baseline, work, length, args.trials)
                    else:
                        pair[which] = measured_run(run_hpc_tune, work, length, args.trials)
                    r = pair[which]
                    log(f"{r['runner']} L={length:g}s: makespan {fmt(r['makespan_s'], 0)} s, wall {r['wall_s']:.1f} s, "
                        f"ideal {r['ideal_s']:.0f} s, calls {r['calls']}")
                result["pairs"].append(pair)
                (results / json_name).write_text(json.dumps(result, indent=1, default=str))
        if args.array_trials > 0:
            result["arrays"] = run_arrays(work, args.array_trials)
        if args.busy_failures > 0:
            result["busy"] = measured_run(run_busy, work, args.busy_failures, 8, 3.0)
    finally:
        swept = sweep_our_jobs()
        if swept:
            log(f"cancelled jobs of this benchmark still queued: {swept}")
        result["final_sweep"] = swept
        (results / json_name).write_text(json.dumps(result, indent=1, default=str))

    text = tables(result)
    print()
    print(text)
    print(f"\nraw: {results / json_name}\nwork files: {work}")
    if not (args.quick or args.no_readme):
        append_readme(text, command, result)
        print(f"appended to {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
