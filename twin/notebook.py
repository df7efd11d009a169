"""Pictures for the notebooks: a matplotlib floor plan and an offline interactive 3D view.

They live in the library (not in the notebooks) so the test suite checks them directly:

    from twin.notebook import floor_plan, scene_figure
    ax = floor_plan(scene, path=scene.rail_path("DIF01_P1", "LIT01_P1"))
    fig = scene_figure(scene)           # plotly; fig.show() embeds plotly.js, no internet needed
    write_html(fig, "fab.html")         # a self-contained page (plotly.js inlined)

matplotlib and plotly are imported inside the functions so ``import twin`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from twin.scene.graph import RailPath, SceneGraph

OTHER_COLOUR = "#9e9e9e"  # stockers and equipment without a family


def project_root(start: str | Path | None = None) -> Path:
    """The folder the notebooks work from: it holds ``scenes/`` (and ``notebooks/``).

    In a source checkout, the project folder (``pyproject.toml`` and ``scenes/``) at or above
    ``start`` (default: the working directory, which Jupyter sets to the notebook's folder).
    Installed from a wheel, the ``twin`` package folder, which ships the scenes and notebooks as
    package data; that fallback applies only when no ``start`` is given.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "scenes").is_dir():
            return folder
    package = Path(__file__).resolve().parent
    if start is None and (package / "scenes").is_dir():
        return package
    raise FileNotFoundError(f"no project folder (pyproject.toml + scenes/) at or above {here}")


def family_colours(scene: SceneGraph) -> dict[str, str]:
    """One stable colour per tool family (sorted names, tab20 then hsv for big fabs)."""
    import matplotlib

    fams = sorted(scene.families())
    cmap = matplotlib.colormaps["tab20" if len(fams) <= 20 else "hsv"]
    n = max(len(fams), 1)
    return {
        f: matplotlib.colors.to_hex(cmap(i if len(fams) <= 20 else i / n))
        for i, f in enumerate(fams)
    }


def _footprints(scene: SceneGraph) -> list[tuple[str, str | None, np.ndarray]]:
    """(id, family, world bbox) of every tool and stocker that has geometry."""
    out = []
    for kind in ("tool", "stocker"):
        for node in scene.nodes(kind):
            box = scene.bbox(node.id)
            if box is not None:
                out.append((node.id, node.family if kind == "tool" else None, box))
    return out


def rail_lines(scene: SceneGraph, segments: Any = None) -> np.ndarray:
    """(n, 2, 3) start/end points of rail segments (all, or the ids given, in that order)."""
    ids = list(scene.segments) if segments is None else list(segments)
    pos = {n: scene.world_position(n) for n in scene.rail.nodes}
    if not ids:
        return np.zeros((0, 2, 3))
    return np.array([[pos[scene.segments[s].start], pos[scene.segments[s].end]] for s in ids])


def floor_plan(
    scene: SceneGraph,
    ax: Any = None,
    *,
    path: RailPath | None = None,
    candidates: Sequence[tuple[float, float, float, float, bool]] = (),
    legend: bool = True,
    labels: bool = False,
) -> Any:
    """Draw the floor plan (top view, metres): rails, tools coloured by family, stockers grey.

    ``path``: a rail path drawn thick in red on top. ``candidates``: (x, y, width, depth, ok)
    footprints of tools to place (centre and size in m), green when ok, red when not.
    Returns the axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.patches import Patch, Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 9))
    colours = family_colours(scene)
    lines = rail_lines(scene)
    ax.add_collection(
        LineCollection(lines[:, :, :2], colors="#555555", linewidths=0.8, label="rail", zorder=1)
    )
    rects, faces = [], []
    for node_id, fam, box in _footprints(scene):
        (x0, y0, _), (x1, y1, _) = box
        rects.append(Rectangle((x0, y0), x1 - x0, y1 - y0))
        faces.append(colours.get(fam, OTHER_COLOUR) if fam else OTHER_COLOUR)
        if labels:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, node_id, fontsize=5, ha="center", va="center")
    ax.add_collection(
        PatchCollection(rects, facecolors=faces, edgecolors="black", linewidths=0.3, zorder=2)
    )
    if path is not None and path.segments:
        seg = rail_lines(scene, path.segments)
        ax.add_collection(LineCollection(seg[:, :, :2], colors="red", linewidths=3, zorder=3))
    for x, y, w, d, ok in candidates:
        colour = "green" if ok else "red"
        ax.add_patch(
            Rectangle(
                (x - w / 2, y - d / 2), w, d, fill=False, edgecolor=colour, linewidth=2.5, zorder=4
            )
        )
    box = scene.scene_bbox()
    pad = 0.02 * float(np.max(box[1, :2] - box[0, :2]) or 1.0)
    ax.set_xlim(box[0, 0] - pad, box[1, 0] + pad)
    ax.set_ylim(box[0, 1] - pad, box[1, 1] + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(f"{scene.name}: {len(rects)} tools and stockers, {len(lines)} rail segments")
    if legend and len(colours) <= 20:
        handles = [Patch(color=c, label=f) for f, c in colours.items()]
        handles.append(Patch(color=OTHER_COLOUR, label="stocker"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return ax


def _box_mesh(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (8 per box) and triangles (12 per box) of axis-aligned boxes (n, 2, 3)."""
    corner = np.array([[i >> 0 & 1, i >> 1 & 1, i >> 2 & 1] for i in range(8)])  # x fastest
    verts = boxes[:, 0][:, None, :] + corner[None] * (boxes[:, 1] - boxes[:, 0])[:, None, :]
    tri = np.array(
        [
            [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
            [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],
        ]
    )  # fmt: skip
    tri = tri[:, ::-1]  # counter-clockwise seen from outside: normals point out
    faces = (tri[None] + 8 * np.arange(len(boxes))[:, None, None]).reshape(-1, 3)
    return verts.reshape(-1, 3), faces


def scene_figure(scene: SceneGraph, *, path: RailPath | None = None) -> Any:
    """An interactive 3D plotly figure: one box mesh per tool family, stockers, rails, path.

    Works offline: ``fig.show()`` in Jupyter and ``write_html`` both carry plotly.js with them.
    """
    import plotly.graph_objects as go

    colours = family_colours(scene)
    groups: dict[str, list[np.ndarray]] = {}
    for _, fam, box in _footprints(scene):
        groups.setdefault(fam or "stocker", []).append(box)
    fig = go.Figure()
    for name in sorted(groups):
        verts, faces = _box_mesh(np.array(groups[name]))
        fig.add_trace(
            go.Mesh3d(
                x=verts[:, 0], y=verts[:, 1], z=verts[:, 2],
                i=faces[:, 0], j=faces[:, 1], k=faces[:, 2],
                color=colours.get(name, OTHER_COLOUR), opacity=0.9, name=name,
                showlegend=True, flatshading=True,
            )
        )  # fmt: skip
    for name, segs, colour, width in (
        ("rail", rail_lines(scene), "#444444", 3),
        ("path", rail_lines(scene, path.segments if path else []), "red", 8),
    ):
        if len(segs):
            pts = np.concatenate([segs, np.full((len(segs), 1, 3), np.nan)], axis=1).reshape(-1, 3)
            fig.add_trace(
                go.Scatter3d(
                    x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="lines", name=name,
                    line={"color": colour, "width": width},
                )
            )  # fmt: skip
    fig.update_layout(
        title=f"{scene.name} (drag to rotate, scroll to zoom)",
        scene={"aspectmode": "data", "xaxis_title": "x (m)", "yaxis_title": "y (m)"},
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        height=600,
    )
    return fig


def write_html(fig: Any, out: str | Path) -> Path:
    """A self-contained HTML page of a plotly figure (plotly.js inlined: opens offline)."""
    out = Path(out)
    out.write_text(fig.to_html(include_plotlyjs=True, full_html=True), encoding="utf-8")
    return out


def e10_timeline(
    times: Sequence[float], states: Sequence[dict[str, str | None]], ax: Any = None
) -> Any:
    """Equipment states over time: one row per tool, one column per sample, E10 colours.

    ``times``: sample times (h); ``states[i]``: tool id -> E10 state (None: not reported yet,
    drawn white) at ``times[i]``. Returns the axes; its image holds the RGBA grid.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from twin.physics.palette import state_colour
    from twin.vocabulary import E10_STATES

    if ax is None:
        _, ax = plt.subplots(figsize=(12, 6))
    tools = sorted({t for row in states for t in row})
    grid = np.ones((len(tools), len(times), 4))
    for j, row in enumerate(states):
        for i, tool in enumerate(tools):
            state = row.get(tool)
            if state is not None:
                grid[i, j] = state_colour(state)
    t = np.asarray(times, dtype=float)
    half = (t[1] - t[0]) / 2 if len(t) > 1 else 0.5
    ax.imshow(
        grid,
        aspect="auto",
        interpolation="nearest",
        extent=(t[0] - half, t[-1] + half, len(tools) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(tools)), tools, fontsize=6)
    ax.set_xlabel("fab time (h)")
    ax.set_title("E10 equipment states")
    ax.legend(
        handles=[Patch(color=state_colour(s), label=s) for s in E10_STATES],
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize=8,
    )
    return ax
