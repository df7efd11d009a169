"""Who is ahead of whom on the rails: the nearest vehicle along each route, vectorised.

Two kinds of vehicle ahead matter to a follower: the nearest one along its own route (same
segment, or the first occupied segment of the route ahead), and the nearest one just past a
node on a branch its route does not take (within the follower's gap of that node: physically
that close even though the route leaves it aside).

What only depends on the route rows (which segments lie ahead, where their end nodes are, which
of those nodes have other branches) changes when a vehicle enters a segment or gets a new route,
not every decision; ``RouteAhead`` holds it so the per-decision search is a handful of array
operations over all vehicles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.physics.routing import RailIndex


@dataclass(slots=True)
class RouteAhead:
    """Per-vehicle arrays derived from the route rows (shape (n, K) or (n, K + 1)).

    Column 0 of the ``(n, K + 1)`` arrays is the current segment, columns 1.. the next ones.
    """

    col: np.ndarray  # (n, K) next segments, "no segment" as index nseg
    segs: np.ndarray  # (n, K+1) the current and the next segments (-1: none)
    branchy: np.ndarray  # (n, K+1) bool: other segments may leave the end node off the route
    start: np.ndarray  # (n, K+1) odometer (m) where each segment starts
    end_s: np.ndarray  # (n, K+1) odometer (m) of each segment's end node
    nexts: np.ndarray  # (n, K+1) the route segment after each one (-1: none)
    ends: np.ndarray  # (n, K+1) end node of each segment

    @classmethod
    def of(
        cls,
        rail: RailIndex,
        seg: np.ndarray,
        seg_s0: np.ndarray,
        nxt: np.ndarray,
        nxt_s0: np.ndarray,
    ) -> RouteAhead:
        """Build from current segments and start odometers and the next route segments."""
        m = len(seg)
        nseg = len(rail.seg_ids)
        cols = np.concatenate([seg[:, None], nxt], axis=1)
        start = np.concatenate([seg_s0[:, None], nxt_s0], axis=1)
        nexts = np.concatenate([nxt, np.full((m, 1), -1, dtype=nxt.dtype)], axis=1)
        valid = cols >= 0
        safe = np.where(valid, cols, 0)
        ends = rail.seg_end[safe]
        branchy = valid & ((rail.out_deg[ends] > 1) | (nexts < 0))
        end_s = start + rail.seg_len[safe]
        return cls(np.where(nxt >= 0, nxt, nseg), cols, branchy, start, end_s, nexts, ends)

    def put(self, idx: np.ndarray, other: RouteAhead) -> None:
        """Overwrite the rows ``idx`` with ``other``'s (one row per index)."""
        for name in RouteAhead.__slots__:
            getattr(self, name)[idx] = getattr(other, name)


def find_leaders(
    rail: RailIndex,
    s: np.ndarray,
    seg: np.ndarray,
    seg_s0: np.ndarray,
    nxt_s0: np.ndarray,
    ahead: RouteAhead,
    gap: np.ndarray,
    lookahead: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vehicles ahead at odometers ``s``: the nearest one along each route (index, distance m)
    and the nearest one just past a node on a branch the route does not take (index, distance
    m); -1 and inf where there is none."""
    n = len(s)
    rows = np.arange(n)
    off = s - seg_s0
    nseg = len(rail.seg_ids)
    order = np.argsort(seg * 1e5 + off, kind="stable")  # by segment, then offset
    sseg, soff = seg[order], off[order]
    first_idx = np.full(nseg + 1, -1, dtype=np.int64)  # slot nseg stands for "no segment"
    first_off = np.full(nseg + 1, np.inf)
    starts = np.ones(n, dtype=bool)
    starts[1:] = sseg[1:] != sseg[:-1]
    first_idx[sseg[starts]] = order[starts]
    first_off[sseg[starts]] = soff[starts]
    lead = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, np.inf)
    same = ~starts[1:]
    behind = order[:-1][same]
    lead[behind] = order[1:][same]
    dist[behind] = soff[1:][same] - soff[:-1][same]
    # along the route ahead: the first vehicle on the nearest next segment that has one (the
    # first such column: segments ahead start further along the row, and two vehicles are
    # never at one point, so the first occupied segment holds the nearest vehicle)
    col = ahead.col
    cand = first_idx[col]
    occupied = (cand >= 0) & (cand != rows[:, None])
    best = np.argmax(occupied, axis=1)
    found = occupied[rows, best]
    bd = np.where(found, nxt_s0[rows, best] - s + first_off[col[rows, best]], np.inf)
    take = bd < dist  # a same-segment leader is always nearer than one further on
    lead = np.where(take, cand[rows, best], lead)
    dist = np.where(take, bd, dist)
    # other branches leaving the end node of a route segment ahead (a diverge, or any node
    # after the stop): few (vehicle, segment) pairs, so work on those alone
    r, c = np.nonzero(ahead.branchy & (ahead.start - s[:, None] < lookahead))
    blead = np.full(n, -1, dtype=np.int64)
    bdist = np.full(n, np.inf)
    if len(r):
        # segments off the route at that node: the siblings of the route's next segment, or
        # all that leave the node where the route ends (RailIndex.off_route)
        y = ahead.nexts[r, c]
        ocol = rail.off_route[np.where(y >= 0, y, nseg + ahead.segs[r, c])]
        ocand = first_idx[ocol]
        ooff = first_off[ocol]
        # (pair, branch) entries with a vehicle within the follower's gap past the node: few
        pi, bi = np.nonzero((ocand >= 0) & (ocand != r[:, None]) & (ooff < gap[r][:, None]))
        if len(pi):
            rr = r[pi]
            d = ahead.end_s[r[pi], c[pi]] - s[rr] + ooff[pi, bi]
            np.minimum.at(bdist, rr, d)
            hit = d == bdist[rr]
            blead[rr[hit]] = ocand[pi, bi][hit]
    return lead, dist, blead, bdist
