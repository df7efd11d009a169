"""Rework, sampling and scrap rates from lots' paths, and transport times from carrier transfers.

The emulator (and the reference engine) never report a rework or a skip as such: a lot that
tracks in at a step at or before the one it last tracked out of was reworked there, and the
sampled steps a lot passes over between two track-ins were skipped. ``lot.rework`` and
``lot.scrap`` events, where a stream has them, are read too (docs/forecast.md).

- ``rework_rate:<route>/<step>`` (steps whose design rework probability is > 0): reworked
  passes / passes (a pass of a step the lot was already reworked at is no trial: SMT2020 reworks
  a lot once per step), Clopper-Pearson.
- ``sampling_rate:<route>/<step>`` (steps sampled below 100 %): lots that executed the step /
  lots that reached it, Clopper-Pearson.
- ``scrap_rate:<product>``: lots scrapped / lots that left the fab (scrapped or completed);
  the model has no scrap (design 0), Clopper-Pearson.
- ``transport:<from area>><to area>`` and ``transport:all``: carrier.transfer_requested ->
  delivered, mean and t-interval; areas of the ports' tools (``stocker`` for stockers). The
  model has one transport time (fromto.txt Fab -> Fab): it is the design of ``transport:all``;
  the per-area pairs have no design value (null).
"""

from __future__ import annotations

import math
from collections import defaultdict

from twin.process.model import FabModel

from . import stats
from .maintenance import expected


class _Route:
    """What a lot's path needs of one product's route."""

    __slots__ = ("name", "index", "steps", "sampled", "rework_to")

    def __init__(self, route) -> None:
        self.name = route.name
        self.steps = route.steps
        self.index = {s.number: i for i, s in enumerate(route.steps)}
        self.sampled = [s.sampling_percent < 100 and not s.is_delay for s in route.steps]
        self.rework_to = [
            self.index.get(s.rework_step, -1) if s.rework_prob > 0 and s.rework_step else -1
            for s in route.steps
        ]


class LotFlow:
    """Reads lots' track-ins, track-outs, reworks, scraps and completions, in time order."""

    def __init__(self, model: FabModel, lot_product: dict[str, str], skipped: dict[str, int]):
        self.model = model
        self.routes = {p: _Route(model.routes[pr.route]) for p, pr in model.products.items()}
        self.lot_product = lot_product
        self.skipped = skipped
        self.released: set[str] = set()  # lots released in the window: their path is known
        self.last: dict[str, int] = {}  # lot -> route index it last tracked out of
        self.inside: dict[str, int] = {}  # lot -> route index it is tracked in at
        self.pending: set[str] = set()  # lots whose rework a lot.rework event reported
        self.reworked: dict[str, set[int]] = {}
        self.rework = defaultdict(lambda: [0, 0])  # (route, idx) -> [reworked, passes]
        self.sample = defaultdict(lambda: [0, 0])  # (route, idx) -> [executed, reached]
        self.ended = defaultdict(lambda: [0, 0])  # product -> [scrapped, left the fab]

    def _route(self, lot: str) -> _Route | None:
        return self.routes.get(self.lot_product.get(lot, ""))

    def track_in(self, lot: str, number: int) -> None:
        r = self._route(lot)
        i = r.index.get(number) if r is not None else None
        if i is None:
            return  # counted with the runs of unknown steps
        self.inside[lot] = i
        a = self.last.pop(lot, None)
        if a is None:
            if lot in self.released:
                self.released.discard(lot)
                self._reach(r, -1, i)
            return
        if i > a:
            if r.rework_to[a] >= 0 and lot not in self.pending:
                if a not in self.reworked.get(lot, ()):
                    self.rework[(r.name, a)][1] += 1
            self._reach(r, a, i)
        else:
            if lot not in self.pending:
                self._reworked(lot, r, a)
            b = r.rework_to[a]
            self._reach(r, b - 1 if 0 <= b <= i else i - 1, i)
        self.pending.discard(lot)

    def _reworked(self, lot: str, r: _Route, a: int) -> None:
        if r.rework_to[a] < 0:
            self.skipped["reworks at steps without a rework rate in the model"] = (
                self.skipped.get("reworks at steps without a rework rate in the model", 0) + 1
            )
        else:
            c = self.rework[(r.name, a)]
            c[0] += 1
            c[1] += 1
        self.reworked.setdefault(lot, set()).add(a)

    def _reach(self, r: _Route, a: int, i: int) -> None:
        """The lot went from route index a to i: sampled steps between were skipped."""
        sampled = r.sampled
        for b in range(a + 1, i):
            if sampled[b]:
                self.sample[(r.name, b)][1] += 1
        if i < len(sampled) and sampled[i]:
            c = self.sample[(r.name, i)]
            c[0] += 1
            c[1] += 1

    def track_out(self, lot: str, number: int) -> None:
        i = self.inside.pop(lot, None)
        r = self._route(lot)
        if i is not None and r is not None and r.steps[i].number == number:
            self.last[lot] = i

    def reworked_event(self, lot: str) -> None:
        a = self.last.get(lot)
        r = self._route(lot)
        if a is not None and r is not None and lot not in self.pending:
            self._reworked(lot, r, a)
            self.pending.add(lot)

    def left(self, lot: str, scrapped: bool) -> None:
        product = self.lot_product.get(lot)
        if product is not None:
            c = self.ended[product]
            c[0] += scrapped
            c[1] += 1
        a = self.last.pop(lot, None)
        r = self._route(lot)
        if not scrapped and a is not None and r is not None:
            if r.rework_to[a] >= 0 and a not in self.reworked.get(lot, ()):
                self.rework[(r.name, a)][1] += 1
            self._reach(r, a, len(r.steps))
        self.inside.pop(lot, None)
        self.reworked.pop(lot, None)

    def parameters(self, make) -> list:
        out = []
        model = self.model
        for route in sorted(model.routes.values(), key=lambda r: r.name):
            work = [s.mean_time() for s in route.steps]
            total = math.fsum(work) or 1.0
            for i, s in enumerate(route.steps):
                if s.rework_prob > 0 and s.rework_step is not None:
                    k, n = self.rework.get((route.name, i), (0, 0))
                    est, ci = stats.proportion_interval(k, n)
                    j = next((x for x, t in enumerate(route.steps) if t.number == s.rework_step), i)
                    out.append(make(
                        name=f"rework_rate:{route.name}/{s.number}", kind="rework_rate",
                        target=s.family, key=(route.name, str(s.number)), design=s.rework_prob,
                        estimate=est, ci=ci, n=n, interval="clopper-pearson",
                        weight=math.fsum(work[j : i + 1]) / total, what="passes"))  # fmt: skip
                if s.sampling_percent < 100 and not s.is_delay:
                    k, n = self.sample.get((route.name, i), (0, 0))
                    est, ci = stats.proportion_interval(k, n)
                    out.append(make(
                        name=f"sampling_rate:{route.name}/{s.number}", kind="sampling_rate",
                        target=s.family, key=(route.name, str(s.number)),
                        design=s.sampling_percent / 100, estimate=est, ci=ci, n=n,
                        interval="clopper-pearson", weight=work[i] / total,
                        what="lots that reached the step"))  # fmt: skip
        for product in sorted(model.products):
            k, n = self.ended.get(product, (0, 0))
            est, ci = stats.proportion_interval(k, n)
            out.append(make(
                name=f"scrap_rate:{product}", kind="scrap_rate", target=product, design=0.0,
                estimate=est, ci=ci, n=n, interval="clopper-pearson", weight=1.0,
                what="lots that left the fab"))  # fmt: skip
        return out


class Transfers:
    """Carrier transfers, requested -> delivered, by from-to area."""

    def __init__(self, model: FabModel, equipment, ports, skipped: dict[str, int]) -> None:
        self.model = model
        self.skipped = skipped
        area = {f.name: f.area for f in model.families.values()}
        self.where: dict[str, str] = {}
        for eq, fam in equipment.items():
            self.where[eq] = "stocker" if fam is None else area.get(fam, "")
        for port, eq in (ports or {}).items():
            if eq is not None and eq in self.where:
                self.where[port] = self.where[eq]
        self.open: dict[str, tuple[float, str, str]] = {}
        self.times: dict[str, list[float]] = defaultdict(list)
        self.all: list[float] = []

    def requested(self, t: float, transfer: str, src: str, dst: str) -> None:
        if transfer in self.open:
            self._skip("transfers requested twice (the first is left out)")
        a, b = self.where.get(src, ""), self.where.get(dst, "")
        self.open[transfer] = (t, a, b)

    def delivered(self, t: float, transfer: str) -> None:
        got = self.open.pop(transfer, None)
        if got is None:
            self._skip("deliveries without a request in the window")
            return
        t0, a, b = got
        self.all.append(t - t0)
        if a and b:
            self.times[f"{a}>{b}"].append(t - t0)
        else:
            self._skip("transfers from or to a location the catalog does not know (in all only)")

    def failed(self, transfer: str) -> None:
        if self.open.pop(transfer, None) is not None:
            self._skip("transfers that failed")

    def _skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def parameters(self, make) -> list:
        if not self.all:
            return []
        model = self.model
        design = expected(model.transport, model.ptime_spread_mode)
        # the share of transport in a lot's design cycle time without queues (effect proxy)
        shares = []
        for route in model.routes.values():
            moves = sum(not s.is_delay for s in route.steps)
            work = math.fsum(s.mean_time() for s in route.steps)
            shares.append(moves * design / (moves * design + work) if work + design > 0 else 0)
        weight = math.fsum(shares) / len(shares) if shares else 0.0
        m, ci = stats.t_interval(self.all)
        out = [make(name="transport:all", kind="transport", target="all", design=design,
                    estimate=m, ci=ci, n=len(self.all), interval="t", weight=weight,
                    what="transfers")]  # fmt: skip
        for pair in sorted(self.times):
            xs = self.times[pair]
            m, ci = stats.t_interval(xs)
            out.append(make(name=f"transport:{pair}", kind="transport", target=pair,
                            design=math.nan, estimate=m, ci=ci, n=len(xs), interval="t",
                            weight=0.0, what="transfers"))  # fmt: skip
        return out
