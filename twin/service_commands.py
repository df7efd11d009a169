"""`twin up` (the demo fab, live, on 127.0.0.1:8000) and `twin serve` (a real deployment).

Neither takes a token on its command line (every user of the machine can read a process's
arguments): tokens come from ``TWIN_TOKENS`` or ``TWIN_TOKENS_FILE``. ``twin up`` without them
generates a development admin token and prints it once, at start.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from twin.errors import ConfigError

# default --speed of `twin up` per feed: the emulator at 60x shows a tool busy within seconds
# and moves the OHT visibly; the synthetic feed's steps are already short
UP_SPEED = {"emulator": 60.0, "synthetic": 10.0}


def _store_arg(text: str) -> str | Path:
    """--store: a postgresql:// URL stays text (Path would fold its //), else a path."""
    return text if "://" in text else Path(text)


def register(sub: Any) -> None:
    up = sub.add_parser(
        "up",
        help="run the demo fab twin with a live event feed and the API on 127.0.0.1:8000",
        description="The demo fab with its emulator feeding the in-process bus, physics, a SQLite "
        "event store and the API, all with defaults. The emulator starts from an empty fab: "
        "lots are released and carried at once, the first ones complete after about 40 fab "
        "hours (40 min at the default --speed 60). Tokens come from TWIN_TOKENS or TWIN_TOKENS_FILE; "
        "without them it generates a development admin token and prints it once. Ctrl-C stops "
        "it cleanly.",
    )
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--token", help=argparse.SUPPRESS)  # refused: see _no_token
    up.add_argument(
        "--feed",
        choices=("emulator", "synthetic"),
        default="emulator",
        help="the event feed: the fab emulator (default) or a short synthetic stream on repeat",
    )
    up.add_argument(
        "--speed",
        type=float,
        help=f"feed speed, fab seconds per wall second (default {UP_SPEED['emulator']:g} for "
        f"the emulator, {UP_SPEED['synthetic']:g} for the synthetic feed)",
    )
    up.add_argument("--seed", type=int, default=0, help="random seed of the feed (default 0)")
    up.add_argument(
        "--store", type=_store_arg, help="SQLite file or postgresql:// URL (default: a temp file)"
    )
    up.add_argument("--no-physics", action="store_true", help="do not build the pybullet world")
    up.set_defaults(func=_up)

    serve = sub.add_parser(
        "serve",
        help="serve a twin of a scene: API, store, MQTT ingest (settings from TWIN_* variables)",
        description="Serve the twin of SRC. Tokens and limits come from TWIN_* environment "
        "variables (see docs/api.md); TWIN_MODE defaults to production, which needs TWIN_TOKENS.",
    )
    serve.add_argument("--scene", required=True, help="scene folder or SMAT2022 .xlsx")
    serve.add_argument("--process", help="SMT2020 folder (default: the scene folder's process/)")
    serve.add_argument("--mqtt", help="HOST:PORT (or mqtt://HOST:PORT/TOPIC) to ingest from")
    serve.add_argument(
        "--store", type=_store_arg, help="SQLite file or postgresql:// URL (default: in memory)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-physics", action="store_true")
    serve.add_argument("--token", help=argparse.SUPPRESS)  # refused: see _no_token
    serve.set_defaults(func=_serve)


def _no_token(args: argparse.Namespace) -> list[str]:
    """A token on the command line is refused: other users see it in the process list."""
    if args.token is None:
        return []
    return [
        "--token: tokens are not taken from the command line (any user can list a process's "
        "arguments); set TWIN_TOKENS (JSON) or TWIN_TOKENS_FILE (see docs/api.md)"
    ]


def _settings(**kw: Any) -> Any:
    from pydantic import ValidationError

    from services.api.settings import Settings

    try:
        return Settings(**{k: v for k, v in kw.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(
            "service settings",
            [f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()],
        ) from None


def _up(args: argparse.Namespace) -> int:
    import math

    problems = _no_token(args)
    if args.speed is not None and not (args.speed > 0 and math.isfinite(args.speed)):
        problems.append(f"--speed {args.speed:g}: must be a number > 0")
    if args.seed < 0:
        problems.append(f"--seed {args.seed}: must be >= 0")
    if problems:
        raise ConfigError("twin up", problems)
    own = bool(os.environ.get("TWIN_TOKENS") or os.environ.get("TWIN_TOKENS_FILE"))
    token = None if own else secrets.token_urlsafe(32)
    store = args.store or Path(tempfile.mkdtemp(prefix="twin-up-")) / "events.db"
    settings = _settings(
        mode="development",
        store=str(store),
        synchronous="NORMAL",
        feed=args.feed,
        feed_speed=UP_SPEED[args.feed] if args.speed is None else args.speed,
        feed_seed=args.seed,
        physics=not args.no_physics,
        tokens=None if own else {token: ["admin"]},
    )
    url = f"http://127.0.0.1:{args.port}"
    # the generated token is printed here, once, and nowhere else (not in logs, not in /health)
    who = (
        "  tokens: from TWIN_TOKENS / TWIN_TOKENS_FILE\n"
        if token is None
        else f"  development admin token (shown once): {token}\n"
    )
    print(
        f"twin up: the demo fab on {url} (API docs {url}/docs)\n"
        + who
        + f"  try: curl -H 'Authorization: Bearer <token>' {url}/kpis\n"
        f"  feed: {settings.feed} at {settings.feed_speed:g}x (seed {settings.feed_seed})\n"
        f"  event store: {_shown(store)}\n"
        + "".join(f"  note: {n}\n" for n in settings.notes())
        + "  Ctrl-C stops it.",
        flush=True,
    )
    return _run(settings, "127.0.0.1", args.port)


def _shown(store: str | Path) -> str:
    if isinstance(store, str):
        from twin.live.store_pg import mask

        return mask(store)
    return str(store)


def _serve(args: argparse.Namespace) -> int:
    problems = _no_token(args)
    if problems:
        raise ConfigError("twin serve", problems)
    mqtt = args.mqtt
    if mqtt and not mqtt.startswith("mqtt://"):
        mqtt = f"mqtt://{mqtt}/twin/+/events/#"
    settings = _settings(
        mode=os.environ.get("TWIN_MODE", "production"),
        scene=args.scene,
        process=args.process,
        store=str(args.store) if args.store else None,
        mqtt=mqtt,
        physics=False if args.no_physics else None,
    )
    print(f"twin serve: {args.scene} on http://{args.host}:{args.port}", flush=True)
    for note in settings.notes():
        print(f"  note: {note}", flush=True)
    return _run(settings, args.host, args.port)


def _check_port(host: str, port: int) -> None:
    """Fail fast, before the twin is built, when the address is taken."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                "service address", [f"cannot listen on {host}:{port}: {exc.strerror}"]
            ) from None


def _run(settings: Any, host: str, port: int) -> int:
    import signal
    import warnings

    import uvicorn

    from services.api.app import create_app
    from services.api.limits import FD_SPARE, raise_fd_limit, server_config

    _check_port(host, port)
    if settings.store:  # a store that cannot be opened is one line here, not a startup traceback
        from twin.live.store import open_store

        open_store(settings.store, synchronous=settings.synchronous).close()
    # every connection is a file descriptor: make room for the connection cap and the rest
    fds = raise_fd_limit(settings.max_connections + FD_SPARE)
    if fds < settings.max_connections + FD_SPARE:
        cap = max(1, fds - FD_SPARE)
        print(
            f"twin: warning: open files limited to {fds}; connections capped at {cap} "
            f"instead of TWIN_MAX_CONNECTIONS={settings.max_connections}",
            file=sys.stderr,
        )
        settings = settings.model_copy(update={"max_connections": cap})
    # we choose the draining WebSocket implementation on purpose (see services.api.app)
    warnings.filterwarnings("ignore", message=".*[Ww]ebsockets.*deprecated")
    app = create_app(settings)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # uvicorn re-raises SIGTERM after its clean shutdown

    signal.signal(signal.SIGTERM, terminate)
    server = uvicorn.Server(server_config(app, settings, host, port))  # the server limits
    try:
        server.run()  # on SIGINT/SIGTERM: stops accepting, runs the lifespan shutdown...
    except KeyboardInterrupt:
        pass  # ...then re-raises the signal, which here means a clean stop
    if not server.started:
        print(f"twin: error: the server did not start (is port {port} free?)", file=sys.stderr)
        return 1
    print("twin: stopped", flush=True)
    return 0
