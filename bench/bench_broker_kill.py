"""The broker-kill attack, N times, end to end and plain: events published vs stored vs declared.

Each run starts a Mosquitto broker with persistence on a free loopback port, runs
`twin ingest --from mqtt://...` and `twin emulate --mqtt --mqtt-batch 50` (demo-fab), stops the
ingest process (SIGSTOP) for 3 s once it has stored 1,000 events, SIGKILLs the broker halfway
through that pause and restarts it on the same port (it forgets the queue and the twin's
session), then lets both finish. Modes: ``e2e`` (the default of `twin emulate --mqtt`),
``plain`` (--no-end-to-end; ingest resumes only after the emulator exited, as in the attack,
so the tail is lost too), ``e2e-live`` (end to end, ingest not stopped: the broker dies
under a running twin). One row per run and mode:

    mode  run  published  stored  unique  lost  gaps  declared  dead  silent  emu_rc  ingest_rc  s

``lost`` = published - stored; ``declared`` = seqs the twin declared lost (stream.gap events);
``dead`` = dead letters (e.g. events that fail validation after their lot was lost);
``silent`` = events neither stored, nor declared, nor a dead letter: lost without a word.
Plain delivery is silent about a lost tail until the synchroniser acts on heartbeats
(``Synchroniser.expect_tail``). Needs mosquitto (/usr/sbin/mosquitto).

    python bench/bench_broker_kill.py [--runs 5] [--hours 30] [--modes e2e,plain]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live.conftest import MOSQUITTO, Broker  # noqa: E402
from tests.live.test_mqtt_loss import kill_scenario  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--hours", type=float, default=30.0, help="fab hours emulated per run")
    ap.add_argument("--modes", default="e2e,plain", help="comma list of e2e, plain, e2e-live")
    args = ap.parse_args()
    if not Path(MOSQUITTO).exists():
        print("mosquitto is not installed (apt-get install mosquitto)")
        return 1
    modes = [m for m in args.modes.split(",") if m]
    cols = "mode      run  published  stored  unique   lost  gaps  declared  dead  silent  emu_rc"
    print(cols + "  ingest_rc      s")
    for run in range(args.runs):
        for mode in modes:
            with tempfile.TemporaryDirectory() as tmp:
                broker = Broker(Path(tmp))
                broker.start()
                t0 = time.monotonic()
                try:
                    r = kill_scenario(
                        broker,
                        Path(tmp),
                        end_to_end=mode.startswith("e2e"),
                        stop_ingest=mode != "e2e-live",
                        resume_after_emulator=mode == "plain",
                        hours=args.hours,
                        seed=run,
                    )
                finally:
                    broker.stop()
                print(
                    f"{mode:<8} {run:>4}  {r['published']:>9}  {r['stored']:>6}  {r['unique']:>6}"
                    f"  {r['lost']:>5}  {r['gaps']:>4}  {r['declared']:>8}  {r['dead_letters']:>4}"
                    f"  {r['silent']:>6}  {r['emulate_rc']:>6}  {r['ingest_rc']:>9}"
                    f"  {time.monotonic() - t0:5.1f}",
                    flush=True,
                )
                if r["emulate_rc"]:
                    print(f"      emulate: {r['emulate_err'][-200:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
