"""Rule presets: named sets of the choices the SMT2020 format leaves open, selectable everywhere
a what-if runs (``twin whatif run --rules NAME --option KEY=VALUE``, ``rules:`` and
``options:`` in a scenario file, ``rules`` and ``options`` of an API what-if job).

A preset gives a value to EVERY option: the ``SimConfig`` options of the engines (the rules,
the parts of the model switched on, the WIP sample interval) and ``spread``, the support of a
uniform time (``FabModel.ptime_spread_mode``: mean ± PTIME2, "full", or mean ± PTIME2/2,
"half"). Single options are layered on top (a scenario file's ``options:``, then the command
line's or the request's), and the result, a ``RuleSet``, is what a run records.

- ``twin``: the engine's own defaults (``SimConfig()``), chosen for a what-if of a real fab;
- ``pyscfabsim``: the rules of the published simulator PySCFabSim, under which HVLM reproduces
  the published cycle times (docs/whatif.md, "How the published results were reproduced");
- ``smt2020``: the format read literally, option by option (``SMT2020_WHY`` says why each).

Which preset a run gets when none is named: ``default_preset`` (docs/whatif.md, "Rule
presets"): ``twin`` for a scene's model, ``pyscfabsim`` for an SMT2020 folder on its own.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from twin.errors import ConfigError

# The values SimConfig accepts (twin.whatif.reference.config: BATCH_WAITS, ...), the spread
# modes (twin.process.model.SPREAD_MODES) and the WIP sample limits (scenarios.limits), written
# out so that the command line imports no engine to build its parser (tests/whatif/
# test_presets.py checks that they are the same)
BATCH_WAITS = ("min", "max")
BATCH_BYS = ("step", "operation")
PM_FIRSTS = ("staggered", "same")
PM_INTERVALS_FROM = ("start", "end")
IDLE_DOWNS = ("apply", "skip")
WAKES = ("recent", "first")
MIN_RUNS = ("rank", "hold")
SPREAD_MODES = ("full", "half")
MIN_SAMPLE_DAYS = 1 / 24
MAX_DAYS = 3650.0

BOOL = "on/off"
NUMBER = "days"
# every option a preset sets: its accepted values (a tuple of texts), BOOL or NUMBER
OPTIONS: Mapping[str, tuple[str, ...] | str] = MappingProxyType(
    {
        "batch_wait": BATCH_WAITS,
        "batch_by": BATCH_BYS,
        "pm_first": PM_FIRSTS,
        "pm_interval_from": PM_INTERVALS_FROM,
        "idle_downs": IDLE_DOWNS,
        "wake": WAKES,
        "min_runs": MIN_RUNS,
        "spread": SPREAD_MODES,
        "dedication": BOOL,
        "unstarted_last": BOOL,
        "delay_transport": BOOL,
        "due_ties": BOOL,
        "start_together": BOOL,
        "breakdowns": BOOL,
        "pms": BOOL,
        "transport": BOOL,
        "load_unload": BOOL,
        "initial_wip": BOOL,
        "wip_sample_days": NUMBER,
    }
)
# the options that are not SimConfig fields (they change the model the engine is given)
MODEL_OPTIONS = frozenset({"spread"})
# the SimConfig fields that are no option of a preset: the run's identity and horizon (RunConfig
# sets them) and record_steps (per-step times, which the what-if KPIs do not use)
NOT_OPTIONS = frozenset(
    {"days", "warmup_days", "seed", "replication", "record_steps", "busy_by_interval"}
)
_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")
MAX_NAME = 100  # characters of a preset or option name quoted in an error


@dataclass(frozen=True)
class Preset:
    """A named value for every option of ``OPTIONS``."""

    name: str
    description: str
    options: Mapping[str, Any]


_COMMON = {  # the parts of the model every preset simulates
    "breakdowns": True,
    "pms": True,
    "transport": True,
    "load_unload": True,
    "initial_wip": True,
    "wip_sample_days": 1.0,
}
PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        p.name: p
        for p in (
            Preset(
                "twin",
                "the engine's own defaults, for a what-if of a real fab: batches start at the "
                "minimum batch, a family's first PMs are staggered, downs take idle tools down, "
                "work goes to the tool idle most recently",
                MappingProxyType(
                    {
                        "batch_wait": "min",
                        "batch_by": "step",
                        "pm_first": "staggered",
                        "pm_interval_from": "start",
                        "idle_downs": "apply",
                        "wake": "recent",
                        "min_runs": "rank",
                        "spread": "full",
                        "dedication": True,
                        "unstarted_last": False,
                        "delay_transport": True,
                        "due_ties": False,
                        "start_together": False,
                        **_COMMON,
                    }
                ),
            ),
            Preset(
                "pyscfabsim",
                "the published simulator PySCFabSim's rules (reproduce the published HVLM "
                "figures): full batches of one operation, every tool's first PM at the first "
                "occurrence, the next an interval after the end of the last, downs of idle tools "
                "skipped, work to the first idle tool, uniform times mean ± PTIME2/2, lots that "
                "have not started a step in the run last, no transport into or out of delays, "
                "minimum runs held (a tool that owes refuses other setups up to 5 times), ties "
                "by due date, the start instant's lots all queued before tools choose",
                MappingProxyType(
                    {
                        "batch_wait": "max",
                        "batch_by": "operation",
                        "pm_first": "same",
                        "pm_interval_from": "end",
                        "idle_downs": "skip",
                        "wake": "first",
                        "min_runs": "hold",
                        "spread": "half",
                        "dedication": True,
                        "unstarted_last": True,
                        "delay_transport": False,
                        "due_ties": True,
                        "start_together": True,
                        **_COMMON,
                    }
                ),
            ),
            Preset(
                "smt2020",
                "the SMT2020 format read literally: batches of one step from BATCHMN wafers, the "
                "first PM at FOA on every tool, MTBPM from start to start, every down applies, "
                "tools taken in their order, uniform times mean ± PTIME2",
                MappingProxyType(
                    {
                        "batch_wait": "min",
                        "batch_by": "step",
                        "pm_first": "same",
                        "pm_interval_from": "start",
                        "idle_downs": "apply",
                        "wake": "first",
                        "min_runs": "rank",
                        "spread": "full",
                        "dedication": True,
                        "unstarted_last": False,
                        "delay_transport": True,
                        "due_ties": False,
                        "start_together": False,
                        **_COMMON,
                    }
                ),
            ),
        )
    }
)
# The literal reading of each rule, and why (docs/whatif.md, "Rule presets", has the same).
SMT2020_WHY: Mapping[str, str] = MappingProxyType(
    {
        "batch_wait": "BATCHMN is the format's minimum batch: a batch may start once it waits",
        "batch_by": "a route step's batch holds lots of that step (the format has no other key)",
        "pm_first": "attach.txt gives one first occurrence (FOA) per calendar, for every tool",
        "pm_interval_from": "MTBPM is the mean time between PMs: from one PM's start to the next",
        "idle_downs": "a calendar says when a tool goes down; nothing exempts an idle tool",
        "wake": "a family names no tool order but its own (tools 1..STNQTY): the first idle",
        "spread": "PTIME2 is the spread of a uniform, read like fromto.txt's '7.5 ± 2.5 min'",
        "dedication": "SVESTN/FORSTEP: a later step runs on the tool of the earlier one",
    }
)
DEFAULT = "twin"  # RunConfig's default: the engine's own rules


@dataclass(frozen=True)
class RuleSet:
    """The effective rules of a run: a preset with single options on top of it."""

    preset: str
    options: dict[str, Any]  # every option of OPTIONS, its effective value
    overrides: dict[str, Any] = field(default_factory=dict)  # those that differ from the preset
    chosen_by: str = "given"  # how the preset was chosen (for the record)

    @property
    def sim_options(self) -> dict[str, Any]:
        """The SimConfig keyword arguments (every option but the model's)."""
        return {k: v for k, v in self.options.items() if k not in MODEL_OPTIONS}

    @property
    def spread(self) -> str:
        return self.options["spread"]

    def model(self, model: Any) -> Any:
        """``model`` itself when it already has these rules' spread, else a copy that has it
        (shallow: a scenario deep-copies the model it changes; the base is never changed)."""
        if getattr(model, "ptime_spread_mode", self.spread) == self.spread:
            return model
        out = copy.copy(model)
        out.ptime_spread_mode = self.spread
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "chosen_by": self.chosen_by,
            "options": dict(self.options),
            "overrides": dict(self.overrides),
        }

    def describe(self) -> str:
        """One line: the preset and the options changed on top of it."""
        extra = ", ".join(f"{k}={_text(v)}" for k, v in self.overrides.items())
        return self.preset + (f" with {extra}" if extra else "")


def _text(v: Any) -> str:
    return ("on" if v else "off") if isinstance(v, bool) else f"{v:g}" if _is_num(v) else str(v)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def short(v: Any) -> str:
    """A value quoted in an error: ``repr`` of a text or number, cut to 60 characters (lone
    surrogates come out escaped); the kind of anything else (a container may be huge or deep)."""
    if isinstance(v, str):
        text = repr(v[:MAX_NAME])
    elif isinstance(v, bool) or v is None:
        text = repr(v)
    elif isinstance(v, int):
        text = repr(v) if v.bit_length() <= 100 else f"an integer of {v.bit_length()} bits"
    elif isinstance(v, float):
        text = repr(v)
    elif isinstance(v, Mapping):
        text = "a mapping"
    elif isinstance(v, list | tuple):
        text = "a list"
    else:
        text = f"a {type(v).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def accepted(name: str) -> str:
    """What an option accepts, in words."""
    kind = OPTIONS[name]
    if kind == BOOL:
        return "true or false (on/off)"
    if kind == NUMBER:
        return f"a number of days in {MIN_SAMPLE_DAYS:.6g} (one simulated hour)..{MAX_DAYS:g}"
    return ", ".join(kind)


def preset_problem(name: Any) -> str | None:
    """Why ``name`` is not a preset name (None when it is)."""
    if isinstance(name, str) and name in PRESETS:
        return None
    return f"rules {short(name)}: unknown rule preset; accepted: {', '.join(PRESETS)}"


def _accepted_keys(key: Any) -> str:
    """The option names, and a word on the run's own settings when ``key`` is one of them."""
    own = " (days, warm-up, seed and replications are the run's own settings)"
    return ", ".join(OPTIONS) + (own if key in NOT_OPTIONS else "")


def option_problems(options: Any, where: str = "options") -> list[str]:
    """Every unknown option name and every value an option does not accept (values of the
    type the option takes: a bool, one of its texts, a finite number)."""
    if not isinstance(options, Mapping):
        return [f"{where} {short(options)}: must be a mapping of option names to values"]
    problems = []
    for k, v in options.items():
        if not isinstance(k, str) or k not in OPTIONS:
            problems.append(f"{where}: unknown option {short(k)}; accepted: {_accepted_keys(k)}")
            continue
        kind = OPTIONS[k]
        if kind == BOOL:
            ok = isinstance(v, bool)
        elif kind == NUMBER:
            ok = _is_num(v) and MIN_SAMPLE_DAYS <= v <= MAX_DAYS  # False for NaN
        else:
            ok = isinstance(v, str) and v in kind
        if not ok:
            problems.append(f"{where}.{k} = {short(v)}: accepted {accepted(k)}")
    return problems


def parse_option(text: Any) -> tuple[str, Any]:
    """``KEY=VALUE`` of the command line as (key, typed value); raises ConfigError naming the
    text and what is accepted. ``on/true/yes/1`` and ``off/false/no/0`` for a yes/no option."""
    key, eq, raw = str(text).partition("=")
    key, raw = key.strip(), raw.strip()
    if not eq or not key:
        raise ConfigError(
            "--option", [f"--option {short(text)}: write KEY=VALUE; keys: {', '.join(OPTIONS)}"]
        )
    kind = OPTIONS.get(key)
    value: Any = raw
    if kind == BOOL and raw.lower() in _TRUE + _FALSE:
        value = raw.lower() in _TRUE
    elif kind == NUMBER:
        try:
            value = float(raw) if len(raw) <= 40 else raw
        except ValueError:
            value = raw
    if kind is None:
        problem = f"--option {short(text)}: unknown option {short(key)}; accepted: "
        raise ConfigError("--option", [problem + _accepted_keys(key)])
    if option_problems({key: value}):
        raise ConfigError("--option", [f"--option {short(text)}: {key} accepts {accepted(key)}"])
    return key, value


def resolve(
    preset: Any = None,
    *layers: Mapping[str, Any] | None,
    default: str = DEFAULT,
    chosen_by: str | None = None,
) -> RuleSet:
    """The rules of ``preset`` (``default`` when None) with each layer of options applied in
    order on top; every problem (unknown preset, unknown option, bad value) in one ConfigError.
    """
    name = default if preset is None else preset
    problems = []
    if (p := preset_problem(name)) is not None:
        problems.append(p)
    for layer in layers:
        if layer is not None:
            problems += option_problems(layer)
    if problems:
        raise ConfigError("rules", problems)
    base = PRESETS[name].options
    options = dict(base)
    for layer in layers:
        options.update(layer or {})
    overrides = {k: v for k, v in options.items() if base[k] != v}
    if chosen_by is None:
        chosen_by = "default" if preset is None else "given"
    return RuleSet(name, options, overrides, chosen_by)


def sim_options(name: str) -> dict[str, Any]:
    """The ``SimConfig`` options of preset ``name`` (its ``spread`` is the model's: load the
    model with ``ptime_spread_mode=PRESETS[name].options["spread"]``)."""
    return resolve(name).sim_options


def default_preset(model_path: str | Path | None) -> tuple[str, str]:
    """The preset of a run that names none, and why: ``twin`` for a scene's process model (a
    scene folder, or the folder a scene's ``process:`` names: a twin of a real fab, whose
    what-ifs want the realistic rules), ``pyscfabsim`` for an SMT2020 folder on its own (a
    benchmark dataset, whose published figures only PySCFabSim's rules reproduce)."""
    if model_path is None:
        return DEFAULT, "default"
    path = Path(model_path)
    if (path / "process").is_dir() and not (path / "part.txt").exists():
        return "twin", "default for a scene"
    if (path.parent / "scene.yaml").is_file():
        return "twin", "default for a scene's process model"
    return "pyscfabsim", "default for an SMT2020 folder"


# --- the command line, for every command that runs the engine (what-if, forecast) -----------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--rules NAME`` and ``--option KEY=VALUE`` (repeatable)."""
    parser.add_argument(
        "--rules",
        metavar="NAME",
        default=None,
        help=f"rule preset: {', '.join(PRESETS)} (default: the scenario file's 'rules:', else "
        "twin for a scene, pyscfabsim for an SMT2020 folder; docs/whatif.md, 'Rule presets')",
    )
    parser.add_argument(
        "--option",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help=f"one rule option on top of the preset (repeatable): {', '.join(OPTIONS)}",
    )


def from_arguments(
    args: argparse.Namespace,
    model_path: str | Path | None = None,
    file_rules: str | None = None,
    file_options: Mapping[str, Any] | None = None,
) -> RuleSet:
    """The rules of a command: ``--rules``, else the scenario file's ``rules:``, else
    ``default_preset(model_path)``; the file's ``options:``, then every ``--option``, on top."""
    problems = []
    cli: dict[str, Any] = {}
    for text in args.option or []:
        try:
            key, value = parse_option(text)
            cli[key] = value
        except ConfigError as exc:
            problems += exc.problems
    if args.rules is not None and (p := preset_problem(args.rules)) is not None:
        problems.append("--" + p)
    if problems:
        raise ConfigError("rules", problems)
    if args.rules is not None:
        name, why = args.rules, "--rules"
    elif file_rules is not None:
        name, why = file_rules, "the scenario file"
    else:
        name, why = default_preset(model_path)
    return resolve(name, file_options, cli, chosen_by=why)
