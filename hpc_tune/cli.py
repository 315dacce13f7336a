"""The ``hpc-tune`` command line."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, Optional

from . import __version__
from .errors import UserError
from .spec import Spec, load_spec
from .tuner import draw_seed


def _warn(messages: List[str]) -> None:
    for m in messages:
        print(f"warning: {m}", file=sys.stderr)


def _load(path: str, quiet: bool = False) -> Spec:
    spec = load_spec(path)
    if not quiet:
        _warn(list(spec.warnings))
    return spec


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# ------------------------------------------------------------------------ commands


def cmd_validate(args: argparse.Namespace) -> int:
    spec = _load(args.file)
    print(f"{args.file}: ok ({spec.algorithm.kind}, {len(spec.space)} parameters, generation {spec.generation})")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .plan import format_plan, make_plan

    spec = _load(args.file, quiet=True)
    seed = args.seed if args.seed is not None else (spec.seed if spec.seed is not None else draw_seed())
    plan = make_plan(spec, seed)
    _warn(plan["warnings"])
    if args.json:
        _print_json(plan)
    else:
        print(format_plan(plan))
    return 0


# ------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpc-tune",
        description="Hyperparameter tuning on Slurm clusters from one polyaxonfile-style YAML file.",
    )
    parser.add_argument("--version", action="version", version=f"hpc-tune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("validate", help="check a study file; exit 0 or print what is wrong")
    p.add_argument("file")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="show what a study would run, without running it")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="one JSON object for programs")
    p.add_argument("--seed", type=int, help="override the study's seed")
    p.set_defaults(func=cmd_plan)

    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"hpc-tune: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hpc-tune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `hpc-tune plan --json | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
