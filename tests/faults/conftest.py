"""Runs the scenarios of the selected fault tests concurrently.

Each test is marked ``@pytest.mark.scenario(NAME)`` (NAME may hold ``{backend}``, filled from
the test's parameters) and asks the ``scenarios`` fixture for its result. On first use the
fixture starts, in threads, every scenario that a selected test needs (Slurm ones only when
the cluster answers), so the slow Slurm studies overlap: the whole folder takes about as
long as its longest scenario. The node-fault scenarios of the three-node cluster run one
after the other (``faultkit.MULTINODE_LANE``: a node fault hits every job on that node),
beside the others. Every scenario's jobs are cancelled by name when its test ends and again
at the end of the session.
"""
from __future__ import annotations

import os
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Dict, List, Optional

import faultkit
import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(name): the fault scenario a test asserts on (tests/faults)")


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    # The first test waits for its scenario while all of them run; on a shared cluster a
    # study may wait minutes for a GPU: more than the project's 900 s per test.
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(1800))


def scenario_name(item: pytest.Item) -> Optional[str]:
    marker = item.get_closest_marker("scenario")
    if marker is None:
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    return str(marker.args[0]).format(**params)


PREEMPTION = "preempt"  # the scenario whose preemptor must not hit the others (faultkit.Gate)


class Scenarios:
    def __init__(self, base: Path, names: List[str]) -> None:
        self.base = base
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(faultkit.SCENARIOS)), thread_name_prefix="scenario")
        self.futures: Dict[str, Future] = {}
        self.times: Dict[str, List[float]] = {}
        # The preemption scenario goes first; the other Slurm ones wait for its gate.
        # (the three-node cluster is another cluster: the preemptor cannot reach it)
        self.gated = {n for n in names if faultkit.SCENARIOS[n][2] is True and n != PREEMPTION}
        if PREEMPTION in names:
            faultkit.GATE.hold_first(len(self.gated))
        else:
            self.gated = set()
        for name in names:
            self.start(name)

    def start(self, name: str) -> None:
        if name in self.futures:
            return
        if name not in faultkit.SCENARIOS:
            raise KeyError(f"no scenario {name!r}; known: {sorted(faultkit.SCENARIOS)}")
        self.futures[name] = self.pool.submit(self._run, name)

    def _run(self, name: str) -> Dict[str, Any]:
        fn, kwargs, needs = faultkit.SCENARIOS[name]
        workdir = self.base / name
        workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        self.times[name] = [t0, t0]
        try:
            if name in self.gated:
                return faultkit.GATE.other(lambda: fn(workdir, owner=name, **kwargs))
            if needs == faultkit.MULTINODE:
                with faultkit.MULTINODE_LANE:
                    self.times[name][0] = time.time()  # its own time, not the wait for the lane
                    if faultkit.ABORT.is_set():
                        raise AssertionError("session ended")
                    try:
                        return fn(workdir, owner=name, **kwargs)
                    finally:
                        faultkit.CLEANUP.run(name)
                        faultkit.heal_multinode()  # the next scenario gets three nodes in service
            return fn(workdir, owner=name, **kwargs)
        except BaseException:
            (workdir / "scenario-error.txt").write_text(traceback.format_exc())
            raise
        finally:
            self.times[name][1] = time.time()

    def result(self, name: str, timeout: float) -> Dict[str, Any]:
        """The scenario's result; waits for it (it is started here if it was not yet)."""
        self.start(name)
        try:
            return self.futures[name].result(timeout=timeout)
        except FutureTimeout:
            raise AssertionError(f"scenario {name} did not end within {timeout:.0f} s "
                                 f"(see {self.base / name})") from None
        finally:
            faultkit.CLEANUP.run(name)  # its Slurm jobs, cancelled by name; its processes, by pid

    def close(self) -> None:
        faultkit.ABORT.set()
        faultkit.GATE.abort()
        for name in self.futures:
            faultkit.CLEANUP.run(name)
        self.pool.shutdown(wait=False, cancel_futures=True)


_DURATIONS: Dict[str, float] = {}


@pytest.fixture(scope="session")
def scenarios(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    slurm_ok = faultkit.slurm_here()
    multinode_ok: Optional[bool] = None
    names: List[str] = []
    for item in request.session.items:
        name = scenario_name(item)
        if name is None or name in names:
            continue
        needs = faultkit.SCENARIOS.get(name, (None, None, False))[2]
        if needs == faultkit.MULTINODE:
            if multinode_ok is None:
                multinode_ok = faultkit.multinode_here()
            if not multinode_ok:
                continue  # the test itself is skipped (or fails under CI) by tests/conftest.py
        elif needs and not slurm_ok:
            continue
        names.append(name)
    base = tmp_path_factory.mktemp("faults")
    runner = Scenarios(base, names)
    yield runner
    runner.close()
    for name, (t0, t1) in runner.times.items():
        _DURATIONS[name] = t1 - t0


@pytest.fixture
def scenario_result(request: pytest.FixtureRequest, scenarios: Scenarios):
    """``scenario_result(timeout)``: the result of this test's scenario."""
    name = scenario_name(request.node)
    assert name, "mark the test with @pytest.mark.scenario(NAME)"
    return lambda timeout=600: scenarios.result(name, timeout)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _DURATIONS:
        terminalreporter.write_sep("-", "fault scenarios (wall time, they ran concurrently)")
        for name, seconds in sorted(_DURATIONS.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{seconds:7.1f} s  {name}")
    if faultkit.MEASURED:
        terminalreporter.write_sep("-", "what each node fault cost (docs/faults.md)")
        for name, figures in sorted(faultkit.MEASURED.items()):
            terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
