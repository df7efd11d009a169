"""The `POST /events` example of docs/api.md works against a twin like `twin up` (the emulator
feeding it)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx

from tests.services.conftest import ADMIN, LiveServer, make_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _example() -> list[dict]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### Ingest: `POST /events`") :]
    body = re.search(r"-d '(\[.*?\])'", section, re.S)
    assert body, "the example's -d '[...]' body"
    return json.loads(body.group(1))


def test_the_post_events_example_is_accepted_while_the_emulator_feeds(tmp_path: Path) -> None:
    """With the emulator feeding the twin (as under `twin up`), the docs' example event is
    accepted, not a duplicate of the emulator's own source."""
    events = _example()
    settings = make_settings(store=str(tmp_path / "s.db"), feed="emulator", feed_speed=600.0)
    with LiveServer(settings) as srv:
        deadline = time.monotonic() + 60
        while srv.runtime.sync.pos < 50:  # the emulator's events are flowing
            assert time.monotonic() < deadline
            time.sleep(0.2)
        r = httpx.post(srv.url + "/events", json=events, headers=ADMIN, timeout=30)
        assert r.status_code == 200, r.text
        (result,) = r.json()["results"]
        assert result["status"] == "accepted", result
        assert result["seq"] > 50  # its position in the whole stream, after the emulator's
