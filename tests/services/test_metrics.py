"""/metrics through prometheus_client: counts exact at any size, process metrics, the store's
size and the broker connection."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.services.conftest import ADMIN, make_settings


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_large_counts_are_exact_and_process_and_store_metrics_are_there(tmp_path) -> None:
    """1,117,968 and 1,117,969 events read as two different numbers (':g' made both 1.11797e+06);
    the process's CPU and memory and the store's bytes on disk are exposed; the text parses."""
    from twin_api.app import create_app

    with TestClient(create_app(make_settings(store=str(tmp_path / "s.db")))) as c:
        rt = c.app.state.runtime
        seen = []
        for n in (1_117_968, 1_117_969, 2**53):
            rt.sync.stats.accepted = n
            r = c.get("/metrics", headers=ADMIN)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            seen.append(_samples(r.text)[("twin_events_ingested_total", ())])
        assert seen == [1_117_968, 1_117_969, 2**53]
        s = _samples(r.text)
        assert s[("process_resident_memory_bytes", ())] > 10_000_000
        assert s[("process_cpu_seconds_total", ())] > 0
        assert s[("twin_store_bytes", ())] > 0
        assert s[("twin_store_write_failing", ())] == 0
        assert ("twin_mqtt_connected", ()) not in s  # no broker configured: no series
