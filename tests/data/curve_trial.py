"""A trial with a learning curve, for the report tests: reports ``loss`` and ``acc`` at every
step (and ``lr_now`` every other step), sleeping between steps.

    python curve_trial.py --x 0.3 [--y 2] [--resource 3] [--steps 5] [--sleep 0.1] [--fail-above 0.9]

With ``--fail-above``, a trial whose x is above it exits 3 after its first report.
"""
import argparse
import json
import math
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--y", type=float, default=0.0)
parser.add_argument("--resource", type=float, default=None)
parser.add_argument("--steps", type=int, default=5)
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--fail-above", type=float, default=None)
args = parser.parse_args()

steps = int(args.resource) if args.resource is not None else args.steps
floor = (args.x - 0.3) ** 2 + 0.01 * args.y
with open(os.environ["HPC_TUNE_RESULT_FILE"], "a") as fh:
    for step in range(1, steps + 1):
        line = {"step": step, "loss": floor + math.exp(-step / 3), "acc": 1 - floor - 0.5 * math.exp(-step / 3),
                "time": time.time()}
        if step % 2 == 0:
            line["lr_now"] = 0.1 / step
        fh.write(json.dumps(line) + "\n")
        fh.flush()
        if args.fail_above is not None and args.x > args.fail_above:
            raise SystemExit(3)
        time.sleep(args.sleep)
