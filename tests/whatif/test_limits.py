"""What-if limits: inputs a few bytes long that would allocate gigabytes are refused before
anything is built, YAML alias bombs are refused by every loader, and pool workers have a memory
limit and die with the process that started them."""

from __future__ import annotations

import math
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.whatif.test_scenarios import small_model
from twin.errors import ConfigError, TwinError
from twin.process.model import ToolFamily
from twin.scene.yamlio import YamlLimits, load_yaml
from twin.whatif.runner import (
    Job,
    LocalProcessPool,
    Replication,
    RunConfig,
    WorkItem,
    run_whatif,
)
from twin.whatif.scenarios import ProcessingTime, Scenario, Select, ToolCount, parse_scenarios
from twin.whatif.scenarios import limits as lim

ROOT = Path(__file__).resolve().parents[2]

# the classic "billion laughs", written as a scenario file: 577 bytes, 10⁹ strings expanded
BILLION_LAUGHS = textwrap.dedent(
    """\
    # billion laughs, nine levels of ten aliases (577 bytes)
    scenarios:
      - name: lol
        description: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]
        changes: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
    sweeps:
      - name: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
        grid: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
        changes: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
      - name: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
        grid: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
        changes: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
      - name: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
        grid: {x: [*i]}
        changes: []
    """
)


def peak_mb() -> float:
    """This process's peak resident memory so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def refused(fn, *, seconds: float = 3.0, mb: float = 100.0) -> str:
    """Call ``fn``, which must raise a TwinError quickly and without growing memory; its text."""
    before, t0 = peak_mb(), time.perf_counter()
    with pytest.raises(TwinError) as err:
        fn()
    elapsed = time.perf_counter() - t0
    assert elapsed < seconds, f"took {elapsed:.1f} s to refuse"
    assert peak_mb() - before < mb, f"peak memory grew {peak_mb() - before:.0f} MiB"
    return str(err.value)


def one_change(change: str) -> str:
    """A scenario file with one scenario of one change (written on line 4)."""
    return f"scenarios:\n  - name: x\n    changes:\n      - {change}\n"


# --- counted before built --------------------------------------------------------------------


def test_step_range_is_counted_not_built():
    """steps: ["1-30000000"] (the 156-byte request that took 1.5 GB) is refused by counting,
    with the field, the value and the maximum."""
    text = one_change('processing_time: {route: r_1, steps: ["1-30000000"], factor: 0.9}')
    msg = refused(lambda: parse_scenarios(text, source="s.yaml", model=small_model()))
    assert "s.yaml:4:" in msg and "'steps' name 30,000,000 step numbers" in msg
    assert f"at most {lim.MAX_STEPS:,}" in msg
    huge = one_change('processing_time: {route: r_1, steps: ["1-' + "9" * 5000 + '"], factor: 2}')
    assert "'steps' name" in refused(lambda: parse_scenarios(huge))


def test_step_range_beyond_the_route_is_one_short_line():
    """A range under the maximum but larger than the route names the route's steps and a count,
    not every missing number; a backwards range is refused."""
    text = one_change('processing_time: {route: r_1, steps: ["1-9000"], factor: 0.9}')
    msg = refused(lambda: parse_scenarios(text, model=small_model()))
    assert "route r_1 has no step 6, 7," in msg and "and 8,985 more (steps 1..5)" in msg
    assert len(msg) < 400
    text = one_change('processing_time: {route: r_1, steps: ["5-3"], factor: 0.9}')
    assert "step range '5-3' runs backwards" in refused(lambda: parse_scenarios(text))


def test_sweep_grid_is_multiplied_before_it_is_expanded():
    """A 100×100×100 grid (it ran for 9 minutes) is refused at once by the product of its
    axis lengths; sweeps and scenarios share one count with the baseline."""
    axis = "[" + ",".join(str(i) for i in range(100)) + "]"
    grid = f"    grid: {{a: {axis}, b: {axis}, c: {axis}}}\n"
    text = (
        'sweeps:\n  - name: "s-${a}-${b}-${c}"\n' + grid + "    changes:\n"
        "      - processing_time: {area: Litho, factor: 1}\n"
    )
    msg = refused(lambda: parse_scenarios(text, source="g.yaml", model=small_model()))
    assert "g.yaml:2: sweep grid 100 × 100 × 100 = 1,000,000 scenarios" in msg
    assert f"past {lim.MAX_SCENARIOS:,} scenarios" in msg
    small = text.replace(axis, "[1, 2]")
    assert len(parse_scenarios(small, max_scenarios=9)) == 9  # 8 and the baseline fit
    assert "past 8 scenarios" in refused(lambda: parse_scenarios(small, max_scenarios=8))


def test_sweep_expanded_size_is_counted():
    """A sweep whose changes are large is refused by scenarios × values before it is copied
    per scenario; a problem in a sweep's changes is listed once, not once per scenario."""
    names = ", ".join(f"F{i}" for i in range(2000))
    text = (
        "sweeps:\n  - grid: {n: [" + ",".join(map(str, range(1000))) + "]}\n    changes:\n"
        f'      - tool_count: {{families: [{names}], add: "${{n}}"}}\n'
    )
    msg = refused(lambda: parse_scenarios(text, source="w.yaml", model=small_model()))
    assert "w.yaml:2: sweep grid 1000 = 1,000 scenarios of 2,008 values each" in msg
    assert "at most 1,000,000" in msg
    text = (
        "sweeps:\n  - grid: {n: [" + ",".join(map(str, range(200))) + "]}\n    changes:\n"
        '      - tool_count: {family: NOPE, add: "${n}"}\n'
    )
    msg = refused(lambda: parse_scenarios(text, source="w.yaml", model=small_model()))
    assert msg.count("unknown family 'NOPE'") == 50 and msg.endswith("... and 150 more problems")


def test_tool_counts_are_bounded():
    """tool_count add: 10000000 (a worker past 5 GB) is refused while parsing; a family past
    MAX_FAMILY_TOOLS or a model past MAX_TOOLS is refused against the model."""
    text = one_change("tool_count: {area: Litho, add: 10000000}")
    msg = refused(lambda: parse_scenarios(text, source="t.yaml"))
    assert "t.yaml:4: 'add' must be an integer in -10000..10000, got 10000000" in msg
    assert msg.count("\n") == 1  # one problem: not also "needs exactly one of 'add' or 'set'"
    text = one_change("tool_count: {family: ETCH_1, set: 5000}")
    msg = refused(lambda: parse_scenarios(text, model=small_model()))
    assert "ETCH_1 would have 5,000 tools (has 4); a family may have 1..1,000" in msg
    model = small_model()
    for i in range(11):
        model.families[f"X_{i}"] = ToolFamily(name=f"X_{i}", count=1, area="X")
    text = one_change("tool_count: {area: X, set: 1000}")
    msg = refused(lambda: parse_scenarios(text, model=model))
    assert "the model would have 11,011 tools; at most 10,000" in msg
    big = one_change("tool_count: {area: Litho, add: " + "9" * 5000 + "}")
    assert "unreadable YAML value: Exceeds the limit (4300 digits)" in refused(
        lambda: parse_scenarios(big)
    )
    big = one_change("tool_count: {area: Litho, add: " + "9" * 4000 + "}")
    assert "an integer of 13288 bits" in refused(lambda: parse_scenarios(big))


@pytest.mark.parametrize("value", ["0", "1e-7", "1e9", ".nan", ".inf", "-.inf", "x", "true"])
def test_factors_are_finite_and_in_range(value):
    """Every factor (processing time, release rate, PM interval, MTTR, product mix) is a
    finite number in 1e-3..1e3 (a product mix factor may also be 0)."""
    for change in (
        f"processing_time: {{area: Litho, factor: {value}}}",
        f"release_rate: {{factor: {value}}}",
        f"pm_interval: {{factor: {value}}}",
        f"mttr: {{factor: {value}}}",
    ):
        msg = refused(lambda c=change: parse_scenarios(one_change(c)))
        assert "'factor' must be a number in 0.001..1000, got" in msg
    if value != "0":
        msg = refused(lambda: parse_scenarios(one_change(f"product_mix: {{p_1: {value}}}")))
        assert "'factor' must be 0 or a number in 0.001..1000" in msg


def test_release_factors_multiply_within_the_range():
    """Release changes that are each in range but together release a stream more than
    FACTOR_MAX times as often are refused (lots released are what fills a worker's memory)."""
    text = (
        "scenarios:\n  - name: flood\n    changes:\n"
        "      - release_rate: {factor: 100}\n      - release_rate: {factor: 100}\n"
    )
    msg = refused(lambda: parse_scenarios(text, source="r.yaml", model=small_model()))
    assert "r.yaml:2: scenario 'flood': its changes together release" in msg
    assert "10,000 times as often; at most 1000 times" in msg
    ok = text.replace(
        "factor: 100}\n      - release_rate: {factor: 100",
        "factor: 10}\n      - release_rate: {factor: 100",
    )
    assert len(parse_scenarios(ok, model=small_model())) == 2


def test_scenarios_built_in_code_meet_the_same_limits():
    """run_whatif refuses code-built changes over the limits before any worker starts."""
    bad = Scenario(
        name="bad",
        changes=(
            ProcessingTime(factor=1e9),
            ToolCount(add=10_000_000, select=Select(areas=("Litho",))),
        ),
    )
    msg = refused(lambda: run_whatif(small_model(), [bad], RunConfig(days=1), progress=False))
    assert "'factor' must be a number in 0.001..1000, got 1000000000.0" in msg
    assert "'add' must be an integer in -10000..10000, got 10000000" in msg
    many = Scenario(name="many", changes=(ProcessingTime(factor=1.0),) * 101)
    msg = refused(lambda: run_whatif(small_model(), [many], RunConfig(days=1), progress=False))
    assert "scenario 'many' has 101 changes; at most 100" in msg


def test_run_config_limits():
    """wip_sample_days: 1e-7 (1.4 GB of samples) is refused, and so are days, replications
    and seeds past their limits or not finite; every problem at once."""
    cfg = RunConfig(days=10, options={"wip_sample_days": 1e-7})
    msg = refused(cfg.validate)
    assert "options.wip_sample_days 1e-07: must be a number of days in 0.0416667" in msg
    RunConfig(days=3650, options={"wip_sample_days": 1 / 24}).validate()  # the extremes pass
    with pytest.raises(ConfigError) as err:
        RunConfig(days=math.inf, warmup_days=math.nan, replications=10**30, seed=2**70).validate()
    assert len(err.value.problems) == 4
    text = str(err.value)
    assert "days inf: must be a number in (0, 3650]" in text
    assert f"replications {10**30}: must be an integer in 1..10000" in text
    assert "seed 1180591620717411303424: must be an integer in 0..9223372036854775807" in text


def test_cli_refuses_before_loading_anything(tmp_path, capsys):
    """`twin whatif run` refuses days, replications and sample limits before it loads the model,
    and a sweep grid over the limit before it expands it: one error each, at once."""
    from twin.cli import main

    t0 = time.perf_counter()
    assert main(["whatif", "run", "no-such-model", "--days", "inf", "-r", "100000"]) == 1
    err = capsys.readouterr().err
    assert "days inf: must be a number in (0, 3650]" in err
    assert "replications 100000: must be an integer in 1..10000" in err
    axis = "[" + ",".join(map(str, range(100))) + "]"
    path = tmp_path / "grid.yaml"
    path.write_text(
        f"sweeps:\n  - grid: {{a: {axis}, b: {axis}, c: {axis}}}\n    changes:\n"
        '      - processing_time: {factor: "${a}${b}${c}"}\n'
    )
    before = peak_mb()
    demo = str(ROOT / "scenes" / "demo-fab")
    assert main(["whatif", "run", demo, "--scenarios", str(path), "--dry-run"]) == 1
    assert "sweep grid 100 × 100 × 100 = 1,000,000 scenarios" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 30 and peak_mb() - before < 100


# --- YAML ------------------------------------------------------------------------------------


def test_billion_laughs_scenario_file_is_one_line_and_little_memory(tmp_path):
    """The 577-byte billion-laughs file given to the CLI gives one error line at once (it
    reached 5.7 GB): scenario files accept no aliases."""
    from twin.cli import main

    path = tmp_path / "lol.yaml"
    path.write_text(BILLION_LAUGHS)
    assert path.stat().st_size == 577
    before, t0 = peak_mb(), time.perf_counter()
    rc = main(["whatif", "run", str(ROOT / "scenes" / "demo-fab"), "--scenarios", str(path),
               "--dry-run"])  # fmt: skip
    assert rc == 1 and time.perf_counter() - t0 < 30 and peak_mb() - before < 100
    msg = refused(lambda: parse_scenarios(BILLION_LAUGHS, source="lol.yaml"))
    assert msg.count("\n") == 1 and "lol.yaml: anchors and aliases (&name, *name) are not" in msg


def test_scenario_yaml_size_depth_and_text_are_bounded(tmp_path):
    """A file over MAX_FILE_BYTES is refused before it is read; nesting past MAX_YAML_DEPTH,
    a lone surrogate and bytes that are not UTF-8 are one clear problem each."""
    from twin.whatif.scenarios import load_scenarios

    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(lim.MAX_FILE_BYTES + 1)  # sparse: refused by its size alone
    assert "over the limit of 1,048,576 bytes" in refused(lambda: load_scenarios(big))
    deep = "scenarios: " + "[" * 40 + "]" * 40
    assert "nesting deeper than 32 levels" in refused(lambda: parse_scenarios(deep))
    msg = refused(lambda: parse_scenarios("scenarios:\n  - name: \ud800\n"))
    assert "a lone surrogate '\\ud800' at character 22" in msg
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"scenarios:\n  - name: caf\xe9\n")
    assert "not UTF-8 text (byte 25" in refused(lambda: load_scenarios(latin))
    assert "not valid YAML" in refused(lambda: parse_scenarios("a: [1, 2\n"))


def test_scene_yaml_refuses_alias_bombs_and_keeps_ordinary_aliases():
    """Scene files (yamlio.load_yaml) accept a few anchors and aliases, but refuse aliases
    that expand past max_alias_nodes, too many aliases, self-containing ones and deep nesting."""
    assert load_yaml("a: &x {k: 1}\nb: *x\n", "ok.yaml") == {"a": {"k": 1}, "b": {"k": 1}}
    lol = "\n".join(
        f"{c}: &{c} [" + ",".join([f"*{p}"] * 10) + "]" for p, c in zip("abcdefgh", "bcdefghi")
    )
    msg = refused(lambda: load_yaml("a: &a [lol]\n" + lol, "lol.yaml"))
    assert "lol.yaml: its aliases expand to 234,567,910 nodes from 20" in msg
    many = "a: &a 1\nb: [" + ", ".join(["*a"] * 1001) + "]\n"
    assert "more than 1000 aliases" in refused(lambda: load_yaml(many, "m.yaml"))
    assert "an alias inside its own anchor" in refused(lambda: load_yaml("&a [*a]", "r.yaml"))
    deep = "[" * 100 + "]" * 100
    assert "nesting deeper than 64 levels" in refused(lambda: load_yaml(deep, "d.yaml"))
    tiny = YamlLimits(max_bytes=10)
    assert "over the limit of 10 bytes" in refused(lambda: load_yaml("a: 12345678", "x", tiny))


def test_every_yaml_load_goes_through_yamlio():
    """No module of the project calls yaml.load/safe_load itself: every document is bounded."""
    offenders = []
    for path in [*ROOT.glob("twin/**/*.py"), *ROOT.glob("services/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        if path.name != "yamlio.py" and any(
            f"yaml.{f}(" in text for f in ("load", "safe_load", "full_load", "unsafe_load")
        ):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# --- workers ---------------------------------------------------------------------------------


class HogEngine:
    """An engine whose replication 0 allocates ``mb`` MiB and whose others sleep ``sleep`` s."""

    name = "hog"
    batch_size = 1
    limit_address_space = True  # as the reference engine: RLIMIT_AS

    def __init__(self, mb: int = 0, sleep: float = 0.0):
        self.mb, self.sleep = mb, sleep

    def run(self, model, replications, config, start=None):
        out = []
        for r in replications:
            if r == 0 and self.mb:
                block = bytearray(self.mb * 1024 * 1024)
                block[::4096] = b"x" * len(block[::4096])
            else:
                time.sleep(self.sleep)
            out.append(Replication(scenario=model.name, replication=r, kpis={"x": 1.0}))
        return out


class GpuHogEngine(HogEngine):
    """A HogEngine limited as other engines (which may load a GPU driver) are: RLIMIT_DATA."""

    limit_address_space = False


def hog_job(engine: HogEngine) -> Job:
    return Job(
        base=small_model(), scenarios=parse_scenarios(""), engine=engine, config=RunConfig(days=1)
    )


def test_cli_default_worker_memory_is_the_runners(capsys):
    """`twin whatif run --worker-memory` defaults to the pool's DEFAULT_WORKER_MEMORY_MB, and a
    negative value is one error."""
    from twin.cli import main
    from twin.whatif.commands import DEFAULT_MEMORY_MB
    from twin.whatif.runner import DEFAULT_WORKER_MEMORY_MB

    assert DEFAULT_MEMORY_MB == DEFAULT_WORKER_MEMORY_MB == LocalProcessPool().memory_mb
    assert main(["whatif", "run", "scenes/demo-fab", "--worker-memory", "-1"]) == 1
    assert "--worker-memory -1: MiB in 0 (no limit)..1099511627776" in capsys.readouterr().err


def test_worker_past_its_memory_limit_fails_its_item_clearly():
    """A worker that allocates past memory_mb fails its work item with a clear error (the
    other worker is stopped at once) and this process carries on; a pool can run again."""
    pool = LocalProcessPool(workers=2, start_method="spawn", memory_mb=1024)
    before, t0 = peak_mb(), time.perf_counter()
    with pytest.raises(TwinError) as err:
        list(
            pool.map(hog_job(HogEngine(mb=4096, sleep=60)), [WorkItem(0, (0,)), WorkItem(0, (1,))])
        )
    assert time.perf_counter() - t0 < 45  # the sleeping worker was not waited for
    assert peak_mb() - before < 100
    assert "scenario 'baseline', replication(s) 0: the worker ran out of memory" in str(err.value)
    assert "its limit is 1024 MiB" in str(err.value)
    ok = list(pool.map(hog_job(HogEngine(mb=64)), [WorkItem(0, (0,))]))
    assert ok[0][0].kpis == {"x": 1.0}


SPAWNER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.whatif.test_limits import HogEngine, hog_job
from twin.whatif.runner import LocalProcessPool, WorkItem
pool = LocalProcessPool(workers=2, start_method={method!r})
for _ in pool.map(hog_job(HogEngine(sleep=120)), [WorkItem(0, (1,)), WorkItem(0, (2,))]):
    pass
"""


def descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def gone(pids: list[int], within: float) -> list[int]:
    """The pids still running (not zombies) after waiting up to ``within`` seconds."""
    import psutil

    deadline = time.monotonic() + within
    while True:
        left = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    left.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_die_with_a_killed_parent(method):
    """SIGKILL of the process that made a pool (nothing runs its cleanup) takes its worker
    processes with it within a few seconds (PR_SET_PDEATHSIG and the parent watch)."""
    code = SPAWNER.format(root=str(ROOT), method=method)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while len(workers := descendants(proc.pid)) < 2 + (method == "forkserver"):
            assert proc.poll() is None and time.monotonic() < deadline, "no workers started"
            time.sleep(0.2)
        time.sleep(1.0)  # the workers are initialised (the death signal is armed)
        workers = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert gone(workers, within=5) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
