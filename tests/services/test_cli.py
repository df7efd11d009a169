"""`twin up` and `twin serve` as a user runs them: real processes, real ports, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from tests.services.conftest import free_port
from twin.cli import main


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "twin.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


DEV_TOKEN = "dev-token-for-test"
DEV_ENV = {"TWIN_TOKENS": json.dumps({DEV_TOKEN: ["admin"]})}  # never on the command line


def wait_healthy(
    url: str, proc: subprocess.Popen, timeout: float = 120, token: str = DEV_TOKEN
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            r = httpx.get(url + "/health", timeout=2, headers={"Authorization": f"Bearer {token}"})
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("the service did not come up")


def demo_products() -> set[str]:
    """The products of the demo fab's process model."""
    from twin.process import load_model
    from twin.scene.load import load_scene

    return set(load_model(load_scene("scenes/demo-fab").metadata["process_dir"]).products)


def metric(text: str, name: str) -> float:
    """The value of an unlabelled Prometheus sample ``name`` in ``text``."""
    (value,) = [line.split()[1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(value)


@pytest.mark.slow
def test_twin_up_runs_the_emulator_and_stops_on_ctrl_c(tmp_path):
    """`twin up` (defaults: the emulator feed at 60x) serves the demo fab on loopback with
    physics and a SQLite store: within seconds the emulator's events are applied (a tool turns
    productive, a lot is tracked in), none is dead-lettered, and Ctrl-C exits 0 with the
    state snapshotted."""
    port, store = free_port(), tmp_path / "up.db"
    proc = start(["up", "--port", str(port), "--store", str(store)], DEV_ENV)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": "Bearer dev-token-for-test"}
    try:
        health = wait_healthy(url, proc)
        assert health["scene"] == "demo-fab" and health["feed"] == "emulator"
        assert health["store"] == "sqlite" and health["physics"] is True
        deadline = time.monotonic() + 60
        while True:  # the emulator tracks its first lot in after ~70 fab s (~1.2 s at 60x)
            states = {
                e["id"]: e["state"]
                for e in httpx.get(url + "/equipment", headers=headers).json()["items"]
            }
            if "productive" in states.values():
                break
            assert time.monotonic() < deadline, f"no tool turned productive: {states}"
            time.sleep(0.5)
        assert httpx.get(url + "/kpis").status_code == 401
        kpis = httpx.get(url + "/kpis", headers=headers).json()
        assert kpis["revision"] > 0 and kpis["wip"] > 0 and kpis["moves"] >= 0
        lots = httpx.get(url + "/lots", headers=headers).json()["items"]
        assert lots and {lot["product"] for lot in lots} <= demo_products()  # the model's lots
        vehicles = httpx.get(url + "/vehicles", headers=headers).json()["items"]
        assert any(v["reported"] for v in vehicles)  # the OHT reported positions
        text = httpx.get(url + "/metrics", headers=headers).text
        assert metric(text, "twin_events_dead_lettered_total") == 0  # the stream validates
        assert metric(text, "twin_events_ingested_total") >= kpis["revision"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "tokens: from TWIN_TOKENS" in out and "twin: stopped" in out
    assert DEV_TOKEN not in out
    assert "feed: emulator at 60x" in out
    with sqlite3.connect(store) as db:
        (events,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
        (dead,) = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
        (snap,) = db.execute("SELECT MAX(pos) FROM snapshots").fetchone()
        sources = {s for (s,) in db.execute("SELECT DISTINCT source FROM events")}
    assert dead == 0 and sources == {"mes", "amhs"}
    assert events >= kpis["revision"] and snap == events  # all accepted was snapshotted at stop


@pytest.mark.slow
def test_twin_up_synthetic_feed_is_still_selectable(tmp_path):
    """`twin up --feed synthetic` serves the synthetic stream instead: events are applied,
    tools get E10 states, and Ctrl-C exits 0 with the state snapshotted."""
    port, store = free_port(), tmp_path / "up.db"
    proc = start(
        [
            "up",
            "--port",
            str(port),
            "--store",
            str(store),
            "--feed",
            "synthetic",
            "--no-physics",
        ],  # fmt: skip
        DEV_ENV,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_healthy(url, proc)
        assert health["feed"] == "synthetic" and health["physics"] is False
        headers = {"Authorization": "Bearer dev-token-for-test"}
        deadline = time.monotonic() + 60
        while httpx.get(url + "/kpis", headers=headers).json()["revision"] < 40:
            assert time.monotonic() < deadline, "the feed did not deliver events"
            time.sleep(0.5)
        states = {
            e["state"] for e in httpx.get(url + "/equipment", headers=headers).json()["items"]
        }
        assert states - {None}  # the feed reported E10 states
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    with sqlite3.connect(store) as db:
        (events,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
        (snap,) = db.execute("SELECT MAX(pos) FROM snapshots").fetchone()
    assert events >= 40 and snap == events


def test_twin_up_generates_a_token(monkeypatch, capsys):
    """Without TWIN_TOKENS, `twin up` prints a fresh random admin token (checked, not
    started)."""
    import twin.service_commands as sc

    seen = {}

    def fake_run(settings, host, port):
        seen.update(
            host=host, port=port, tokens=settings.tokens, feed=settings.feed,
            speed=settings.feed_speed,
        )  # fmt: skip
        return 0

    for k in list(os.environ):
        if k.startswith("TWIN_"):
            monkeypatch.delenv(k)
    monkeypatch.setattr(sc, "_run", fake_run)
    assert main(["up"]) == 0
    assert main(["up"]) == 0
    out = capsys.readouterr().out
    tokens = [line.split(": ")[1] for line in out.splitlines() if "admin token" in line]
    assert len(tokens) == 2 and tokens[0] != tokens[1] and len(tokens[0]) >= 24
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8000 and seen["feed"] == "emulator"
    assert "twin datasets" not in out  # (the banner names the demo fab, not a dataset)
    assert seen["speed"] == 60.0  # the emulator's default speed


def test_twin_up_bad_flags_are_one_error(capsys):
    """A bad --speed and a bad --seed are reported together, before anything starts."""
    assert main(["up", "--speed", "0", "--seed", "-1"]) == 1
    err = capsys.readouterr().err
    assert "--speed 0: must be a number > 0" in err and "--seed -1: must be >= 0" in err


def test_twin_serve_refuses_production_without_tokens(monkeypatch, capsys):
    """`twin serve` defaults to production mode, which needs TWIN_TOKENS: one clear error."""
    for k in list(os.environ):
        if k.startswith("TWIN_"):
            monkeypatch.delenv(k)
    assert main(["serve", "--scene", "scenes/demo-fab"]) == 1
    err = capsys.readouterr().err
    assert "production mode needs at least one token (TWIN_TOKENS)" in err


def test_port_in_use_is_a_clear_error(capsys):
    """A taken port is reported at once, before the twin is built."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["up", "--port", str(port), "--no-physics"]) == 1
    out, err = capsys.readouterr()
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert "token" not in out  # nothing printed before the failure, the token least of all


def test_unreachable_broker_at_serve_start_is_one_line(monkeypatch, capsys):
    """`twin serve --mqtt` with no broker there fails at once with one line naming the address
    and the setting, not a traceback from the application's start-up."""
    import socket

    for k in list(os.environ):
        if k.startswith("TWIN_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("TWIN_MODE", "development")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, not listening: connections are refused
        assert main(["serve", "--mqtt", f"127.0.0.1:{dead}", "--port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach 127.0.0.1:{dead}" in err and "TWIN_MQTT" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    monkeypatch.setenv("TWIN_MQTT_CA_FILE", "/nonexistent/ca.pem")
    assert main(["serve", "--mqtt", "mqtts://127.0.0.1:8883/twin/+/events/#"]) == 1
    err = capsys.readouterr().err
    assert "ca_file '/nonexistent/ca.pem': cannot be read" in err and "Traceback" not in err


def test_host_port_and_scene_come_from_twin_variables_and_dotenv(monkeypatch, tmp_path, capsys):
    """`twin serve` takes its address and scene from TWIN_HOST/TWIN_PORT/TWIN_SCENE, also from a
    .env in the working directory whose other lines are ignored; an unknown TWIN_ name in .env
    is an error; the environment wins over .env."""
    import twin.service_commands as sc

    for k in list(os.environ):
        if k.startswith("TWIN_"):
            monkeypatch.delenv(k)
    seen = {}
    monkeypatch.setattr(sc, "_run", lambda st, host, port: seen.update(h=host, p=port, s=st.scene))
    monkeypatch.chdir(tmp_path)
    port = free_port()
    (tmp_path / ".env").write_text(
        f"PATH_OF_SOMETHING_ELSE=1\nTWIN_MODE=development\nTWIN_PORT={port}\n"
        "TWIN_HOST=127.0.0.1\nTWIN_SCENE=demo-fab\n"
    )
    assert main(["serve"]) == 0
    assert seen == {"h": "127.0.0.1", "p": port, "s": "demo-fab"}
    other = free_port()
    monkeypatch.setenv("TWIN_PORT", str(other))
    assert main(["serve"]) == 0 and seen["p"] == other
    (tmp_path / ".env").write_text("TWIN_MODE=development\nTWIN_PROT=9000\n")
    assert main(["serve"]) == 1
    assert "twin_prot" in capsys.readouterr().err.lower()
    monkeypatch.setenv("TWIN_PORT", "70000")
    assert main(["serve"]) == 1
    assert "port" in capsys.readouterr().err


@pytest.mark.slow
def test_twin_serve_with_tokens_from_the_environment(tmp_path):
    """`twin serve --scene SRC --store FILE` serves with the tokens of TWIN_TOKENS and stops on
    SIGTERM."""
    import secrets

    port, token = free_port(), secrets.token_urlsafe(32)
    env = {"TWIN_TOKENS": json.dumps({token: ["read"]}), "TWIN_MODE": "production"}
    proc = start(
        ["serve", "--scene", "scenes/demo-fab", "--store", str(tmp_path / "s.db"),
         "--port", str(port), "--no-physics"],
        env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(url, proc, token=token)["mode"] == "production"
        assert httpx.get(url + "/health").json() == {"status": "up"}  # no details without one
        r = httpx.get(url + "/equipment/LITH01", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["family"] == "Litho_FE_3"
        r = httpx.post(url + "/events", json=[], headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
