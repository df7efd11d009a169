"""Scenario files and scenario changes applied to a small hand-built FabModel."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.errors import InputError
from twin.process.model import (
    Attachment,
    Dist,
    DownCalendar,
    FabModel,
    PMCalendar,
    Product,
    Release,
    Route,
    Step,
    ToolFamily,
)
from twin.whatif.scenarios import BASELINE, load_scenarios, parse_scenarios

H = 3600.0


def small_model() -> FabModel:
    """Two areas, four families (one batch family), two products, calendars by area/family."""
    fams = {
        "LITHO_1": ToolFamily(name="LITHO_1", count=3, area="Litho"),
        "LITHO_2": ToolFamily(name="LITHO_2", count=2, area="Litho"),
        "ETCH_1": ToolFamily(name="ETCH_1", count=4, area="Etch"),
        "FURN_1": ToolFamily(name="FURN_1", count=2, area="Diffusion"),
        "Delay_32": ToolFamily(name="Delay_32", count=1, area="Delay", is_delay=True),
    }
    r1 = Route(
        name="r_1",
        steps=[
            Step(
                number=1,
                family="FURN_1",
                mean=4 * H,
                spread=0.2 * H,
                per="batch",
                batch_min=50,
                batch_max=100,
            ),
            Step(number=2, family="LITHO_1", mean=0.5 * H, spread=0.1 * H),
            Step(number=3, family="ETCH_1", mean=1 * H, spread=0.1 * H),
            Step(number=4, family="Delay_32", mean=2 * H, is_delay=True),
            Step(number=5, family="LITHO_2", mean=0.5 * H, spread=0.1 * H),
        ],
    )
    r2 = Route(name="r_2", steps=[copy.deepcopy(s) for s in r1.steps[1:3]])
    return FabModel(
        name="small",
        families=fams,
        products={"p1": Product(name="p1", route="r_1"), "p2": Product(name="p2", route="r_2")},
        routes={"r_1": r1, "r_2": r2},
        releases=[
            Release(lot_type="Lot_1", product="p1", interval=2 * H, count=100),
            Release(lot_type="HotLot_1", product="p1", priority=20, interval=24 * H, count=10),
            Release(lot_type="Lot_2", product="p2", interval=3 * H, count=100),
        ],
        downs={
            "BRK_LITHO": DownCalendar(
                name="BRK_LITHO",
                mttf=Dist(kind="exponential", mean=100 * H),
                mttr=Dist(kind="exponential", mean=2 * H),
            ),
            "BRK_ETCH": DownCalendar(
                name="BRK_ETCH",
                mttf=Dist(kind="exponential", mean=50 * H),
                mttr=Dist(kind="exponential", mean=1 * H),
            ),
        },
        pms={
            "PM_LITHO": PMCalendar(
                name="PM_LITHO",
                by="time",
                interval=168 * H,
                duration=Dist(kind="uniform", mean=4 * H, spread=1 * H),
            )
        },
        attachments=[
            Attachment(
                calendar="BRK_LITHO",
                kind="down",
                target_kind="area",
                target="Litho",
                first=Dist(mean=10 * H),
            ),
            Attachment(
                calendar="BRK_ETCH",
                kind="down",
                target_kind="family",
                target="ETCH_1",
                first=Dist(mean=5 * H),
            ),
            Attachment(
                calendar="PM_LITHO",
                kind="pm",
                target_kind="area",
                target="Litho",
                first=Dist(mean=20 * H),
            ),
        ],
    )


def one(text: str, model: FabModel | None = None):
    """The single non-baseline scenario of a file, applied to the small model."""
    model = model or small_model()
    scenarios = parse_scenarios(text, model=model)
    assert scenarios[0].name == BASELINE and len(scenarios) == 2
    return scenarios[1].apply(model)


def cal(model: FabModel, family: str, kind: str):
    """The calendars of ``kind`` that apply to a family."""
    table = model.downs if kind == "down" else model.pms
    return [table[a.calendar] for a in model.calendars_of(family) if a.kind == kind]


def test_no_file_is_just_the_baseline():
    """Without a scenario file there is one scenario, the unchanged baseline."""
    (only,) = load_scenarios(None)
    assert only.name == BASELINE and only.apply(small_model()) == small_model()


def test_apply_returns_a_new_model_and_leaves_the_base_alone():
    """Applying a scenario never mutates the base model."""
    base = small_model()
    before = copy.deepcopy(base)
    text = """
scenarios:
  - name: all
    changes:
      - tool_count: {area: Litho, add: 1}
      - processing_time: {families: [ETCH_1], factor: 0.5}
      - breakdowns: off
      - release_rate: {factor: 2}
"""
    new = parse_scenarios(text, model=base)[1].apply(base)
    assert base == before and new != base


def test_tool_count_add_and_set():
    """tool_count adds n to every selected family or sets it."""
    m = one("scenarios: [{name: a, changes: [{tool_count: {area: Litho, add: 2}}]}]")
    assert (m.families["LITHO_1"].count, m.families["LITHO_2"].count) == (5, 4)
    assert m.families["ETCH_1"].count == 4
    m = one("scenarios: [{name: a, changes: [{tool_count: {families: 'LITHO_*', set: 1}}]}]")
    assert m.families["LITHO_1"].count == m.families["LITHO_2"].count == 1


def test_processing_time_by_family_and_by_route_steps():
    """processing_time scales mean and spread of the chosen steps only."""
    base = small_model()
    m = one("scenarios: [{name: a, changes: [{processing_time: {family: ETCH_1, factor: 0.8}}]}]")
    for r in ("r_1", "r_2"):
        for s, b in zip(m.routes[r].steps, base.routes[r].steps):
            k = 0.8 if s.family == "ETCH_1" else 1.0
            assert (s.mean, s.spread) == pytest.approx((b.mean * k, b.spread * k))
    m = one(
        "scenarios: [{name: a, changes: [{processing_time: {route: r_1, steps: ['2-3'], factor: 2}}]}]"
    )
    assert [s.mean / b.mean for s, b in zip(m.routes["r_1"].steps, base.routes["r_1"].steps)] == [
        1,
        2,
        2,
        1,
        1,
    ]
    assert m.routes["r_2"].steps[0].mean == base.routes["r_2"].steps[0].mean


def test_dispatching_rule():
    """dispatching sets the rule of the selected families."""
    m = one("scenarios: [{name: a, changes: [{dispatching: {area: Litho, rule: fifo}}]}]")
    assert m.families["LITHO_1"].rule == m.families["LITHO_2"].rule == "fifo"
    assert m.families["ETCH_1"].rule == "hot_first"


def test_release_rate_and_product_mix():
    """release_rate × f divides the interval by f; product_mix per product; 0 stops a stream."""
    m = one("scenarios: [{name: a, changes: [{release_rate: {factor: 1.25, lot_types: [Lot_1]}}]}]")
    assert [r.interval / H for r in m.releases] == pytest.approx([1.6, 24, 3])
    assert m.releases[0].rate_per_day == pytest.approx(1.25 * 12)
    text = "scenarios: [{name: a, changes: [{release_rate: {factor: 2, products: [p1], lot_types: [Lot_1]}}]}]"
    m = one(text)  # selected by both lot type and product: still × 2, once
    assert [r.interval / H for r in m.releases] == pytest.approx([1, 12, 3])
    m = one("scenarios: [{name: a, changes: [{product_mix: {p1: 0.5, p2: 0}}]}]")
    assert [(r.lot_type, r.interval / H, r.count) for r in m.releases] == [
        ("Lot_1", 4, 100),
        ("HotLot_1", 48, 10),
        ("Lot_2", 3, 0),
    ]


def test_batch_size():
    """batch_size sets min/max wafers of the batch steps of the selected families."""
    m = one("scenarios: [{name: a, changes: [{batch_size: {family: FURN_1, min: 75}}]}]")
    s = m.routes["r_1"].steps[0]
    assert (s.batch_min, s.batch_max) == (75, 100)


def test_calendar_changes_split_area_attachments():
    """Calendar changes on part of an area touch only those families (area calendars split)."""
    base = small_model()
    m = one("scenarios: [{name: a, changes: [{mttr: {family: LITHO_1, factor: 0.5}}]}]")
    assert [c.mttr.mean for c in cal(m, "LITHO_1", "down")] == [1 * H]
    assert [c.mttr.mean for c in cal(m, "LITHO_2", "down")] == [2 * H]
    assert base.downs["BRK_LITHO"].mttr.mean == 2 * H
    m = one("scenarios: [{name: a, changes: [{pm_interval: {area: Litho, factor: 2}}]}]")
    assert [c.interval for c in cal(m, "LITHO_2", "pm")] == [336 * H]
    m = one("scenarios: [{name: a, changes: [{mttr: {of: pm, factor: 3}}]}]")
    assert [(c.duration.mean, c.duration.spread) for c in cal(m, "LITHO_1", "pm")] == [
        (12 * H, 3 * H)
    ]
    m = one("scenarios: [{name: a, changes: [{breakdowns: {enabled: false, family: LITHO_2}}]}]")
    assert cal(m, "LITHO_2", "down") == [] and len(cal(m, "LITHO_1", "down")) == 1
    assert len(cal(m, "ETCH_1", "down")) == 1 and len(cal(m, "LITHO_2", "pm")) == 1
    m = one("scenarios: [{name: a, changes: [{breakdowns: off}]}]")
    assert all(a.kind == "pm" for a in m.attachments)


def test_sweep_expands_the_cartesian_product():
    """A sweep makes one named scenario per grid combination, values substituted typed."""
    text = """
sweeps:
  - name: "litho+${n}-etch${f}"
    grid:
      n: [0, 1, 2]
      f: [0.9, 1.1]
    changes:
      - tool_count: {area: Litho, add: "${n}"}
      - processing_time:
          family: ETCH_1
          factor: ${f}
"""
    model = small_model()
    scs = parse_scenarios(text, model=model)
    names = [s.name for s in scs[1:]]
    assert names == [f"litho+{n}-etch{f}" for n in (0, 1, 2) for f in ("0.9", "1.1")]
    m = scs[4].apply(model)  # n=1, f=1.1
    assert m.families["LITHO_1"].count == 4
    assert m.routes["r_1"].steps[2].mean == pytest.approx(1.1 * H)


def test_bad_file_lists_every_problem_with_lines_and_close_matches():
    """One InputError names each bad line, the unknown names' close matches and what is accepted."""
    text = """scenarios:
  - name: a
    changes:
      - tool_count: {family: LITO_1, add: 1}
      - processing_time: {area: Etch, factor: -1}
      - dispatching: {area: Litho, rule: fifoo}
      - tool_cont: {area: Litho, add: 1}
  - name: a
    changes:
      - tool_count: {family: LITHO_2, add: -2}
"""
    with pytest.raises(InputError) as err:
        parse_scenarios(text, source="s.yaml")
    msg = str(err.value)
    assert "s.yaml:5: 'factor' must be a number in 0.001..1000, got -1" in msg
    assert "s.yaml:7: unknown change 'tool_cont' (did you mean 'tool_count'?)" in msg
    assert "s.yaml:8: scenario name 'a' is defined twice" in msg
    # model checks run once the file itself is well formed
    text = text.replace("factor: -1", "factor: 1").replace("tool_cont", "tool_count")
    text = text.replace(
        "  - name: a\n    changes:\n      - tool_count: {family: LITHO_2",
        "  - name: b\n    changes:\n      - tool_count: {family: LITHO_2",
    )
    with pytest.raises(InputError) as err:
        parse_scenarios(text, source="s.yaml", model=small_model())
    msg = str(err.value)
    assert "s.yaml:4:" in msg and "unknown family 'LITO_1' (did you mean 'LITHO_1'" in msg
    assert "s.yaml:6:" in msg and "unknown dispatching rule 'fifoo'" in msg and "accepted: " in msg
    assert "scenario 'a', dispatching:" in msg
    assert "s.yaml:10:" in msg and "LITHO_2 would have 0 tools" in msg
    assert len(err.value.problems) == 3


def test_sweep_placeholders_must_match_the_grid():
    """Unused grid parameters and unknown ${...} placeholders are reported."""
    text = """sweeps:
  - name: s
    grid: {n: [1], m: [2]}
    changes:
      - tool_count: {area: Litho, add: "${k}"}
"""
    with pytest.raises(InputError) as err:
        parse_scenarios(text, source="w.yaml")
    msg = str(err.value)
    assert "grid parameter 'n' is never used" in msg and "${k} is not a grid parameter" in msg


def test_invalid_yaml_and_missing_file_name_the_place():
    """Broken YAML names its line; a missing file names its path."""
    with pytest.raises(InputError, match=r"x.yaml:3: not valid YAML"):
        parse_scenarios("scenarios:\n  - name: a\n  - [unclosed\n", source="x.yaml")
    with pytest.raises(InputError, match="cannot read"):
        load_scenarios("/nonexistent/scenarios.yaml")


def _docs_example() -> str:
    """The scenario file example of docs/whatif.md (its first yaml block)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "whatif.md").read_text()
    return text.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_docs_example_is_valid_for_hvlm(hvlm):
    """The documented example parses against SMT2020 HVLM and every scenario applies."""
    from twin.process import load_model

    model = load_model(hvlm)
    scs = parse_scenarios(_docs_example(), source="docs/whatif.md", model=model)
    assert len(scs) == 1 + 5 + 6
    litho = [f for f, fam in model.families.items() if fam.area == "Litho"]
    m = scs[1].apply(model)
    assert all(m.families[f].count == model.families[f].count + 1 for f in litho)
    m = scs[-1].apply(model)  # litho+2-etch-x1
    assert scs[-1].name == "litho+2-etch-x1"
    assert all(m.families[f].count == model.families[f].count + 2 for f in litho)
    m = scs[5].apply(model)  # no-breakdowns
    assert not any(a.kind == "down" for a in m.attachments)
    assert sum(a.kind == "pm" for a in m.attachments) == sum(
        a.kind == "pm" for a in model.attachments
    )


@settings(max_examples=40, deadline=None)
@given(
    adds=st.lists(st.integers(-2, 3), min_size=1, max_size=3),
    factor=st.floats(0.05, 20, allow_nan=False),
)
def test_generated_tool_and_time_changes_apply_exactly(adds, factor):
    """Any add values and factor give exactly those numbers (checked in order of the changes)."""
    model = small_model()
    changes = "".join(f"      - tool_count: {{family: LITHO_1, add: {a}}}\n" for a in adds)
    text = (
        f"scenarios:\n  - name: g\n    changes:\n{changes}"
        f"      - processing_time: {{area: Etch, factor: {factor!r}}}\n"
    )
    running = [3 + sum(adds[: i + 1]) for i in range(len(adds))]
    if min(running) < 1:  # a later change would remove the last tool: refused, with its line
        with pytest.raises(InputError, match=r"would have -?\d+ tools"):
            parse_scenarios(text, model=model)
        return
    m = parse_scenarios(text, model=model)[1].apply(model)
    assert m.families["LITHO_1"].count == 3 + sum(adds)
    assert m.routes["r_2"].steps[1].mean == pytest.approx(H * factor)
    assert m.routes["r_2"].steps[0].mean == model.routes["r_2"].steps[0].mean


def test_demo_fab_scenarios_are_valid():
    """scenes/demo-fab/scenarios.yaml checks against the demo fab's process model."""
    from twin.process import load_model

    root = Path(__file__).resolve().parents[2] / "scenes" / "demo-fab"
    model = load_model(root)
    scs = load_scenarios(root / "scenarios.yaml", model)
    assert [s.name for s in scs[:3]] == [BASELINE, "fourth-litho-tool", "faster-litho"]
    assert len(scs) == 1 + 5 + 6
    assert (
        scs[1].apply(model).families["Litho_FE_3"].count == model.families["Litho_FE_3"].count + 1
    )


def test_selection_rules_and_calendar_errors():
    """Globs and 'all' skip delay families; a calendar change needs a calendar to change."""
    m = one("scenarios: [{name: a, changes: [{processing_time: {families: '*', factor: 2}}]}]")
    delay = m.routes["r_1"].steps[3]
    assert delay.is_delay and delay.mean == 2 * H  # the delay step is not a tool's time
    assert m.routes["r_1"].steps[2].mean == 2 * H
    m = one("scenarios: [{name: a, changes: [{processing_time: {family: Delay_32, factor: 2}}]}]")
    assert m.routes["r_1"].steps[3].mean == 4 * H  # named explicitly, it is changed
    with pytest.raises(InputError) as err:
        parse_scenarios(
            "scenarios:\n  - name: a\n    changes:\n      - mttr: {family: ETCH_1, of: pm, factor: 2}\n"
            "      - pm_interval: {area: Litho}\n",
            source="c.yaml",
            model=small_model(),
        )
    assert "c.yaml:5: needs 'factor'" in str(err.value)
    with pytest.raises(InputError) as err:
        parse_scenarios(
            "scenarios:\n  - name: a\n    changes:\n      - mttr: {family: ETCH_1, of: pm, factor: 2}\n",
            source="c.yaml",
            model=small_model(),
        )
    assert "c.yaml:4: scenario 'a', mttr: no pm calendar is attached to ETCH_1" in str(err.value)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3))
def test_sweep_size_is_the_product_of_the_grid(sizes):
    """A sweep over k parameters with n_i values each makes prod(n_i) distinct scenarios."""
    grid = {f"p{i}": [round(0.5 + 0.1 * j, 1) for j in range(n)] for i, n in enumerate(sizes)}
    changes = "".join(
        f"      - processing_time: {{family: ETCH_1, factor: '${{{k}}}'}}\n" for k in grid
    )
    grid_text = "".join(f"      {k}: {v}\n" for k, v in grid.items())
    text = f"sweeps:\n  - name: s\n    grid:\n{grid_text}    changes:\n{changes}"
    model = small_model()
    scs = parse_scenarios(text, model=model)[1:]
    assert len(scs) == math.prod(sizes) == len({s.name for s in scs})
    first = scs[0].apply(model)  # every parameter at its first value, 0.5: the factors multiply
    assert first.routes["r_2"].steps[1].mean == pytest.approx(H * 0.5 ** len(sizes))


def test_dispatching_accepts_registered_rules_and_refuses_unknown_ones():
    """A rule added with register_rule is accepted in a scenario (it is the live registry);
    an unknown one is refused with its close matches and the accepted rules."""
    from twin.whatif.reference import RULES, register_rule

    name = "shortest_queue_test"
    assert name not in RULES
    register_rule(name, lambda lot, tool, now, setup_time: (lot.arrived, lot.seq))
    try:
        text = (
            f"scenarios: [{{name: a, changes: [{{dispatching: {{area: Litho, rule: {name}}}}}]}}]"
        )
        (sc,) = [s for s in parse_scenarios(text, model=small_model()) if s.name == "a"]
        m = sc.apply(small_model())
        assert m.families["LITHO_1"].rule == m.families["LITHO_2"].rule == name
        with pytest.raises(InputError) as err:
            parse_scenarios(text.replace(name, "shortest_queu"), model=small_model())
        msg = str(err.value)
        assert "unknown dispatching rule 'shortest_queu'" in msg
        assert f"did you mean '{name}'" in msg and "accepted: hot_first" in msg
        assert name in msg.split("accepted: ")[1]
    finally:
        RULES.pop(name, None)
    with pytest.raises(InputError, match=f"unknown dispatching rule '{name}'"):
        parse_scenarios(text, model=small_model())  # unregistered again: refused


def test_scenarios_module_does_not_import_the_engine():
    """Importing twin.whatif.scenarios leaves the reference engine unimported (rules are
    looked up when a scenario is checked)."""
    import subprocess
    import sys

    code = (
        "import sys, twin.whatif.scenarios; "
        "print(any(m.startswith('twin.whatif.reference') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_scenario_file_rules_and_options():
    """A file's rules: (a preset) and options: (on top of it) are read; without them the file
    names no rules; parse_scenarios still returns the scenarios alone."""
    from twin.whatif.scenarios import parse_scenario_file

    text = "rules: pyscfabsim\noptions:\n  transport: off\n  wip_sample_days: 0.5\n"
    text += "scenarios:\n  - name: a\n    changes:\n      - processing_time: {factor: 0.9}\n"
    sf = parse_scenario_file(text, model=small_model())
    assert sf.rules == "pyscfabsim" and sf.options == {"transport": False, "wip_sample_days": 0.5}
    assert [s.name for s in sf.scenarios] == [BASELINE, "a"]
    assert [s.name for s in parse_scenarios(text)] == [BASELINE, "a"]
    assert parse_scenario_file("scenarios: []\n").rules is None
    assert parse_scenario_file("").options == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules: PYSCFABSIM\n",
            "x.yaml:1: rules 'PYSCFABSIM': unknown rule preset; accepted: twin",
        ),
        ("rules: 3\n", "x.yaml:1: rules 3: unknown rule preset"),
        ("rules: {a: 1}\n", "x.yaml:1: rules a mapping: unknown rule preset"),
        ("rules: " + "x" * 500_000 + "\n", "x.yaml:1: rules 'xxxxxxxxxx"),
        ('rules: "\\ud800"\n', "x.yaml:1: not valid YAML"),  # a lone surrogate
        ("options: [transport]\n", "x.yaml:1: 'options' must be a mapping of rule options"),
        ("options:\n  seed: 3\n", "x.yaml:2: options: unknown option 'seed'"),
        ("options:\n  transport: 'no'\n", "x.yaml:2: options.transport = 'no': accepted true"),
        ("options:\n  wip_sample_days: .inf\n", "options.wip_sample_days = inf: accepted a number"),
        ("options:\n  wip_sample_days: 1" + "0" * 400 + "\n", "an integer of 1329 bits"),
        ("options:\n  batch_wait: " + "[" * 40 + "]" * 40 + "\n", "nesting deeper than 32"),
    ],
)
def test_bad_rules_in_a_scenario_file(text, expected):
    """Unknown presets and options and hostile values (huge, infinite, lone surrogates, wrong
    types, deep nesting) in rules:/options: are problems with the file's line."""
    with pytest.raises(InputError) as err:
        parse_scenarios(text, source="x.yaml")
    assert expected in str(err.value)
    assert len(str(err.value)) < 1000
    str(err.value).encode("utf-8")
