"""Helpers of the fault-injection tests: drive the real ``hpc-tune`` command line, read a
study's files, talk to the real Slurm cluster, and run whole scenarios concurrently.

A *scenario* is one study driven through its faults from start to end (a function that
blocks for a minute or three and returns what it saw). The tests only assert on what a
scenario returns and on the files it leaves. ``conftest.py`` starts every scenario the
selected tests need at once, in threads, so that the slow Slurm studies overlap.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

import hpc_tune
from hpc_tune.trial import read_json, write_json_atomic  # noqa: F401 (the tests use fk.read_json)

ROOT = Path(__file__).resolve().parents[2]
# The folder that holds the hpc_tune these tests run against (site-packages in CI, where the
# wheel is installed; this repository with `pip install -e`): first on the children's path.
PACKAGE_PARENT = Path(hpc_tune.__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
CKPT = DATA / "ckpt_trial.py"
PROBE = DATA / "probe_trial.py"
PY = sys.executable

# ------------------------------------------------------------------------------ scenarios

# The cluster a scenario needs: none (local backend), the one-node cluster, or the three-node
# one (`scripts/slurm-cluster.sh multi up`, chosen with SLURM_CONF).
MULTINODE = "multinode"
# name -> (function(workdir, **kwargs) -> dict, kwargs, needs: False, True (one-node) or MULTINODE)
SCENARIOS: Dict[str, Tuple[Callable[..., Dict[str, Any]], Dict[str, Any], Any]] = {}


def scenario(name: str, *, slurm: Any, **kwargs: Any) -> Callable:
    """Register ``fn(workdir, **kwargs)`` as scenario ``name`` (a decorator; stackable).
    ``slurm``: False, True (the one-node cluster) or MULTINODE."""
    def register(fn: Callable[..., Dict[str, Any]]) -> Callable[..., Dict[str, Any]]:
        SCENARIOS[name] = (fn, kwargs, slurm)
        return fn
    return register


class Cleanup:
    """What a scenario leaves behind: study ids (their Slurm jobs are cancelled by name),
    extra Slurm job ids, and processes we started (ended by their own pid)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.studies: Dict[str, List[Tuple[str, Optional[str]]]] = defaultdict(list)  # scenario -> (study id, conf)
        self.jobs: Dict[str, List[str]] = defaultdict(list)  # scenario -> extra job ids
        self.procs: Dict[str, List[subprocess.Popen]] = defaultdict(list)

    def study(self, owner: str, study_dir: str, conf: Optional[str] = None) -> None:
        """``conf``: the SLURM_CONF of the cluster its jobs run on (None: the default one)."""
        with self.lock:
            self.studies[owner].append((os.path.basename(study_dir), conf))

    def job(self, owner: str, job_id: str) -> None:
        with self.lock:
            self.jobs[owner].append(job_id)

    def proc(self, owner: str, proc: subprocess.Popen) -> None:
        with self.lock:
            self.procs[owner].append(proc)

    def run(self, owner: str) -> None:
        with self.lock:
            procs, studies, jobs = list(self.procs[owner]), list(self.studies[owner]), list(self.jobs[owner])
        for p in procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                    p.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.kill(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        for study_id, conf in studies:
            scancel_study(study_id, conf)
        if jobs and slurm_here():
            subprocess.run(["scancel", *jobs], capture_output=True, timeout=60)


CLEANUP = Cleanup()


class Gate:
    """Keeps the preemption test's preemptor away from the other Slurm scenarios of the
    session (a job of the `high` partition may take the core of any `debug` job, not only of
    the GPU trials it is aimed at). The other scenarios run inside ``other()``; the
    preemption scenario holds the gate while it preempts: from the start of the session
    (``hold_first``, called before any scenario starts), or later once all the others have
    ended (``hold_when_others_done``)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.held = False
        self.pending = 0  # other scenarios not ended yet

    def hold_first(self, others: int) -> None:
        with self.cond:
            self.held, self.pending = True, others

    def release(self) -> None:
        with self.cond:
            self.held = False
            self.cond.notify_all()

    def hold_when_others_done(self) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.pending == 0)
            self.held = True

    def abort(self) -> None:
        with self.cond:
            self.held, self.pending = False, 0
            self.cond.notify_all()

    def other(self, fn: Callable[[], Any]) -> Any:
        with self.cond:
            self.cond.wait_for(lambda: not self.held)
        try:
            return fn()
        finally:
            with self.cond:
                self.pending -= 1
                self.cond.notify_all()


GATE = Gate()
ABORT = threading.Event()  # set when the session ends: scenarios still waiting give up

# ------------------------------------------------------------------------------ the CLI


def _env(extra: Optional[Dict[str, str]]) -> Dict[str, str]:
    """The environment of a command we start: the hpc_tune these tests imported first (an
    installed one may point to another checkout), no fault unless asked for."""
    env = {k: v for k, v in os.environ.items() if k != "HPC_TUNE_FAULT"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def cli(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``hpc-tune ARGS`` in a fresh process (run from the repository root)."""
    return subprocess.run([PY, "-m", "hpc_tune", *args], capture_output=True, text=True, timeout=timeout,
                          env=_env(env), cwd=str(ROOT))


def start_cli(owner: str, log: Path, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """``hpc-tune ARGS`` in the background, output to ``log``."""
    fh = open(log, "ab")
    proc = subprocess.Popen([PY, "-m", "hpc_tune", *args], stdout=fh, stderr=subprocess.STDOUT, env=_env(env),
                            cwd=str(ROOT))
    fh.close()
    CLEANUP.proc(owner, proc)
    return proc


class ForkedCLI:
    """``hpc-tune`` commands run by cli_zygote.py: each in a fresh process, forked from an
    interpreter that has imported hpc_tune (a restart in milliseconds, not seconds)."""

    def __init__(self, owner: str) -> None:
        env = _env({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        self.proc = subprocess.Popen([PY, str(Path(__file__).with_name("cli_zygote.py"))], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
        CLEANUP.proc(owner, self.proc)

    def run(self, *args: str, log: Path, env: Optional[Dict[str, str]] = None) -> int:
        """Run ``hpc-tune ARGS`` to its end; its exit code, -9 when SIGKILL ended it."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"args": list(args), "env": env or {}, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"cli_zygote.py died (exit {self.proc.poll()})"
        return int(json.loads(line)["rc"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def wait_proc(proc: subprocess.Popen, timeout: float, what: str) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what}: still running after {timeout:.0f} s") from None


def write_study(directory: Path, body: str, **values: Any) -> str:
    """A study file from ``body``: PY, CKPT and PROBE are replaced by this interpreter and the
    test trials; ``{name}`` placeholders by ``values``."""
    directory.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(body).replace("PY", PY).replace("CKPT", str(CKPT)).replace("PROBE", str(PROBE))
    for k, v in values.items():
        text = text.replace("{" + k + "}", str(v))
    path = directory / "study.yml"
    path.write_text(text)
    return str(path)


def only_study(state_dir: Path) -> str:
    studies = [d for d in os.listdir(state_dir) if os.path.isfile(os.path.join(state_dir, d, "journal.jsonl"))]
    assert len(studies) == 1, f"expected one study under {state_dir}, found {studies}"
    return os.path.join(str(state_dir), studies[0])


def wait_for_study(state_dir: Path, timeout: float = 120) -> str:
    return wait_for(lambda: os.path.isdir(state_dir) and os.listdir(state_dir) and only_study(state_dir),
                    timeout, f"a study under {state_dir}")


def plan(study_file: str) -> Dict[str, Any]:
    res = cli("plan", study_file, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def planned_rungs(the_plan: Dict[str, Any]) -> Dict[Tuple[int, int], Tuple[int, Any]]:
    """(bracket, rung) -> (number of trials, resource)."""
    return {(b["bracket"], i): (r["n"], r["resource"]) for b in the_plan["brackets"] for i, r in enumerate(b["rungs"])}


def wait_for(pred: Callable[[], Any], timeout: float, what: str, every: float = 1.0) -> Any:
    deadline = time.time() + timeout
    while True:
        try:
            value = pred()
        except (OSError, ValueError, AssertionError):
            value = None
        if value:
            return value
        if time.time() > deadline or ABORT.is_set():
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# ------------------------------------------------------------------------- study files


def journal(study_dir: str) -> List[Dict[str, Any]]:
    """Every complete event of the journal (a torn last line is skipped, as hpc-tune does)."""
    out = []
    with open(os.path.join(study_dir, "journal.jsonl"), "rb") as fh:
        for line in fh.read().split(b"\n"):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def results(study_dir: str, trial: int) -> List[Dict[str, Any]]:
    """The complete lines of a trial's result.jsonl."""
    path = os.path.join(study_dir, "trials", str(trial), "result.jsonl")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].split(b"\n") if line.strip()]


def record(study_dir: str, trial: int, name: str) -> Optional[Dict[str, Any]]:
    try:
        with open(os.path.join(study_dir, "trials", str(trial), name)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def runs_of(lines: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The first line of each run of ckpt_trial.py (it says what the run saw)."""
    return [line for line in lines if "ckpt_dir" in line]


def last_step(lines: List[Dict[str, Any]]) -> int:
    return max((int(line["step"]) for line in lines if "step" in line), default=0)


def resumed_from(lines: List[Dict[str, Any]]) -> List[int]:
    return [int(line["resumed_from"]) for line in lines if "resumed_from" in line]


def progress(study_dir: str) -> Dict[str, Any]:
    ev = journal(study_dir)
    return {"trials": sum(e["e"] == "trial" for e in ev), "ended": sum(e["e"] == "end" for e in ev),
            "submitted": sum(e["e"] == "submitted" for e in ev),
            "study_end": next((e["state"] for e in ev if e["e"] == "study_end"), None)}


def trial_jobs(events: Iterable[Dict[str, Any]]) -> Dict[Tuple[int, int], Set[str]]:
    """(trial id, attempt) -> the job ids journaled for it."""
    out: Dict[Tuple[int, int], Set[str]] = defaultdict(set)
    for e in events:
        if e["e"] == "submitted":
            out[(e["id"], e["attempt"])].add(str(e["job"]))
    return out


def check_reports_match(study_dir: str, events: List[Dict[str, Any]]) -> None:
    """No reported result lost or invented: the journal's report events of every trial are
    exactly the lines of its result.jsonl, in order, and the last one ends at its end."""
    reports: Dict[int, List[Dict[str, Any]]] = defaultdict(list)
    ends: Dict[int, int] = {}
    for e in events:
        if e["e"] == "report":
            reports[e["id"]].append(e["data"])
            ends[e["id"]] = e["end"]
    for tid in {e["id"] for e in events if e["e"] == "trial"}:
        lines = results(study_dir, tid)
        assert reports[tid] == lines, (
            f"trial {tid}: the journal has {len(reports[tid])} report events, result.jsonl {len(lines)} lines; "
            f"first difference at {next((i for i, (a, b) in enumerate(zip(reports[tid], lines)) if a != b), None)}")
        size = os.path.getsize(os.path.join(study_dir, "trials", str(tid), "result.jsonl"))
        assert ends.get(tid, 0) == size, f"trial {tid}: journal read up to byte {ends.get(tid)}, file has {size}"


def check_exactly_once(events: List[Dict[str, Any]]) -> Dict[Tuple[int, int], str]:
    """Every (trial, attempt) has one job id in the journal, however often it was journaled;
    returns them."""
    jobs = trial_jobs(events)
    doubles = {k: v for k, v in jobs.items() if len(v) != 1}
    assert not doubles, f"(trial, attempt) submitted under several job ids: {doubles}"
    return {k: next(iter(v)) for k, v in jobs.items()}


# -------------------------------------------------------------------------------- Slurm


def slurm_env(conf: Optional[str] = None) -> Dict[str, str]:
    """This process's environment, for the cluster of ``conf`` (SLURM_CONF) when given."""
    env = dict(os.environ)
    if conf:
        env["SLURM_CONF"] = conf
    return env


def slurm_here(conf: Optional[str] = None) -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20, env=slurm_env(conf)).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def squeue_names(conf: Optional[str] = None) -> Dict[str, str]:
    """job id -> name of every queued job (one line per array task)."""
    res = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%j"], capture_output=True, text=True, timeout=60,
                         env=slurm_env(conf))
    out = {}
    for line in res.stdout.splitlines():
        job, _, name = line.strip().partition("|")
        if job:
            out[job] = name
    return out


def scancel_study(study_id: str, conf: Optional[str] = None) -> None:
    """Cancel every queued job of a study, found by name (trials: hpct-<id>-..., arrays
    hpct-<id>-...@token, controller: hpct-ctl-<id>)."""
    if not slurm_here(conf):
        return
    ids = [j for j, name in squeue_names(conf).items()
           if name.startswith((f"hpct-{study_id}-", f"hpct-ctl-{study_id}"))]
    if ids:
        subprocess.run(["scancel", *sorted({j.split("_")[0] for j in ids})], capture_output=True, timeout=60,
                       env=slurm_env(conf))


def gpu_jobs_except(mine: Iterable[str]) -> List[str]:
    """Running jobs (array tasks one by one) that hold GPUs and are not in ``mine``."""
    res = subprocess.run(["squeue", "-h", "-r", "-t", "R", "-o", "%i|%b"], capture_output=True, text=True, timeout=60)
    mine = set(mine)
    return [job for job, _, tres in (line.partition("|") for line in res.stdout.splitlines())
            if "gpu" in tres and job not in mine]


def sbatch(*args: str) -> str:
    res = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"sbatch {' '.join(args)}: {res.stderr}"
    return res.stdout.strip().split(";")[0]


SACCT_PATIENCE_S = 180  # a node-fault test stops the shared slurmdbd for 60 s


def sacct_rows(*args: str, conf: Optional[str] = None) -> List[List[str]]:
    """``sacct -n -P ARGS`` split into fields; while slurmdbd is down (a fault test stops
    it), asks again for up to SACCT_PATIENCE_S."""
    deadline = time.time() + SACCT_PATIENCE_S
    while True:
        res = subprocess.run(["sacct", "-n", "-P", *args], capture_output=True, text=True, timeout=120,
                             env=slurm_env(conf))
        if res.returncode == 0 or time.time() > deadline:
            break
        time.sleep(3)
    assert res.returncode == 0, res.stderr
    return [line.split("|") for line in res.stdout.splitlines() if line.strip()]


def sacct_history(job: str, conf: Optional[str] = None) -> List[str]:
    """Every state a job went through, oldest first (``sacct -D``: requeues keep their rows)."""
    return [row[1] for row in sacct_rows("-X", "-D", "-o", "JobID,State", "-j", job, conf=conf) if row[0] == job]


_TASK = re.compile(r"^(\d+)_(\d+)$")


def sacct_jobs_by_trial(study_dir: str, conf: Optional[str] = None) -> Dict[int, List[str]]:
    """trial id -> every Slurm job that ran under its name, from ``sacct`` (array tasks named
    through the array's manifest, see backends/slurm.py _task_name)."""
    events = journal(study_dir)
    submitted = {e["id"] for e in events if e["e"] == "submitted"}
    # Accounting may lag behind the scheduler (after a slurmdbd outage slurmctld sends what
    # it queued): wait, bounded, until sacct lists a job for every submitted trial.
    deadline = time.time() + 180
    while True:
        got = _sacct_jobs_by_trial(study_dir, events, conf)
        if submitted <= set(got) or time.time() > deadline:
            return got
        time.sleep(5)


def _sacct_jobs_by_trial(study_dir: str, events: List[Dict[str, Any]], conf: Optional[str]) -> Dict[int, List[str]]:
    study_id = events[0]["id"]
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(events[0]["t"] - 120))
    prefix = f"hpct-{study_id}-"
    out: Dict[int, List[str]] = defaultdict(list)
    for job, name in (row[:2] for row in sacct_rows("-X", "-S", start, "-E", "now", "-o", "JobID,JobName",
                                                    conf=conf)):
        if not name.startswith(prefix):
            continue
        if "@" in name:
            token = name.rpartition("@")[2]
            with open(os.path.join(study_dir, "slurm", "arrays", f"{token}.json")) as fh:
                names = json.load(fh)["names"]
            m = _TASK.match(job)
            assert m, f"array {job} ({name}) has a task that never started"
            name = names[int(m.group(2))]
        out[int(name[len(prefix):])].append(job)
    return dict(out)


def check_continues(lines: List[Dict[str, Any]]) -> int:
    """Each run of ckpt_trial.py after the first continued from the checkpoint its
    predecessors left: the last step reported before it, or the one before that when the
    kill came between the report and the save. Returns how many runs resumed."""
    done, resumed = 0, 0
    for i, line in enumerate(lines):
        if "ckpt_dir" in line:
            nxt = lines[i + 1] if i + 1 < len(lines) else {}
            if done > 0:
                assert nxt.get("resumed_from") in (done, done - 1), f"a run after step {done} began with {nxt}"
                resumed += 1
            else:
                assert "resumed_from" not in nxt, nxt
        if "step" in line:
            done = max(done, int(line["step"]))
    return resumed


# ------------------------------------------------------------ the three-node cluster

CLUSTER_SCRIPT = ROOT / "scripts" / "slurm-cluster.sh"
class _Lane:
    """The node-fault scenarios run one after the other, also across test sessions that share
    the three-node cluster (a thread lock, then ``flock`` on a file beside its config): a fault
    of a node (or of slurmdbd), or another session healing the cluster, would hit the jobs of
    every study on it."""

    def __init__(self) -> None:
        self.threads = threading.Lock()
        self.fh: Any = None

    def __enter__(self) -> "_Lane":
        import fcntl

        self.threads.acquire()
        try:
            self.fh = open(os.path.join(os.path.dirname(multinode_conf()), ".fault-lane.lock"), "w")
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        except BaseException:
            self.threads.release()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.fh.close()  # releases the flock
        finally:
            self.threads.release()


MULTINODE_LANE = _Lane()
# What each node-fault scenario measured (printed at the end of the session, see conftest.py).
MEASURED: Dict[str, Dict[str, Any]] = {}


def multinode_conf() -> str:
    """The SLURM_CONF of the three-node cluster (``slurm-cluster.sh multi conf``)."""
    res = subprocess.run(["bash", str(CLUSTER_SCRIPT), "multi", "conf"], capture_output=True, text=True, timeout=30)
    return res.stdout.strip()


def multinode_here() -> bool:
    conf = multinode_conf()
    return bool(conf) and os.path.isfile(conf) and slurm_here(conf)


def cluster(*args: str) -> str:
    """``scripts/slurm-cluster.sh ARGS`` (node faults: ``node kill n2``, ``slurmdbd stop``...)."""
    res = subprocess.run(["bash", str(CLUSTER_SCRIPT), *args], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"slurm-cluster.sh {' '.join(args)}: {res.stdout}{res.stderr}"
    return res.stdout + res.stderr


def heal_multinode() -> None:
    """Every node of the three-node cluster back in service and slurmdbd running, whatever a
    scenario left (a dead slurmd, a drained or down node, a stopped slurmdbd)."""
    conf = multinode_conf()
    cluster("slurmdbd", "start")
    for node in ("n1", "n2", "n3"):
        cluster("node", "start", node)

    def healthy() -> bool:
        res = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%t"], capture_output=True, text=True, timeout=30,
                             env=slurm_env(conf))
        states = dict(line.split("|") for line in res.stdout.split())
        bad = [n for n, st in states.items() if st.rstrip("*~#") not in ("idle", "mix", "alloc")]
        for node in bad:
            if states[node].rstrip("*") in ("down", "drain", "drng", "fail"):
                subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], capture_output=True,
                               timeout=30, env=slurm_env(conf))
        return len(states) == 3 and not bad

    wait_for(healthy, 180, "every node of the three-node cluster in service", every=2)


def node_of_job(job: str, conf: str) -> str:
    res = subprocess.run(["squeue", "-h", "-j", job, "-o", "%N"], capture_output=True, text=True, timeout=60,
                         env=slurm_env(conf))
    return res.stdout.strip()


def runs_by_pid(lines: List[Dict[str, Any]]) -> Dict[int, List[Dict[str, Any]]]:
    """ckpt_trial.py's lines of each run (each run is one process), in file order."""
    out: Dict[int, List[Dict[str, Any]]] = defaultdict(list)
    for line in lines:
        out[int(line["pid"])].append(line)
    return dict(out)


def check_runs_not_interleaved(tid: int, lines: List[Dict[str, Any]]) -> None:
    """The lines of one run are never mixed with another run's: two copies of the trial did
    not write into the same file at once."""
    order = [int(x["pid"]) for x in lines]
    blocks = [p for i, p in enumerate(order) if i == 0 or order[i - 1] != p]
    assert len(blocks) == len(set(blocks)), f"trial {tid}: lines of runs interleaved (runs in file order: {blocks})"


def max_overlap(intervals: Iterable[Tuple[float, float]]) -> int:
    """The most intervals open at one instant (an interval ending when another starts does not overlap it)."""
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda p: (p[0], p[1]))
    most = now = 0
    for _, d in points:
        now += d
        most = max(most, now)
    return most


def run_intervals(study_dir: str, trials: Iterable[int]) -> List[Tuple[int, int, float, float]]:
    """(trial, pid, first line's time, last line's time) of every run of ckpt_trial.py."""
    out = []
    for tid in trials:
        for pid, lines in runs_by_pid(results(study_dir, tid)).items():
            times = [float(x["t"]) for x in lines]
            out.append((tid, pid, min(times), max(times)))
    return out


def sacct_runs(jobs: Iterable[str], conf: Optional[str]) -> List[Dict[str, str]]:
    """Every run of the jobs as sacct -D lists it (a requeue keeps the earlier run's row)."""
    jobs = sorted(set(jobs))
    if not jobs:
        return []
    rows = sacct_rows("-X", "-D", "-o", "JobID,State,Start,End,NodeList", "-j", ",".join(jobs), conf=conf)
    return [dict(zip(("job", "state", "start", "end", "node"), row)) for row in rows if row[0] in jobs]


def sacct_seconds(text: str) -> Optional[float]:
    if not text or text in ("Unknown", "None"):
        return None
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))


class ControllerWatch(threading.Thread):
    """Samples, twice a second, which of a study's controller processes (the pids of the
    journal's ``controller start`` events; every node of the test cluster is this machine)
    are alive. ``acting_at_once()``: the moments when a controller that an later one has
    replaced (its start event is older) was still alive after that later one started."""

    def __init__(self, study_dir: str) -> None:
        super().__init__(daemon=True)
        self.study_dir = study_dir
        self.samples: List[Tuple[float, List[int]]] = []
        self.starts: List[Dict[str, Any]] = []
        self.halt = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.starts = [e for e in journal(self.study_dir) if e["e"] == "controller" and e["action"] == "start"]
            except OSError:
                pass
            now = time.time()
            self.samples.append((now, [int(e["pid"]) for e in self.starts if _is_controller(int(e["pid"]))]))
            self.halt.wait(0.5)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)

    def acting_at_once(self, events: List[Dict[str, Any]]) -> List[str]:
        """Each sign of two controllers at once: an older controller alive after a newer
        one's start, or an event of an older controller (its stop) journaled after it."""
        starts = [e for e in events if e["e"] == "controller" and e["action"] == "start"]
        found = []
        for k, newer in enumerate(starts[1:], 1):
            older = {int(e["pid"]) for e in starts[:k]} - {int(newer["pid"])}
            for t, alive in self.samples:
                both = older & set(alive)
                if t > newer["t"] + 1.0 and both:  # the sample's journal read may be a moment old
                    found.append(f"controller pid {sorted(both)} alive {t - newer['t']:.1f} s after pid "
                                 f"{newer['pid']} started")
                    break
            late = [e for e in events if e["e"] == "controller" and e["action"] != "start"
                    and int(e.get("pid") or 0) in older and e["t"] > newer["t"]]
            found.extend(f"controller pid {e['pid']} journaled its {e['action']} {e['t'] - newer['t']:.1f} s after "
                         f"pid {newer['pid']} started" for e in late)
        return found


def _is_controller(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read()
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return b"hpc_tune" in cmd and state != "Z"
