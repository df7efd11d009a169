"""``load_scene(src)``: one entry point for every scene source (a scene folder or a workbook)."""

from __future__ import annotations

from pathlib import Path

from twin.errors import InputError, UnsupportedFormatError
from twin.scene.graph import SceneGraph

BUILTIN_SCENES = Path(__file__).resolve().parents[1] / "scenes"  # package data (the demo fab)


def builtin_scene(name: str) -> Path | None:
    """The folder of the scene shipped with the package under ``name`` (``demo-fab``), or None."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    folder = BUILTIN_SCENES / name
    return folder if (folder / "scene.yaml").is_file() else None


def shipped_scenes() -> list[str]:
    """The names of the scenes shipped with the package."""
    return sorted(p.parent.name for p in BUILTIN_SCENES.glob("*/scene.yaml"))


def load_scene(src: str | Path) -> SceneGraph:
    """A SceneGraph from a scene folder (``scene.yaml`` inside), a scene file, or a SMAT2022 .xlsx.

    A bare name that is no path here but names a scene shipped with the package (``demo-fab``)
    loads that scene, so `twin scene info demo-fab` works from anywhere.
    """
    path = Path(src)
    if not path.exists() and (shipped := builtin_scene(str(src))) is not None:
        path = shipped
    if path.is_dir() or path.suffix.lower() in (".yaml", ".yml"):
        from twin.scene.folder import load_folder

        return load_folder(path)
    if not path.exists():
        raise InputError(
            "scene",
            [
                f"{path}: no such scene folder or workbook (shipped scenes, by name: "
                f"{', '.join(shipped_scenes())}); "
                "for the public SMAT2022 layout run `twin datasets fetch smat2022`, then pass "
                "`$(twin datasets path smat2022)`"
            ],
        )
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from twin.scene.smat2022 import import_smat2022

        return import_smat2022(path)
    raise UnsupportedFormatError(
        path.suffix.lstrip(".") or "(no extension)", ["folder", "yaml", "xlsx"], path
    )
