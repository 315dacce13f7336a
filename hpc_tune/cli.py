"""The ``hpc-tune`` command line."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

from tabulate import tabulate

from . import __version__
from .errors import HpcTuneError, UserError
from .journal import load_view
from .spec import Spec, load_spec
from .study import create_study, default_state_dir, find_study, list_studies
from .summary import best_trial, export_rows, format_status, status_dict, study_state, trial_log_paths
from .tuner import draw_seed


# The controller side (backends, submitit) is imported only by the commands that
# run or stop trials, so that `validate`, `plan` and `status` start fast.
def default_backend_name() -> str:
    from .backends import default_backend_name as name

    return name()


def run_controller(study_dir: str) -> Dict[str, Any]:
    from .controller.launcher import run_controller as run

    return run(study_dir)


def submit_controller_job(study_dir: str, args: argparse.Namespace) -> str:
    from .controller.launcher import submit_controller_job as submit

    return submit(study_dir, args)


def cancel_study(study_dir: str) -> str:
    from .controller.launcher import cancel_study as cancel

    return cancel(study_dir)


def live_controller(view: Any) -> Optional[str]:
    from .controller.launcher import live_controller as live

    return live(view)


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


# ------------------------------------------------------------------- study commands


def _state_dir(args: argparse.Namespace) -> str:
    return os.path.abspath(args.state_dir or default_state_dir())


def _slurm_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key in ("partition", "time", "mem", "cpus", "gpus", "account", "qos", "max_retries"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    if getattr(args, "sbatch", None):
        out["extra"] = list(args.sbatch)
    return out


def cmd_submit(args: argparse.Namespace) -> int:
    spec = _load(args.file)
    if spec.run.cmd is None:
        raise UserError(f"{args.file}: no `run.cmd`: hpc-tune needs the shell command each trial runs "
                        f"(e.g. `run: {{cmd: python train.py --lr={{{{ lr }}}}}}`)")
    backend = args.backend or default_backend_name()
    seed = args.seed if args.seed is not None else (spec.seed if spec.seed is not None else draw_seed())
    study_dir = create_study(args.file, spec, _state_dir(args), backend=backend, seed=seed,
                             slurm=_slurm_overrides(args), poll_interval=args.poll_interval)
    study_id = os.path.basename(study_dir)
    print(f"study {study_id} created in {study_dir}")
    return _start_controller(study_dir, backend, args)


def _start_controller(study_dir: str, backend: str, args: argparse.Namespace) -> int:
    study_id = os.path.basename(study_dir)
    if backend == "local" or args.foreground:
        print(f"running the controller here ({backend} backend); Ctrl-C stops it, "
              f"`hpc-tune resume {study_id}` carries on")
        _log_to_terminal()
        end = run_controller(study_dir)
        _print_end(study_dir, end)
        return 0 if end.get("state") in ("finished", "early_stopped") else 1
    job = submit_controller_job(study_dir, args)
    print(f"controller submitted as Slurm job {job}\n"
          f"  follow it:   hpc-tune status {study_id} --watch\n"
          f"  best so far: hpc-tune best {study_id}\n"
          f"  stop it:     hpc-tune cancel {study_id}")
    if not args.wait:
        return 0
    end = _wait_for_end(study_dir)
    _print_end(study_dir, end)
    return 0 if end.get("state") in ("finished", "early_stopped") else 1


def _wait_for_end(study_dir: str, every: float = 5.0) -> Dict[str, Any]:
    """Follow a study run by a controller job until it ends, one line per change."""
    last = ""
    while True:
        view = load_view(study_dir)
        line = f"{time.strftime('%H:%M:%S')} {study_state(view)}: " + (
            ", ".join(f"{n} {k}" for k, n in sorted(view.counts().items())) or "no trials yet")
        if line.split(" ", 1)[1] != last:
            print(line, flush=True)
            last = line.split(" ", 1)[1]
        if view.ended is not None:
            return view.ended
        time.sleep(every)


def _log_to_terminal() -> None:
    import logging

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.getLogger("hpc_tune").addHandler(handler)
    logging.getLogger("hpc_tune").setLevel(logging.INFO)


def _print_end(study_dir: str, end: Dict[str, Any]) -> None:
    view = load_view(study_dir)
    print(f"study {view.study_id}: {end.get('state')}" + (f" ({end.get('reason')})" if end.get("reason") else ""))
    best = best_trial(view)
    if best is not None:
        print(f"best trial {best.trial_id}: {view.info.get('metric')} = {best.value:g}  "
              + " ".join(f"{k}={v}" for k, v in best.params.items()))


def cmd_controller(args: argparse.Namespace) -> int:
    end = run_controller(os.path.abspath(args.study_dir))
    return 0 if end.get("state") in ("finished", "early_stopped", "cancelled", "interrupted") else 1


def cmd_status(args: argparse.Namespace) -> int:
    if not args.study:
        return _status_all(args)
    study_dir = find_study(args.study, args.state_dir)
    while True:
        view = load_view(study_dir)
        if args.json:
            _print_json(status_dict(view))
        else:
            if args.watch:
                print("\033[2J\033[H", end="")
            print(format_status(view))
        if not args.watch or view.ended is not None:
            return 0
        time.sleep(args.interval)


def _status_all(args: argparse.Namespace) -> int:
    rows = []
    for d in list_studies(_state_dir(args)):
        try:
            view = load_view(d)
        except UserError as exc:
            rows.append({"study": os.path.basename(d), "state": f"unreadable: {exc}"})
            continue
        best = best_trial(view)
        rows.append({"study": view.study_id, "state": study_state(view), "trials": len(view.trials),
                     **{k: v for k, v in view.counts().items()},
                     "best": None if best is None else best.value})
    if args.json:
        _print_json(rows)
    elif not rows:
        print(f"no studies under {_state_dir(args)}")
    else:
        print(tabulate(rows, headers="keys"))
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    view = load_view(find_study(args.study, args.state_dir))
    best = best_trial(view)
    if best is None:
        metric = view.info.get("metric")
        raise UserError(f"study {view.study_id} has no completed trial with a value of "
                        f"`{metric}` yet" if metric else
                        f"study {view.study_id} has no metric to rank trials by: add `metric:` to the study file")
    out = {"study": view.study_id, "trial": best.trial_id, "metric": view.info.get("metric"), "value": best.value,
           "params": best.params, "resource": best.resource, "job_id": best.job_id}
    if args.json:
        _print_json(out)
    else:
        print(f"best trial {best.trial_id} of {view.study_id}: {out['metric']} = {best.value:g}")
        print(tabulate([[k, v] for k, v in best.params.items()], headers=["parameter", "value"]))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    study_dir = find_study(args.study, args.state_dir)
    view = load_view(study_dir)
    if args.trial not in view.trials:
        raise UserError(f"study {view.study_id} has no trial {args.trial} (trials 0..{len(view.trials) - 1})")
    paths = trial_log_paths(study_dir, view.trials[args.trial])
    if not paths:
        print(f"no logs yet for trial {args.trial}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"==> {path} <==")
        with open(path, encoding="utf-8", errors="replace") as fh:
            sys.stdout.write(fh.read()[-args.tail_bytes:])
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    study_dir = find_study(args.study, args.state_dir)
    end = cancel_study(study_dir)
    print(f"study {os.path.basename(study_dir)}: {end}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    study_dir = find_study(args.study, args.state_dir)
    view = load_view(study_dir)
    if view.ended is not None:
        print(f"study {view.study_id} already ended: {view.ended.get('state')} ({view.ended.get('reason', '')})")
        return 0
    holder = live_controller(view)
    if holder:
        raise UserError(f"study {view.study_id} already has a running controller ({holder}); "
                        f"`hpc-tune cancel` stops it")
    backend = args.backend or view.info.get("backend") or default_backend_name()
    return _start_controller(study_dir, backend, args)


def cmd_export(args: argparse.Namespace) -> int:
    view = load_view(find_study(args.study, args.state_dir))
    rows = export_rows(view)
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
    try:
        if args.format == "json":
            json.dump(rows, out, indent=2, default=str)
            out.write("\n")
        else:
            keys: List[str] = []
            for r in rows:
                keys += [k for k in r if k not in keys]
            writer = csv.DictWriter(out, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


# ------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpc-tune",
        description="Hyperparameter tuning on Slurm clusters from one polyaxonfile-style YAML file.",
    )
    parser.add_argument("--version", action="version", version=f"hpc-tune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
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

    def study_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("study", help="study id (or a unique prefix of one) or study directory")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", help="where studies live (default: $HPC_TUNE_STATE_DIR or "
                                           "./hpc-tune-studies)")

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="JSON for programs")

    def launch_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", choices=("slurm", "local"),
                       help="where trials run (default: slurm when sbatch is on the PATH, else local)")
        p.add_argument("--foreground", action="store_true",
                       help="run the controller in this process instead of as a Slurm job")
        g = p.add_argument_group("Slurm options (override the file's `slurm:` section)")
        g.add_argument("--partition")
        g.add_argument("--time", help="per-trial time limit, e.g. 30 or 2:00:00")
        g.add_argument("--mem", help="per-trial memory, e.g. 4G")
        g.add_argument("--cpus", type=int, help="CPUs per trial")
        g.add_argument("--gpus", type=int, help="GPUs per trial (--gres=gpu:N)")
        g.add_argument("--account")
        g.add_argument("--qos")
        g.add_argument("--max-retries", type=int, help="resubmissions after TIMEOUT or NODE_FAIL")
        g.add_argument("--sbatch", action="append", metavar="OPTION",
                       help="extra sbatch option for trial jobs, e.g. --sbatch=--constraint=a100 (repeatable)")
        g.add_argument("--controller-time", default="2-00:00:00",
                       help="time limit of the controller job (it requeues itself before it)")
        g.add_argument("--controller-partition", help="partition of the controller job")
        g.add_argument("--controller-signal", type=int, default=120, metavar="SECONDS",
                       help="the controller job is warned this long before its time limit, requeues "
                            "itself and carries on (default 120)")
        p.add_argument("--wait", action="store_true",
                       help="with a controller job: follow the study until it ends, then print the best trial")

    p = sub.add_parser("submit", help="create a study and start its controller (a Slurm job, or here)")
    p.add_argument("file")
    p.add_argument("--seed", type=int, help="override the study's seed")
    p.add_argument("--poll-interval", type=float, default=30.0,
                   help="seconds between scheduler queries (default 30; finished trials are seen within a "
                        "second through their exit records)")
    common(p)
    launch_flags(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", help="studies, or one study's trials")
    p.add_argument("study", nargs="?")
    p.add_argument("--watch", action="store_true", help="refresh until the study ends")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes with --watch")
    common(p)
    json_flag(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("best", help="the best trial of a study")
    study_arg(p)
    common(p)
    json_flag(p)
    p.set_defaults(func=cmd_best)

    p = sub.add_parser("logs", help="a trial's output")
    study_arg(p)
    p.add_argument("trial", type=int)
    p.add_argument("--tail-bytes", type=int, default=20000)
    common(p)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("cancel", help="stop a study: cancel its trials and its controller")
    study_arg(p)
    common(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("resume", help="start a controller for a study that has none")
    study_arg(p)
    common(p)
    launch_flags(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("export", help="all trials as CSV or JSON")
    study_arg(p)
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    common(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("controller", help=argparse.SUPPRESS)  # what the controller job runs
    p.add_argument("study_dir")
    p.set_defaults(func=cmd_controller)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    args = parser.parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("hpc-tune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `hpc-tune plan --json | head`
        return 0
    except Exception as exc:  # one message each, never a traceback (unless --debug)
        if args.debug:
            raise
        if isinstance(exc, HpcTuneError):
            print(f"hpc-tune: error: {exc}", file=sys.stderr)
            return exc.exit_code
        print(f"hpc-tune: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback, "
              f"and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
