"""``load_scene(src)``: one entry point for every scene source (a scene folder or a workbook)."""

from __future__ import annotations

from pathlib import Path

from twin.errors import InputError, UnsupportedFormatError
from twin.scene.graph import SceneGraph


def load_scene(src: str | Path) -> SceneGraph:
    """A SceneGraph from a scene folder (``scene.yaml`` inside), a scene file, or a SMAT2022 .xlsx."""
    path = Path(src)
    if path.is_dir() or path.suffix.lower() in (".yaml", ".yml"):
        from twin.scene.folder import load_folder

        return load_folder(path)
    if not path.exists():
        raise InputError(
            "scene",
            [
                f"{path}: no such scene folder or workbook; for the public SMAT2022 layout run "
                "`twin datasets fetch smat2022`, then pass `$(twin datasets path smat2022)`"
            ],
        )
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from twin.scene.smat2022 import import_smat2022

        return import_smat2022(path)
    raise UnsupportedFormatError(
        path.suffix.lstrip(".") or "(no extension)", ["folder", "yaml", "xlsx"], path
    )
