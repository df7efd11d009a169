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

    from services.api.app import create_app

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
    from services.api.jobs import _finite

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
    problems = r.json()["detail"]["problems"]
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
    """start=live simulates from the lots and tools the twin holds now."""
    from services.api.jobs import live_start

    stream = demo_stream(lots=4, seed=11)
    for lo in range(0, len(stream), 500):
        client.post("/events", json=dicts(stream[lo : lo + 500]), headers=ADMIN)
    rt = client.app.state.runtime
    start = live_start(rt.state, rt.model, rt.scene)
    active = [x for x in rt.state.lots.values() if x.status in ("queued", "processing", "hold")]
    assert len(start.lots) == len(active)
    r = client.post("/whatif", json={"replications": 1, "days": 1, "start": "live"}, headers=ADMIN)
    assert r.status_code == 202
    job = wait_for(client, r.json()["id"], {"completed", "failed"})
    assert job["status"] == "completed", job["error"]


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
