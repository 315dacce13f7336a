"""Study folders written directly, event by event, in the journal format of hpc-tune 0.1.0:
for what a short real study rarely shows (resubmissions, preemptions, Slurm's requeues, nodes,
GPU hours, a population) and for the 10,000-trial scale benchmark.

    write_study(path, n_trials=50, n_steps=20, kind="random" | "asha" | "pbt", seed=0)
"""
from __future__ import annotations

import json
import math
import os
import random
from typing import Any, Dict, List

SPEC = """\
hptuning:
  concurrency: 8
  random_search: {{n_experiments: {n}}}
  metric: {{name: loss, optimization: minimize}}
  matrix:
    lr: {{loguniform: [-9.2, -2.3]}}
    width: {{values: [16, 32, 64, 128]}}
    act: {{values: [relu, tanh]}}
slurm: {{gpus: {gpus}}}
run:
  cmd: python train.py --lr={{{{ lr }}}} --width={{{{ width }}}} --act={{{{ act }}}}
"""
T0 = 1_790_000_000.0


def _line(t: float, kind: str, **fields: Any) -> str:
    return json.dumps({"v": 1, "t": round(t, 3), "e": kind, **fields}, separators=(",", ":")) + "\n"


def write_study(path: str, n_trials: int = 50, n_steps: int = 20, kind: str = "random", seed: int = 0,
                gpus: int = 1, population: int = 8) -> str:
    rng = random.Random(seed)
    os.makedirs(os.path.join(path, "controller"), exist_ok=True)
    with open(os.path.join(path, "spec.yml"), "w") as fh:
        fh.write(SPEC.format(n=n_trials, gpus=gpus))
    lines: List[str] = [_line(T0, "study", id=os.path.basename(path), seed=seed, file="study.yml", cwd="/",
                              base_dir="/", backend="slurm", slurm={}, metric="loss", optimization="minimize",
                              poll_interval=30.0, version="0.1.0")]
    clock = last = T0
    members: Dict[int, Dict[str, Any]] = {}
    for tid in range(n_trials):
        params = {"lr": math.exp(rng.uniform(-9.2, -2.3)), "width": rng.choice([16, 32, 64, 128]),
                  "act": rng.choice(["relu", "tanh"])}
        meta: Dict[str, Any] = {}
        resource = None
        if kind == "asha":
            rung = min(3, int(-math.log(max(rng.random(), 1e-9), 3)))
            resource = 3 ** rung
            meta = {"rung": rung}
            if rung and tid:
                meta["resume_from"] = rng.randrange(tid)
        elif kind == "pbt":
            member, interval = tid % population, tid // population
            meta = {"member": member, "interval": interval}
            resource = float((interval + 1) * n_steps)
            if interval:
                donor = member if rng.random() < 0.7 else rng.randrange(population)
                prev = members[donor]
                meta["resume_from"] = prev["id"]
                params = {**prev["params"], "lr": prev["params"]["lr"] * rng.choice([0.8, 1.2])}
            members[member] = {"id": tid, "params": params}
        clock += rng.uniform(0.5, 5.0)
        lines.append(_line(clock, "trial", id=tid, params=params, resource=resource, meta=meta))
        quality = abs(math.log(params["lr"]) + 6.0) / 3 + (0.1 if params["act"] == "tanh" else 0.0)
        fate = rng.random()
        attempts = 2 if fate < 0.05 else 1
        t = clock
        for attempt in range(attempts):
            job = f"{1000 + tid}_{attempt}"
            lines.append(_line(t, "submitted", id=tid, attempt=attempt, job=job))
            t += rng.uniform(1, 60)  # queue wait
            lines.append(_line(t, "state", id=tid, state="running", raw="RUNNING"))
            start = t
            if attempt < attempts - 1:
                t += rng.uniform(60, 600)
                reason = "preempted and not requeued by Slurm" if fate < 0.02 else "time limit reached"
                lines.append(_line(t, "retry", id=tid, attempt=attempt + 1, reason=reason,
                                   counted="preempted" not in reason))
                continue
            steps = n_steps if fate > 0.15 else max(2, n_steps // 3)
            for step in range(1, steps + 1):
                t += rng.uniform(1, 10)
                loss = quality + math.exp(-step / 5) + rng.gauss(0, 0.01)
                lines.append(_line(t, "report", id=tid, end=step * 80,
                                   data={"step": step, "loss": loss, "acc": 1 - loss / 3, "time": t}))
            state = "completed" if fate > 0.15 else ("stopped" if fate > 0.07 else "failed")
            value = loss if state != "failed" else None
            reason = {"stopped": "median rule: worse than the median", "failed": "the command failed (exit code 1)"}
            lines.append(_line(t, "end", id=tid, state=state, value=value, reason=reason.get(state, ""),
                               raw="exit 0" if state != "failed" else "exit 1", started=start, ended=t))
        last = max(last, t)
        trial_dir = os.path.join(path, "trials", str(tid))
        os.makedirs(trial_dir, exist_ok=True)
        with open(os.path.join(trial_dir, "started.json"), "w") as fh:
            json.dump({"job_id": job, "restart_count": 1 if fate > 0.97 else 0, "attempt": attempts - 1,
                       "started": start, "host": f"gpu{tid % 4:02d}", "pid": 1, "child_pid": 2}, fh)
    lines.append(_line(last + 1, "study_end", state="finished", reason=f"all {n_trials} trials ended"))
    with open(os.path.join(path, "journal.jsonl"), "w") as fh:
        fh.writelines(lines)
    return path
