"""Fail-over for real: two `twin serve` processes on one PostgreSQL store, fed over MQTT by
`twin emulate --mqtt` (end to end), the leader killed with SIGKILL mid-stream (issue 20).

``TwinServer`` is shared with bench/bench_failover.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live.conftest import free_port

psycopg = pytest.importorskip("psycopg")
from twin.live.store_pg import PostgresStore  # noqa: E402
from twin_api.revision import state_hash  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "failover-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def child_env(**extra: str) -> dict[str, str]:
    """This checkout's code first on the path of a child process (not an installed copy)."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "services"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


class TwinServer:
    """One `twin serve` process on a store and an MQTT broker, its output in a log file."""

    def __init__(self, store: str, mqtt: str | None, logdir: Path, name: str, **env: str) -> None:
        self.store, self.mqtt, self.name = store, mqtt, name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logfile = logdir / f"{name}.log"
        self.env = child_env(
            TWIN_TOKENS=json.dumps({TOKEN: ["admin"]}),
            TWIN_MODE="development",
            TWIN_ADVERTISE_URL=self.url,
            TWIN_LEAD_INTERVAL="0.5",
            **env,
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> TwinServer:
        cmd = [sys.executable, "-m", "twin.cli", "serve", "--scene", str(ROOT / "scenes/demo-fab"),
               "--store", self.store, "--port", str(self.port), "--no-physics"]  # fmt: skip
        if self.mqtt:
            cmd += ["--mqtt", self.mqtt]
        log = self.logfile.open("a")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=self.env, cwd=ROOT)
        log.close()
        return self

    def wait_up(self, timeout: float = 120) -> TwinServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not come up:\n{self.log()}")

    def log(self) -> str:
        return self.logfile.read_text()[-4000:] if self.logfile.exists() else ""

    def hash(self, timeout: float = 10, **headers: str) -> dict:
        r = httpx.get(self.url + "/state/hash", headers={**AUTH, **headers}, timeout=timeout)
        assert r.status_code == 200, r.text
        return r.json()

    def revision(self) -> int:
        return int(httpx.get(self.url + "/health", timeout=5).headers["x-twin-revision"])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def emulate(mqtt: str, hours: float, speed: float, out: Path, seed: int = 1) -> subprocess.Popen:
    """`twin emulate --mqtt` end to end: it ends once the twin confirmed every event durable."""
    cmd = [sys.executable, "-m", "twin.cli", "emulate", str(ROOT / "scenes/demo-fab"),
           "--hours", str(hours), "--speed", str(speed), "--seed", str(seed), "--mqtt", mqtt,
           "--json", "--confirm-timeout", "180"]  # fmt: skip
    return subprocess.Popen(
        cmd, stdout=out.open("w"), stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT
    )


def wait_role(server: TwinServer, role: str, timeout: float) -> float:
    """Seconds until ``server`` says it has ``role`` (AssertionError after ``timeout``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if server.hash(timeout=2)["role"] == role:
                return time.monotonic() - t0
        except (httpx.HTTPError, AssertionError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"{server.name} is not {role} after {timeout} s:\n{server.log()}")


def store_facts(url: str) -> dict:
    """Counts that say 'exactly once': events per source, distinct and contiguous seqs."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT source, count(*), count(DISTINCT seq), min(seq), max(seq) FROM events "
            "GROUP BY source"
        ).fetchall()
        dead = db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    return {"sources": {r[0]: r[1:] for r in rows}, "dead": dead}


def replay_hash(url: str) -> tuple[int, str]:
    with PostgresStore(url, readonly=True) as s:
        return s.count(), state_hash(s.replay(s.catalog()))


@pytest.mark.slow
def test_kill_9_of_the_leader_mid_stream(pg_url, broker, tmp_path):
    """The leader is SIGKILLed while `twin emulate --mqtt` publishes: the follower leads within
    5 s, MQTT ingest resumes where the store ends, the emulator has every event confirmed, each
    is stored exactly once, and the survivor's state hash (and a restarted server's, following)
    equals a fresh replay of the store."""
    mqtt = f"127.0.0.1:{broker.port}"
    a = TwinServer(pg_url, mqtt, tmp_path, "a").start().wait_up()
    assert a.hash()["role"] == "leader"
    b = TwinServer(pg_url, mqtt, tmp_path, "b").start().wait_up()
    assert b.hash()["role"] == "follower"
    out = tmp_path / "emulate.json"
    emu = emulate(mqtt, hours=4, speed=1500, out=out)
    try:
        deadline = time.monotonic() + 120
        while a.revision() < 1500:
            assert time.monotonic() < deadline and emu.poll() is None, out.read_text()
            time.sleep(0.05)
        killed_at = a.revision()
        a.kill()
        took = wait_role(b, "leader", timeout=10)
        assert took < 5, f"take-over after {took:.2f} s"
        assert emu.wait(240) == 0, out.read_text()[-3000:]
    finally:
        if emu.poll() is None:
            emu.kill()
        a.kill()
    kpis = json.loads(out.read_text()[out.read_text().index("{") :])
    facts = store_facts(pg_url)
    total = sum(n for n, *_ in facts["sources"].values())
    assert total == kpis["events"], (facts, kpis["events"])
    for source, (n, distinct, lo, hi) in facts["sources"].items():
        assert not source.startswith("gap:"), facts  # nothing declared lost
        assert n == distinct == hi - lo + 1 and lo == 1, (source, n, distinct, lo, hi)
    assert facts["dead"] == 0, facts
    assert b.revision() == total
    # only the leader connects with the shared client id: the broker never had two at once
    # (Mosquitto would log "Client twin-api already connected, closing old connection")
    broker_log = (tmp_path / "mosquitto.log").read_text()
    assert "already connected" not in broker_log, broker_log[-2000:]
    assert broker_log.count("as twin-api") == 2, broker_log[-2000:]  # a, then b
    survivor = b.hash()
    assert (survivor["revision"], survivor["hash"]) == replay_hash(pg_url)
    c = TwinServer(pg_url, mqtt, tmp_path, "c").start().wait_up()
    try:
        again = c.hash(**{"X-Twin-Min-Revision": str(total)})
        assert again["role"] == "follower" and again["hash"] == survivor["hash"]
    finally:
        c.stop()
        b.stop()
    print(f"\nkilled at revision {killed_at}; take-over in {took:.2f} s; {total} events")


@pytest.mark.slow
def test_bad_store_configuration_is_one_line_before_serving(pg_server, pg_url, tmp_path):
    """`twin serve` on a PostgreSQL store with wrong credentials, an unreachable host or a
    newer schema stops with one `twin: error` line naming the problem: no traceback, no
    password."""
    with PostgresStore(pg_url) as s, psycopg.connect(pg_url, autocommit=True) as db:
        s.write([])
        db.execute("INSERT INTO schema_version (version) VALUES (99)")
    cases = {
        "wrong password": (pg_server.url(password="wrong-secret"), "password authentication"),
        "unreachable": (
            f"postgresql://twin:wrong-secret@127.0.0.1:{free_port()}/postgres?connect_timeout=2",
            "cannot connect",
        ),
        "newer schema": (pg_url, "newer than this twin knows"),
    }
    for name, (url, expect) in cases.items():
        server = TwinServer(url, None, tmp_path, name.replace(" ", "-")).start()
        assert server.proc is not None
        assert server.proc.wait(120) != 0, name
        out = server.logfile.read_text()
        assert "Traceback" not in out and "wrong-secret" not in out, out
        assert pg_server.password not in out, name
        (line,) = [x for x in out.splitlines() if x.startswith("twin: error")]
        assert expect in line, (name, line)
