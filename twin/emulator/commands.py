"""`twin emulate`: a fab's event stream from its process model and OHT, into a file or MQTT."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from twin.errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "emulate",
        help="emulate a fab: publish a realistic, seeded stream of fab events",
        description="Drive the scene's process model (reference engine) and its OHT vehicles and "
        "publish the events: lots, E10 equipment states, carrier transfers, vehicle positions. "
        "The same seed gives the same stream. Prints the emulator's KPIs at the end.",
    )
    p.add_argument(
        "src",
        metavar="SRC",
        help="scene folder (or shipped scene name: demo-fab) naming its process model (or any scene given --process whose tool "
        "families match the model's)",
    )
    p.add_argument("--process", help="SMT2020-format folder (default: the scene's process/)")
    p.add_argument("--hours", type=float, default=8.0, help="hours of fab time (default 8)")
    p.add_argument(
        "--speed",
        default="max",
        help="fab seconds per wall-clock second, or 'max' (as fast as possible; default)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--no-wip",
        dest="initial_wip",
        action="store_false",
        help="start from an empty fab; by default the model's initial WIP (WIP.txt) is placed "
        "mid-route at time 0 (lot.placed events)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--out", help="write JSON lines to this file ('-': standard output)")
    out.add_argument(
        "--mqtt",
        help="publish to the MQTT broker HOST:PORT, mqtt://HOST:PORT or mqtts://HOST:PORT (TLS: "
        "docs/mqtt.md) with QoS 1",
    )
    p.add_argument(
        "--mqtt-batch",
        type=int,
        default=1,
        help="events per MQTT message (a JSON array when > 1; what twin ingest reads, and how "
        "a broker carries 20,000+ events/s); default 1",
    )
    p.add_argument(
        "--no-end-to-end",
        dest="end_to_end",
        action="store_false",
        help="MQTT: stop at the broker's acknowledgement. By default every event is kept until "
        "the twin confirms it durable, re-sent after a reconnect or when the twin comes back, "
        "and the run ends only when all are confirmed (see docs/mqtt.md)",
    )
    p.add_argument(
        "--confirm-timeout",
        type=float,
        default=120.0,
        help="MQTT end to end: seconds to wait at the end for the twin to confirm every event "
        "(default 120); events still unconfirmed then are reported and the exit status is 1",
    )
    p.add_argument(
        "--truth",
        help="scenario file holding one scenario (docs/whatif.md format): the hidden changes "
        "that make the emulated 'real' fab differ from its design model (for calibration tests)",
    )
    p.add_argument("--fab", help="fab name in the MQTT topics (default: the scene's name)")
    p.add_argument("--json", action="store_true", help="print the KPIs as JSON")
    p.set_defaults(func=_emulate)


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise InputError("twin emulate", [f"--speed {text!r}: a number > 0 or 'max'"])
    return value


def _emulate(args: argparse.Namespace) -> int:
    from twin.emulator.emulator import EmulatorConfig, load_emulator
    from twin.emulator.truth import truth_model

    problems = []
    try:
        speed = _speed(args.speed)
    except InputError as exc:
        problems += exc.problems
        speed = None
    if not (math.isfinite(args.hours) and args.hours > 0):
        problems.append(f"--hours {args.hours}: must be > 0")
    if args.seed < 0:
        problems.append(f"--seed {args.seed}: must be >= 0")
    if args.mqtt_batch < 1:
        problems.append(f"--mqtt-batch {args.mqtt_batch}: events per message, must be >= 1")
    if not (math.isfinite(args.confirm_timeout) and 0 < args.confirm_timeout <= 86_400):
        problems.append(f"--confirm-timeout {args.confirm_timeout}: seconds, 0 < s <= 86400")
    if problems:
        raise InputError("twin emulate", problems)
    emu = load_emulator(
        args.src,
        process=args.process,
        config=EmulatorConfig(seed=args.seed, hours=args.hours, initial_wip=args.initial_wip),
    )
    if args.truth:
        emu.model = truth_model(emu.model, args.truth)
    sink: Any
    close = None
    if args.mqtt:
        from twin.live.mqtt import MqttConfig, MqttSink

        url = args.mqtt if args.mqtt.startswith(("mqtt://", "mqtts://")) else f"mqtt://{args.mqtt}"
        cfg = MqttConfig.from_url(url, client_id=f"twin-emulate-{args.seed}", batch=args.mqtt_batch)
        sink = MqttSink(cfg, fab=args.fab or emu.scene.name, end_to_end=args.end_to_end)
        close = sink.close
    elif args.out == "-":
        sink = _Stdout()
    elif args.out:
        from pathlib import Path

        from twin.live.sources import JsonlSink

        Path(args.out).unlink(missing_ok=True)  # a new stream replaces the file (the sink appends)
        sink = JsonlSink(args.out, flush_every=1000)
        close = sink.close
    else:
        sink = _Discard()
    failed = None
    try:
        kpis = emu.run(_with_progress(sink, emu, args.hours), speed)
        if args.mqtt:
            failed = _delivered(sink, args)
    finally:
        if close is not None:
            close()
    report = sys.stderr if args.out == "-" else sys.stdout
    if args.json:
        print(json.dumps(kpis, indent=2), file=report)
    else:
        _print_kpis(kpis, report)
    if isinstance(sink, _Discard):
        print(
            f"twin emulate: the {kpis['events']} events went nowhere (no --out or --mqtt): give "
            "--out FILE, --out - (standard output) or --mqtt HOST:PORT to keep them",
            file=sys.stderr,
        )
    if failed is not None:
        from twin.live.mqtt import DeliveryError

        raise DeliveryError(failed)
    return 0


def _delivered(sink: Any, args: argparse.Namespace) -> str | None:
    """None when the broker (or, end to end, the twin) has every event; else what is missing."""
    if not sink.flush(timeout=60.0):
        return f"broker {args.mqtt} did not acknowledge {sink.pending()} messages within 60 s"
    if sink.end_to_end and not sink.flush_confirmed(timeout=args.confirm_timeout):
        return (
            f"{sink.unconfirmed()} events were not confirmed durable by the twin within "
            f"{args.confirm_timeout:g} s (is `twin ingest --from mqtt://{args.mqtt}/...` "
            "running? --no-end-to-end stops at the broker's acknowledgement)"
        )
    return None


def _print_kpis(kpis: dict[str, Any], report: Any) -> None:
    print(
        f"emulated {kpis['sim_hours']} h (seed {kpis['seed']}): {kpis['events']} events, "
        f"{kpis['lots_placed']} lots placed (initial WIP), {kpis['lots_released']} released, "
        f"{kpis['lots_completed']} completed, "
        f"WIP {kpis['wip']}, {kpis['transfers']} carrier transfers",
        file=report,
    )
    for fam, u in kpis["utilisation_by_family"].items():
        print(f"  utilisation {fam:<24} {u:6.1%}", file=report)


class _Stdout:
    def publish(self, event: Any) -> None:
        sys.stdout.write(event.to_json() + "\n")


class _Discard:
    def publish(self, event: Any) -> None:
        pass


class _Progress:
    """A sink wrapper drawing fab hours emulated out of ``hours`` (on a terminal only)."""

    def __init__(self, sink: Any, start: float, hours: float) -> None:
        from tqdm import tqdm

        self.sink, self.start, self.n = sink, start, 0
        self.bar = tqdm(total=round(hours, 2), unit="fab h", desc="emulate", file=sys.stderr,
                        disable=None, leave=False, bar_format="{l_bar}{bar}| {n:.1f}/{total} fab h")  # fmt: skip

    def publish(self, event: Any) -> None:
        self.sink.publish(event)
        self.n += 1
        if self.n % 500 == 0:  # drawing per event would cost more than emulating
            done = min(self.bar.total, (event.time - self.start) / 3600.0)
            self.bar.update(done - self.bar.n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)


def _with_progress(sink: Any, emu: Any, hours: float) -> Any:
    if not sys.stderr.isatty():
        return sink
    return _Progress(sink, emu.cfg.start, hours)
