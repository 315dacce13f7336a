"""A trial for the integration tests: reports what it saw, sleeps, reports a metric.

    python probe_trial.py --x 0.3 [--resource 3] [--sleep 2] [--acc 0.5]
"""
import argparse
import json
import os
import socket
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--resource", type=float, default=1.0)
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--acc", type=float, default=None)
args = parser.parse_args()

start = time.time()
result_file = os.environ["HPC_TUNE_RESULT_FILE"]


def report(**metrics):
    with open(result_file, "a") as fh:
        fh.write(json.dumps(metrics) + "\n")


report(step=0, started=start, cuda=os.environ.get("CUDA_VISIBLE_DEVICES", ""), host=socket.gethostname(),
       job=os.environ.get("SLURM_JOB_ID", ""))
if args.acc is not None:
    report(step=1, acc=args.acc)
time.sleep(args.sleep)
report(step=2, loss=(args.x - 0.3) ** 2 / args.resource, acc=args.acc if args.acc is not None else 0.0,
       ended=time.time())
