"""Layout meets process: which layout tools (and their rail ports) stand for a process family.

An SMT2020 process model (``FabModel``) counts tools per family (STNQTY); a layout (a
``SceneGraph``, SMAT2022 or a scene folder) places tools, each with a ``family`` (the workbook's
TOOL_GROUP) and load ports on the rail. The two counts differ for most HVLM families on
SMAT2022, so the link needs a rule (``LayoutConfig.count_rule``):

- ``"layout"`` (default): the process model keeps its STNQTY tools for capacity; a move to a
  family goes to one of the family's *layout* tools, each equally likely. Layout tools beyond
  STNQTY are used, missing ones simply do not exist on the floor.
- ``"model"``: the family has STNQTY destinations, process tool ``k`` standing at layout tool
  ``k mod L`` (the first STNQTY layout tools in id order; when the layout has fewer, some share).
- ``"strict"``: any count difference is an error.

Family names match exactly, else case-insensitively (HVLM spells ``DefMEt_FE_118``, the
workbook ``DefMet_FE_118``). A family the routes use with no tool in the layout is an error
(the lot would have nowhere to go). Pure delay families (``Delay_32``) need no tool: a lot
waits where it stands. ``reconciliation`` prints, per family, both counts and what was done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twin.errors import ConfigError, InputError

if TYPE_CHECKING:
    from twin.process import FabModel
    from twin.scene.graph import SceneGraph

COUNT_RULES = ("layout", "model", "strict")


@dataclass(kw_only=True)
class LayoutConfig:
    """How process families are placed on a layout."""

    count_rule: str = "layout"  # one of COUNT_RULES (see the module docstring)
    port: str = "first"  # which port of a tool a carrier uses: "first" (by id) port for both ways

    def validate(self) -> None:
        problems = []
        if self.count_rule not in COUNT_RULES:
            problems.append(f"count_rule {self.count_rule!r}: use one of {', '.join(COUNT_RULES)}")
        if self.port != "first":
            problems.append(f"port {self.port!r}: only 'first' is supported")
        if problems:
            raise ConfigError("AMHS layout config", problems)


@dataclass(frozen=True, slots=True)
class FamilyPlacement:
    """One process family on the layout: its destinations (layout tool ids, with repeats under
    the ``model`` rule) and what the reconciliation did."""

    family: str
    layout_family: str | None
    process_count: int
    layout_count: int
    tools: tuple[str, ...]  # destinations a move to this family draws from (uniformly)
    action: str


@dataclass
class Placement:
    """Every process family's destinations, and the port each layout tool is served at."""

    families: dict[str, FamilyPlacement] = field(default_factory=dict)
    port_of: dict[str, str] = field(default_factory=dict)  # layout tool id -> port id
    delays: frozenset[str] = frozenset()  # families with no tool (pure delays)
    rule: str = "layout"

    def reconciliation(self) -> list[dict[str, object]]:
        """Per family: process count, layout count and what was done (plain rows)."""
        return [
            {
                "family": p.family,
                "layout_family": p.layout_family,
                "process": p.process_count,
                "layout": p.layout_count,
                "destinations": len(p.tools),
                "action": p.action,
            }
            for p in sorted(self.families.values(), key=lambda p: p.family)
        ]

    def table(self) -> str:
        """The reconciliation as fixed-width text."""
        lines = [f"{'family':<20} {'process':>7} {'layout':>6}  action"]
        for r in self.reconciliation():
            lines.append(f"{r['family']:<20} {r['process']:>7} {r['layout']:>6}  {r['action']}")
        return "\n".join(lines)


def place(scene: SceneGraph, model: FabModel, config: LayoutConfig | None = None) -> Placement:
    """Link the model's families to the scene's tools under ``config.count_rule``.

    Raises ``InputError`` listing every family the routes use that has no tool in the layout,
    every tool without a rail port that a family needs, and (``strict``) every count difference.
    """
    cfg = config or LayoutConfig()
    cfg.validate()
    layout = scene.families()
    folded: dict[str, list[str]] = {}
    for name in layout:
        folded.setdefault(name.casefold(), []).append(name)
    used = {s.family for r in model.routes.values() for s in r.steps if not s.is_delay}
    ports: dict[str, list[str]] = {}
    for pid, link in scene.ports.items():
        if link.tool is not None and link.segment is not None:
            ports.setdefault(link.tool, []).append(pid)
    out = Placement(rule=cfg.count_rule)
    out.delays = frozenset(n for n, f in model.families.items() if f.is_delay)
    problems = []
    for name in sorted(model.families):
        fam = model.families[name]
        if fam.is_delay:
            continue
        match = name if name in layout else None
        spelt = ""
        if match is None and len(folded.get(name.casefold(), [])) == 1:
            match = folded[name.casefold()][0]
            spelt = f" (layout spells it {match})"
        if match is None:
            if name in used:
                problems.append(
                    f"family {name} (STNQTY {fam.count}, area {fam.area}) has no tool in the "
                    f"layout {scene.name!r}: add tools with TOOL_GROUP {name}, or drop the family "
                    "from the routes"
                )
            continue
        tools = sorted(t.id for t in scene.tools(match))
        portless = [t for t in tools if not ports.get(t)]
        if portless:
            problems.append(
                f"family {name}: layout tools without a port on the rail: {', '.join(portless[:5])}"
            )
            continue
        n_lay, n_proc = len(tools), fam.count
        if cfg.count_rule == "strict" and n_lay != n_proc:
            problems.append(
                f"family {name}: {n_lay} tools in the layout, STNQTY {n_proc} in the model "
                "(count_rule 'strict'; 'layout' or 'model' accept a difference)"
            )
            continue
        if n_lay == n_proc:
            dest, action = tuple(tools), "same count"
        elif cfg.count_rule == "layout":
            dest = tuple(tools)
            action = f"moves go to all {n_lay} layout tools; capacity stays STNQTY {n_proc}"
        else:
            dest = tuple(tools[k % n_lay] for k in range(n_proc))
            action = (
                f"{n_lay - n_proc} layout tools unused"
                if n_lay > n_proc
                else f"{n_proc - n_lay} process tools share a layout tool"
            )
        for t in set(dest):
            out.port_of[t] = sorted(ports[t])[0]
        out.families[name] = FamilyPlacement(name, match, n_proc, n_lay, dest, action + spelt)
    if problems:
        raise InputError(f"layout {scene.name!r} for process model {model.name}", problems)
    return out


def relocate(placement: Placement, scene: SceneGraph, moves: tuple[tuple[str, str], ...]) -> None:
    """Move families to other bays: each (family, bay) serves the family's tools at free ports
    (ports with no tool) on that bay's rail, in port id order, one port per layout tool. Raises
    ``InputError`` listing unknown families or bays and bays without enough free ports."""
    if not moves:
        return
    seg_bay = {s.id: s.bay for s in scene.segments.values()}
    free: dict[str, list[str]] = {}
    for pid in sorted(scene.ports):
        link = scene.ports[pid]
        if link.tool is None and link.segment is not None:
            free.setdefault(seg_bay.get(link.segment) or "", []).append(pid)
    bays = sorted({b for b in seg_bay.values() if b})
    problems = []
    for family, bay in moves:
        fp = placement.families.get(family)
        if fp is None:
            problems.append(f"relocate: unknown family {family!r:.100} (not on the layout)")
            continue
        if bay not in bays:
            problems.append(
                f"relocate {family}: no bay {bay!r:.100} in the layout; bays: {', '.join(bays)}"
            )
            continue
        tools = sorted(set(fp.tools))
        ports = free.get(bay, [])
        if len(ports) < len(tools):
            problems.append(
                f"relocate {family} to bay {bay}: {len(tools)} tools need free ports, the bay has "
                f"{len(ports)} (ports with no tool on its rail)"
            )
            continue
        taken, free[bay] = ports[: len(tools)], ports[len(tools) :]
        new = {t: f"{family}@{bay}#{k}" for k, t in enumerate(tools)}
        for t, p in zip(tools, taken):
            placement.port_of[new[t]] = p
        placement.families[family] = FamilyPlacement(
            family,
            fp.layout_family,
            fp.process_count,
            fp.layout_count,
            tuple(new[t] for t in fp.tools),
            fp.action + f"; relocated to bay {bay}",
        )
    if problems:
        raise InputError("AMHS relocation", problems)
