"""Kill cycles: `twin ingest` SIGKILLed again and again while it reads a stream laced with
hostile lines; after each kill the store must open, hold a prefix of the good stream in order
with nothing twice, and its recovered state must equal a full replay. Prints a table.

Run: .venv/bin/python bench/bench_kill.py [--cycles 60] [--lots 150] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twin.live.store import SQLiteStore
from twin.live.synthetic import StreamConfig, synthetic_stream

# lines a hostile or broken producer sends between the good ones (each a dead letter)
HOSTILE = [
    "not json at all",
    '{"id":"x\\ud800","source":"mes","seq":1,"time":1800000000,"type":"lot.hold","subject":"L","data":{"reason":"r"}}',
    '{"id":"x","source":"erp","seq":18446744073709551615,"time":1800000000,"type":"lot.hold","subject":"L","data":{"reason":"r"}}',
    '{"id":"x","source":"erp","seq":1,"time":"9999-12-31T23:59:59.999999Z","type":"lot.hold","subject":"L","data":{"reason":"r"}}',
    '{"id":"x","source":"mes","seq":1000000000000000,"time":1800000000,"type":"lot.hold","subject":"L","data":{"reason":"r"}}',
    "[" * 3000 + "]" * 3000,
    '{"id":"x","source":"gap:mes","seq":1,"time":1800000000,"type":"stream.gap","subject":"mes","data":{"from_seq":1,"to_seq":99}}',
]


def stored(db: Path) -> int:
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COALESCE(MAX(pos), 0) FROM events").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=60, help="SIGKILLs to deliver")
    ap.add_argument("--lots", type=int, default=150, help="lots in the synthetic stream")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    stream = synthetic_stream(StreamConfig(lots=args.lots, seed=args.seed))
    good = [e.to_json() for e in stream]
    lines, hostile = [], 0
    for text in good:
        lines.append(text)
        if rng.random() < 0.01:
            lines.append(rng.choice(HOSTILE))
            hostile += 1
    work = Path(tempfile.mkdtemp(prefix="twin-kill-"))
    src, db = work / "events.jsonl", work / "twin.db"
    src.write_text("\n".join(lines) + "\n")
    cmd = [sys.executable, "-m", "twin.cli", "ingest", "--from", str(src), "--store", str(db),
           "--batch", "250", "--snapshot-every", "5000", "--quiet"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = restarts = problems = 0
    t0 = time.perf_counter()
    while kills < args.cycles:
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        restarts += 1
        before = stored(db)
        deadline = time.monotonic() + 60
        while stored(db) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:  # finished the file: start again from an empty store copy
            err = proc.stderr.read().decode() if proc.stderr else ""
            if proc.returncode != 0:
                print(f"ingest exited {proc.returncode}: {err[-300:]}")
                problems += 1
            db.unlink()
            for extra in work.glob("twin.db*"):
                extra.unlink()
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        with SQLiteStore(db) as s:  # opening checks the chain's head against the database
            n = s.count()
            ok = [e.to_json() for e in s.read()] == good[:n]
            ok = ok and s.state_at().fingerprint() == s.replay().fingerprint()
            problems += not ok
    done = subprocess.run(cmd, env=env, timeout=600, capture_output=True)
    with SQLiteStore(db) as s:
        n, dead = s.count(), s.dead_letter_count()
        complete = [e.to_json() for e in s.read()] == good and n == len(good)
        same = s.state_at().fingerprint() == s.replay().fingerprint()
    wall = time.perf_counter() - t0
    print(f"kill cycles: {args.cycles} SIGKILLs over {restarts} runs of twin ingest, {wall:.0f} s")
    print(f"  {'stream':<34} {len(good):>8} good events + {hostile} hostile lines")
    print(f"  {'checks failed after a kill':<34} {problems:>8}")
    print(f"  {'final run exit code':<34} {done.returncode:>8}")
    print(f"  {'events stored at the end':<34} {n:>8} (complete, in order, once: {complete})")
    print(f"  {'dead letters':<34} {dead:>8}")
    print(f"  {'recovered state == full replay':<34} {same!s:>8}")
    return 0 if (problems == 0 and complete and same and done.returncode == 0) else 1


if __name__ == "__main__":
    raise SystemExit(main())
