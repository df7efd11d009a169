"""Service settings: environment variables (``TWIN_...``), an optional ``.env`` file, or kwargs.

One ``Settings`` object configures the runtime and the API. Tokens map a bearer token to its
scopes; outside development the service refuses to start without tokens, with short tokens, or
with the development default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SCOPES = ("read", "ingest", "whatif", "admin")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCENE = PROJECT_ROOT / "scenes" / "demo-fab"
MIN_TOKEN_CHARS = 24  # outside development


class Settings(BaseSettings):
    """Everything the service reads at start; see docs/api.md for the environment variables."""

    model_config = SettingsConfigDict(env_prefix="TWIN_", env_file=None, extra="forbid")

    mode: Literal["development", "production"] = "development"
    scene: str = str(DEFAULT_SCENE)  # scene folder or SMAT2022 workbook
    process: str | None = None  # SMT2020 folder; default: the scene folder's process/
    store: str | None = None  # SQLite event store file; None: in memory (not durable)
    synchronous: Literal["FULL", "NORMAL"] = "FULL"  # SQLite durability (FULL: power loss)
    mqtt: str | None = None  # mqtt://HOST:PORT/TOPIC to subscribe to (None: no MQTT source)
    feed: Literal["none", "emulator", "synthetic"] = (
        "none"  # built-in event feed into the in-process bus
    )
    feed_speed: float = 1.0  # × real time for the built-in feed
    feed_seed: int = 0
    physics: bool = True  # attach a pybullet world when pybullet is importable

    # token -> scopes ("admin" implies every scope)
    tokens: dict[str, list[str]] = Field(default_factory=dict)

    max_body_bytes: int = 8 * 1024 * 1024  # request body limit (bytes)
    max_batch: int = 5000  # events per POST /events
    max_page: int = 1000  # items per page of a list
    ws_queue: int = 256  # commits (frames) a WebSocket client may fall behind before it is dropped
    ws_max_clients: int = 1000
    history: int = 100_000  # recent events kept in memory for WebSocket resume
    whatif_max_runs: int = 200  # scenarios × replications per job
    whatif_max_days: float = 730.0  # simulated days per replication
    whatif_max_running: int = 1  # jobs simulating at once
    whatif_max_queued: int = 4  # jobs waiting to run
    whatif_workers: int = 2  # processes per running job
    whatif_keep: int = 100  # finished jobs remembered

    # server limits (services.api.limits; docs/api.md "Limits")
    max_header_bytes: int = 64 * 1024  # request line + headers, bytes (431 above, then closed)
    header_timeout: float = 10.0  # s from a connection (or a request's first byte) to its headers
    body_timeout: float = 30.0  # s a request body may stall between two reads (408)
    max_connections: int = 4096  # open connections (the longest waiting for headers goes first)
    max_concurrency: int = 2048  # requests and streams in progress (503 above; /health answers)
    rate_limit: float = 200.0  # requests/s per client address (0: no limit)
    rate_burst: int = 400  # requests at once per client address
    auth_fail_rate: float = 1.0  # failed authentications/s per client address (0: no limit)
    auth_fail_burst: int = 10  # failed authentications at once per client address
    max_event_values: int = 64  # JSON values (keys too) per event of a POST /events body, average

    @field_validator("tokens")
    @classmethod
    def _scopes_known(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        bad = [
            f"token …{t[-4:]}: unknown scope {s!r}"
            for t, ss in v.items()
            for s in ss
            if s not in SCOPES
        ]
        if bad:
            raise ValueError("; ".join(bad) + f" (accepted: {', '.join(SCOPES)})")
        return v

    @model_validator(mode="after")
    def _limits(self) -> Settings:
        problems = []
        for name in (
            "max_body_bytes", "max_batch", "max_page", "ws_queue", "ws_max_clients", "history",
            "whatif_max_runs", "whatif_max_running", "whatif_workers", "whatif_keep",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.whatif_max_queued < 0:
            problems.append("whatif_max_queued must be >= 0")
        if not self.feed_speed > 0:
            problems.append("feed_speed must be > 0")
        if self.mode != "development":
            if not self.tokens:
                problems.append("production mode needs at least one token (TWIN_TOKENS)")
            short = [t for t in self.tokens if len(t) < MIN_TOKEN_CHARS]
            if short:
                problems.append(
                    f"{len(short)} token(s) shorter than {MIN_TOKEN_CHARS} characters "
                    "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe())')"
                )
        problems += self._server_limit_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _server_limit_problems(self) -> list[str]:
        import math

        problems = []
        for name in ("max_connections", "max_concurrency", "rate_burst",
                     "auth_fail_burst", "max_event_values"):  # fmt: skip
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        for name in ("header_timeout", "body_timeout"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                problems.append(f"{name} must be a number of seconds > 0")
        for name in ("rate_limit", "auth_fail_rate"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                problems.append(f"{name} must be >= 0 per second (0: no limit)")
        if self.max_header_bytes < 1024:
            problems.append("max_header_bytes must be >= 1024 (a browser's headers need ~1 KiB)")
        if self.max_concurrency <= self.ws_max_clients:
            problems.append(
                f"max_concurrency ({self.max_concurrency}) must be above ws_max_clients "
                f"({self.ws_max_clients}): each stream client holds one"
            )
        return problems
