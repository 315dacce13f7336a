"""Train a small MLP on scikit-learn's digits and report the validation error.

Used by the example studies in this folder. It trains `--epochs` epochs in total:
when its checkpoint folder ($HPC_TUNE_CHECKPOINT_DIR) holds a model from an earlier
run (a requeued job, the Hyperband or ASHA configuration it was promoted from with
`resume: true`, or the PBT member whose checkpoint was copied for it), it continues
from there instead of starting over, with the learning rate and alpha given now (PBT
changes them between intervals; the layer size is the checkpoint's).

Run it alone:  python configs/train_digits.py --epochs 5 --lr 0.01
"""
import argparse
import os
import pickle
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import hpc_tune


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to wait per epoch (slower demos)")
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)

    ckpt_dir = os.environ.get("HPC_TUNE_CHECKPOINT_DIR")
    ckpt = os.path.join(ckpt_dir, "model.pkl") if ckpt_dir else None
    model, done = None, 0
    if ckpt and os.path.exists(ckpt):
        with open(ckpt, "rb") as fh:
            model, done = pickle.load(fh)
        print(f"resuming from epoch {done}")
        model.set_params(learning_rate_init=args.lr, alpha=args.alpha)
        if getattr(model, "_optimizer", None) is not None:  # Adam keeps its own copy of the rate
            model._optimizer.learning_rate_init = args.lr
    if model is None:
        model = MLPClassifier(hidden_layer_sizes=(args.hidden,), learning_rate_init=args.lr, alpha=args.alpha,
                              batch_size=args.batch_size, random_state=args.seed)
    classes = np.unique(y)
    for epoch in range(done + 1, args.epochs + 1):
        model.partial_fit(x_train, y_train, classes=classes)  # one epoch of shuffled minibatches
        error = 1.0 - model.score(x_val, y_val)
        hpc_tune.report(step=epoch, val_error=error)
        if ckpt:
            tmp = ckpt + ".tmp"
            with open(tmp, "wb") as fh:
                pickle.dump((model, epoch), fh)
            os.replace(tmp, ckpt)  # a kill mid-write never leaves a broken checkpoint
        if args.sleep:
            time.sleep(args.sleep)
    print(f"trained to epoch {args.epochs}")


if __name__ == "__main__":
    main()
