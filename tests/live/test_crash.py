"""`twin ingest` killed with SIGKILL mid-stream, repeatedly: nothing stored is lost, nothing is
stored twice, and the recovered state (snapshot + replay) equals a full replay."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.live.util import stored_count
from twin.live.state import TwinState, apply_all
from twin.live.store import SQLiteStore
from twin.live.synthetic import StreamConfig, synthetic_catalog, synthetic_stream


def ingest_cmd(src, db):
    return [sys.executable, "-m", "twin.cli", "ingest", "--from", str(src), "--store", str(db),
            "--batch", "250", "--snapshot-every", "4000", "--quiet"]  # fmt: skip


@pytest.mark.slow
def test_sigkill_during_file_ingest_then_restart_equals_full_replay(tmp_path):
    """Five SIGKILLs at random moments; after the final run the store holds every event once and
    the state recovered from snapshot + replay equals replaying the whole stream."""
    stream = synthetic_stream(StreamConfig(lots=240, seed=11))
    src = tmp_path / "events.jsonl"
    src.write_text("".join(e.to_json() + "\n" for e in stream))
    db = tmp_path / "twin.db"
    rng = random.Random(5)
    kills, stored = 0, []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for _ in range(12):
        proc = subprocess.Popen(ingest_cmd(src, db), env=env)
        before = stored_count(db)
        deadline = time.monotonic() + 60
        while stored_count(db) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.15))  # short: a fast machine finishes the rest quickly
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        with SQLiteStore(db) as s:
            n = s.count()
            assert list(s.read()) == stream[:n]  # a prefix, in order, no duplicates
            recovered = s.state_at()
            assert recovered.fingerprint() == apply_all(TwinState(), stream[:n]).fingerprint()
        stored.append(n)
        if kills == 5:
            break
    assert kills >= 2, "ingest finished before it could be killed twice; make the stream longer"
    assert stored == sorted(stored)
    assert any(0 < n < len(stream) for n in stored), stored  # killed mid-stream
    done = subprocess.run(ingest_cmd(src, db), env=env, timeout=300)
    assert done.returncode == 0
    with SQLiteStore(db) as s:
        assert s.count() == len(stream)
        assert s.dead_letter_count() == 0
        final = s.state_at()
        assert final.fingerprint() == s.replay().fingerprint()
        assert final.fingerprint() == apply_all(TwinState(), stream).fingerprint()
    out = subprocess.run(
        [sys.executable, "-m", "twin.cli", "state", "--store", str(db), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = json.loads(out.stdout)
    assert summary["events_applied"] == len(stream)
    assert summary["lots_completed"] == sum(e.type == "lot.completed" for e in stream)


def test_cli_ingest_and_state(tmp_path):
    """`twin ingest` a file with a bad line and `twin state --json/--at` report what the docs say."""
    cat = synthetic_catalog()
    stream = synthetic_stream(StreamConfig(lots=5, seed=2), cat)
    src = tmp_path / "events.jsonl"
    lines = [e.to_json() for e in stream]
    lines.insert(10, '{"id": "broken"')
    src.write_text("\n".join(lines) + "\n")
    db = tmp_path / "twin.db"
    r = subprocess.run(ingest_cmd(src, db), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run(
        [sys.executable, "-m", "twin.cli", "state", "--store", str(db), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    s = json.loads(out.stdout)
    for key in ("revision", "events_applied", "dead_letters", "lots_completed", "wip", "equipment"):
        assert key in s
    assert s["events_applied"] == len(stream) and s["dead_letters"] == 1
    assert s["lots_completed"] == sum(e.type == "lot.completed" for e in stream)
    assert set(s["equipment"]) == set(cat.equipment) - {"STK1"} | {
        e.subject for e in stream if e.type == "equipment.state"
    }
    with SQLiteStore(db) as store:
        assert "events.jsonl:11" in store.dead_letters()[0].reason
    mid = stream[len(stream) // 2]
    at = subprocess.run(
        [sys.executable, "-m", "twin.cli", "state", "--store", str(db), "--json", "--at",
         json.loads(mid.to_json())["time"]],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    s_at = json.loads(at.stdout)
    assert s_at["events_applied"] == sum(e.time <= mid.time for e in stream)
    # times in JSON are ISO 8601 UTC, as the API writes them
    assert s_at["clock"] == json.loads(mid.to_json())["time"] == s_at["at"]
    bad = subprocess.run(
        [sys.executable, "-m", "twin.cli", "state", "--store", str(db), "--at", "noon"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 1 and "--at" in bad.stderr
