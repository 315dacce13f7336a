"""The job side: what runs inside (or around) a trial job. Standard library only.

* trial side: ``report(step, **metrics)`` appends one JSON line to ``$HPC_TUNE_RESULT_FILE``;
  ``checkpoint_dir()`` is where a trial saves and finds its checkpoints.
* the wrapper: ``run_trial(command, env, trial_dir)`` runs the trial's shell command, forwards
  the scheduler's signals to it, and leaves the start and exit records of the trial protocol
  (``hpc_tune.protocol``) in the trial folder: all the controller reads to know that a trial
  started and how it ended.

  ``exit_code`` is the command's (128+N if signal N killed it, 127 with "error" if it could
  not start); ``signals_received`` lists what the job got (SIGUSR2: the scheduler's warning
  before a time limit or preemption; ``timed_out``: the local backend's time limit ended the
  command, see ``TimeLimit``); ``job_id`` is the backend's id (``123_4`` for an array
  task), so a record left by an earlier job of the same folder is recognised.

  ``exit.json`` means "this job is over for good". A job that Slurm itself ends after a signal
  (scancel, time limit, the end of a preemption's grace time) may be requeued, so the Slurm
  backend asks for no exit record in that case (see ``after_signal``) and ``sacct`` says how
  the job ended.

* one run at a time: every start of the wrapper is a *run* of the trial, named ``run``
  (``<job id>.<restart count>``) in both records. A run claims the trial folder by writing
  ``started.json`` before it starts the command; a run that finds another run's claim there
  (its own job restarted by Slurm while the earlier copy may still run: a node that lost only
  its slurmd) waits ``FENCE_WAIT_S`` first. Every run watches the claim while its command
  runs (every ``FENCE_POLL_S``): once it is another run's, this run is *fenced*: it kills
  its command and ends without writing anything more (no exit record). So two copies never
  write into the trial's files at once, and the controller only counts the current run's.

``python -m hpc_tune.trial run TRIAL_DIR`` runs ``TRIAL_DIR/job.json`` (used by the local
backend). Imports only ``hpc_tune.protocol`` of hpc_tune, so a job starts light.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from .protocol import (  # noqa: F401 (EXIT_RECORD... are the protocol's; tests and jobs read them here too)
    ATTEMPT_ENV,
    CHECKPOINT_DIR_ENV,
    CHECKPOINT_SUBDIR,
    EXIT_RECORD,
    JOB_FILE,
    JOB_ID_ENV,
    RESULT_FILE,
    RESULT_FILE_ENV,
    SLOT_FILE,
    STARTED_RECORD,
    STUDY_DIR_ENV,
    TRIAL_DIR_ENV,
    TRIAL_ID_ENV,
    current_job_id,
    read_exit_record,
    read_json,
    read_started_record,
    signal_group,
    write_json_atomic,
)

# One run at a time (see the module's docstring): how often a run looks at the claim, and how
# long a new run waits for an earlier one to see its claim and stop.
FENCE_POLL_S = 1.0
FENCE_WAIT_S = 2.5 * FENCE_POLL_S

# Signals the wrapper passes on to the command: the scheduler's warnings and kill requests.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)
# Slurm signals every process of a job step (its --signal, preemption, scancel, requeue), so
# the command can die of a signal a moment before this process gets its own copy; how long
# to wait for that copy before taking the end for the command's own doing.
OWN_COPY_WAIT_S = 2.0

# ---------------------------------------------------------------------------------------------
# Trial side


_warned_standalone = False


def report(step: Optional[float] = None, **metrics: float) -> None:
    """Append one result line ``{"step": .., <metrics>, "time": <unix time>}`` to the trial's
    result file. Values must be finite numbers. Outside a trial (``HPC_TUNE_RESULT_FILE``
    unset) the line goes to stderr instead, so a training script also runs on its own."""
    if not metrics:
        raise ValueError("report() needs at least one metric, e.g. report(step=3, loss=0.41)")
    if "time" in metrics:
        raise ValueError('report(): "time" is reserved (the time of the report is added to each line)')
    record: Dict[str, Any] = {}
    if step is not None:
        record["step"] = _finite_number("step", step)
    for name, value in metrics.items():
        record[name] = _finite_number(name, value)
    record["time"] = time.time()
    line = (json.dumps(record, allow_nan=False) + "\n").encode()

    path = os.environ.get(RESULT_FILE_ENV)
    if not path:
        global _warned_standalone
        if not _warned_standalone:
            _warned_standalone = True
            print(
                f"hpc_tune.report: {RESULT_FILE_ENV} is not set (not running as an hpc-tune trial); "
                "metrics go to stderr",
                file=sys.stderr,
            )
        sys.stderr.write("hpc_tune.report: " + line.decode())
        sys.stderr.flush()
        return
    # O_APPEND + one write per line: concurrent writers and the controller's reader never see
    # half a line interleaved with another one; fsync so a node crash does not lose reports.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:  # a regular file takes the whole line at once except on a full disk
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _finite_number(name: str, value: Any) -> float:
    # bool is an int to Python, but True as a metric is a bug, not a number.
    if isinstance(value, (bool, str, bytes)) or not (isinstance(value, numbers.Real) or hasattr(value, "__float__")):
        raise TypeError(f"report(): {name} must be a number, got {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Integral):
        out: float = int(value)
    else:
        try:
            out = float(value)  # numpy scalars, 0-d tensors
        except (TypeError, ValueError) as exc:
            raise TypeError(f"report(): {name} must be a number, got {type(value).__name__} {value!r}") from exc
    if not math.isfinite(out):
        raise ValueError(f"report(): {name} must be finite, got {out!r}")
    return out


def checkpoint_dir() -> Path:
    """The folder where this trial saves and finds its checkpoints (created if missing):
    ``$HPC_TUNE_CHECKPOINT_DIR``, else ``$HPC_TUNE_TRIAL_DIR/checkpoints``, else ``./checkpoints``."""
    path = os.environ.get(CHECKPOINT_DIR_ENV)
    if not path:
        trial_dir = os.environ.get(TRIAL_DIR_ENV)
        path = os.path.join(trial_dir, CHECKPOINT_SUBDIR) if trial_dir else CHECKPOINT_SUBDIR
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------------------------
# Job side


def _int_env(name: str, environ: Mapping[str, str]) -> int:
    try:
        return int(environ.get(name, "0") or 0)
    except ValueError:
        return 0


class _SignalForwarder:
    """Signal handler that passes signals on to the command's process group."""

    def __init__(self) -> None:
        self.pgid: Optional[int] = None
        self.received: List[str] = []

    def __call__(self, signum: int, frame: Any) -> None:
        self.received.append(signal.Signals(signum).name)
        if self.pgid is not None:
            signal_group(self.pgid, signum)

    def attach(self, pgid: int) -> None:
        self.pgid = pgid
        for name in self.received:  # signals that came while the command was being started
            signal_group(pgid, signal.Signals[name])


def run_trial(
    command: str,
    env: Mapping[str, str],
    trial_dir: str,
    cwd: Optional[str] = None,
    *,
    job_id: Optional[str] = None,
    after_signal: Optional[Callable[[int, List[str]], bool]] = None,
    time_limit: Optional["TimeLimit"] = None,
) -> int:
    """Run ``bash -c command`` as one trial job and return its exit code (128+N if killed by
    signal N).

    ``env`` is merged over ``os.environ``; ``HPC_TUNE_TRIAL_DIR``, ``HPC_TUNE_RESULT_FILE`` and
    ``HPC_TUNE_CHECKPOINT_DIR`` default to the trial folder, and ``HPC_TUNE_JOB_ID`` is set.
    ``cwd`` is where the user submitted the study from (default: the current directory). The
    command writes to this process's stdout and stderr (the job's logs). SIGTERM, SIGINT,
    SIGUSR1 and SIGUSR2 are passed on to the command's process group.

    ``job_id`` defaults to ``current_job_id()``. ``after_signal(exit_code, signal_names)`` is
    called when the command ended non-zero after this process received one of those signals;
    it returns whether that end is final (write ``exit.json``) and may end the job itself by
    raising SystemExit (e.g. after requeueing it), in which case no exit record is written.
    Without it, every end is final.

    ``time_limit`` (the local backend's; Slurm enforces its own) ends the command as Slurm
    would: SIGUSR2 ``warn_s`` before the limit, SIGTERM at it, SIGKILL ``kill_wait_s`` later;
    the exit record then says ``"timed_out": true``.
    """
    trial = Path(trial_dir)
    trial.mkdir(parents=True, exist_ok=True)
    identity: Dict[str, Any] = {
        "job_id": job_id or current_job_id(),
        "restart_count": _int_env("SLURM_RESTART_COUNT", os.environ),
        "attempt": _int_env(ATTEMPT_ENV, {**os.environ, **env}),
        "host": socket.gethostname(),
        "node": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
    }
    identity["run"] = f"{identity['job_id']}.{identity['restart_count']}"
    child_env = {**os.environ, **env}
    child_env.setdefault(TRIAL_DIR_ENV, str(trial))
    child_env.setdefault(RESULT_FILE_ENV, str(trial / RESULT_FILE))
    child_env.setdefault(CHECKPOINT_DIR_ENV, str(trial / CHECKPOINT_SUBDIR))
    child_env[JOB_ID_ENV] = identity["job_id"]

    earlier = read_started_record(str(trial))
    earlier_exit = read_exit_record(str(trial))
    _remove(trial / EXIT_RECORD)  # left by an earlier run of this trial folder (requeue, retry)
    # Claim the folder, then give an earlier run that may still be alive (no exit record of
    # its own) the time to see the claim and stop its command before ours starts.
    write_json_atomic(trial / STARTED_RECORD, {**identity, "started": time.time(), "pid": os.getpid(),
                                                "child_pid": None})
    if earlier and earlier.get("run") != identity["run"] and (
            earlier_exit is None or earlier_exit.get("run", earlier_exit.get("job_id")) !=
            earlier.get("run", earlier.get("job_id"))):
        time.sleep(FENCE_WAIT_S)
    forwarder = _SignalForwarder()
    previous: Dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():  # handlers can only be set there
        for signum in FORWARDED_SIGNALS:
            previous[signum] = signal.signal(signum, forwarder)
    try:
        started = time.time()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            # Own session, so that the forwarded signal reaches the whole command (bash and what
            # it started) and a terminal's Ctrl-C reaches it only through us.
            child = subprocess.Popen(
                ["bash", "-c", command], env=child_env, cwd=cwd or None, start_new_session=True
            )
        except OSError as exc:  # no such cwd, no bash: as final as a failing command
            print(f"hpc_tune.trial: cannot start the trial: {exc}", file=sys.stderr)
            write_json_atomic(
                trial / EXIT_RECORD,
                {"exit_code": 127, "signal": None, **identity, "started": started, "ended": time.time(),
                 "signals_received": forwarder.received, "error": str(exc)},
            )
            return 127
        forwarder.attach(child.pid)
        write_json_atomic(
            trial / STARTED_RECORD, {**identity, "started": started, "pid": os.getpid(), "child_pid": child.pid}
        )
        watchdog = time_limit.watch(child, forwarder, started) if time_limit is not None else None
        fence = _Fence(trial, identity["run"], child.pid)
        try:
            returncode = child.wait()  # signal handlers run while waiting (PEP 475 retries the wait)
        finally:
            fence.stop()
            if watchdog is not None:
                watchdog.set()
        if fence.fenced:
            print(f"hpc_tune.trial: run {identity['run']} fenced: {fence.fenced}; its command was stopped and "
                  f"nothing more is written", file=sys.stderr)
            return 0
        if returncode < 0 or returncode > 128:  # killed by a signal, or a shell whose child was
            _await_own_copy(forwarder, -returncode if returncode < 0 else returncode - 128)
        ended = time.time()
        signame = signal.Signals(-returncode).name if returncode < 0 else None
        exit_code = 128 - returncode if returncode < 0 else returncode
        final = True
        if forwarder.received and exit_code != 0 and after_signal is not None:
            final = after_signal(exit_code, list(forwarder.received))
        if final:
            write_json_atomic(
                trial / EXIT_RECORD,
                {
                    "exit_code": exit_code,
                    "signal": signame,
                    **identity,
                    "started": started,
                    "ended": ended,
                    "signals_received": forwarder.received,
                    **({"timed_out": True} if time_limit is not None and time_limit.reached else {}),
                },
            )
        return exit_code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Fence:
    """Watches the trial's claim (``started.json``) while this run's command runs; once another
    run holds it, kills the command's process group (``fenced`` then says which run)."""

    def __init__(self, trial: Path, run: str, pgid: int) -> None:
        self.trial, self.run, self.pgid = trial, run, pgid
        self.fenced: Optional[str] = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(FENCE_POLL_S):
            claim = read_started_record(str(self.trial))
            if claim is not None and claim.get("run") not in (None, self.run):
                self.fenced = f"run {claim.get('run')} of this trial started (job {claim.get('job_id')}, " \
                              f"node {claim.get('node')})"
                signal_group(self.pgid, signal.SIGKILL)
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=2 * FENCE_POLL_S)


class TimeLimit:
    """A job's time limit, enforced by its wrapper the way Slurm enforces ``--time`` with
    ``--signal=USR2@warn_s``: the warning, then SIGTERM at the limit, then SIGKILL."""

    def __init__(self, limit_s: float, warn_s: float = 0.0, kill_wait_s: float = 5.0) -> None:
        self.limit_s = limit_s
        self.warn_s = warn_s
        self.kill_wait_s = kill_wait_s
        self.reached = False

    def watch(self, child: "subprocess.Popen[bytes]", forwarder: _SignalForwarder, started: float) -> threading.Event:
        """Start watching ``child``; set the returned event once it has ended."""
        done = threading.Event()

        def run() -> None:
            steps = []
            if 0 < self.warn_s < self.limit_s:
                steps.append((self.limit_s - self.warn_s, signal.SIGUSR2))
            steps += [(self.limit_s, signal.SIGTERM), (self.limit_s + self.kill_wait_s, signal.SIGKILL)]
            for at, signum in steps:
                if done.wait(max(0.0, started + at - time.time())):
                    return
                if signum is signal.SIGTERM:
                    self.reached = True
                if signum is not signal.SIGKILL:
                    forwarder.received.append(signum.name)  # as if the scheduler had sent it to the job
                signal_group(child.pid, signum)

        threading.Thread(target=run, name="time-limit", daemon=True).start()
        return done


def _await_own_copy(forwarder: _SignalForwarder, signum: int) -> None:
    """The command died of ``signum`` (or exited 128+signum, as a shell does when that
    signal killed its child), one this process forwards but has not received: when the
    scheduler sent it to the whole job step, this process's copy is on its way. Without it
    the end would look final (exit.json written, "the command failed") where the scheduler
    is timing the job out, preempting or requeueing it."""
    try:
        sig = signal.Signals(signum)
    except ValueError:
        return
    if sig not in FORWARDED_SIGNALS or threading.current_thread() is not threading.main_thread():
        return
    deadline = time.monotonic() + OWN_COPY_WAIT_S
    while sig.name not in forwarder.received and time.monotonic() < deadline:
        time.sleep(0.02)


def _wait_for_slot(trial_dir: Path, job_id: str, poll_s: float = 0.1) -> List[str]:
    """Block until the local backend grants this job its GPUs; return their ids."""
    while True:
        grant = read_json(trial_dir / SLOT_FILE)
        if grant and grant.get("job_id") == job_id and isinstance(grant.get("devices"), list):
            return [str(d) for d in grant["devices"]]
        time.sleep(poll_s)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m hpc_tune.trial run TRIAL_DIR``: run ``TRIAL_DIR/job.json`` as local job
    ``local-<pid>``; a job that asks for GPUs first waits for the backend's grant."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "run":
        print("usage: python -m hpc_tune.trial run TRIAL_DIR", file=sys.stderr)
        return 2
    trial = Path(args[1]).resolve()
    spec = read_json(trial / JOB_FILE)
    if spec is None or not isinstance(spec.get("command"), str):
        print(f"hpc_tune.trial: no valid {trial / JOB_FILE}", file=sys.stderr)
        return 2
    job_id = f"local-{os.getpid()}"
    env = {str(k): str(v) for k, v in (spec.get("env") or {}).items()}
    if int(spec.get("gpus") or 0) > 0:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(_wait_for_slot(trial, job_id))
    limit = spec.get("time_limit_s")
    time_limit = TimeLimit(float(limit), float(spec.get("warn_s") or 0), float(spec.get("kill_wait_s") or 5)) \
        if isinstance(limit, (int, float)) and limit > 0 else None
    return run_trial(spec["command"], env, str(trial), spec.get("cwd"), job_id=job_id, time_limit=time_limit)


if __name__ == "__main__":
    sys.exit(main())
