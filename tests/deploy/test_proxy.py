"""deploy/haproxy.cfg run for real (issue 20): the haproxy binary (Debian's 2.6 here; compose.ha.yaml
pins haproxy:3.0, an LTS) with the shipped file in front of two real `twin serve` processes on one real
PostgreSQL store, the leader killed with SIGKILL.

Docker is not available, so the compose service names cannot be used: a temporary copy of the
file has exactly three lines rewritten (see ``local_copy``): ``bind :8000`` and the two
``server`` lines' addresses, to loopback ports. Every other line is the shipped file's."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.live.conftest import free_port, pg_server, pg_url  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

needs_haproxy = pytest.mark.skipif(
    not Path(HAPROXY).exists(), reason="haproxy is not installed (apt-get install haproxy)"
)


def local_copy(text: str, port: int, servers: dict[str, int]) -> str:
    """The shipped config with the frontend bound to 127.0.0.1:``port`` and each ``server NAME
    NAME:8000`` line sent to 127.0.0.1:``servers[NAME]``; each of these lines must occur exactly
    once, and no other line changes."""
    out, n = re.subn(r"(?m)^(\s*bind) :8000\s*$", rf"\1 127.0.0.1:{port}", text)
    assert n == 1, "deploy/haproxy.cfg: expected one `bind :8000` line"
    for name, p in servers.items():
        out, n = re.subn(
            rf"(?m)^(\s*server {re.escape(name)}) {re.escape(name)}:8000( .*)?$",
            rf"\g<1> 127.0.0.1:{p}\g<2>",
            out,
        )
        assert n == 1, f"deploy/haproxy.cfg: expected one `server {name} {name}:8000` line"
    changed = [(a, b) for a, b in zip(text.splitlines(), out.splitlines()) if a != b]
    assert len(changed) == 1 + len(servers) and len(out.splitlines()) == len(text.splitlines())
    return out


class Proxy:
    """haproxy in the foreground (-db) on a config file, its output in a log file."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.logfile = config, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> Proxy:
        with self.logfile.open("a") as log:
            self.proc = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"haproxy did not answer on {self.url}:\n{self.log()}")

    def log(self) -> str:
        return self.logfile.read_text()[-4000:] if self.logfile.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def test_local_copy_rewrites_only_the_addresses() -> None:
    """The temporary copy differs from deploy/haproxy.cfg in the bind line and the two server
    lines' addresses alone (each server keeps its name and its options)."""
    text = CONFIG.read_text(encoding="utf-8")
    out = local_copy(text, 1234, {"twin-1": 2345, "twin-2": 3456})
    assert re.search(r"(?m)^\s*bind 127\.0\.0\.1:1234$", out)
    assert re.search(r"(?m)^\s*server twin-1 127\.0\.0\.1:2345 check$", out)
    assert re.search(r"(?m)^\s*server twin-2 127\.0\.0\.1:3456 check$", out)
    assert "twin-1:8000" not in out and ":8000" not in out
    with pytest.raises(AssertionError, match="server twin-3"):
        local_copy(text, 1234, {"twin-3": 1})


@needs_haproxy
def test_haproxy_accepts_the_shipped_config_unchanged(tmp_path: Path) -> None:
    """`haproxy -c -f deploy/haproxy.cfg` on the file as shipped exits 0: the compose service
    names do not resolve here, and `init-addr libc,none` makes that a warning (the server
    starts disabled until Docker's DNS knows it) instead of a refusal to start."""
    r = subprocess.run(
        [HAPROXY, "-c", "-f", str(CONFIG)], capture_output=True, text=True, timeout=60
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Configuration file is valid" in out
    assert "ALERT" not in out, out


@needs_haproxy
def test_haproxy_rejects_a_broken_config(tmp_path: Path) -> None:
    """The -c check can fail: a copy with an unknown keyword is refused with a non-zero exit
    naming the line."""
    bad = tmp_path / "bad.cfg"
    bad.write_text(CONFIG.read_text(encoding="utf-8") + "    balance no-such-algorithm\n")
    r = subprocess.run([HAPROXY, "-c", "-f", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "bad.cfg" in r.stdout + r.stderr


@needs_haproxy
def test_the_proxy_serves_while_a_twin_name_does_not_resolve(tmp_path: Path) -> None:
    """With twin-2's name left unresolvable (a stopped container has no DNS name in Docker), the
    shipped config still starts and serves through twin-1; without its `init-addr` and
    `resolvers` settings (the file before them) haproxy refuses to start on that name."""
    import http.server
    import threading

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    stub.handle_error = lambda *args: None  # a health check that hangs up early is no error
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    port = free_port()
    text = local_copy(CONFIG.read_text(encoding="utf-8"), port, {"twin-1": stub.server_port})
    assert "server twin-2 twin-2:8000" in text
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    proxy = Proxy(cfg, port, tmp_path / "haproxy.log")
    try:
        proxy.start()
        for _ in range(4):
            r = httpx.get(proxy.url + "/anything", timeout=10)
            assert r.status_code == 200 and r.text == "ok", r.text
    finally:
        proxy.stop()
        stub.shutdown()
    assert "could not resolve address 'twin-2'" in proxy.log(), proxy.log()
    strict = tmp_path / "strict.cfg"
    strict.write_text(text.replace(" init-addr libc,none resolvers docker", ""))
    assert strict.read_text() != text
    r = subprocess.run(
        [HAPROXY, "-c", "-f", str(strict)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0 and "could not resolve address 'twin-2'" in r.stdout + r.stderr


def _event(seq: int, state: str, source: str = "proxy") -> dict:
    return {
        "schema": 1, "id": f"{source}:{seq}", "source": source, "seq": seq,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1767225600 + seq)),
        "type": "equipment.state",
        "subject": "DIF01", "data": {"state": state, "reason": "idle"},
    }  # fmt: skip


@needs_haproxy
def test_the_proxy_spreads_reads_forwards_writes_and_survives_kill_9_of_the_leader(
    pg_url,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Through haproxy with deploy/haproxy.cfg: reads reach both servers (leader and follower),
    writes are stored whichever server they land on, garbage gets the twin's 4xx (not a proxy
    error); after SIGKILL of the leader, reads and writes through the proxy succeed again within
    a few seconds, the dead server is marked DOWN by the health check, and the store holds
    every acknowledged event exactly once (a client re-sends an unacknowledged batch)."""
    from tests.live.test_replica_failover import (
        AUTH,
        TwinServer,
        replay_hash,
        store_facts,
        wait_role,
    )

    a = TwinServer(pg_url, None, tmp_path, "a").start().wait_up()
    assert a.hash()["role"] == "leader"
    b = TwinServer(pg_url, None, tmp_path, "b").start().wait_up()
    assert b.hash()["role"] == "follower"
    port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        local_copy(CONFIG.read_text(encoding="utf-8"), port, {"twin-1": a.port, "twin-2": b.port})
    )
    proxy = Proxy(cfg, port, tmp_path / "haproxy.log")
    acked: list[int] = []
    seq = rejected = 0

    def post(batch: list[dict], timeout: float) -> httpx.Response:
        """POST a batch through the proxy until it is acknowledged (the same batch again after
        a 5xx or a connection error: idempotent by source and seq)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                r = httpx.post(proxy.url + "/events", json=batch, headers=AUTH, timeout=10)
                if r.status_code == 200:
                    res = r.json()["results"]
                    assert {x["status"] for x in res} <= {"accepted", "duplicate"}, res
                    acked.extend(e["seq"] for e in batch)
                    return r
                assert r.status_code >= 500, r.text  # a 4xx would be a real refusal
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"no ack in {timeout} s:\n{proxy.log()}"
            time.sleep(0.05)

    def batch(n: int = 3) -> list[dict]:
        nonlocal seq
        out = [_event(seq + i + 1, ("standby", "productive")[(seq + i) % 2]) for i in range(n)]
        seq += n
        return out

    try:
        proxy.start()
        # reads: round robin reaches both servers, each response names its revision
        roles, leaders = [], set()
        for _ in range(6):
            r = httpx.get(proxy.url + "/state/hash", headers=AUTH, timeout=10)
            assert r.status_code == 200, r.text
            assert int(r.headers["x-twin-revision"]) == r.json()["revision"]
            roles.append(r.json()["role"])
            leaders.add(r.json()["leader_url"])
        assert set(roles) == {"leader", "follower"}, roles
        assert leaders == {a.url}, leaders
        # writes: stored whichever server takes them (the follower forwards to the leader)
        forwarded = []
        for _ in range(4):
            r = post(batch(), timeout=10)
            forwarded.append(r.headers.get("x-twin-forwarded-to"))
        assert a.url in forwarded and None in forwarded, forwarded
        # hostile input through the proxy: the twin's own answer (a 4xx, or a batch whose
        # event is rejected as a dead letter), never a proxy error; both servers still up
        for body in (b"\xff\xfe{not json", b'[{"id": "\\ud800"}]', b"[" * 100_000):
            r = httpx.post(
                proxy.url + "/events",
                content=body,
                headers={**AUTH, "Content-Type": "application/json"},
                timeout=10,
            )
            if r.status_code == 200:  # a well-formed batch: its bad event rejected, by name
                assert {x["status"] for x in r.json()["results"]} == {"rejected"}, r.text
                rejected += len(r.json()["results"])
            else:
                assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
        r = httpx.get(proxy.url + "/health", headers={"X-Huge": "x" * 100_000}, timeout=10)
        assert r.status_code in (400, 431), r.status_code  # haproxy's own limit on a request
        assert a.proc.poll() is None and b.proc.poll() is None

        # kill -9 the leader; the follower takes over, the health check drops the dead one
        a.kill()
        t0 = time.monotonic()
        post(batch(), timeout=15)
        write_s = time.monotonic() - t0
        wait_role(b, "leader", timeout=10)
        took = time.monotonic() - t0
        assert took < 5 and write_s < 10, (took, write_s)
        deadline = time.monotonic() + 10
        while "twin-1 is DOWN" not in proxy.log():
            assert time.monotonic() < deadline, proxy.log()
            time.sleep(0.1)
        down_s = time.monotonic() - t0
        for _ in range(6):  # every read and write now answered by the survivor, first time
            r = httpx.get(proxy.url + "/state/hash", headers=AUTH, timeout=10)
            assert r.status_code == 200 and r.json()["role"] == "leader", r.text
            r = httpx.post(proxy.url + "/events", json=batch(), headers=AUTH, timeout=10)
            assert r.status_code == 200, r.text
            assert "x-twin-forwarded-to" not in r.headers
            acked.extend(range(seq - 2, seq + 1))
        survivor = b.hash(**{"X-Twin-Min-Revision": str(seq)})
        assert (survivor["revision"], survivor["hash"]) == replay_hash(pg_url)
    finally:
        proxy.stop()
        a.kill()
        b.stop()
    facts = store_facts(pg_url)
    assert facts["dead"] == rejected, facts
    assert set(facts["sources"]) == {"proxy"}, facts
    n, distinct, lo, hi = facts["sources"]["proxy"]
    assert sorted(set(acked)) == list(range(1, seq + 1)), acked
    assert n == distinct == seq and (lo, hi) == (1, seq), facts
    print(f"\ntake-over {took:.2f} s, first write acked {write_s:.2f} s, DOWN after {down_s:.2f} s")
