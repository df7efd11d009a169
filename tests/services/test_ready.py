"""`GET /ready` (readiness) tells whether the twin can do its job now: ingest running, the event
store writable, the MQTT broker connected when configured; `/health` stays liveness. Outages
and recoveries are logged."""

from __future__ import annotations

import logging
import time

import httpx
from fastapi.testclient import TestClient

from tests.services.conftest import ADMIN, LiveServer, make_settings
from tests.services.streams import tool_events
from tests.services.test_runtime import MOSQUITTO


def _wait(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_ready_without_a_token_lists_its_checks() -> None:
    """A running twin without MQTT is ready: ingest and store ok, no token needed; a twin never
    started is not (503, ingest not running)."""
    from twin_api.app import create_app

    with TestClient(create_app(make_settings())) as c:
        r = c.get("/ready")
        assert r.status_code == 200
        assert r.json() == {"status": "ready", "checks": {"ingest": "ok", "store": "ok"}}
    cold = TestClient(create_app(make_settings()))  # no `with`: never started
    r = cold.get("/ready")
    assert r.status_code == 503 and r.json()["checks"]["ingest"] == "not running"


def test_a_failing_store_makes_the_twin_not_ready_until_a_write_succeeds(tmp_path, caplog):
    """While the store's writes fail, /ready answers 503 naming the failure and /health still
    says up; the first successful write makes it ready again; both moments are logged once."""
    from twin_api.app import create_app

    caplog.set_level(logging.INFO, logger="twin.live.sync")
    with TestClient(create_app(make_settings(store=str(tmp_path / "s.db")))) as c:
        rt = c.app.state.runtime
        real = rt.store.write

        def broken(*args, **kw):
            raise OSError(28, "No space left on device")

        rt.store.write = broken
        events = [e.to_dict() for e in tool_events("ready-src", ["LITH01"], n=4)]
        assert c.post("/events", json=events[:2], headers=ADMIN).status_code == 503
        assert c.post("/events", json=events[:2], headers=ADMIN).status_code == 503
        r = c.get("/ready")
        assert r.status_code == 503 and "No space left on device" in r.json()["checks"]["store"]
        assert c.get("/health").status_code == 200  # alive, though not ready
        rt.store.write = real
        assert c.post("/events", json=events, headers=ADMIN).status_code == 200
        assert c.get("/ready").status_code == 200
    failed = [r for r in caplog.records if "event store write failed" in r.getMessage()]
    back = [r for r in caplog.records if "writable again" in r.getMessage()]
    assert len(failed) == 1 and len(back) == 1  # once per outage, not per batch


def test_a_dead_broker_makes_the_twin_not_ready_and_its_return_ready(tmp_path, caplog):
    """With MQTT configured, /ready follows the broker: 503 while it is down (the check names
    it), 200 once the subscription has reconnected; disconnect and reconnect are logged."""
    import os
    import signal
    import socket
    import subprocess

    import pytest

    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")

    from tests.services.conftest import free_port

    caplog.set_level(logging.INFO, logger="twin.live.mqtt")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")

    def start():
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        _wait(lambda: _listening(port), 10)
        return proc

    def _listening(p: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
            return True
        except OSError:
            return False

    proc = start()
    url = f"mqtt://127.0.0.1:{port}/twin/+/events/#"
    try:
        with LiveServer(make_settings(mqtt=url)) as srv:
            check = f"broker 127.0.0.1:{port}"
            assert httpx.get(srv.url + "/ready").json()["checks"][check] == "ok"
            gauge = f'twin_mqtt_connected{{broker="127.0.0.1:{port}"}}'
            assert f"{gauge} 1.0" in httpx.get(srv.url + "/metrics", headers=ADMIN).text
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            _wait(lambda: httpx.get(srv.url + "/ready").status_code == 503)
            body = httpx.get(srv.url + "/ready").json()
            assert body["checks"][check].startswith("disconnected")
            assert httpx.get(srv.url + "/health").status_code == 200
            assert f"{gauge} 0.0" in httpx.get(srv.url + "/metrics", headers=ADMIN).text
            proc = start()
            _wait(lambda: httpx.get(srv.url + "/ready").status_code == 200, 30)
    finally:
        proc.terminate()
        proc.wait(10)
    lines = [r.getMessage() for r in caplog.records if r.name == "twin.live.mqtt"]
    assert any("disconnected from 127.0.0.1" in line for line in lines)
    assert any("reconnected to broker 127.0.0.1" in line for line in lines)
