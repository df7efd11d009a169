"""Fixtures for the live tests: the synthetic fab, its streams, and a real Mosquitto broker."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from twin.live.catalog import Catalog
from twin.live.events import Event
from twin.live.synthetic import StreamConfig, synthetic_catalog, synthetic_stream

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return synthetic_catalog()


@pytest.fixture(scope="session")
def stream(catalog: Catalog) -> list[Event]:
    """About 5,000 valid events: 20 lots walking re-entrant routes, two sources."""
    return synthetic_stream(StreamConfig(lots=20, seed=7), catalog)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A Mosquitto broker of our own on a free loopback port, with persistence on disk."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # as root mosquitto drops to user "mosquitto", which cannot write a pytest tmp dir
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            "set_tcp_nodelay true\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.dir / "mosquitto.log").open("a")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def broker(tmp_path: Path):
    """A running broker; stopped at the end of the test."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server (tests/pg.py) for the session; skipped only without one."""
    from tests.pg import PgServer, bindir

    if bindir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'twin[postgres]')")
    server = PgServer()
    yield server
    server.stop()


_schemas = iter(range(1, 10**9))


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a new, empty store on the session's PostgreSQL server: a schema of its own in
    one database (``options=-csearch_path``, as a deployment may give each twin; a schema is
    made in a millisecond, a database copies its template's files)."""
    return pg_server.create_schema(f"t{next(_schemas)}")
