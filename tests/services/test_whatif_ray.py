"""API what-if and forecast jobs on Ray (TWIN_RAY_ADDRESS) against a real local Ray instance:
the same results as a local run for the same seed, cancellation, /ready, and addresses that are
wrong or unreachable refused at start with one line."""

from __future__ import annotations

import json
import socket
import time

import pytest
from pydantic import ValidationError

from tests.services.conftest import ADMIN, auth, free_port, make_settings
from tests.services.streams import demo_stream, dicts
from tests.services.test_whatif import MORE_LITHO, untimed, wait_for
from twin.errors import ConfigError

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def client():
    """The API with TWIN_RAY_ADDRESS=local, two jobs running at once: the service starts (and
    at the end stops) a private Ray instance of 2 × 2 CPUs; every job of the module runs on it."""
    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    settings = make_settings(
        ray_address="local", whatif_max_runs=20, whatif_max_running=2, whatif_max_queued=1,
        whatif_workers=2, whatif_max_days=700.0,
    )  # fmt: skip
    try:
        with TestClient(create_app(settings)) as c:
            yield c
    except ConfigError as exc:  # Ray's agent start-up limit (see test_ray_executor.py)
        if "the local Ray instance did not start" not in str(exc) or ray.is_initialized():
            raise
        pytest.skip(f"a local Ray instance did not start on this machine: {exc}")
    assert not ray.is_initialized()  # the service's own instance stopped with it


@pytest.fixture
def not_locally(monkeypatch):
    """Any job that runs in local processes (or in this process) fails the test."""
    from twin.whatif import executors

    def refuse(*args, **kw):
        raise AssertionError("a job ran in local processes, not on Ray")

    monkeypatch.setattr(executors.LocalProcessPool, "map", refuse)
    monkeypatch.setattr(executors.Serial, "map", refuse)


def ray_cpus_free(total: float = 4.0, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0) < total:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.slow
def test_ray_job_equals_a_local_run(client, not_locally):
    """What-if jobs on Ray, two at once on the service's one Ray connection, give exactly the
    KPIs and differences of run_whatif in this process for the same model, scenarios and seed
    (replication r is seeded by (seed, r) wherever it runs); /ready lists Ray as ok."""
    from twin.whatif.runner import RunConfig, run_whatif
    from twin.whatif.scenarios import parse_scenarios
    from twin_api.jobs import _finite

    r = client.get("/ready")
    assert r.status_code == 200 and r.json()["checks"]["ray local"] == "ok", r.text
    ids = {}
    for seed in (7, 8):
        body = {"scenarios": [MORE_LITHO], "replications": 2, "days": 3, "seed": seed}
        r = client.post("/whatif", json=body, headers=auth("whatif"))
        assert r.status_code == 202 and r.json()["status"] == "running", r.text
        ids[seed] = r.json()["id"]
    rt = client.app.state.runtime
    scenarios = parse_scenarios(json.dumps({"scenarios": [MORE_LITHO]}), model=rt.model)
    results = []
    for seed, job_id in ids.items():
        job = wait_for(client, job_id, {"completed", "failed"})
        assert job["status"] == "completed", job["error"]
        assert job["progress"] == {
            "replications_done": 4, "replications_total": 4, "fraction": 1.0
        }  # fmt: skip
        config = RunConfig(days=3, replications=2, seed=seed)
        direct = run_whatif(rt.model, scenarios, config, executor=_Direct(), progress=False)
        direct_json, got = untimed(_finite(direct.to_json())), untimed(job["result"])
        for name in ("baseline", "more-litho"):
            assert got["scenarios"][name]["kpis"] == direct_json["scenarios"][name]["kpis"]
        diff = got["scenarios"]["more-litho"]["difference_vs_baseline"]
        assert diff == direct_json["scenarios"]["more-litho"]["difference_vs_baseline"]
        assert got["scenarios"]["baseline"]["kpis"]["lot_types"]  # something was compared
        results.append(got["scenarios"]["baseline"]["kpis"])
    assert results[0] != results[1]  # two seeds, two answers: each job got its own


class _Direct:
    """``Serial`` without its (patched) class: every item in this process, in order."""

    def map(self, job, items, progress=None):
        from twin.whatif.executors import run_item

        for item in items:
            yield run_item(job, item, progress)


@pytest.mark.slow
def test_forecast_on_ray_equals_the_local_process_pool(client):
    """A forecast job on Ray gives exactly the forecast of the same request run in local worker
    processes, from the same live state and seed."""
    stream = demo_stream(lots=4, seed=11)[:1500]
    for lo in range(0, len(stream), 500):
        r = client.post("/events", json=dicts(stream[lo : lo + 500]), headers=ADMIN)
        assert r.status_code == 200, r.text
    settings = client.app.state.runtime.settings

    def forecast() -> dict:
        body = {"horizon": "2d", "replications": 4, "seed": 3}
        r = client.post("/forecast", json=body, headers=ADMIN)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 240
        while (job := client.get(f"/forecast/{r.json()['id']}", headers=ADMIN).json())[
            "status"
        ] not in ("completed", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "completed", job["error"]
        return untimed(job["result"])

    on_ray = forecast()
    settings.ray_address = None  # the next job runs in local processes
    try:
        local = forecast()
    finally:
        settings.ray_address = "local"
    assert on_ray == local and on_ray["lots"]


@pytest.mark.slow
def test_cancel_stops_the_ray_tasks_at_once(client, not_locally):
    """DELETE on running Ray jobs cancels them within seconds: their Ray tasks end and free
    their CPUs, a queued job is dropped, and the next job runs to completion on the same Ray."""
    long = {"replications": 10, "days": 700}
    a = client.post("/whatif", json=long, headers=ADMIN).json()
    a2 = client.post("/whatif", json=long, headers=ADMIN).json()
    assert a["status"] == a2["status"] == "running"
    b = client.post("/whatif", json=long, headers=ADMIN)
    assert b.status_code == 202 and b.json()["status"] == "queued"
    c = client.post("/whatif", json=long, headers=ADMIN)
    assert c.status_code == 429  # the running cap holds on Ray as well
    deadline = time.monotonic() + 60  # the tasks hold the instance's CPUs
    while ray.available_resources().get("CPU", 0) > 0:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)
    assert client.delete(f"/whatif/{b.json()['id']}", headers=ADMIN).json()["status"] == (
        "cancelled"
    )
    t0 = time.monotonic()
    for x in (a, a2):
        assert client.delete(f"/whatif/{x['id']}", headers=auth("whatif")).status_code == 200
    for x in (a, a2):
        job = wait_for(client, x["id"], {"cancelled", "completed", "failed"}, timeout=30)
        assert job["status"] == "cancelled" and time.monotonic() - t0 < 10, job
        assert job["progress"]["replications_done"] < 10
    assert ray_cpus_free(), ray.available_resources()  # the running tasks were ended
    small = {"replications": 1, "days": 1, "seed": 1}
    r = client.post("/whatif", json=small, headers=ADMIN)
    done = wait_for(client, r.json()["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]


@pytest.mark.slow
def test_ready_says_when_ray_does_not_answer(client, monkeypatch):
    """/ready is 503 naming Ray when it hangs (answered within ~1 s, never held), fails or has no
    CPUs left; ok again once it answers."""
    gate = __import__("threading").Event()

    def hang():
        gate.wait(30)
        return {"CPU": 2.0}

    monkeypatch.setattr(ray, "cluster_resources", hang)
    t0 = time.monotonic()
    r = client.get("/ready")
    assert r.status_code == 503 and time.monotonic() - t0 < 5, r.text
    assert r.json()["checks"]["ray local"].startswith("not answering"), r.text
    assert r.json()["checks"]["ingest"] == "ok"  # the rest is still checked
    gate.set()

    def broken():
        raise ConnectionError("GCS at 10.0.0.5:6379 is gone\nsecond line")

    time.sleep(0.2)  # the hung question ends
    monkeypatch.setattr(ray, "cluster_resources", broken)
    r = client.get("/ready")
    assert r.status_code == 503, r.text
    assert r.json()["checks"]["ray local"] == "error: GCS at 10.0.0.5:6379 is gone", r.text
    monkeypatch.setattr(ray, "cluster_resources", lambda: {})
    r = client.get("/ready")
    assert r.json()["checks"]["ray local"] == "no CPUs in the cluster", r.text
    monkeypatch.undo()
    r = client.get("/ready")
    assert r.status_code == 200 and r.json()["checks"]["ray local"] == "ok", r.text


def _dead_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    return s, s.getsockname()[1]


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_unreachable_cluster_stops_the_start_with_one_line(scheme):
    """A TWIN_RAY_ADDRESS where nothing listens stops the service's start at once with one line
    naming the address and what to check (not minutes of Ray retrying)."""
    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    s, port = _dead_port()
    with s:
        t0 = time.monotonic()
        app = create_app(make_settings(ray_address=f"{scheme}127.0.0.1:{port}"))
        with pytest.raises(ConfigError) as err, TestClient(app):
            pass
    msg = str(err.value)
    assert f"cannot reach 127.0.0.1:{port} (Connection refused)" in msg, msg
    assert "TWIN_RAY_ADDRESS" in msg and "\n" not in msg and time.monotonic() - t0 < 30


def test_twin_serve_with_an_unreachable_cluster_is_one_line(monkeypatch, capsys):
    """`twin serve` with TWIN_RAY_ADDRESS unreachable exits 1 with one line, no traceback."""
    import os

    from twin.cli import main

    for k in list(os.environ):
        if k.startswith("TWIN_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("TWIN_MODE", "development")
    s, port = _dead_port()
    with s:
        monkeypatch.setenv("TWIN_RAY_ADDRESS", f"127.0.0.1:{port}")
        assert main(["serve", "--port", str(free_port()), "--no-physics"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach 127.0.0.1:{port}" in err and "TWIN_RAY_ADDRESS" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "address",
    [
        "\ud800",  # a lone surrogate
        "ray://\ud800:10001",
        "head",  # no port
        "head:0",
        "head:65536",
        "head:99999999999999999999999",
        "head:１２",  # digits, not ASCII ones
        "http://head:10001",  # a scheme Ray does not take
        "user@head:10001",
        "::1:6379",  # IPv6 without brackets
        "h" * 300 + ":1",
        "head:10001\n",
        "[" * 10_000,
    ],
)
def test_garbage_addresses_are_refused_by_the_settings(address):
    """A TWIN_RAY_ADDRESS that is not local, auto, ray://HOST:PORT or HOST:PORT is a settings
    error naming the field and what is accepted, before anything is started."""
    with pytest.raises(ValidationError) as err:
        make_settings(ray_address=address)
    msg = str(err.value)
    assert "ray_address" in msg and "accepted: local, auto, ray://HOST:PORT" in msg
    assert len(msg) < 1000


@pytest.mark.parametrize("address", ["local", "auto", "ray://head:10001", "10.0.0.5:6379",
                                     "[::1]:6379", "ray-head.cluster.local:6379"])  # fmt: skip
def test_good_addresses_are_accepted_and_empty_is_unset(address):
    """The accepted forms pass the settings check; TWIN_RAY_ADDRESS= (empty) means not set."""
    assert make_settings(ray_address=address).ray_address == address
    assert make_settings(ray_address="").ray_address is None
    assert make_settings(ray_address="  ").ray_address is None


def _in_session(sid: int) -> list[int]:
    """The processes of session ``sid`` (from /proc: field 6 of each stat)."""
    import os

    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] not in (b"Z", b"X"):
                pids.append(int(name))
    return pids


@pytest.mark.slow
def test_sigterm_stops_a_server_on_local_ray_and_every_ray_process():
    """`twin serve` with TWIN_RAY_ADDRESS=local and a job simulating on Ray: SIGTERM cancels the
    job, stops the Ray instance and exits 0 promptly, leaving no process of its session."""
    import os
    import signal
    import subprocess
    import sys

    import httpx

    token = "ray-test-token-0123456789abcdef"
    env = {**os.environ, "TWIN_MODE": "development", "TWIN_RAY_ADDRESS": "local",
           "TWIN_TOKENS": json.dumps({token: ["admin"]})}  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "serve", "--port", str(port), "--no-physics"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        url, h = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            try:
                ready = httpx.get(url + "/ready", timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert ready.status_code == 200 and ready.json()["checks"]["ray local"] == "ok"
        job = httpx.post(url + "/whatif", json={"replications": 10, "days": 700}, headers=h)
        assert job.status_code == 202, job.text
        time.sleep(3)  # the Ray tasks simulate
        assert len(_in_session(proc.pid)) > 3  # the server, Ray's processes, its workers
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "twin: stopped" in out, out
        assert time.monotonic() - t0 < 20, out
        deadline = time.monotonic() + 10
        while left := _in_session(proc.pid):
            assert time.monotonic() < deadline, f"left running: {left}"
            time.sleep(0.2)
    finally:
        for pid in _in_session(proc.pid):
            os.kill(pid, signal.SIGKILL)
