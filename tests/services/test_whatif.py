"""What-if jobs through the API: one that completes (and equals a direct run), one cancelled,
ones over the caps, and one started from the live twin state."""

from __future__ import annotations

import time

import pytest

from tests.services.conftest import ADMIN, auth, make_settings
from tests.services.streams import demo_stream, dicts

MORE_LITHO = {"name": "more-litho", "changes": [{"tool_count": {"area": "Litho", "add": 1}}]}


@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    from twin_api.app import create_app

    settings = make_settings(
        whatif_max_runs=20, whatif_max_running=1, whatif_max_queued=1, whatif_workers=2
    )
    with TestClient(create_app(settings)) as c:
        yield c


def wait_for(client, job_id, states, timeout=180.0):
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/whatif/{job_id}", headers=auth("whatif")).json()
        if job["status"] in states:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_job_completes_and_equals_a_direct_run(client):
    """A job runs scenarios × replications in worker processes; its result equals
    run_whatif on the same model, scenarios and seed in this process."""
    from twin.whatif.runner import RunConfig, Serial, run_whatif
    from twin.whatif.scenarios import parse_scenarios

    body = {"scenarios": [MORE_LITHO], "replications": 2, "days": 3, "seed": 7}
    r = client.post("/whatif", json=body, headers=auth("whatif"))
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], {"completed", "failed"})
    assert job["status"] == "completed", job["error"]
    assert job["progress"] == {"replications_done": 4, "replications_total": 4, "fraction": 1.0}
    assert job["scenarios"] == ["baseline", "more-litho"]
    rt = client.app.state.runtime
    import json

    scenarios = parse_scenarios(json.dumps({"scenarios": [MORE_LITHO]}), model=rt.model)
    direct = run_whatif(
        rt.model, scenarios, RunConfig(days=3, replications=2, seed=7), executor=Serial(),
        progress=False,
    ).to_json()  # fmt: skip
    from twin_api.jobs import _finite

    direct, got = untimed(_finite(direct)), untimed(job["result"])
    for name in ("baseline", "more-litho"):
        assert got["scenarios"][name]["kpis"] == direct["scenarios"][name]["kpis"]
    diff = got["scenarios"]["more-litho"]["difference_vs_baseline"]
    assert diff == direct["scenarios"]["more-litho"]["difference_vs_baseline"]
    assert got["scenarios"]["baseline"]["kpis"]["lot_types"]


def untimed(obj):
    """The result without wall-clock figures (the only part that differs between runs)."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if k != "wall_seconds"}
    return obj


def test_cancel_and_concurrency_caps(client):
    """A running job is cancelled at once (its workers terminated); a queued one is dropped;
    a job beyond running + queued caps is refused with 429."""
    long = {"replications": 10, "days": 700}
    a = client.post("/whatif", json=long, headers=ADMIN).json()
    wait_for(client, a["id"], {"running"})
    b = client.post("/whatif", json=long, headers=ADMIN)
    assert b.status_code == 202 and b.json()["status"] == "queued"
    c = client.post("/whatif", json=long, headers=ADMIN)
    assert c.status_code == 429 and "1 running + 1 queued" in c.json()["detail"]
    assert c.headers["retry-after"]
    metrics = client.get("/metrics", headers=ADMIN).text
    assert 'twin_whatif_jobs{state="running"} 1' in metrics
    assert 'twin_whatif_jobs{state="queued"} 1' in metrics
    t0 = time.monotonic()
    r = client.delete(f"/whatif/{a['id']}", headers=auth("whatif"))
    assert r.status_code == 200
    job = wait_for(client, a["id"], {"cancelled", "completed", "failed"}, timeout=30)
    assert job["status"] == "cancelled" and time.monotonic() - t0 < 15
    assert job["progress"]["replications_done"] < 10
    # the queued job then starts; cancel it too
    wait_for(client, b.json()["id"], {"running"})
    client.delete(f"/whatif/{b.json()['id']}", headers=ADMIN)
    assert wait_for(client, b.json()["id"], {"cancelled"}, timeout=30)["status"] == "cancelled"


def test_over_the_caps_and_bad_scenarios(client):
    """Every problem of a request is listed at once: runs over the cap, days over the cap,
    unknown families with close matches, an unknown engine."""
    body = {
        "scenarios": [MORE_LITHO, {"name": "x", "changes": [{"tool_count": {"family": "Litho_FE_33", "add": 1}}]}],
        "replications": 15,
        "days": 1000,
        "engine": "warp9",
    }  # fmt: skip
    r = client.post("/whatif", json=body, headers=ADMIN)
    assert r.status_code == 422
    problems = r.json()["problems"]
    text = "\n".join(problems)
    assert "Litho_FE_33" in text and "Litho_FE_3" in text
    assert "engine 'warp9' unknown" in text
    assert "days 1000 is over the limit of 730" in text
    r = client.post("/whatif", json={"scenarios": [MORE_LITHO], "replications": 15}, headers=ADMIN)
    assert r.status_code == 422
    assert "2 scenarios (with the baseline) × 15 replications = 30 runs; at most 20" in str(
        r.json()["detail"]
    )


def test_job_from_the_live_state(client):
    """start=live starts the job from twin.whatif.start.start_from_twin with the scene's
    ToolIdMap (the emulator's map): every active lot and every tool of the twin is in it."""
    from twin.process.toolmap import ToolIdMap
    from twin.whatif.start import start_from_twin

    stream = demo_stream(lots=4, seed=11)[:1500]  # a lot held, others queued and processing
    for lo in range(0, len(stream), 500):
        r = client.post("/events", json=dicts(stream[lo : lo + 500]), headers=ADMIN)
        assert r.status_code == 200, r.text
    rt = client.app.state.runtime
    lots = rt.state.lots.values()
    active = {x.id for x in lots if x.status in ("queued", "processing", "hold")}
    assert {x.status for x in lots} == {"queued", "processing", "hold"}
    r = client.post("/whatif", json={"replications": 1, "days": 1, "start": "live"}, headers=ADMIN)
    assert r.status_code == 202
    start = rt.jobs.get(r.json()["id"]).start
    assert {lot.id for lot in start.lots} == active
    tool_map = ToolIdMap.from_scene(rt.scene, rt.model)
    assert set(start.tools) == set(tool_map.to_twin)
    assert start == start_from_twin(rt.state, rt.model, tool_map)
    job = wait_for(client, r.json()["id"], {"completed", "failed"})
    assert job["status"] == "completed", job["error"]


def test_live_job_with_an_unmapped_tool_is_refused(client):
    """start=live with a tool the tool-id map does not know is a 422 naming it, not a job."""
    from twin.live.state import Equipment

    state = client.app.state.runtime.state
    state.equipment["GHOST-1"] = Equipment("GHOST-1", "Litho_FE_3")
    try:
        body = {"replications": 1, "days": 1, "start": "live"}
        r = client.post("/whatif", json=body, headers=ADMIN)
    finally:
        del state.equipment["GHOST-1"]
    assert r.status_code == 422, r.text
    assert "1 twin tool id not in the tool-id map: 'GHOST-1'" in str(r.json()["detail"])


def test_job_rules_and_options_are_recorded_and_change_the_result(client):
    """A job runs under its rules with its options on top and records them in its result; a
    job that names none runs the scene's default, twin; the two presets give other results."""
    body = {"replications": 1, "days": 2, "seed": 5}
    jobs = [
        client.post("/whatif", json=b, headers=ADMIN)
        for b in (body, {**body, "rules": "pyscfabsim", "options": {"transport": False}})
    ]
    assert [r.status_code for r in jobs] == [202, 202], [r.text for r in jobs]
    twin, pys = (wait_for(client, r.json()["id"], {"completed", "failed"}) for r in jobs)
    assert twin["status"] == pys["status"] == "completed", (twin["error"], pys["error"])
    assert twin["result"]["rules"]["preset"] == "twin"
    assert twin["result"]["rules"]["chosen_by"] == "default for a scene"
    rules = pys["result"]["rules"]
    assert rules["preset"] == "pyscfabsim" and rules["chosen_by"] == "given"
    assert rules["overrides"] == {"transport": False} and rules["options"]["spread"] == "half"
    assert pys["request"]["rules"] == "pyscfabsim"
    assert twin["result"]["events"] != pys["result"]["events"]


def test_rules_of_the_wrong_type_are_refused_by_the_schema(client):
    """rules must be text: a number, a list or an object is one 422 naming the field."""
    for rules in (5, ["twin"], {"a": 1}, True):
        r = client.post("/whatif", json={"rules": rules}, headers=ADMIN)
        assert r.status_code == 422
        assert any(e["loc"][-1] == "rules" for e in r.json()["problems"]), r.text


def test_pool_cancel_ends_running_workers():
    """LocalProcessPool(cancelled=...), the executor of every job: once the hook says so,
    map raises RunCancelled mid-replication and the worker processes are gone."""
    import multiprocessing

    from twin.datasets import PROJECT_ROOT
    from twin.process import load_model
    from twin.whatif.runner import (
        Job,
        LocalProcessPool,
        RunCancelled,
        RunConfig,
        WorkItem,
        get_engine,
    )
    from twin.whatif.scenarios import parse_scenarios

    model = load_model(PROJECT_ROOT / "scenes" / "demo-fab")
    job = Job(
        base=model,
        scenarios=parse_scenarios(""),
        engine=get_engine("reference"),
        config=RunConfig(days=700, replications=2),
    )
    heard: list[float] = []  # progress of the running replications
    # spawn: the workers are this process's children, so we can see that they are gone
    pool = LocalProcessPool(workers=2, start_method="spawn", cancelled=lambda: bool(heard))
    before = set(multiprocessing.active_children())  # a forkserver of earlier jobs, say
    t0 = time.monotonic()
    with pytest.raises(RunCancelled):
        list(pool.map(job, [WorkItem(0, (0,)), WorkItem(0, (1,))], lambda *a: heard.append(a[2])))
    assert heard and max(heard) < 1  # a replication had started and was stopped before its end
    assert time.monotonic() - t0 < 60
    assert set(multiprocessing.active_children()) <= before


# --- limits: refused before anything is built ------------------------------------------------

LITHO_STEPS = {"processing_time": {"route": "r_3", "steps": ["1-30000000"], "factor": 0.9}}
AXIS = list(range(100))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"scenarios": [{"name": "s", "changes": [LITHO_STEPS]}]},
            "'steps' name 30,000,000 step numbers or more; at most 10,000",
        ),
        (
            {
                "sweeps": [
                    {
                        "name": "g",
                        "grid": {"a": AXIS, "b": AXIS, "c": AXIS},
                        "changes": [{"processing_time": {"factor": "${a}${b}${c}"}}],
                    }
                ]
            },
            "sweep grid 100 × 100 × 100 = 1,000,000 scenarios would take the file past 20",
        ),  # fmt: skip
        (
            {
                "scenarios": [
                    {"name": "t", "changes": [{"tool_count": {"area": "Litho", "add": 10000000}}]}
                ]
            },
            "'add' must be an integer in -10000..10000, got 10000000",
        ),  # fmt: skip
        (
            {"options": {"wip_sample_days": 1e-7}, "days": 10},
            "options.wip_sample_days 1e-07: must be a number of days in 0.0416667",
        ),
        (
            {"scenarios": [{"name": "f", "changes": [{"release_rate": {"factor": 1e9}}]}]},
            "'factor' must be a number in 0.001..1000, got 1000000000.0",
        ),
        ({"replications": 10**6}, "replications 1000000: at most 20 runs per job"),
        ({"seed": 2**70}, "seed 1180591620717411303424: must be an integer in 0.."),
        (
            '{"scenarios": [{"name": "\\ud800", "changes": []}]}',  # JSON text: a lone surrogate
            "request:4: not valid YAML: while parsing a quoted scalar, found invalid Unicode",
        ),
        (
            '{"scenarios": [{"name": "x", "changes": ' + "[" * 900 + "]" * 900 + "}]}",
            "nesting deeper than 32 levels starts here; at most 32",
        ),
        (
            {"rules": "nope"},
            "rules 'nope': unknown rule preset; accepted: twin, pyscfabsim, smt2020",
        ),
        ('{"rules": "\\ud800"}', "rules '\\ud800': unknown rule preset; accepted: twin"),
        ({"rules": "x" * 100_000}, "rules 'xxxxxxxxxxxxxxxx"),
        ({"options": {"bogus": 1}}, "options: unknown option 'bogus'; accepted: batch_wait"),
        ({"options": {"seed": 1}}, "(days, warm-up, seed and replications are the run's own"),
        ('{"options": {"\\ud800": true}}', "options: unknown option '\\ud800'"),
        ({"options": {"transport": "yes"}}, "options.transport = 'yes': accepted true or false"),
        ({"options": {"wake": 10**400}}, "options.wake = an integer of 1329 bits: accepted"),
        ('{"options": {"wip_sample_days": NaN}}', "options.wip_sample_days nan: must be a number"),
        ({"options": {"wip_sample_days": 1e308}}, "options.wip_sample_days 1e+308: must be"),
        (
            '{"options": {"wake": ' + "[" * 900 + "]" * 900 + "}}",
            "options.wake = a list: accepted recent, first",
        ),
    ],
)
def test_attack_inputs_are_refused_at_once(client, body, expected):
    """The inputs of issue 14 (a 156-byte step range, a 100×100×100 grid, 10 million tools,
    WIP sampled every 1e-7 days) and other hostile values are refused with 422 naming the
    field, the value and the accepted range, in well under a second and without memory."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.monotonic()
    if isinstance(body, str):
        headers = {**ADMIN, "Content-Type": "application/json"}
        r = client.post("/whatif", content=body.encode(), headers=headers)
    else:
        r = client.post("/whatif", json=body, headers=ADMIN)
    assert time.monotonic() - t0 < 3
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before < 100
    assert r.status_code == 422, r.text
    assert expected in "\n".join(r.json()["problems"])


def test_a_worker_past_its_memory_limit_fails_the_job_not_the_service(client, monkeypatch):
    """A job whose worker allocates past whatif_worker_memory_mb fails with a clear error;
    the service goes on answering and running jobs."""
    from tests.whatif.test_limits import GpuHogEngine
    from twin.whatif import runner

    monkeypatch.setitem(runner._ENGINES, "hog", lambda: GpuHogEngine(mb=8192))
    r = client.post("/whatif", json={"replications": 1, "days": 1, "engine": "hog"}, headers=ADMIN)
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"], {"completed", "failed"}, timeout=60)
    assert job["status"] == "failed"
    assert "the worker ran out of memory (its limit is 4096 MiB" in job["error"]
    r = client.post("/whatif", json={"replications": 1, "days": 1}, headers=ADMIN)
    assert wait_for(client, r.json()["id"], {"completed", "failed"})["status"] == "completed"


# --- the server stops its workers ------------------------------------------------------------


def serve_with_a_long_job():
    """A real `twin serve` of the demo fab running a long what-if job on 2 worker processes:
    (process, the pids of its descendants: the forkserver and the workers)."""
    from tests.services.conftest import free_port
    from tests.services.test_cli import start, wait_healthy
    from tests.whatif.test_limits import descendants

    port, token = free_port(), "t" * 32
    env = {"TWIN_MODE": "development", "TWIN_TOKENS": f'{{"{token}": ["admin"]}}',
           "TWIN_WHATIF_WORKERS": "2"}  # fmt: skip
    proc = start(["serve", "--scene", "scenes/demo-fab", "--port", str(port), "--no-physics"], env)
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    try:
        import httpx

        wait_healthy(url, proc)
        r = httpx.post(url + "/whatif", json={"replications": 10, "days": 700}, headers=headers)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while len(workers := descendants(proc.pid)) < 3:  # the forkserver and two workers
            assert time.monotonic() < deadline, f"no workers: {workers}"
            time.sleep(0.2)
        time.sleep(1.0)  # the workers are initialised and simulating
        return proc, descendants(proc.pid)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise


def test_sigterm_stops_the_server_and_its_workers_promptly():
    """SIGTERM with a job running: the server cancels it, terminates its worker processes and
    exits 0 within 10 s, leaving no process behind."""
    import signal

    from tests.whatif.test_limits import gone

    proc, workers = serve_with_a_long_job()
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - t0 < 10, out
    assert proc.returncode == 0 and "twin: stopped" in out, out
    assert gone(workers, within=3) == []


def test_sigkill_of_the_server_takes_its_workers():
    """SIGKILL of the server (no cleanup runs at all): its what-if workers are gone within a
    few seconds (they die with their parent)."""
    from tests.whatif.test_limits import gone

    proc, workers = serve_with_a_long_job()
    proc.kill()
    proc.communicate(timeout=30)
    assert gone(workers, within=5) == []


def test_jobs_are_listed_with_iso_times_and_paged(client):
    """GET /whatif lists the jobs (no results inside: one GET away), paged like every list, with
    created/started/finished in ISO 8601 UTC; a bad page parameter is a 422."""
    import re

    body = {"days": 1, "replications": 1, "scenarios": []}
    r = client.post("/whatif", json=body, headers=auth("whatif"))
    assert r.status_code in (202, 429), r.text
    listed = client.get("/whatif", headers=auth("whatif"))
    assert listed.status_code == 200
    page = listed.json()
    assert {"total", "offset", "limit", "next", "items"} <= set(page) and page["total"] >= 1
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
    for job in page["items"]:
        assert "result" not in job and iso.match(job["created"]), job
        assert job["finished"] is None or iso.match(job["finished"])
    assert client.get("/whatif?limit=-5", headers=auth("whatif")).status_code == 422
    assert client.get("/whatif", headers=auth("read")).status_code == 403
