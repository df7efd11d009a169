"""Fast shortest routes on the directed rail graph (scipy Dijkstra, cached per source node).

``SceneGraph.rail_path`` answers one route with networkx; the OHT simulator asks thousands per
simulated hour, so this router indexes segments once, runs scipy's Dijkstra per source node on
demand and caches the predecessor rows until a segment is closed or reopened.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from twin.errors import InputError, NotFoundError
from twin.scene.graph import SceneGraph


class RailIndex:
    """The rail network as arrays: segments and nodes by integer index."""

    def __init__(self, scene: SceneGraph):
        self.seg_ids: list[str] = list(scene.segments)
        self.seg_index = {s: i for i, s in enumerate(self.seg_ids)}
        self.node_ids: list[str] = list(scene.rail.nodes)
        self.node_index = {n: i for i, n in enumerate(self.node_ids)}
        segs = [scene.segments[s] for s in self.seg_ids]
        self.seg_start = np.array([self.node_index[s.start] for s in segs], dtype=np.int64)
        self.seg_end = np.array([self.node_index[s.end] for s in segs], dtype=np.int64)
        self.seg_len = np.array([s.length for s in segs], dtype=float)
        self.seg_speed = np.array([s.max_speed for s in segs], dtype=float)
        self.seg_curve = np.array([s.curve for s in segs], dtype=bool)
        n = len(self.node_ids)
        self.node_pos = np.array([scene.world_position(nid) for nid in self.node_ids]).reshape(n, 3)
        self.by_ends = {
            (int(a), int(b)): i for i, (a, b) in enumerate(zip(self.seg_start, self.seg_end))
        }
        # the same look-up vectorised: keys start * n + end, sorted (ties keep segment order)
        keys = self.seg_start * n + self.seg_end
        self._key_order = np.argsort(keys, kind="stable")
        self._keys = keys[self._key_order]
        indeg = np.bincount(self.seg_end, minlength=n)
        self.is_merge = indeg >= 2
        # segments leaving each node (-1 padded): where vehicles on other branches can be near
        out: dict[int, list[int]] = {}
        for i, a in enumerate(self.seg_start):
            out.setdefault(int(a), []).append(i)
        width = max((len(g) for g in out.values()), default=1)
        self.out_segs = np.full((n, width), -1, dtype=np.int64)
        for a, group in out.items():
            self.out_segs[a, : len(group)] = group
        self.out_deg = np.sum(self.out_segs >= 0, axis=1)
        # segments a vehicle's route does not take at a node, in out_segs order and padded
        # with len(seg_ids) ("no segment"): row i < nseg, the siblings of segment i (the others
        # leaving its start node); row nseg + i, all segments leaving the end node of segment i
        nseg = len(self.seg_ids)
        siblings = np.full((nseg, width), nseg, dtype=np.int64)
        for i, a in enumerate(self.seg_start):
            sib = [o for o in out[int(a)] if o != i]
            siblings[i, : len(sib)] = sib
        after = np.where(self.out_segs >= 0, self.out_segs, nseg)[self.seg_end]
        self.off_route = np.concatenate([siblings, after]).reshape(2 * nseg, width)

    def segments_between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Index of the segment from node ``a`` to node ``b`` (the last one listed when several
        join the same nodes, like ``by_ends``); pairs without a segment give -1."""
        keys = np.asarray(a, dtype=np.int64) * len(self.node_ids) + b
        pos = np.searchsorted(self._keys, keys, side="right") - 1
        found = (pos >= 0) & (self._keys[np.maximum(pos, 0)] == keys)
        return np.where(found, self._key_order[np.maximum(pos, 0)], -1)


class Router:
    """Shortest rail routes between stops ``(segment index, offset m)``; honours closed segments."""

    def __init__(self, index: RailIndex):
        self.index = index
        self.closed: set[int] = set()
        # per source node: distances, and as lists (walked in Python) the predecessor node
        # and the segment arriving from it
        self._cache: dict[int, tuple[np.ndarray, list[int], list[int]]] = {}
        self._matrix = self._build()

    def _build(self) -> csr_matrix:
        ix = self.index
        keep = np.ones(len(ix.seg_ids), dtype=bool)
        if self.closed:
            keep[list(self.closed)] = False
        n = len(ix.node_ids)
        # zero-length segments would vanish from a sparse matrix: give them a hair of length
        w = np.maximum(ix.seg_len[keep], 1e-9)
        return csr_matrix((w, (ix.seg_start[keep], ix.seg_end[keep])), shape=(n, n))

    def set_closed(self, closed: Iterable[int]) -> None:
        self.closed = set(closed)
        self._cache.clear()
        self._matrix = self._build()

    def _row(self, src_node: int) -> tuple[np.ndarray, list[int], list[int]]:
        row = self._cache.get(src_node)
        if row is None:
            dist, pred = dijkstra(
                self._matrix, directed=True, indices=src_node, return_predecessors=True
            )
            via = self.index.segments_between(pred, np.arange(len(pred)))
            row = (dist, pred.tolist(), via.tolist())
            self._cache[src_node] = row
        return row

    def node_distance(self, a: int, b: int) -> float:
        return float(self._row(a)[0][b])

    def route(self, seg_a: int, off_a: float, seg_b: int, off_b: float) -> tuple[list[int], float]:
        """Segments from a stop to a stop and the length (m); raises if unreachable."""
        ix = self.index
        if seg_a == seg_b and off_b >= off_a and seg_a not in self.closed:
            return [seg_a], off_b - off_a
        if seg_b in self.closed:
            raise InputError("rail route", [f"destination segment {ix.seg_ids[seg_b]!r} is closed"])
        start, end = int(ix.seg_end[seg_a]), int(ix.seg_start[seg_b])
        dist, pred, via = self._row(start)
        if not np.isfinite(dist[end]):
            raise InputError(
                "rail route",
                [
                    f"no rail path from segment {ix.seg_ids[seg_a]!r} to segment "
                    f"{ix.seg_ids[seg_b]!r} (closed segments: "
                    f"{sorted(ix.seg_ids[c] for c in self.closed)})"
                ],
            )
        segs = [seg_b]  # walked backwards from the destination
        node = end
        while node != start:
            segs.append(via[node])
            node = pred[node]
        segs.append(seg_a)
        segs.reverse()
        length = (ix.seg_len[seg_a] - off_a) + float(dist[end]) + off_b
        return segs, float(length)


def port_stop(scene: SceneGraph, index: RailIndex, port: str) -> tuple[int, float]:
    """A port's stop as (segment index, offset m); clear errors for unknown or off-rail ports."""
    if port not in scene.ports:
        raise NotFoundError("port", port, scene.ports)
    link = scene.ports[port]
    if link.segment is None or link.segment not in index.seg_index:
        raise InputError("transfer", [f"port {port!r} is not on the rail network"])
    return index.seg_index[link.segment], float(link.offset)
