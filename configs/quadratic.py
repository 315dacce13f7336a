"""A trial that takes a fraction of a second, for the short example studies in this folder.

It reports `loss` for the parameters it is given (smallest near x = 0.3, y = -0.1 with
`adam`), once per epoch when given `--epochs` (the Hyperband resource), so that a study
can be tried end to end on a laptop:  python3 configs/quadratic.py --x 0.5 --epochs 3
"""
import argparse

import hpc_tune

OPTIMIZER_PENALTY = {"adam": 0.0, "sgd": 0.05}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, required=True)
    parser.add_argument("--y", type=float, default=0.0)
    parser.add_argument("--opt", default="adam")
    parser.add_argument("--epochs", type=float, default=1)
    args = parser.parse_args()
    base = (args.x - 0.3) ** 2 + (args.y + 0.1) ** 2 + OPTIMIZER_PENALTY.get(args.opt, 0.1)
    epochs = max(1, round(args.epochs))
    for epoch in range(1, epochs + 1):
        hpc_tune.report(step=epoch, loss=base + 1.0 / (epoch + 1))  # more epochs, lower loss


if __name__ == "__main__":
    main()
