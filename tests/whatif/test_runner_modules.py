"""runner.py split into engines, executors and results: the old import paths keep working."""

from __future__ import annotations

import importlib
import pickle

import pytest

# every name that ``twin.whatif.runner`` defined before the split -> the module that defines it now
MOVED = {
    "Progress": "engines",
    "Engine": "engines",
    "ReferenceEngine": "engines",
    "register_engine": "engines",
    "engine_names": "engines",
    "get_engine": "engines",
    "_ENGINES": "engines",
    "_PLANNED": "engines",
    "WorkItem": "executors",
    "Job": "executors",
    "run_item": "executors",
    "ItemProgress": "executors",
    "Executor": "executors",
    "Serial": "executors",
    "DEFAULT_WORKER_MEMORY_MB": "executors",
    "die_with_parent": "executors",
    "limit_memory": "executors",
    "RunCancelled": "executors",
    "LocalProcessPool": "executors",
    "terminate_workers": "executors",
    "Replication": "results",
    "WhatIfResult": "results",
}


@pytest.mark.parametrize("name", sorted(MOVED))
def test_runner_reexports_the_moved_name_itself(name: str) -> None:
    """`from twin.whatif.runner import X` gives the very object its new module defines."""
    runner = importlib.import_module("twin.whatif.runner")
    home = importlib.import_module(f"twin.whatif.{MOVED[name]}")
    assert getattr(runner, name) is getattr(home, name)


def test_runner_keeps_run_config_and_run_whatif() -> None:
    """RunConfig and run_whatif are defined in runner itself (the run's own concept)."""
    from twin.whatif import runner

    assert runner.RunConfig.__module__ == "twin.whatif.runner"
    assert runner.run_whatif.__module__ == "twin.whatif.runner"


def test_engine_registered_through_either_module_is_seen_by_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One registry: an engine patched into runner._ENGINES is found by engines.get_engine."""
    from twin.whatif import engines, runner

    monkeypatch.setitem(runner._ENGINES, "facade-probe", engines.ReferenceEngine)
    assert "facade-probe" in engines.engine_names()
    assert isinstance(engines.get_engine("facade-probe"), engines.ReferenceEngine)


@pytest.mark.parametrize("name", ["_init_worker", "_run_in_worker"])
def test_pool_worker_functions_pickle_by_module_level_name(name: str) -> None:
    """The pool's initializer and task pickle by reference to a module-level function
    (forkserver and spawn workers import them by qualified name)."""
    from twin.whatif import executors

    fn = getattr(executors, name)
    assert fn.__qualname__ == name
    data = pickle.dumps(fn)
    assert b"twin.whatif.executors" in data
    assert pickle.loads(data) is fn


def test_replication_and_work_item_round_trip_through_pickle() -> None:
    """What crosses the process boundary (work items out, replications back) unpickles equal."""
    from twin.whatif.runner import Replication, WorkItem

    item = WorkItem(2, (0, 1))
    rep = Replication(
        scenario="more-litho", replication=1, kpis={"x": 1.5}, series={"wip.lots": [1.0]}
    )
    assert pickle.loads(pickle.dumps(item)) == item
    assert pickle.loads(pickle.dumps(rep)) == rep
