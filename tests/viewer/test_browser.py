"""/viewer in headless Chromium against a running `twin up` (its synthetic feed: vehicles move
every few seconds; the emulator's moves come in bursts a minute apart), as a user sees it:
the canvas is drawn, vehicles move with the feed, a tool set down through POST /events turns
red, scrubbing back shows the state of that time, and the token never appears in a URL."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from tests.services.conftest import free_port
from twin.viewer import missing_vendor

pytestmark = pytest.mark.slow
READ = "viewer-read-token-0123456789abcdef"
ADMIN = "viewer-admin-token-0123456789abcdef"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist"]
RED = "#d93636"  # unscheduled_down in viewer.js


def _skip_reason() -> str | None:
    if missing_vendor():
        return "browser files not installed (run scripts/setup.sh)"
    if not os.path.exists(CHROMIUM):
        return "no Chromium (setup.sh installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """`twin up` on a free port, tokens from TWIN_TOKENS, its output (banner, warnings, errors)
    to a file; yields (url, path of that file)."""
    if (why := _skip_reason()) is not None:
        pytest.skip(why)
    port = free_port()
    log = tmp_path_factory.mktemp("viewer") / "twin-up.log"
    out = log.open("w")
    env = {**os.environ, "TWIN_TOKENS": json.dumps({READ: ["read"], ADMIN: ["admin"]})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "twin.cli",
            "up",
            "--port",
            str(port),
            "--no-physics",
            "--feed",
            "synthetic",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "twin up did not come up"
        time.sleep(0.3)
    yield url, log
    proc.terminate()
    proc.wait(timeout=30)
    out.close()


@pytest.fixture(scope="module")
def page(twin):
    """The viewer open in headless Chromium with the token in the fragment; every URL the
    browser asks for (HTTP and WebSocket) is recorded in ``page.urls``."""
    from playwright.sync_api import sync_playwright

    url, _ = twin
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1000, "height": 700})
        pg.urls = []
        pg.errors = []
        pg.browser = browser
        pg.on("request", lambda r: pg.urls.append(r.url))
        pg.on("websocket", lambda ws: pg.urls.append(ws.url))
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.goto(f"{url}/viewer#token={READ}")
        pg.wait_for_function("window.twinViewer && twinViewer.ready", timeout=90_000)
        pg.wait_for_function("twinViewer.mode === 'live'", timeout=30_000)
        yield pg
        browser.close()


def _image(pg):
    from PIL import Image

    return Image.open(io.BytesIO(pg.screenshot())).convert("RGB")


def _around(img, xy, r: int = 3) -> tuple[int, int, int]:
    """The median colour of the (2r+1)² pixels around ``xy``."""
    x, y = int(xy[0]), int(xy[1])
    px = [img.getpixel((i, j)) for i in range(x - r, x + r + 1) for j in range(y - r, y + r + 1)]
    return tuple(sorted(c[k] for c in px)[len(px) // 2] for k in range(3))


def test_canvas_is_not_blank(page):
    """A screenshot of the viewer has many colours and spread (the fab is drawn), in a few
    draw calls (instanced: not one per object)."""
    from PIL import ImageStat

    img = _image(page)
    stat = ImageStat.Stat(img)
    assert max(stat.stddev) > 20, stat.stddev
    assert len(img.getcolors(1_000_000)) > 200
    calls = page.evaluate("twinViewer.drawCalls()")
    assert 0 < calls < 20, calls
    assert not page.errors, page.errors


def test_a_vehicle_moves_on_screen_with_the_feed(page):
    """While the feed runs, some vehicle's screen position changes between two
    screenshots (and the pixels where it was change too)."""
    where = "() => Object.fromEntries(twinViewer.vehicles().map(v => [v, twinViewer.screenPosition(v)]))"
    before = page.evaluate(where)
    shot1 = _image(page)
    moved = None
    deadline = time.monotonic() + 90
    while moved is None and time.monotonic() < deadline:
        time.sleep(0.5)
        now = page.evaluate(where)
        moved = next(
            (v for v, p in now.items() if abs(p[0] - before[v][0]) + abs(p[1] - before[v][1]) > 5),
            None,
        )
    assert moved is not None, "no vehicle moved in 90 s"
    time.sleep(2.5)  # the interpolation ends
    shot2 = _image(page)
    assert shot1.tobytes() != shot2.tobytes()
    assert page.evaluate("twinViewer.wsBytes") > 0


def test_token_never_in_a_url_or_the_server_output(page, twin):
    """The token travels in headers and the WebSocket subprotocol only: no URL the browser
    requested (what an access log writes) holds it, the address bar dropped the fragment, and
    the server's output (banner, logs) never shows it."""
    assert page.urls and any("/stream" in u for u in page.urls)
    assert not [u for u in page.urls if READ in u]
    assert READ not in page.url and "#token" not in page.url
    assert page.evaluate("sessionStorage.getItem('twin.token')") == READ
    _, log = twin
    text = log.read_text()
    assert "3D viewer:" in text and READ not in text and ADMIN not in text


def _post_state(url: str, tool: str, state: str, at: float, seq: int) -> None:
    ev = {"id": f"viewer-test:{seq}", "source": "viewer-test", "seq": seq, "time": at,
          "type": "equipment.state", "subject": tool, "data": {"state": state, "reason": "test"}}  # fmt: skip
    r = httpx.post(
        url + "/events", json=[ev], headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
    )
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "accepted", r.text


def _get(url: str, path: str, **params) -> dict:
    r = httpx.get(url + path, params=params, headers={"Authorization": f"Bearer {READ}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_tool_set_down_turns_red_and_scrubbing_back_shows_the_past(page, twin):
    """POST /events puts a standby tool unscheduled_down: its colour turns red on screen; then
    scrubbing to just before shows the state the API gives for that time, in its colour."""
    url, _ = twin
    now = _get(url, "/viewer/state")
    tool = next(t for t, (st, lots) in sorted(now["equipment"].items()) if st == "standby")
    clock = _get(url, "/viewer/history")["last_epoch"]
    before = page.evaluate("id => twinViewer.toolColour(id)", tool)
    _post_state(url, tool, "unscheduled_down", clock + 1.0, 1)
    page.wait_for_function(f"twinViewer.toolColour('{tool}') === '{RED}'", timeout=20_000)
    assert before != RED
    time.sleep(0.5)
    r, g, b = _around(_image(page), page.evaluate("id => twinViewer.screenPosition(id)", tool))
    assert r > g + 40 and r > b + 40, (r, g, b)

    past = _get(url, "/viewer/state", at=f"{clock:.3f}")["equipment"][tool][0]
    assert past != "unscheduled_down"
    page.evaluate(f"twinViewer.scrubTo({clock})")
    assert page.evaluate("twinViewer.mode") == "replay"
    assert page.evaluate("id => twinViewer.toolState(id)", tool) == past
    assert page.evaluate("id => twinViewer.toolColour(id)", tool) != RED
    time.sleep(0.5)
    r2, g2, b2 = _around(_image(page), page.evaluate("id => twinViewer.screenPosition(id)", tool))
    assert not (r2 > g2 + 40 and r2 > b2 + 40), (r2, g2, b2)
    page.evaluate("twinViewer.goLive()")
    page.wait_for_function("twinViewer.mode === 'live'", timeout=20_000)


@pytest.mark.parametrize(
    "fragment",
    ["#token=%ED%A0%80", "#token=%", "#token=" + "A" * 5000, "#token=%3Cscript%3E", "#token=nope"],
)
def test_hostile_fragment_tokens_ask_again(page, twin, fragment):
    """A fragment token that is bad UTF-8, huge, not a bearer token or unknown: the page shows
    the token form (no script error), and nothing it holds reaches a URL."""
    url, _ = twin
    pg = page.browser.new_page()
    errors, urls = [], []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: urls.append(r.url))
    try:
        pg.goto(f"{url}/viewer{fragment}")
        pg.wait_for_selector("#login:not(.hidden)", timeout=30_000)
        assert not errors, errors
        assert "#token" not in pg.url
        assert not [u for u in urls if "token" in u or "AAAA" in u]
    finally:
        pg.close()


def test_access_log_never_holds_the_token(page):
    """With uvicorn's access log on (it is off in `twin up`; a deployment or a proxy may log),
    opening the viewer and following the stream logs the requests, never the token."""
    import logging
    import threading

    import uvicorn

    from tests.services.conftest import make_settings
    from twin_api.app import UVICORN_OPTIONS, create_app

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    # HTTP requests go to uvicorn.access, WebSocket handshakes ('"WebSocket /stream?..."
    # [accepted]') to uvicorn.error
    loggers = [logging.getLogger("uvicorn.access"), logging.getLogger("uvicorn.error")]
    handler = Keep()
    port = free_port()
    options = {**UVICORN_OPTIONS, "access_log": True, "log_level": "info"}
    settings = make_settings(tokens={READ: ["read"]}, feed="synthetic", feed_speed=10.0)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, **options)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        for lg in loggers:  # after uvicorn configured its logging (which resets it)
            lg.addHandler(handler)
        pg = page.browser.new_page()  # the module's browser (one playwright per thread)
        try:
            pg.goto(f"http://127.0.0.1:{port}/viewer#token={READ}")
            pg.wait_for_function("window.twinViewer && twinViewer.mode === 'live'", timeout=90_000)
            pg.evaluate("twinViewer.scrubTo(Date.now() / 1000 - 5)")
        finally:
            pg.close()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        for lg in loggers:
            lg.removeHandler(handler)
    logged = "\n".join(lines)
    assert "/viewer/scene" in logged and "/viewer/state" in logged and "WebSocket /stream" in logged
    assert "at=" in logged  # query strings are logged: the token must never be in one
    assert READ not in logged
