#!/usr/bin/env python
"""``hpc-tune`` with a shorter controller tick, for benchmarks/slot_utilisation.py.

The controller sees a finished trial through the exit record its wrapper writes, checked once
per tick (1 s, fixed in ``hpc_tune.runner.run_controller``): a GPU slot stays idle half a tick
on average before its next trial is even submitted. This runs ``hpc-tune`` unchanged except for
that tick, so the benchmark can measure what a shorter one would win; nothing in the library
is changed:

    SLOT_TICK=0.25 python benchmarks/slot_variant.py submit FILE --backend slurm --foreground
"""
from __future__ import annotations

import functools
import os
import sys


def main() -> int:
    import hpc_tune.runner as runner
    from hpc_tune.cli import main as cli_main

    tick = float(os.environ.get("SLOT_TICK", "1.0"))
    # hpc_tune.cli imports run_controller from hpc_tune.runner when it starts the controller.
    runner.run_controller = functools.partial(runner.run_controller, tick=tick)
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
