"""A real PostgreSQL server for the tests and benchmarks: initdb + pg_ctl in a temporary folder.

The server refuses to run as root, so as root (CI, this machine) it runs as ``nobody`` through
``runuser``, in a folder handed to that user. It listens on a free loopback port with password
(SCRAM) authentication, so wrong credentials are really refused. Only the Debian/PGDG
binaries are needed (``postgresql`` package); tests skip with the reason when they are absent.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def bindir() -> Path | None:
    """The folder of initdb/pg_ctl/postgres, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.isfile(os.path.join(d, "initdb")):
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One PostgreSQL server of our own. ``durable=False`` turns fsync off (tests: faster on a
    busy machine, and durability is not what they check); the benchmarks keep it on."""

    user = "twin"

    def __init__(self, *, durable: bool = False) -> None:
        bins = bindir()
        if bins is None:
            raise RuntimeError(
                "PostgreSQL is not installed (no initdb): apt-get install postgresql"
            )
        self.bin = bins
        self.password = secrets.token_hex(8)
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="twin-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.durable = durable
        self._as: list[str] = []
        if os.geteuid() == 0:  # postgres will not run as root: as nobody, in a folder of its own
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            self._as = ["runuser", "-u", "nobody", "--"]
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as:
            os.chown(pwfile, pwd.getpwnam("nobody").pw_uid, -1)
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        if not durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", opts, "start")

    def _run(self, prog: str, *args: str) -> None:
        r = subprocess.run(
            [*self._as, str(self.bin / prog), *args], capture_output=True, text=True, timeout=120
        )
        if r.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{prog} failed ({r.returncode}): {r.stderr.strip()}\n{log}")

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self, name: str, database: str = "postgres") -> str:
        """A new empty schema; returns the URL of a connection whose search_path is it."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as c:
            c.execute(f'CREATE SCHEMA "{name}"')
        return self.url(database) + f"?options=-csearch_path%3D{name}"

    def restart(self) -> None:
        """Stop (fast: connections are cut) and start again on the same port and data."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "restart"
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
