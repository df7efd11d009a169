"""What wires the viewer in: setup.sh copies every vendored file the pages load, the start-up
banners link /viewer, and the pages load only vendored files."""

from __future__ import annotations

import os
import re
from pathlib import Path

from twin.cli import main
from twin.viewer import STATIC, VENDOR_FILES

ROOT = Path(__file__).resolve().parents[2]


def test_setup_copies_every_vendored_file_the_pages_load():
    """Each file the pages import from vendor/ is one setup.sh copies (and one the code expects)."""
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    copied = set(re.findall(r"[\w./-]+/([\w.-]+\.(?:js|css))", setup))
    loaded = set()
    for page in ("index.html", "docs.html", "viewer.js", "fab3d.js"):
        loaded |= set(re.findall(r"/viewer/static/vendor/([\w.-]+)", (STATIC / page).read_text()))
    assert loaded and loaded <= copied and set(VENDOR_FILES) <= copied, (loaded, copied)
    # three.module.js imports three.core.js next to it
    assert "three.core.js" in copied


def test_setup_never_uses_a_cdn_and_pins_with_npm_ci():
    """setup.sh installs the browser files with `npm ci` (the lock file), scripts off."""
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "npm ci --ignore-scripts" in setup and "SCARF_ANALYTICS=false" in setup
    assert not re.search(r"https?://", setup)


def _clean(monkeypatch) -> None:
    for k in list(os.environ):
        if k.startswith("TWIN_"):
            monkeypatch.delenv(k)


def test_banners_link_the_viewer_without_repeating_the_token(monkeypatch, capsys):
    """`twin up` and `twin serve` print the /viewer link; the generated token still appears once."""
    import twin.service_commands as sc

    _clean(monkeypatch)
    seen = []
    monkeypatch.setattr(sc, "_run", lambda settings, host, port: seen.append(settings) or 0)
    assert main(["up", "--port", "8123"]) == 0
    out = capsys.readouterr().out
    (token,) = seen[0].tokens
    assert "3D viewer: http://127.0.0.1:8123/viewer" in out and out.count(token) == 1
    monkeypatch.setenv("TWIN_MODE", "development")
    assert main(["serve", "--scene", "scenes/demo-fab", "--port", "8124"]) == 0
    assert "3D viewer: http://127.0.0.1:8124/viewer" in capsys.readouterr().out
