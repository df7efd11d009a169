"""What-if engines: what simulates one model for some replications, and the registry of them.

An **engine** returns one ``Replication`` (flat KPIs) per replication index it is given
(``Engine.run``). Replication ``r`` is seeded by ``(seed, r)`` whatever the scenario: that is
what makes the scenarios' random numbers common. ``ReferenceEngine`` wraps
``twin.whatif.reference.simulate``, one replication a call. A batched engine (the Warp kernel of
issue 6) runs many replications per call: it sets ``batch_size`` and registers itself with
``register_engine("kernel", factory)`` when ``twin.whatif.kernel`` is imported; ``get_engine``
imports such a planned engine's module on first use.
"""

from __future__ import annotations

import functools
import importlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from twin.errors import TwinError
from twin.process.model import FabModel
from twin.whatif.results import Replication, lot_columns
from twin.whatif.stats import flatten_kpis, flatten_series

if TYPE_CHECKING:  # runner imports this module
    from twin.whatif.runner import RunConfig

# progress(replication, fraction of its horizon simulated); engines that set
# ``reports_progress = True`` accept it as the ``progress`` keyword of ``run``.
Progress = Callable[[int, float], None]


class Engine(Protocol):
    """Simulates a model; ``batch_size`` replications per call suit it best."""

    name: str
    batch_size: int

    def run(
        self, model: FabModel, replications: Sequence[int], config: RunConfig, start: Any = None
    ) -> list[Replication]: ...


class ReferenceEngine:
    """The readable event-by-event engine of ``twin.whatif.reference``, one replication a call."""

    name = "reference"
    batch_size = 1
    reports_progress = True
    limit_address_space = True  # pure CPU: a worker's memory limit can be its address space

    def __init__(self, device: str | None = None):
        if device not in (None, "cpu"):
            raise TwinError(
                f"the reference engine runs on the CPU only, not on {device!r}; "
                "use --engine kernel for a GPU"
            )

    def run(
        self,
        model: FabModel,
        replications: Sequence[int],
        config: RunConfig,
        start: Any = None,
        progress: Progress | None = None,
    ) -> list[Replication]:
        from twin.whatif.reference import SimConfig, simulate

        out = []
        for r in replications:
            t0 = time.perf_counter()
            sim = SimConfig(
                days=config.days,
                warmup_days=config.warmup_days,
                seed=config.seed,
                replication=r,
                **config.options,
            )
            tick = None if progress is None else functools.partial(progress, r)
            res = simulate(model, sim, start=start, progress=tick)
            kpis = res.kpis()
            wall = time.perf_counter() - t0
            out.append(
                Replication(
                    scenario=model.name,
                    replication=r,
                    kpis=flatten_kpis(kpis),
                    events=int(kpis.get("events", 0) or 0),
                    wall_seconds=float(kpis.get("wall_seconds") or wall),
                    series=flatten_series(kpis),
                    lots=lot_columns(res.lots) if getattr(config, "lot_records", False) else {},
                )
            )
        return out


_ENGINES: dict[str, Callable[[], Engine]] = {"reference": ReferenceEngine}
# Engines that are planned but may not be installed: name -> (module that registers it, why).
_PLANNED = {
    "kernel": (
        "twin.whatif.kernel",
        "the batched Warp kernel engine (what-if part 2, issue 6) is not implemented yet",
    ),
}


def register_engine(name: str, factory: Callable[[], Engine]) -> None:
    """Make an engine available to ``get_engine`` and ``twin whatif run --engine NAME``."""
    _ENGINES[name] = factory


def engine_names() -> list[str]:
    """Every engine name the CLI accepts (installed or planned)."""
    return sorted(set(_ENGINES) | set(_PLANNED))


def get_engine(name: str, **options: Any) -> Engine:
    """The engine called ``name``, built with ``options`` (e.g. ``device="cuda:0"``); a planned
    engine's module is imported on first use, which registers it."""
    if name not in _ENGINES and name in _PLANNED:
        module, why = _PLANNED[name]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise TwinError(
                    f"engine {name!r} needs the package {exc.name!r}, which is not installed "
                    f"(pip install 'twin[{name}]')"
                ) from exc
        if name not in _ENGINES:
            raise TwinError(f"engine {name!r}: {why}; available: {', '.join(sorted(_ENGINES))}")
    if name not in _ENGINES:
        raise TwinError(f"unknown engine {name!r}; available: {', '.join(engine_names())}")
    options = {k: v for k, v in options.items() if v is not None}
    try:
        return _ENGINES[name](**options)
    except TypeError as exc:
        raise TwinError(f"engine {name!r} does not take {sorted(options)}: {exc}") from exc
