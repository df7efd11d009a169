"""The OpenAPI document is good enough for a generated client: openapi-python-client (PyPI)
generates a Python client from a live twin's /openapi.json at test time (into tmp_path, never
committed), and that client reads, pages, ingests, gets a problem+json error and runs a what-if
job against the same live `twin serve` (issue 19)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.services.streams import tool_events

pytest.importorskip("openapi_python_client", reason="the dev extra's openapi-python-client")
pytestmark = pytest.mark.slow  # a server, the generator and a what-if job: over 20 s together
PACKAGE = "twin_generated"


def refs(node, found: set[str]) -> set[str]:
    """Every $ref in an OpenAPI document."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.add(node["$ref"])
        for v in node.values():
            refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)
    return found


@pytest.fixture(scope="module")
def generated(served, tmp_path_factory):
    """The client generated from the live /openapi.json, imported: (package, spec, output)."""
    out = tmp_path_factory.mktemp("generated")
    spec = httpx.get(served.url + "/openapi.json", timeout=30).json()
    (out / "openapi.json").write_text(json.dumps(spec), encoding="utf-8")
    # no post hooks: the generator would run ruff on the code it writes (not needed to import)
    (out / "config.yaml").write_text(f"post_hooks: []\npackage_name_override: {PACKAGE}\n")
    done = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate",
         "--path", str(out / "openapi.json"), "--output-path", str(out / PACKAGE),
         "--meta", "none", "--config", str(out / "config.yaml")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE), spec, log
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_every_operation_is_generated_and_every_ref_resolves(generated) -> None:
    """No $ref of the document dangles, and the generator writes a module for every
    operationId (none skipped as unparseable)."""
    pkg, spec, log = generated
    schemas = set(spec["components"]["schemas"])
    dangling = {r for r in refs(spec, set()) if r.rsplit("/", 1)[-1] not in schemas}
    assert not dangling, dangling
    assert "will not be generated" not in log, log
    operations = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    api = Path(pkg.__file__).parent / "api"
    modules = [p.stem for p in api.glob("*/*.py") if p.name != "__init__.py"]
    assert len(modules) == len(operations) == len(set(operations)) > 20


def test_the_generated_client_works_against_the_live_twin(generated, served) -> None:
    """Reads (equipment, lots over several pages, kpis), POST /events, a 404 problem+json and
    a what-if job, all through the generated client's typed functions and models."""
    pkg, _, _ = generated
    api = importlib.import_module(f"{PACKAGE}.api")
    from importlib import import_module as mod

    models = mod(f"{PACKAGE}.models")
    client = pkg.AuthenticatedClient(base_url=served.url, token=served.tokens["admin"],
                                     raise_on_unexpected_status=True)  # fmt: skip
    assert api is not None
    list_equipment = mod(f"{PACKAGE}.api.equipment.list_equipment")
    get_equipment = mod(f"{PACKAGE}.api.equipment.get_equipment")
    page = list_equipment.sync(client=client, limit=5)
    assert isinstance(page, models.EquipmentPage) and len(page.items) == 5 and page.total > 5
    tool = get_equipment.sync(client=client, equipment_id=page.items[0].id)
    assert isinstance(tool, models.EquipmentPublic) and tool.id == page.items[0].id

    post_events = mod(f"{PACKAGE}.api.events.post_events")
    events = tool_events("gen-c", [page.items[0].id], 2, t0=1_801_000_300.0)
    body = [models.EventPublic.from_dict(e.to_dict()) for e in events]
    answer = post_events.sync(client=client, body=body)
    assert isinstance(answer, models.IngestResponse), answer
    assert answer.received == 2 and answer.accepted + answer.duplicate == 2

    list_lots = mod(f"{PACKAGE}.api.lots.list_lots")
    from tests.services.streams import demo_stream

    assert (
        post_events.sync(
            client=client,
            body=[models.EventPublic.from_dict(e.to_dict()) for e in demo_stream(prefix="gen-")],
        ).rejected
        == 0
    )
    seen, offset, pages = [], 0, 0
    while offset is not None and not isinstance(offset, type(pkg.types.UNSET)):
        lots = list_lots.sync(client=client, offset=offset, limit=2)
        assert isinstance(lots, models.LotPage)
        seen += [lot.id for lot in lots.items]
        offset, pages = lots.next_, pages + 1
    assert pages > 1 and len(seen) == lots.total == len(set(seen))

    get_kpis = mod(f"{PACKAGE}.api.kpis.get_kpis")
    kpis = get_kpis.sync(client=client)
    assert isinstance(kpis, models.KpisPublic) and kpis.revision >= len(events)

    get_lot = mod(f"{PACKAGE}.api.lots.get_lot")
    missing = get_lot.sync_detailed(client=client, lot_id="no-such-lot")
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Problem)
    assert missing.parsed.status == 404 and "no-such-lot" in missing.parsed.detail
    assert missing.headers["content-type"].startswith("application/problem+json")

    create = mod(f"{PACKAGE}.api.whatif.create_whatif_job")
    get_job = mod(f"{PACKAGE}.api.whatif.get_whatif_job")
    job = create.sync(client=client, body=models.WhatIfCreate(days=1.0, replications=1))
    assert isinstance(job, models.WhatIfJobPublic), job
    deadline = time.monotonic() + 180
    while job.status not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, job.status
        time.sleep(0.5)
        job = get_job.sync(client=client, job_id=job.id)
    assert job.status == "completed", job.error
    assert "baseline" in job.result.to_dict()["scenarios"]
