"""A trial that keeps its lineage in its checkpoint, for the ASHA and PBT studies.

    python lineage_trial.py --steps N --x X [--lr LR] [--sleep S]

At start it reads ``lineage.json`` from ``$HPC_TUNE_CHECKPOINT_DIR`` (``{"step": k,
"trials": [ids of the trials that trained this model]}``), writes what it found to
``found.json`` in its own trial folder, then trains steps k+1..N, reporting
``{"step", "loss"}`` after each and saving the lineage (with its own id) atomically.
The tests read ``found.json`` and the checkpoints to check who continued whose model.
"""
import argparse
import json
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=float, required=True)
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--lr", type=float, default=1.0)
parser.add_argument("--sleep", type=float, default=0.1)
args = parser.parse_args()

trial_id = int(os.environ["HPC_TUNE_TRIAL_ID"])
ckpt_dir = os.environ["HPC_TUNE_CHECKPOINT_DIR"]
path = os.path.join(ckpt_dir, "lineage.json")
try:
    with open(path) as fh:
        lineage = json.load(fh)
except FileNotFoundError:
    lineage = {"step": 0, "trials": []}
tmp = os.path.join(os.environ["HPC_TUNE_TRIAL_DIR"], "found.json.tmp")
with open(tmp, "w") as fh:
    json.dump({**lineage, "ckpt_dir": ckpt_dir}, fh)
os.replace(tmp, tmp[:-4])

trials = lineage["trials"] + ([trial_id] if trial_id not in lineage["trials"] else [])
for step in range(lineage["step"] + 1, int(round(args.steps)) + 1):
    time.sleep(args.sleep)
    with open(os.environ["HPC_TUNE_RESULT_FILE"], "a") as fh:
        fh.write(json.dumps({"step": step, "loss": (args.x - 0.3) ** 2 + args.lr / step, "time": time.time()}) + "\n")
    with open(path + ".tmp", "w") as fh:
        json.dump({"step": step, "trials": trials}, fh)
    os.replace(path + ".tmp", path)
