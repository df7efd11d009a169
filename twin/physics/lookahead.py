"""Look-ahead rows of the OHT simulator: each vehicle's route, and the next segments on it.

A vehicle's route is a padded row of segment indices and the odometer (m) where each starts
(``r_segs``, ``r_s0``; ``k`` the current one). Decisions look ``K`` segments ahead, so the
simulator keeps, per vehicle, the current segment and a window of the next ``K`` with what only
depends on them: speed caps and their stop points, merge nodes, and the rows the leader search
uses (``twin.physics.leaders.RouteAhead``). Those change when a vehicle enters a segment or gets
a new route, not every decision: ``_refresh`` rebuilds them for a batch of vehicles.
``RouteRows`` is a mixin of ``OhtSim`` (it uses the simulator's arrays, rail and router).
"""

from __future__ import annotations

import numpy as np

from twin.errors import InputError
from twin.physics.leaders import RouteAhead


class RouteRows:
    """Routes and look-ahead rows of ``OhtSim`` vehicles (see the module docstring)."""

    def _set_route(self, i: int, dest: tuple[int, float], refresh: bool = True) -> None:
        """Route vehicle ``i`` from where it stands (odometer kept) to a stop; ``refresh=False``
        leaves the look-ahead rows to one batched ``_refresh`` by the caller."""
        seg = int(self.seg[i])
        off = float(self.s[i] - self.seg_s0[i])
        segs, length = self.router.route(seg, off, *dest)
        lens = self.rail.seg_len[segs]
        s0 = np.concatenate([[self.s[i] - off], self.s[i] - off + np.cumsum(lens[:-1])])
        m = len(segs)
        if m > self.r_segs.shape[1]:
            grow = max(m, 2 * self.r_segs.shape[1]) - self.r_segs.shape[1]
            self.r_segs = np.pad(self.r_segs, ((0, 0), (0, grow)), constant_values=-1)
            self.r_s0 = np.pad(self.r_s0, ((0, 0), (0, grow)), constant_values=np.inf)
        self.r_segs[i] = -1
        self.r_s0[i] = np.inf
        self.r_segs[i, :m] = segs
        self.r_s0[i, :m] = s0
        self.r_n[i] = m
        self.k[i] = 0
        self.dest_stop[i] = dest
        self.dest_s[i] = float(self.s[i] + length)
        self.seg_s0[i] = s0[0]  # what _refresh sets; a second route before it starts here too
        if refresh:
            self._refresh(np.array([i]))

    def _refresh(self, idx: np.ndarray) -> None:
        """Current segment and the next K route segments of vehicles ``idx`` from their rows,
        and what only depends on those (kept here rather than recomputed every decision)."""
        n, K = self.n, self.K
        k = self.k[idx]
        rows = idx[:, None]
        width = self.r_segs.shape[1]
        if not hasattr(self, "seg"):
            self.seg = np.zeros(n, dtype=np.int64)
            self.seg_s0 = np.zeros(n)
            self.nxt = np.full((n, K), -1, dtype=np.int64)
            self.nxt_s0 = np.full((n, K), np.inf)
            self.cap0 = np.zeros(n)
            self.caps = np.zeros((n, K))
            self.p_speed = np.full((n, K), np.inf)
            self.m_ok = np.zeros((n, K), dtype=bool)  # the end node of column c is a merge
            self.ps_min = np.full(n, np.inf)  # nearest speed-cap stop point of a row
            self.m_first = np.full(n, np.inf)  # odometer of the first merge node of a row
            self.ahead = RouteAhead.of(self.rail, self.seg, self.seg_s0, self.nxt, self.nxt_s0)
        seg = self.r_segs[idx, k]
        seg_s0 = self.r_s0[idx, k]
        self.seg[idx] = seg
        self.seg_s0[idx] = seg_s0
        cols = k[:, None] + self._kcols
        ok = cols < self.r_n[idx][:, None]
        cols = np.minimum(cols, width - 1)
        nxt = np.where(ok, self.r_segs[rows, cols], -1)
        nxt_s0 = np.where(ok, self.r_s0[rows, cols], np.inf)
        self.nxt[idx] = nxt
        self.nxt_s0[idx] = nxt_s0
        # speed caps: of this segment, of the next ones and their stop points
        self.cap0[idx] = np.minimum(self.seg_cap[seg], self.vmax[idx])
        caps = np.minimum(self.seg_cap[np.maximum(nxt, 0)], self.vmax[idx][:, None])
        self.caps[idx] = caps
        p_speed = nxt_s0 + caps * caps / (2 * self.dec[idx][:, None])  # inf past the route end
        self.p_speed[idx] = p_speed
        self.ps_min[idx] = p_speed.min(axis=1)
        # leader look-up rows, and the merge nodes ahead (the end nodes where the route goes on)
        ahead = RouteAhead.of(self.rail, seg, seg_s0, nxt, nxt_s0)
        self.ahead.put(idx, ahead)
        # merge nodes where the route goes on: the end of the current segment and of the next
        # ones but the last (the route goes on from column c to the segment nxt[:, c], which
        # starts at that node, odometer nxt_s0[:, c])
        m_ok = (nxt >= 0) & self.rail.is_merge[ahead.ends[:, :K]]
        self.m_ok[idx] = m_ok
        self.m_first[idx] = np.where(m_ok, nxt_s0, np.inf).min(axis=1)

    _ROUTE_ARRAYS = (
        *("r_segs", "r_s0", "r_n", "k", "dest_s", "seg", "seg_s0", "nxt", "nxt_s0"),
        *("cap0", "caps", "p_speed", "ps_min", "m_ok", "m_first"),
    )

    def _set_closed(self, closed: set[int]) -> None:
        old = set(self.router.closed)
        self.router.set_closed(closed)
        saved = {name: getattr(self, name).copy() for name in self._ROUTE_ARRAYS}
        saved_ahead = RouteAhead(*(getattr(self.ahead, f).copy() for f in RouteAhead.__slots__))
        stops = list(self.dest_stop)
        closed_arr = np.array(sorted(closed), dtype=np.int64)
        try:
            for i in range(self.n):
                ahead = self.r_segs[i, self.k[i] + 1 : self.r_n[i]]
                if np.isin(ahead, closed_arr).any():
                    self._set_route(i, self.dest_stop[i])
                self._check_pending(i)
        except InputError:
            self.router.set_closed(old)
            for name, arr in saved.items():
                setattr(self, name, arr)
            self.ahead = saved_ahead
            self.dest_stop = stops
            raise
        self._decide()

    def _nxt_now(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Next segments ahead of odometer ``s`` (mid-tick), as (indices, start odometers)."""
        j = np.sum(self.nxt_s0 <= s[:, None] + 1e-12, axis=1)
        cols = np.arange(self.K)[None, :] + j[:, None]
        valid = cols < self.K
        cols = np.minimum(cols, self.K - 1)
        rows = np.arange(self.n)[:, None]
        return (
            np.where(valid, self.nxt[rows, cols], -1),
            np.where(valid, self.nxt_s0[rows, cols], np.inf),
        )


def speed_stops(
    nxt_s0: np.ndarray, p_speed: np.ndarray, ps_min: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """The nearest speed-cap stop point over the look-ahead segments that start ahead of ``s``,
    and how many start at or behind it (None: none anywhere). Starts grow along a row, so those
    behind come first; a vehicle with none behind (the usual case at a tick start) takes its
    row minimum ``ps_min`` as it is."""
    lag = np.nonzero(nxt_s0[:, 0] <= s + 1e-12)[0]
    if len(lag) == 0:
        return ps_min, None
    if len(lag) == len(s):  # all of them (vehicles just past a segment start): whole rows
        before = nxt_s0 > s[:, None] + 1e-12
        return np.where(before, p_speed, np.inf).min(axis=1), nxt_s0.shape[1] - before.sum(1)
    ps = ps_min.copy()
    jj = np.zeros(len(s), dtype=np.int64)
    before = nxt_s0[lag] > s[lag, None] + 1e-12
    ps[lag] = np.where(before, p_speed[lag], np.inf).min(axis=1)
    jj[lag] = nxt_s0.shape[1] - before.sum(axis=1)
    return ps, jj
