"""The browser side of the twin: the 3D viewer (``/viewer``) and the offline API docs (``/docs``).

``static/`` holds the viewer's own page, script and style; ``static/vendor/`` the files copied
from the npm packages pinned in package.json (three.js, Swagger UI) by scripts/setup.sh. Nothing
is loaded from a CDN: a fab network is air-gapped. The served files are a fixed table built
from the folder (``static_files``), so no request path ever reaches the file system.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

STATIC = Path(__file__).parent / "static"
VENDOR = STATIC / "vendor"
# what setup.sh copies; the viewer and /docs need all of them
VENDOR_FILES = (
    "three.module.js",
    "three.core.js",
    "OrbitControls.js",
    "swagger-ui-bundle.js",
    "swagger-ui.css",
)
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".LICENSE": "text/plain; charset=utf-8",
}
SETUP_HINT = "run scripts/setup.sh (npm ci and the copy into twin/viewer/static/vendor)"


@lru_cache(maxsize=1)
def static_files() -> dict[str, Path]:
    """Served name ('viewer.js', 'vendor/three.module.js') -> file, for every file there is."""
    out: dict[str, Path] = {}
    for folder, prefix in ((STATIC, ""), (VENDOR, "vendor/")):
        if folder.is_dir():
            for p in folder.iterdir():
                if p.is_file() and p.suffix in MEDIA_TYPES:
                    out[prefix + p.name] = p
    return out


def missing_vendor() -> list[str]:
    """The vendored files that are not there (setup.sh has not run)."""
    return [f for f in VENDOR_FILES if not (VENDOR / f).is_file()]
