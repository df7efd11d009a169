"""Where a scene and a process model disagree, and what is wrong inside a scene on its own.

``check_consistency(scene, model)`` compares the layout with an SMT2020-style ``FabModel``:
families with no tools (error: the model cannot run them), tool counts that differ from STNQTY,
tools of families no route uses or the model does not know, and areas that differ.
``validate_scene(scene)`` checks the scene itself: overlapping equipment, tools without ports,
vehicles off the rail, and a rail network that cannot reach all of itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from twin.scene.graph import SceneGraph

if TYPE_CHECKING:
    from twin.process import FabModel

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One disagreement: ``severity`` error|warning, a stable ``code`` and a message for people."""

    severity: str
    code: str
    message: str
    family: str | None = None

    def __str__(self) -> str:
        return f"{self.severity}: [{self.code}] {self.message}"


@dataclass(frozen=True, slots=True)
class FamilyCount:
    """Tools of one family in the layout and in the process model (STNQTY)."""

    family: str
    area: str | None
    layout: int
    model: int | None  # None: the model has no such family

    @property
    def difference(self) -> int:
        return self.layout - (self.model or 0)


def reconcile_counts(scene: SceneGraph, model: FabModel) -> list[FamilyCount]:
    """Per family (union of both sides), the layout's tool count and the model's STNQTY."""
    layout = scene.families()
    names = sorted(set(layout) | {f for f, fam in model.families.items() if not fam.is_delay})
    rows = []
    for name in names:
        fam = model.families.get(name)
        area = (
            fam.area
            if fam is not None
            else next((t.area for t in scene.tools(name) if t.area), None)
        )
        rows.append(
            FamilyCount(name, area, layout.get(name, 0), fam.count if fam is not None else None)
        )
    return rows


def check_consistency(scene: SceneGraph, model: FabModel) -> list[Finding]:
    """Every disagreement between the scene's tools and the model's families and routes."""
    out: list[Finding] = []
    used = {s.family for r in model.routes.values() for s in r.steps if not s.is_delay}
    for row in reconcile_counts(scene, model):
        f = row.family
        if row.model is None:
            out.append(
                Finding(
                    WARNING,
                    "unknown-family",
                    f"{row.layout} tools of family {f} which the process model does not define"
                    + "".join(
                        f"; the model has {m} (spelt differently)"
                        for m in model.families
                        if m.casefold() == f.casefold()
                    ),
                    f,
                )
            )
        elif row.layout == 0:
            out.append(
                Finding(
                    ERROR,
                    "family-without-tools",
                    f"family {f} (STNQTY {row.model}, area {row.area}) has no tool in the scene",
                    f,
                )
            )
        elif row.difference != 0:
            out.append(
                Finding(
                    WARNING,
                    "count-differs",
                    f"family {f}: {row.layout} tools in the scene, STNQTY {row.model} in the model ({row.difference:+d})",
                    f,
                )
            )
        if row.model is not None and row.layout and f not in used:
            out.append(
                Finding(
                    WARNING,
                    "family-unused",
                    f"family {f}: {row.layout} tools but no route step uses it",
                    f,
                )
            )
    differing: dict[str, list[str]] = {}
    for tool in scene.tools():
        fam = model.families.get(tool.family or "")
        if fam is not None and tool.area is not None and tool.area != fam.area:
            differing.setdefault(fam.name, []).append(tool.id)
    for name, ids in differing.items():
        area = scene.node(ids[0]).area
        msg = f"family {name}: area {area} in the scene, {model.families[name].area} in the model ({len(ids)} tools: {_few(ids)})"
        out.append(Finding(WARNING, "area-differs", msg, name))
    return out


def validate_scene(scene: SceneGraph) -> list[Finding]:
    """Problems inside a scene: overlaps, tools without ports, stray vehicles, rail reachability."""
    out: list[Finding] = []
    for v in scene.nodes("vehicle"):
        seg = v.attrs.get("segment")
        if seg not in scene.segments:
            out.append(
                Finding(
                    ERROR, "vehicle-off-rail", f"vehicle {v.id} is on missing rail segment {seg!r}"
                )
            )
        elif v.attrs.get("vehicle_type") not in scene.vehicle_types:
            out.append(
                Finding(
                    ERROR,
                    "vehicle-type",
                    f"vehicle {v.id} has unknown type {v.attrs.get('vehicle_type')!r}",
                )
            )
    for tool in scene.tools():
        if tool.family is None:
            out.append(Finding(WARNING, "tool-without-family", f"tool {tool.id} has no family"))
    served = {p.tool for p in scene.ports.values()}
    portless = [t.id for t in scene.nodes(("tool", "stocker")) if t.id not in served]
    if portless and scene.ports:
        out.append(
            Finding(
                WARNING,
                "no-ports",
                f"{len(portless)} tools/stockers have no load port: {_few(portless)}",
            )
        )
    pairs = overlapping_equipment(scene)
    if pairs:
        out.append(
            Finding(
                WARNING,
                "overlap",
                f"{len(pairs)} pairs of equipment footprints overlap: {_few([f'{a}/{b}' for a, b in pairs])}",
            )
        )
    if scene.rail.number_of_nodes() > 1 and not nx.is_strongly_connected(scene.rail):
        comps = sorted(nx.strongly_connected_components(scene.rail), key=len, reverse=True)
        stranded = sum(len(c) for c in comps[1:])
        out.append(
            Finding(
                WARNING,
                "rail-unreachable",
                f"rail network has {len(comps)} strongly connected parts; {stranded} rail nodes cannot reach and be reached from the main one",
            )
        )
    return out


def overlapping_equipment(scene: SceneGraph, *, tolerance: float = 0.01) -> list[tuple[str, str]]:
    """Pairs of tools/stockers/stations whose world bounding boxes overlap by more than ``tolerance`` m."""
    nodes = [n.id for n in scene.nodes(("tool", "stocker", "station"))]
    boxes = [scene.bbox(n) for n in nodes]
    keep = [i for i, b in enumerate(boxes) if b is not None]
    if len(keep) < 2:
        return []
    lo = np.array([boxes[i][0][:2] for i in keep])
    hi = np.array([boxes[i][1][:2] for i in keep])
    overlap = np.minimum(hi[:, None, :], hi[None, :, :]) - np.maximum(
        lo[:, None, :], lo[None, :, :]
    )
    hit = np.all(overlap > tolerance, axis=2)
    i, j = np.nonzero(np.triu(hit, k=1))
    return [(nodes[keep[a]], nodes[keep[b]]) for a, b in zip(i, j)]


def utilisation(model: FabModel) -> dict[str, float]:
    """Expected utilisation per family: the model's offered load divided by the availability its
    down and time-based PM calendars leave (MTTF/(MTTF+MTTR), 1 - PM duration/interval)."""
    load = model.offered_load()
    out = {}
    for fam, busy in load.items():
        avail = 1.0
        for att in model.calendars_of(fam):
            if att.kind == "down" and att.calendar in model.downs:
                cal = model.downs[att.calendar]
                avail *= cal.mttf.mean / (cal.mttf.mean + cal.mttr.mean)
            elif (
                att.kind == "pm"
                and att.calendar in model.pms
                and model.pms[att.calendar].by == "time"
            ):
                pm = model.pms[att.calendar]
                avail *= max(0.0, 1.0 - pm.duration.mean / pm.interval)
        out[fam] = busy / avail if avail > 0 else float("inf")
    return out


def report(scene: SceneGraph, model: FabModel | None = None) -> dict[str, Any]:
    """Everything ``twin scene check`` prints, as plain data."""
    findings = validate_scene(scene)
    data: dict[str, Any] = {"scene": scene.name}
    if model is not None:
        findings += check_consistency(scene, model)
        data["families"] = [
            {
                "family": r.family,
                "area": r.area,
                "layout": r.layout,
                "model": r.model,
                "difference": r.difference,
            }
            for r in reconcile_counts(scene, model)
        ]
        data["utilisation"] = {f: round(u, 4) for f, u in sorted(utilisation(model).items())}
    data["findings"] = [
        {"severity": f.severity, "code": f.code, "message": f.message} for f in findings
    ]
    data["errors"] = sum(f.severity == ERROR for f in findings)
    data["warnings"] = sum(f.severity == WARNING for f in findings)
    return data


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")
