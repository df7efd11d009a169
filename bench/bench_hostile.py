"""Hostile input, class by class: random cases of each attack class sent through the
synchroniser (SQLite store) and through POST /events (the API in process), each inside a batch
of good events. Prints, per class and path, the cases tried and what became of them (a body that is not JSON
at all, e.g. 100,000 levels deep or a 5,000-digit number, is refused whole: HTTP 400); then
checks that the twin state equals a replay of the store and that reads answer.

Run: .venv/bin/python bench/bench_hostile.py [--cases 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from twin.live.events import Event, make_event
from twin.live.store import SQLiteStore
from twin.live.sync import Synchroniser
from twin.live.synthetic import StreamConfig, synthetic_catalog, synthetic_stream

T0 = 1_800_000_000


def base(rng: random.Random) -> dict:
    return {"id": f"h{rng.random()}", "source": "erp", "seq": rng.randint(1, 500),
            "time": T0, "type": "equipment.state", "subject": "LITHO_1",
            "data": {"state": "standby", "reason": "r"}}  # fmt: skip


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def surrogate(rng: random.Random) -> str:
    d = base(rng)
    where = rng.choice(["id", "source", "subject", "reason", "key", "type"])
    bad = rng.choice(["\\ud800", "\\udfff", "x\\udbff", "\\udc00y"])
    text = json.dumps(d)
    if where == "reason":
        return text.replace('"reason": "r"', f'"reason": "{bad}"')
    if where == "key":
        return text.replace('"reason": "r"', f'"{bad}": "r"')
    return text.replace(f'"{where}": "{d[where]}"', f'"{where}": "{bad}"')


def huge_int(rng: random.Random) -> str:
    d = base(rng)
    n = rng.choice([str(2**63), str(2**64 - 1), str(10**30), str(-(2**63) - 1), "9" * 5000])
    if rng.random() < 0.5:
        d["seq"] = "@N@"
    else:
        d["type"], d["data"] = "lot.rework", {"step": "@N@"}
    return json.dumps(d).replace('"@N@"', n)


def deep(rng: random.Random) -> str:
    d = base(rng)
    n = rng.choice([17, 100, 1000, 5000, 100_000])
    d["data"]["reason"] = "@D@"
    return json.dumps(d).replace('"@D@"', _deep(n))


def extreme_time(rng: random.Random) -> str:
    d = base(rng)
    d["time"] = rng.choice(["9999-12-31T23:59:59.999999Z", 1e15, 1e308, -1, "0001-01-01T00:00:00Z",
                            "1969-12-31T23:59:59Z", "NaN", "2026-13-45T99:99:99Z", 253402300800])  # fmt: skip
    return json.dumps(d)


def garbage(rng: random.Random) -> str:
    choices = [
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).decode("latin-1"),
        json.dumps(base(rng))[: rng.randrange(1, 60)],
        json.dumps([1, 2, 3]), "null", '"text"', "{}", '{"id":1}',
        json.dumps({**base(rng), "data": [1]}), json.dumps({**base(rng), "seq": True}),
    ]  # fmt: skip
    return rng.choice(choices)


def hijack(rng: random.Random) -> str:
    d = base(rng)
    d["source"], d["seq"] = rng.choice(["mes", "amhs"]), rng.randint(10_000, 2**62)
    return json.dumps(d)


def reserved(rng: random.Random) -> str:
    d = base(rng)
    if rng.random() < 0.5:
        d["source"] = rng.choice(["gap:mes", "reset:mes", "gap:amhs"])
    else:
        d["type"] = rng.choice(["stream.gap", "stream.reset"])
        d["data"] = {"from_seq": 1, "to_seq": 10**9, "by": "x"}
    return json.dumps(d)


def huge_text(rng: random.Random) -> str:
    d = base(rng)
    n = rng.choice([257, 5000, 100_000, 1_000_000])
    key = rng.choice(["id", "subject", "reason"])
    if key == "reason":
        d["data"]["reason"] = "x" * max(n, 4097)
    else:
        d[key] = "x" * n
    return json.dumps(d)


CLASSES: dict[str, Callable[[random.Random], str]] = {
    "lone surrogates": surrogate,
    "integers past 64 bits": huge_int,
    "deep nesting": deep,
    "extreme times": extreme_time,
    "garbage": garbage,
    "seq hijack": hijack,
    "reserved sources/types": reserved,
    "huge strings": huge_text,
}


def run_sync(cases: dict[str, list[str]], good: list[Event], work: Path) -> dict[str, Counter]:
    catalog = synthetic_catalog()
    out: dict[str, Counter] = {}
    with SQLiteStore(work / "sync.db") as store:
        sync = Synchroniser(store, catalog)
        k = 0
        for name, texts in cases.items():
            c = out[name] = Counter()
            for text in texts:
                batch = [good[k].to_json(), text, good[k + 1].to_json()]
                k += 2
                try:
                    res = sync.process_request(batch, "bench")
                except Exception as exc:  # must never happen
                    c[f"raised {type(exc).__name__}"] += 1
                    continue
                c[res.status[1]] += 1
                c["good accepted"] += res.status[0] == "accepted" and res.status[2] == "accepted"
        ok = sync.state.fingerprint() == store.replay(catalog).fingerprint()
        for ev in store.read():
            ev.to_json()
        out["_state == replay"] = Counter({str(ok): 1})
    return out


def run_http(cases: dict[str, list[str]], work: Path) -> dict[str, Counter]:
    from fastapi.testclient import TestClient

    from twin_api.app import create_app
    from twin_api.settings import Settings

    token = "bench-admin-0123456789abcdefghijkl"
    settings = Settings(tokens={token: ["admin"]}, physics=False, store=str(work / "api.db"))
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    out: dict[str, Counter] = {}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        seq = 0
        for name, texts in cases.items():
            c = out[name] = Counter()
            for text in texts:
                seq += 2
                good = [make_event("mes", s, T0 + s, "equipment.state", "LITH01",
                                   state="standby", reason="r").to_json() for s in (seq - 1, seq)]  # fmt: skip
                body = "[" + ",".join([good[0], text, good[1]]) + "]"
                r = client.post(
                    "/events", content=body.encode("utf-8", "surrogatepass"), headers=headers
                )
                if r.status_code != 200:  # the body as a whole is refused: nothing of it kept
                    c[f"HTTP {r.status_code}"] += 1
                    seq -= 2  # its good events were not taken: send their seqs again
                    continue
                res = r.json()["results"]
                c[res[1]["status"]] += 1
                c["good accepted"] += res[0]["status"] == res[2]["status"] == "accepted"
        rt = client.app.state.runtime
        with rt.lock:
            ok = rt.state.fingerprint() == rt.store.replay(rt.catalog).fingerprint()
        reads = all(client.get(p, headers=headers).status_code == 200
                    for p in ("/state", "/kpis", "/events?limit=1000", "/sources"))  # fmt: skip
        out["_state == replay"] = Counter({str(ok): 1})
        out["_reads answer"] = Counter({str(reads): 1})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200, help="random cases per class")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cases = {name: [gen(rng) for _ in range(args.cases)] for name, gen in CLASSES.items()}
    good = synthetic_stream(StreamConfig(lots=200, seed=args.seed))
    work = Path(tempfile.mkdtemp(prefix="twin-hostile-"))
    results = {"synchroniser": run_sync(cases, good, work), "POST /events": run_http(cases, work)}
    failed = False
    for path, table in results.items():
        print(f"\n{path}: {args.cases} cases per class, each between two good events")
        for name, c in table.items():
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
            print(f"  {name:<26} {outcomes}")
            bad = c.get("accepted", 0) + sum(
                v for k, v in c.items() if k.startswith(("raised", "HTTP 5"))
            )
            failed |= bad > 0 or c.get("False", 0) > 0
    print(
        "\nverdict:",
        "FAILED" if failed else "every hostile case refused; state == replay; reads answer",
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
