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
        "event store and the API, all with defaults. The emulator starts from the model's "
        "initial WIP: lots are carried and processed at once, the first completes within the "
        "first minute at the default --speed 60. Tokens come from TWIN_TOKENS or TWIN_TOKENS_FILE; "
        "without them it generates a development admin token and prints it once. Ctrl-C stops "
        "it cleanly.",
    )
    up.add_argument("--port", type=int, help="port on 127.0.0.1 (default: TWIN_PORT, else 8000)")
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
    serve.add_argument(
        "--scene",
        help="scene folder, shipped scene name or SMAT2022 .xlsx (default: TWIN_SCENE, else the "
        "demo fab)",
    )
    serve.add_argument("--process", help="SMT2020 folder (default: the scene folder's process/)")
    serve.add_argument(
        "--mqtt",
        help="HOST:PORT, mqtt://HOST:PORT/TOPIC or mqtts://HOST:PORT/TOPIC (TLS) to ingest from",
    )
    serve.add_argument(
        "--store", type=_store_arg, help="SQLite file or postgresql:// URL (default: in memory)"
    )
    serve.add_argument("--host", help="address to listen on (default: TWIN_HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: TWIN_PORT, else 8000)")
    serve.add_argument("--no-physics", action="store_true", help="do not build the pybullet world")
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

    from twin_api.settings import Settings

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
        port=args.port,
    )
    _check_port("127.0.0.1", settings.port)  # before the token is printed: a busy port fails
    url = f"http://127.0.0.1:{settings.port}"
    # the generated token is printed here, once, and nowhere else (not in logs, not in /health)
    who = (
        "  tokens: from TWIN_TOKENS / TWIN_TOKENS_FILE\n"
        if token is None
        else f"  development admin token (shown once): {token}\n"
    )
    # the token is printed once (above), not again in the link: the page asks for it, or takes
    # it from the fragment (#token=..., never sent to the server) and keeps it in sessionStorage
    view = f"{url}/viewer (it asks for the token; or open {url}/viewer#token=<token>)"
    print(
        f"twin up: the demo fab on {url} (API docs {url}/docs)\n"
        + who
        + f"  3D viewer: {view}\n"
        + f"  try: curl -H 'Authorization: Bearer <token>' {url}/kpis\n"
        f"  feed: {settings.feed} at {settings.feed_speed:g}x (seed {settings.feed_seed})\n"
        f"  event store: {_shown(store)}\n"
        + "".join(f"  note: {n}\n" for n in settings.notes())
        + "  Ctrl-C stops it.",
        flush=True,
    )
    return _run(settings, "127.0.0.1", settings.port)


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
    if mqtt and not mqtt.startswith(("mqtt://", "mqtts://")):
        mqtt = f"mqtt://{mqtt}/twin/+/events/#"
    given = dict(
        scene=args.scene,
        process=args.process,
        store=str(args.store) if args.store else None,
        mqtt=mqtt,
        physics=False if args.no_physics else None,
        host=args.host,
        port=args.port,
    )
    # `twin serve` is production unless TWIN_MODE (environment or .env) says otherwise
    mode = _mode_set() or "production"
    settings = _settings(mode=mode, **given)
    _check_port(settings.host, settings.port)
    _check_broker(settings)
    url = f"http://{settings.host}:{settings.port}"
    print(f"twin serve: {settings.scene} on {url}", flush=True)
    print(f"  3D viewer: {url}/viewer (asks for a read token)", flush=True)
    for note in settings.notes():
        print(f"  note: {note}", flush=True)
    return _run(settings, settings.host, settings.port)


def _mode_set() -> str | None:
    """TWIN_MODE as the environment or the working directory's .env sets it, else None."""
    if os.environ.get("TWIN_MODE"):
        return os.environ["TWIN_MODE"]
    try:
        from dotenv import dotenv_values
    except ImportError:  # python-dotenv comes with pydantic-settings; without it, no .env
        return None
    return dotenv_values(".env").get("TWIN_MODE") or None


def _check_port(host: str, port: int) -> None:
    """Fail fast, before the twin is built, when the address is taken."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                "service address",
                [
                    f"cannot listen on {host}:{port}: {exc.strerror}; choose another port with "
                    "--port (or TWIN_PORT)"
                ],
            ) from None


def _check_broker(settings: Any, timeout: float = 5.0) -> None:
    """Fail fast with one line, before the twin is built, when the MQTT settings are wrong
    (files, credentials' form) or the broker is unreachable (the subscription itself reconnects
    on its own once running)."""
    if not settings.mqtt:
        return
    import socket

    from twin_api.runtime import mqtt_config

    cfg = mqtt_config(settings)
    cfg.check()
    try:
        socket.create_connection((cfg.host, cfg.port), timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(
            "MQTT broker",
            [
                f"cannot reach {cfg.host}:{cfg.port} ({why}); check that the broker runs and "
                "--mqtt / TWIN_MQTT (mqtt://HOST:PORT/TOPIC)"
            ],
        ) from None


def _run(settings: Any, host: str, port: int) -> int:
    import signal
    import warnings

    import uvicorn

    from twin_api.app import create_app
    from twin_api.limits import FD_SPARE, raise_fd_limit, server_config

    _check_port(host, port)
    if settings.store:  # a store that cannot be opened is one line here, not a startup traceback
        from twin.live.store import open_store

        open_store(settings.store, synchronous=settings.synchronous).close()
    if settings.ray_address:  # likewise Ray (TWIN_RAY_ADDRESS): connected once, here, for the jobs
        from twin_api.jobs import connect_ray

        connect_ray(settings)
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
    # we choose the draining WebSocket implementation on purpose (see twin_api.app)
    warnings.filterwarnings("ignore", message=".*[Ww]ebsockets.*deprecated")
    app = create_app(settings)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # uvicorn re-raises SIGTERM after its clean shutdown

    signal.signal(signal.SIGTERM, terminate)
    from twin_api.logs import log_config

    logs = log_config(settings.log_format, settings.log_level)
    server = uvicorn.Server(
        server_config(app, settings, host, port, log_config=logs, log_level=settings.log_level)
    )
    try:
        server.run()  # on SIGINT/SIGTERM: stops accepting, runs the lifespan shutdown...
    except KeyboardInterrupt:
        pass  # ...then re-raises the signal, which here means a clean stop
    if not server.started:
        print(f"twin: error: the server did not start (is port {port} free?)", file=sys.stderr)
        return 1
    print("twin: stopped", flush=True)
    return 0
