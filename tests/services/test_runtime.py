"""The runtime behind the API: MQTT ingest from a real broker, the physics world following the
events, and faults in physics that never stop ingest."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import httpx
import pytest

from tests.services.conftest import ADMIN, LiveServer, make_settings
from tests.services.streams import tool_events
from twin.live.events import make_event

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@pytest.fixture
def broker(tmp_path):
    """A Mosquitto broker of our own on a free loopback port."""
    import os

    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    from tests.services.conftest import free_port

    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


def test_events_from_mqtt_reach_the_api(broker):
    """Events published to a real broker are stored, applied and served like posted ones."""
    from twin.live.mqtt import MqttConfig, MqttSink

    events = tool_events("mqtt-mes", ["LITH01", "CMP01"], n=25)
    with LiveServer(make_settings(mqtt=f"mqtt://127.0.0.1:{broker}/twin/+/events/#")) as srv:
        sink = MqttSink(MqttConfig(host="127.0.0.1", port=broker, client_id="test-pub"), fab="demo")
        for ev in events:
            sink.publish(ev)
        assert sink.flush(30)
        sink.close()
        deadline = time.monotonic() + 30
        while httpx.get(srv.url + "/kpis", headers=ADMIN).json()["revision"] < len(events):
            assert time.monotonic() < deadline, "MQTT events did not arrive"
            time.sleep(0.2)
        lith = httpx.get(srv.url + "/equipment/LITH01", headers=ADMIN).json()
        assert (lith["state"], lith["rev"]) == ("standby", 25)
        page = httpx.get(srv.url + "/events", params={"subject": "CMP01"}, headers=ADMIN).json()
        assert [x["event"]["id"] for x in page["items"]] == [
            e.id for e in events if e.subject == "CMP01"
        ]


def test_physics_world_follows_vehicle_events():
    """With physics attached, a vehicle.position event moves the vehicle's body in the world to
    the rail point of its segment and offset."""
    pytest.importorskip("pybullet")
    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    with TestClient(create_app(make_settings(physics=True))) as c:
        rt = c.app.state.runtime
        assert rt.world is not None and c.get("/health", headers=ADMIN).json()["physics"] is True
        seg = "LE0-LE1"
        ev = make_event(
            "amhs", 1, 1.8e9, "vehicle.position", "OHT_LOOP_1", segment=seg, offset=3.0, speed=1.0
        )
        assert c.post("/events", json=[ev.to_dict()], headers=ADMIN).json()["accepted"] == 1
        ids, pos, _ = rt.world.vehicle_poses()
        got = pos[ids.index("OHT_LOOP_1")]
        want = rt.scene.point_on_segment(seg, 3.0)
        assert got[:2] == pytest.approx(want[:2], abs=1e-6)
        state = make_event(
            "mes", 1, 1.8e9, "equipment.state", "ETCH01", state="standby", reason="x"
        )
        assert c.post("/events", json=[state.to_dict()], headers=ADMIN).json()["accepted"] == 1
        assert rt.world.states.get("ETCH01") == "standby"


def test_physics_faults_never_stop_ingest():
    """A physics world that raises on every update is counted in /metrics; events are still
    stored, applied and answered as accepted."""
    from fastapi.testclient import TestClient

    from twin_api.app import create_app
    from twin_api.runtime import TwinRuntime

    class Broken:
        def set_vehicle_pose(self, *a):
            raise RuntimeError("physics down")

        def set_equipment_state(self, *a):
            raise RuntimeError("physics down")

        def close(self):
            pass

    class Runtime(TwinRuntime):
        def _physics(self):
            return Broken()

    settings = make_settings(physics=True)
    with TestClient(create_app(settings, runtime=Runtime(settings))) as c:
        events = tool_events("mes", ["LITH01"], n=4)
        assert (
            c.post("/events", json=[e.to_dict() for e in events], headers=ADMIN).json()["accepted"]
            == 4
        )
        metrics = c.get("/metrics", headers=ADMIN).text
        assert "twin_physics_errors_total 1" in metrics  # one batch, latest state pushed once
        assert c.get("/equipment/LITH01", headers=ADMIN).json()["rev"] == 4


def test_restart_keeps_state_and_stream_positions(tmp_path):
    """A service restarted on the same SQLite store has the same state, and a stream client
    resumes across the restart from the seq it last saw."""
    import asyncio
    import json

    import websockets

    store = str(tmp_path / "events.db")
    first = tool_events("mes", ["LITH01", "ETCH01"], n=30)
    with LiveServer(make_settings(store=store)) as srv:
        r = httpx.post(srv.url + "/events", json=[e.to_dict() for e in first], headers=ADMIN)
        seen = r.json()["results"][29]["seq"]  # the client saw up to here
        before = httpx.get(srv.url + "/kpis", headers=ADMIN).json()
    later = tool_events("mes", ["LITH01", "ETCH01"], n=40)[60:]  # seq 61..80
    with LiveServer(make_settings(store=store)) as srv:
        assert httpx.get(srv.url + "/kpis", headers=ADMIN).json() == before
        httpx.post(srv.url + "/events", json=[e.to_dict() for e in later], headers=ADMIN)

        async def resume():
            url = srv.url.replace("http", "ws") + f"/stream?since={seen}"
            async with websockets.connect(url, additional_headers=ADMIN) as ws:
                got = []
                while len(got) < 50:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if isinstance(msg, list):
                        got += msg
                return got

        got = asyncio.run(resume())
    assert [m["event"]["id"] for m in got] == [e.id for e in first[30:] + later]
    assert [m["seq"] for m in got] == list(range(seen + 1, seen + 51))


def test_the_loaded_twin_is_kept_out_of_the_collector_while_serving():
    """While the app runs, what start-up built is frozen out of the cyclic collector (no full
    collection walks it); stopping the app unfreezes it, so a stopped twin can be collected."""
    import gc

    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    gc.unfreeze()
    with TestClient(create_app(make_settings())) as c:
        assert c.get("/health").status_code == 200
        assert gc.get_freeze_count() > 10_000  # the scene, model and catalog
    assert gc.get_freeze_count() == 0
