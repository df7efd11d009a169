"""One map between the twin's tool ids and the simulation engines' tool ids.

The twin (scene, event stream, state, API) names a tool by its scene id (``"LITHO-01"``); the
what-if engines name the ``n``-th tool of a family ``"<family>#<n>"`` (n from 1). The map is
strict, and the same everywhere (the emulator, the API and ``twin.whatif.start``): for every
real (non-delay) family of the process model, the twin's tools of that family, sorted by id,
must be exactly STNQTY many, and the k-th of them is ``"<family>#<k>"``. Nothing is truncated
and nothing is dropped: a family whose count differs is one problem of one error, and an id
that the map does not know is refused (``UnmappedToolError``) with the first of them listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twin.errors import InputError

SHOW = 10  # unmapped ids named in an error


class UnmappedToolError(InputError):
    """Tool ids that the tool-id map does not know; ``ids`` holds all of them."""

    def __init__(self, what: str, ids: list[str], side: str, known: Iterable[str]):
        self.ids = ids
        first = ", ".join(repr(i) for i in ids[:SHOW])
        more = f" (and {len(ids) - SHOW} more)" if len(ids) > SHOW else ""
        sample = ", ".join(repr(k) for k in sorted(known)[:3])
        super().__init__(
            what,
            [
                f"{len(ids)} {side} tool id{'s' * (len(ids) != 1)} not in the tool-id map: "
                f"{first}{more}; the map knows {side} ids such as {sample or 'none'}"
            ],
        )


@dataclass(frozen=True)
class ToolIdMap:
    """Engine tool ids (``"<family>#<n>"``) <-> twin tool ids, one to one."""

    to_twin: dict[str, str]  # engine id -> twin id
    to_engine: dict[str, str]  # twin id -> engine id

    @classmethod
    def from_families(
        cls, tools: Mapping[str, Any], model: Any, *, where: str = "twin"
    ) -> ToolIdMap:
        """The map from twin tool ids with their families (``{id: family}``; ids whose family
        is None, e.g. stockers, are not tools) and a process model; one error lists every
        family whose tool count differs from the model's STNQTY."""
        by_family: dict[str, list[str]] = {}
        for tid, fam in tools.items():
            if fam is not None:
                by_family.setdefault(str(fam), []).append(tid)
        problems = []
        out: dict[str, str] = {}
        for name, fam in model.families.items():
            if fam.is_delay:
                continue
            ids = sorted(by_family.get(name, []))
            if len(ids) != fam.count:
                problems.append(
                    f"family {name}: the process model has {fam.count} tools (STNQTY), the "
                    f"{where} has {len(ids)} tools with family {name!r} "
                    f"({', '.join(ids[:SHOW]) or 'none'}{', ...' if len(ids) > SHOW else ''})"
                )
                continue
            for k, tid in enumerate(ids):
                out[f"{name}#{k + 1}"] = tid
        if problems:
            raise InputError(f"{where} vs process model {model.name}", problems)
        return cls(to_twin=out, to_engine={t: e for e, t in out.items()})

    @classmethod
    def from_scene(cls, scene: Any, model: Any) -> ToolIdMap:
        """The map of a scene's tool nodes (their ``family``) and a process model."""
        tools = {node.id: node.family for node in scene.nodes("tool")}
        return cls.from_families(tools, model, where=f"scene {scene.name}")

    def engine(self, twin_id: str) -> str:
        """The engine id of one twin tool id; ``UnmappedToolError`` if it has none."""
        self.check_twin([twin_id])
        return self.to_engine[twin_id]

    def twin(self, engine_id: str) -> str:
        """The twin id of one engine tool id; ``UnmappedToolError`` if it has none."""
        eid = self.to_twin.get(engine_id)
        if eid is None:
            raise UnmappedToolError("tool-id map", [engine_id], "engine", self.to_twin)
        return eid

    def check_twin(self, twin_ids: Iterable[str], what: str = "tool-id map") -> None:
        """Refuse (one error naming the first of them) twin ids that the map does not know."""
        bad = sorted({t for t in twin_ids if t not in self.to_engine})
        if bad:
            raise UnmappedToolError(what, bad, "twin", self.to_engine)

    def __len__(self) -> int:
        return len(self.to_twin)
