"""The emulator's AMHS side: carrier moves by OHT vehicles, their positions and states.

A mixin of ``twin.emulator.emulator.Emulator`` (it shares the emulator's state): the OHT simulator
(``twin.physics.oht``) runs ``position_every`` s ahead of the process engine, in steps scheduled
on the engine's clock (``Engine.schedule``), and what it did in each step (pick-ups, deliveries, positions,
vehicle states) is emitted with the exact times the simulator computed. While every vehicle
stands idle the OHT clock is only shifted (``_off``), never run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twin.errors import InputError
from twin.physics.oht import IDLE, LOADING, TO_DEST, TO_SOURCE, UNLOADING
from twin.physics.routing import port_stop

VEHICLE_STAGE_STATE = ("idle", "moving", "acquiring", "moving", "depositing")


class Move:
    """One carrier transfer the emulator asked the OHT for."""

    __slots__ = ("id", "carrier", "lot", "vehicle", "dest", "tool", "picked")

    def __init__(self, xid: str, carrier: str, lot: Any, vehicle: str, dest: str, tool: Any):
        self.id, self.carrier, self.lot, self.vehicle = xid, carrier, lot, vehicle
        self.dest, self.tool, self.picked = dest, tool, False


class AmhsMixin:
    """Carrier transfers and vehicles; see the module docstring."""

    sim: Any
    engine: Any

    def _transfer(
        self, carrier: str, lot_id: str, lot: Any, src: str, dest: str, t: float, tool: Any
    ) -> None:
        sim = self.sim
        if not self._ticking:
            # Every vehicle stands idle: nothing moves, so the OHT clock is not run through the
            # idle time, it is shifted to now (the OHT's time + ``_off`` is fab time).
            self._off = t - sim.t
        self._xfers += 1
        xid = f"X{self._xfers:07d}"
        self._emit(t, "amhs", "carrier.transfer_requested", carrier, transfer=xid,
                   **{"from": src, "to": dest}, lot=lot_id)  # fmt: skip
        vid = self._pick_vehicle(src)
        sim.submit(vid, src, dest)
        self._pending[vid].append(Move(xid, carrier, lot, vid, dest, tool))
        self._where.pop(carrier, None)
        self._emit(max(t, sim.t + self._off), "amhs", "carrier.vehicle_assigned", carrier, transfer=xid,
                   vehicle=vid)  # fmt: skip
        if not self._ticking:
            self._ticking = True
            self.engine.schedule(max(t, sim.t + self._off), self._tick)

    def _pick_vehicle(self, src: str) -> str:
        """The nearest vehicle without carrier work (by rail distance to the source port, from
        where it stands or, if it is making way, from where it is going), else the one with
        the fewest carrier moves queued."""
        sim = self.sim
        stop = port_stop(self.scene, sim.rail, src)
        seg, off, _, _ = sim.state()
        best, best_key = None, None
        for i, vid in enumerate(self.veh):
            q = self._pending[vid]
            busy = sum(1 for mv in q if mv.id)
            if busy == 0:
                here = self._stops[q[-1].dest] if q else (int(seg[i]), float(off[i]))
                try:
                    _, dist = sim.router.route(*here, *stop)
                except InputError:
                    continue
                key = (0, dist, i)
            else:
                key = (busy, 0.0, i)
            if best_key is None or key < best_key:
                best, best_key = vid, key
        if best is None:
            raise InputError("emulator", [f"no vehicle can reach port {src!r}"])
        return best

    def _tick(self, t: float) -> None:
        """The OHT runs ``position_every`` s ahead of the engine; what it did is harvested."""
        sim, off = self.sim, self._off
        if sim.t + off < t:
            sim.advance(t - off - sim.t)
        sim.advance(self.cfg.position_every)
        now = sim.t + off
        done = sim.stats.completed
        while self._done_seen < len(done):
            tr = done[self._done_seen]
            self._done_seen += 1
            mv = self._pending[tr.vehicle].popleft()
            if not mv.id:  # a reposition, not a carrier move
                continue
            if not mv.picked:
                self._emit(tr.picked + off, "amhs", "carrier.picked_up", mv.carrier, transfer=mv.id,
                           vehicle=mv.vehicle)  # fmt: skip
            self._emit(tr.completed + off, "amhs", "carrier.delivered", mv.carrier, transfer=mv.id,
                       vehicle=mv.vehicle)  # fmt: skip
            self._where[mv.carrier] = mv.dest
            if mv.tool is not None:
                self._enroute[mv.tool.id] -= 1
            if mv.lot is not None:
                self._ready[mv.lot.id] = mv.lot.idx
                self.engine.arrive(mv.lot, max(tr.completed + off, t))
        for i, vid in enumerate(self.veh):
            job = sim.jobs[i]
            q = self._pending[vid]
            if q and q[0].id and job is not None and job.picked is not None and not q[0].picked:
                q[0].picked = True
                self._emit(job.picked + off, "amhs", "carrier.picked_up", q[0].carrier,
                           transfer=q[0].id, vehicle=vid)  # fmt: skip
        self._sample()
        self._clear_the_way()
        # Ticking stops when nothing can change without new work: no carrier move pending, no
        # hoist running, every vehicle standing (a parked repositioning waits for the next run)
        hoisting = bool(((sim.stage == LOADING) | (sim.stage == UNLOADING)).any())
        carrying = any(mv.id for q in self._pending.values() for mv in q)
        busy = carrying or hoisting or bool((sim.v > 0).any())
        if busy:
            self.engine.schedule(now, self._tick)
        else:
            self._ticking = False

    def _clear_the_way(self) -> None:
        """Idle vehicles standing in the way of a carrier move go on past its destination
        (the OHT simulator never moves an idle vehicle by itself)."""
        sim = self.sim
        lead = getattr(sim, "lead", None)
        if lead is None:
            return
        moving = (sim.stage == TO_SOURCE) | (sim.stage == TO_DEST)
        seg, off, _, _ = sim.state()
        for i in np.nonzero(moving & (sim.v == 0))[0]:
            q = self._pending[self.veh[i]]
            if not any(mv.id for mv in q):
                continue  # only vehicles with carrier work make others give way
            j, hops = int(lead[i]), 0
            while j >= 0 and hops < len(self.veh):
                vid = self.veh[j]
                if sim.stage[j] == IDLE and not self._pending[vid]:
                    here = (int(seg[j]), float(off[j]))
                    try:
                        _, past = sim.router.route(*here, *sim.dest_stop[i])
                    except InputError:
                        past = 0.0
                    port = self._port_ahead(here, past + 10.0)
                    if port is not None:
                        sim.submit(vid, port, port)  # drive there; no carrier moves
                        self._pending[vid].append(Move("", "", None, vid, port, None))
                j, hops = int(lead[j]), hops + 1

    def _port_ahead(self, here: tuple[int, float], at_least: float) -> str | None:
        """The nearest rail port at least ``at_least`` m of rail ahead of ``here`` (else the
        farthest one: out of the way in any case)."""
        best, best_d, far, far_d = None, math.inf, None, 0.0
        for pid in self._all_ports:
            try:
                _, d = self.sim.router.route(*here, *self._stops[pid])
            except InputError:
                continue
            if at_least <= d < best_d:
                best, best_d = pid, d
            if d > far_d:
                far, far_d = pid, d
        return best or far

    def _sample(self) -> None:
        """Positions of vehicles that moved, and vehicle states that changed, at the OHT's now."""
        sim = self.sim
        now = sim.t + self._off
        seg, off, v, _ = sim.state()
        lens = sim.rail.seg_len
        for i, vid in enumerate(self.veh):
            pos = (int(seg[i]), float(off[i]))
            if pos != self._last_pos[i]:
                self._last_pos[i] = pos
                o = min(max(pos[1], 0.0), float(lens[pos[0]]))
                self._emit(now, "amhs", "vehicle.position", vid, segment=sim.rail.seg_ids[pos[0]],
                           offset=round(o, 4), speed=round(max(float(v[i]), 0.0), 4))  # fmt: skip
            stage = int(sim.stage[i])
            q = self._pending[vid]
            state = VEHICLE_STAGE_STATE[stage] if not q or q[0].id else "moving"
            if state != self._vstate[i]:
                self._vstate[i] = state
                data: dict[str, Any] = {"state": state}
                if stage in (LOADING, UNLOADING) and q and q[0].id:
                    data["carrier"] = q[0].carrier
                self._emit(now, "amhs", "vehicle.state", vid, **data)
