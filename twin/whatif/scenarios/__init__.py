"""What-if scenarios: a base FabModel plus a list of changes, and the YAML file that names them.

``Scenario.apply(base)`` returns a NEW model (a deep copy with the changes applied in order);
the base is never touched, so every scenario and every replication starts from the same data.

A scenario file (documented with an example in docs/whatif.md)::

    scenarios:
      - name: more-litho
        changes:
          - tool_count: {area: Litho, add: 1}
    sweeps:
      - name: "speed-${f}"
        grid: {f: [0.9, 1.1]}
        changes:
          - processing_time: {families: ["DE_*"], factor: ${f}}

``load_scenarios(path, model)`` parses it and checks it against the model; every problem
(unknown key, bad value, unknown family with close matches) is reported at once with
``file:line``. The baseline (no changes) is always the first scenario returned.
``load_scenario_file`` also returns the file's ``rules:`` (a rule preset of
``twin.whatif.presets``) and ``options:`` (rule options on top of it).
"""

from twin.whatif.scenarios.changes import (
    BatchSize,
    Calendars,
    Change,
    Dispatching,
    ProcessingTime,
    ReleaseRate,
    Select,
    ToolCount,
    dispatch_rules,
)
from twin.whatif.scenarios.scenario import BASELINE, Scenario, baseline
from twin.whatif.scenarios.yamlfile import (
    CHANGE_KINDS,
    ScenarioFile,
    load_scenario_file,
    load_scenarios,
    parse_scenario_file,
    parse_scenarios,
)

__all__ = [
    "BASELINE",
    "CHANGE_KINDS",
    "BatchSize",
    "Calendars",
    "Change",
    "Dispatching",
    "ProcessingTime",
    "ReleaseRate",
    "Scenario",
    "ScenarioFile",
    "Select",
    "ToolCount",
    "baseline",
    "dispatch_rules",
    "load_scenario_file",
    "load_scenarios",
    "parse_scenario_file",
    "parse_scenarios",
]
