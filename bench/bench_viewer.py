"""Viewer benchmarks in headless Chromium (software GL: SwiftShader), issue 17:

1. time to the first frame of the SMAT2022 fab (``twin serve`` of the workbook), target <= 5 s;
2. frame time with its 500 vehicles all moving (vehicle.position for every vehicle each second
   through POST /events, drawn from the /stream WebSocket), and the draw calls per frame;
3. bytes the browser receives to load the viewer and the scene (gzip where the client accepts);
4. WebSocket bytes per second at the demo feed's rate (`twin up`: the emulator at 60x, and the
   synthetic feed), with the viewer's filter and unfiltered.

Run: .venv/bin/python bench/bench_viewer.py [--moving-s 20] [--feed-s 90]
Needs scripts/setup.sh (three.js vendored, Chromium) and the SMAT2022 workbook (TWIN_DATASETS).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from twin.datasets import smat2022_workbook  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist"]
VIEWER_TYPES = (
    "equipment.state,lot.track_in,lot.track_out,vehicle.,carrier.picked_up,carrier.delivered"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Twin:
    """`twin <args>` on a free port with a fresh admin token (from TWIN_TOKENS)."""

    def __init__(self, args: list[str]) -> None:
        self.port = free_port()
        self.token = secrets.token_urlsafe(32)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "TWIN_TOKENS": json.dumps({self.token: ["admin"]}),
            "TWIN_MODE": "development",
            "PYTHONPATH": str(ROOT),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twin.cli", *args, "--port", str(self.port), "--no-physics"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    def __enter__(self) -> Twin:
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("the twin exited")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the twin did not come up")
            time.sleep(0.3)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def open_viewer(pw, twin: Twin, sizes: list[int] | None = None):
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    if sizes is not None:
        page.on("requestfinished", lambda r: sizes.append(_received(r)))
    t0 = time.perf_counter()
    page.goto(f"{twin.url}/viewer#token={twin.token}")
    page.wait_for_function("window.twinViewer && twinViewer.ready", timeout=180_000, polling=50)
    wall = time.perf_counter() - t0
    return browser, page, wall


def _received(request) -> int:
    s = request.sizes()
    return s["responseBodySize"] + s["responseHeadersSize"]


def mover(twin: Twin, stop: threading.Event, rate: float = 1.0) -> dict[str, int]:
    """Moves every vehicle of the scene along the rails: one vehicle.position per vehicle every
    1/rate s, posted in one batch. Returns counters (posted, rejected)."""
    from twin.scene.load import load_scene

    scene = load_scene(str(smat2022_workbook()))
    nxt: dict[str, list[str]] = {}
    for s in scene.segments.values():
        nxt.setdefault(s.start, []).append(s.id)
    where = {}
    for v in scene.nodes("vehicle"):
        where[v.id] = [v.attrs["segment"], float(v.attrs.get("offset", 0.0))]
    speed, seq, out = 3.0, 0, {"posted": 0, "rejected": 0}
    t_base = time.time()
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            batch = []
            now = time.time()
            for vid, pos in where.items():
                seg = scene.segments[pos[0]]
                pos[1] += speed / rate
                if pos[1] > seg.length:
                    choices = nxt.get(seg.end) or [pos[0]]
                    pos[0], pos[1] = choices[hash((vid, seq)) % len(choices)], 0.0
                seq += 1
                batch.append(
                    {
                        "id": f"bench:{seq}",
                        "source": "bench",
                        "seq": seq,
                        "time": max(now, t_base),
                        "type": "vehicle.position",
                        "subject": vid,
                        "data": {
                            "segment": pos[0],
                            "offset": round(min(pos[1], scene.segments[pos[0]].length), 3),
                            "speed": speed,
                        },
                    }  # fmt: skip
                )
            r = client.post(twin.url + "/events", json=batch, headers=twin.headers)
            res = r.json().get("results", [])
            out["posted"] += len(batch)
            out["rejected"] += sum(1 for x in res if x["status"] != "accepted")
            stop.wait(max(0.0, 1.0 / rate - (time.time() - now)))
    return out


def bench_smat(moving_s: float) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    out: dict[str, object] = {}
    with Twin(["serve", "--scene", str(smat2022_workbook())]) as twin, sync_playwright() as pw:
        # a first load warms the server's caches (scene arrays, gzip) as a running twin has them
        httpx.get(twin.url + "/viewer/scene", headers=twin.headers, timeout=120)
        sizes: list[int] = []
        browser, page, wall = open_viewer(pw, twin, sizes)
        out["first_frame_s"] = round(wall, 2)
        out["first_frame_since_navigation_s"] = round(
            page.evaluate("twinViewer.firstFrameMs") / 1000, 2
        )
        time.sleep(1.0)
        out["load_bytes"] = sum(sizes)
        out["load_requests"] = len(sizes)
        out["idle_frame_ms"] = _frames(page, 3.0)
        stop = threading.Event()
        counts: dict[str, int] = {}
        th = threading.Thread(target=lambda: counts.update(mover(twin, stop)), daemon=True)
        th.start()
        time.sleep(3.0)  # the vehicles start moving
        out["moving_frame_ms"] = _frames(page, moving_s)
        out["draw_calls"] = page.evaluate("twinViewer.drawCalls()")
        out["software_gl"] = page.evaluate("twinViewer.softwareGL")
        out["positions_applied"] = page.evaluate("twinViewer.counts")["vehicle.position"]
        stop.set()
        th.join(timeout=30)
        out["positions_posted"], out["positions_rejected"] = (
            counts.get("posted"),
            counts.get("rejected"),
        )
        browser.close()
    return out


def _frames(page, seconds: float) -> dict[str, float]:
    """Frame times (ms) over ``seconds`` of rendering: median, p95, and frames per second."""
    c0, n0 = page.evaluate("[twinViewer.frameCount, performance.now()]")
    time.sleep(seconds)
    c1, n1 = page.evaluate("[twinViewer.frameCount, performance.now()]")
    k = sorted(page.evaluate(f"twinViewer.frameTimes({max(1, min(c1 - c0, 599))})"))
    return {
        "median": round(statistics.median(k), 1),
        "p95": round(k[int(0.95 * (len(k) - 1))], 1),
        "fps": round((c1 - c0) / ((n1 - n0) / 1000), 1),
    }


async def ws_rate(twin: Twin, seconds: float, types: str | None) -> float:
    import websockets

    b = base64.urlsafe_b64encode(twin.token.encode()).decode().rstrip("=")
    q = f"?type={types}" if types else ""
    url = twin.url.replace("http", "ws") + "/stream" + q
    n = 0
    async with websockets.connect(url, subprotocols=["twin.v1", "twin.bearer." + b]) as ws:
        t0 = time.monotonic()
        while (left := seconds - (time.monotonic() - t0)) > 0:
            try:
                n += len(await asyncio.wait_for(ws.recv(), left))
            except TimeoutError:
                break
    return n / seconds


def bench_feed(feed: str, seconds: float) -> dict[str, float]:
    with Twin(["up", "--feed", feed]) as twin:

        async def both() -> tuple[float, float]:
            return await asyncio.gather(
                ws_rate(twin, seconds, VIEWER_TYPES), ws_rate(twin, seconds, None)
            )

        viewer, everything = asyncio.run(both())
        stored = httpx.get(twin.url + "/health", headers=twin.headers).json()["events_stored"]
    return {"viewer_Bps": round(viewer), "all_Bps": round(everything), "events_stored": stored}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moving-s", type=float, default=20.0, help="s of frames with moving vehicles")
    ap.add_argument("--feed-s", type=float, default=90.0, help="s of the emulator feed measured")
    args = ap.parse_args()
    print("command: python bench/bench_viewer.py " + " ".join(sys.argv[1:]))
    smat = bench_smat(args.moving_s)
    print("SMAT2022 (1,068 tools, 40 stockers, 3,424 segments, 22,120 ports, 500 vehicles):")
    print(
        f"  time to first frame: {smat['first_frame_s']} s from navigation (goto -> first "
        f"frame drawn; in-page {smat['first_frame_since_navigation_s']} s); target <= 5 s"
    )
    print(
        f"  bytes to load viewer + scene: {smat['load_bytes']:,} in {smat['load_requests']} "
        "responses (headers + gzip bodies)"
    )
    print(f"  frame time idle: {smat['idle_frame_ms']} ms")
    print(
        f"  frame time, 500 vehicles moving: {smat['moving_frame_ms']} ms; "
        f"{smat['draw_calls']} draw calls per frame"
    )
    print(
        f"  positions posted {smat['positions_posted']} (rejected {smat['positions_rejected']}), "
        f"applied by the viewer {smat['positions_applied']}"
    )
    for feed, secs in (("emulator", args.feed_s), ("synthetic", 30.0)):
        r = bench_feed(feed, secs)
        print(
            f"twin up --feed {feed} (demo fab), {secs:g} s: WebSocket {r['viewer_Bps']:,} B/s "
            f"with the viewer's filter, {r['all_Bps']:,} B/s unfiltered "
            f"({r['events_stored']} events stored)"
        )


if __name__ == "__main__":
    main()
