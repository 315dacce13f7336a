"""A checkpointing trial for the fault-injection tests (tests/faults).

    python ckpt_trial.py --steps N [--x 0.3] [--sleep 1.0 | --seconds T] [--heartbeat S]

Counts steps 1..N, sleeping ``--sleep`` seconds per step (or ``--seconds``/N: a trial of
T seconds whatever its N); with ``--heartbeat`` it also reports ``{"beat": n}`` every S
seconds while it works. After each step it reports
``{"step": k, "loss": ...}`` to ``$HPC_TUNE_RESULT_FILE`` and saves ``{"step": k}`` to
``$HPC_TUNE_CHECKPOINT_DIR/state.json`` atomically (temporary file + rename). At start it
resumes from that file: it reports ``{"resumed_from": k}`` when k > 0 and carries on at
step k+1. Its first line tells what it saw (checkpoint folder, Slurm restart count,
attempt, job id, Slurm node), so the tests can check where a requeued or promoted trial ran.
Every line carries the run's ``pid`` and the time ``t`` it was written: the lines of two
copies of one trial running at once are told apart.

A step is reported before it is saved: a kill in between repeats that step after a
restart, it never skips one. No signal handling: a killed trial simply loses the step it
was in, which is what a real training loop that checkpoints every step would lose.
"""
import argparse
import json
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=float, required=True)  # Hyperband may hand out 3.0
parser.add_argument("--x", type=float, default=0.3)
parser.add_argument("--sleep", type=float, default=1.0)
parser.add_argument("--seconds", type=float, default=None)
parser.add_argument("--heartbeat", type=float, default=None)
args = parser.parse_args()
steps = int(round(args.steps))
pause = args.seconds / max(1, steps) if args.seconds is not None else args.sleep

result_file = os.environ["HPC_TUNE_RESULT_FILE"]
ckpt_dir = os.environ.get("HPC_TUNE_CHECKPOINT_DIR") or os.path.join(os.environ["HPC_TUNE_TRIAL_DIR"], "checkpoints")
os.makedirs(ckpt_dir, exist_ok=True)
state_path = os.path.join(ckpt_dir, "state.json")


def report(**metrics):
    fd = os.open(result_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps({**metrics, "pid": os.getpid(), "t": time.time()}) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def save(step):
    tmp = f"{state_path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump({"step": step}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, state_path)


try:
    with open(state_path) as fh:
        start = int(json.load(fh)["step"])
except (OSError, ValueError, KeyError, TypeError):
    start = 0

report(ckpt_dir=ckpt_dir, trial_dir=os.environ.get("HPC_TUNE_TRIAL_DIR", ""),
       restart_count=int(os.environ.get("SLURM_RESTART_COUNT") or 0),
       attempt=int(os.environ.get("HPC_TUNE_ATTEMPT") or 0),
       job=os.environ.get("HPC_TUNE_JOB_ID", ""), node=os.environ.get("SLURMD_NODENAME", ""), target=steps,
       started=time.time())
if start > 0:
    report(resumed_from=start)
beats = 0


def work(seconds):
    global beats
    end = time.time() + seconds
    while args.heartbeat and time.time() + args.heartbeat < end:
        time.sleep(args.heartbeat)
        beats += 1
        report(beat=beats)
    time.sleep(max(0.0, end - time.time()))


for step in range(start + 1, steps + 1):
    work(pause)
    report(step=step, loss=(args.x - 0.3) ** 2 + 1.0 / step)
    save(step)
