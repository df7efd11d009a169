"""Service settings: environment variables (``TWIN_...``), an optional ``.env`` file, or kwargs.

One ``Settings`` object configures the runtime and the API. Tokens come from ``TWIN_TOKENS``
(JSON) and/or the file ``TWIN_TOKENS_FILE`` (JSON, or one ``TOKEN SCOPES [SOURCES]`` per line),
never from a command line. Each maps a bearer token to its scopes, or to ``{"scopes": [...],
"sources": [...], "name": "..."}``: the sources it may publish (a trailing ``*`` is a prefix).
Outside development the service refuses to start without tokens or with a token that is easy to
guess (``twin_api.auth.token_problems``). In development an ``ingest`` token that lists no
sources may publish any (a note at start says so); in production, none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

import twin
from twin_api.auth import source_problems, tail, token_problems

SCOPES = ("read", "ingest", "whatif", "admin")
# the demo fab ships inside the twin package (package data), so this holds when installed too
DEFAULT_SCENE = Path(twin.__file__).resolve().parent / "scenes" / "demo-fab"
MAX_TOKENS_FILE_BYTES = 1 << 20


class _TwinLinesOnly(PydanticBaseSettingsSource):
    """A ``.env`` source that passes on the settings and TWIN_* names only."""

    def __init__(self, inner: PydanticBaseSettingsSource):
        super().__init__(inner.settings_cls)
        self.inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        return {
            k: v for k, v in self.inner().items() if k in fields or k.lower().startswith("twin_")
        }


class TokenSpec(BaseModel):
    """One token's grant: its scopes, the sources it may publish, a name for audit events."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    scopes: list[str]
    sources: list[str] = Field(default_factory=list)  # names, or prefixes ending in '*'
    name: str | None = None  # who holds it, as audit events name the actor


TokenMap = dict[str, list[str] | TokenSpec]


class Settings(BaseSettings):
    """Everything the service reads at start; see docs/api.md for the environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="TWIN_", env_file=".env", extra="forbid", hide_input_in_errors=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then TWIN_* variables, then the working directory's ``.env``; a
        ``.env`` shared with other programs is fine: only its TWIN_* lines are read (an unknown
        TWIN_* name there is still an error, like in the environment)."""
        return init_settings, env_settings, _TwinLinesOnly(dotenv_settings), file_secret_settings

    mode: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"  # the address `twin serve` listens on (0.0.0.0 in a container)
    log_format: Literal["text", "json"] = "text"  # json: one object per line (twin_api.logs)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    port: int = Field(8000, ge=1, le=65535)
    scene: str = str(DEFAULT_SCENE)  # scene folder or SMAT2022 workbook
    process: str | None = None  # SMT2020 folder; default: the scene folder's process/
    store: str | None = None  # SQLite event store file; None: in memory (not durable)
    synchronous: Literal["FULL", "NORMAL"] = "FULL"  # SQLite durability (FULL: power loss)
    mqtt: str | None = None  # mqtt://HOST:PORT/TOPIC to subscribe to (None: no MQTT source)
    # mqtts:// on a plant network (twin.live.mqtt_security); secrets never on a command line
    mqtt_ca_file: str | None = None
    mqtt_cert_file: str | None = None
    mqtt_key_file: str | None = None
    mqtt_username: str | None = None
    mqtt_password: str | None = Field(None, repr=False)
    mqtt_password_file: str | None = None
    mqtt_protocol: Literal["3.1.1", "5"] = "3.1.1"
    feed: Literal["none", "emulator", "synthetic"] = (
        "none"  # built-in event feed into the in-process bus
    )
    feed_speed: float = 1.0  # × real time for the built-in feed
    feed_seed: int = 0
    physics: bool = True  # attach a pybullet world when pybullet is importable

    # token -> scopes ("admin" implies every scope), or -> TokenSpec; never shown in a repr
    tokens: Annotated[TokenMap, NoDecode] = Field(default_factory=dict, repr=False)
    tokens_file: str | None = None  # JSON like TWIN_TOKENS, or lines "TOKEN SCOPES [SOURCES]"
    _notes: list[str] = PrivateAttr(default_factory=list)

    max_body_bytes: int = 8 * 1024 * 1024  # request body limit (bytes)
    max_batch: int = 5000  # events per POST /events
    max_page: int = 1000  # items per page of a list
    ws_queue: int = 256  # commits (frames) a WebSocket client may fall behind before it is dropped
    ws_max_clients: int = 1000
    history: int = 100_000  # recent events kept in memory for WebSocket resume
    # ingest: s an event's time may be ahead of this machine's clock (later: dead letter, a
    # producer's clock error); a year by default (synthetic streams are dated ahead), set
    # minutes for a live fab. reorder_window: seqs past the highest seen that are accepted
    max_future: float = 366 * 86_400.0
    reorder_window: int = 1000
    whatif_max_runs: int = 200  # scenarios × replications per job
    whatif_max_days: float = 730.0  # simulated days per replication
    whatif_max_running: int = 1  # jobs simulating at once
    whatif_max_queued: int = 4  # jobs waiting to run
    whatif_workers: int = 2  # processes per running job
    whatif_keep: int = 100  # finished jobs remembered
    # what-if limits
    whatif_worker_memory_mb: int = Field(4096, ge=0)  # MiB per worker process (0: no limit)
    # what-if and forecast jobs on Ray (twin_api.jobs.connect_ray): "local" (a private instance),
    # "auto" (the cluster of this node), "ray://HOST:PORT" or "HOST:PORT"; None: local processes
    ray_address: str | None = None

    # server limits (twin_api.limits; docs/api.md "Limits")
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

    # several servers on one PostgreSQL store (twin_api.roles, twin_api.revision; docs/deploy.md)
    advertise_url: str | None = None  # this server's URL as the others reach it (the leader's
    # is published in the store; followers forward writes there)
    forward_writes: bool = True  # a follower forwards writes to the leader (False: 307 there)
    lead_interval: float = Field(1.0, gt=0, le=60)  # s between tries of the leader lock
    min_revision_wait: float = Field(5.0, ge=0, le=300)  # s a read asking a later revision waits

    @field_validator("advertise_url")
    @classmethod
    def _advertise(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        try:
            v.encode()
        except UnicodeEncodeError:
            raise ValueError("advertise_url holds a lone surrogate") from None
        if (
            len(v) > 2000
            or not v.startswith(("http://", "https://"))
            or any(c.isspace() for c in v)
        ):
            raise ValueError(
                "advertise_url must be an http:// or https:// URL without spaces, at most 2000 "
                "characters (this server as the others reach it, e.g. http://twin-1:8000)"
            )
        return v.rstrip("/")

    @field_validator("ray_address", mode="before")
    @classmethod
    def _ray_unset(cls, v: Any) -> Any:
        """TWIN_RAY_ADDRESS= (empty) is not set: the jobs run in local processes."""
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("tokens", mode="before")
    @classmethod
    def _tokens_json(cls, v: Any) -> Any:
        """TWIN_TOKENS arrives as text: parsed here, so deep nesting is an error, not a crash;
        checked here, so that no error names a whole token (pydantic's would, in its path)."""
        if isinstance(v, str | bytes):
            v = _json("TWIN_TOKENS", v) if v.strip() else {}  # TWIN_TOKENS= : no tokens
        return token_map("TWIN_TOKENS", v)

    @model_validator(mode="after")
    def _limits(self) -> Settings:
        problems = []
        for name in (
            "max_body_bytes", "max_batch", "max_page", "ws_queue", "ws_max_clients", "history",
            "whatif_max_runs", "whatif_max_running", "whatif_workers", "whatif_keep",
            "reorder_window",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.whatif_max_queued < 0:
            problems.append("whatif_max_queued must be >= 0")
        if not 0 <= self.max_future <= 1e11:
            problems.append("max_future must be from 0 to 1e11 s")
        if not self.feed_speed > 0:
            problems.append("feed_speed must be > 0")
        if (p := ray_address_problem(self.ray_address)) is not None:
            problems.append(p)
        problems += self._check_tokens()
        problems += self._server_limit_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _check_tokens(self) -> list[str]:
        """Merge TWIN_TOKENS_FILE into the tokens, check every one, and store them as
        TokenSpec with the development rule applied; the problems found, every one."""
        problems: list[str] = []
        tokens: dict[str, Any] = dict(self.tokens)
        loaded: dict[str, Any] = {}
        if self.tokens_file is not None:
            loaded, problems = load_tokens_file(self.tokens_file)
            for t in loaded.keys() & tokens.keys():
                problems.append(f"token {tail(t)} is in both TWIN_TOKENS and TWIN_TOKENS_FILE")
            tokens.update(loaded)
        production = self.mode != "development"
        if production and not tokens and not problems:
            problems.append(
                "production mode needs at least one token (TWIN_TOKENS) or a token file "
                "(TWIN_TOKENS_FILE)"
            )
        resolved: dict[str, TokenSpec] = {}
        notes: list[str] = []
        if loaded and _shared(self.tokens_file):
            notes.append(
                f"TWIN_TOKENS_FILE {self.tokens_file[:200]!r} is readable by other users "
                "(chmod 600 it)"
            )
        for token, raw in tokens.items():
            spec = raw if isinstance(raw, TokenSpec) else TokenSpec(scopes=list(raw))
            found = token_problems(token, production=production)
            found += [
                f"unknown scope {str(x)[:20]!r} (accepted: {', '.join(SCOPES)})"
                for x in spec.scopes
                if x not in SCOPES
            ]
            found += [p for x in spec.sources for p in source_problems(x)]
            if spec.name is not None and not (
                0 < len(spec.name) <= 100 and spec.name.isprintable()
            ):
                found.append("'name' must be 1 to 100 printable characters")
            name = f"token {tail(token)}"
            where = f"TWIN_TOKENS_FILE {self.tokens_file[:200]!r}: " if token in loaded else ""
            problems += [where + (p if p.startswith(name) else f"{name}: {p}") for p in found]
            ingests = "ingest" in spec.scopes and "admin" not in spec.scopes
            if ingests and not spec.sources:
                if production:
                    notes.append(
                        f"{name} has the ingest scope but lists no sources: it may publish none "
                        '(add "sources": ["name", "prefix-*"])'
                    )
                else:
                    notes.append(
                        f"{name} has the ingest scope but lists no sources: in development it "
                        "may publish any source (in production, none)"
                    )
                    spec = spec.model_copy(update={"sources": ["*"]})
            resolved[token] = spec
        if not problems:
            self.tokens = resolved  # type: ignore[assignment]
            self._notes = notes
        return problems

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

    def notes(self) -> list[str]:
        """Warnings worth printing at start (never a token, only its last 4 characters)."""
        return list(self._notes)


def ray_address_problem(address: str | None) -> str | None:
    """What is wrong with a ``TWIN_RAY_ADDRESS`` value, or None (no network: reaching it is
    ``twin_api.jobs.connect_ray``'s)."""
    if address is None:
        return None
    accepted = "accepted: local, auto, ray://HOST:PORT or HOST:PORT"
    if not 0 < len(address) <= 255 or not address.isprintable() or not address.isascii():
        return (
            f"ray_address {address[:40]!r}: not an address (1 to 255 ASCII characters); {accepted}"
        )
    if address in ("local", "auto"):
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host_ok = all(c.isalnum() or c in ".-_[]:" for c in host) and (
        ":" not in host or host[:1] + host[-1:] == "[]"  # IPv6: [::1]:6379
    )
    if not (sep and host_ok and port.isdigit() and 1 <= int(port) <= 65535):
        return f"ray_address {address[:40]!r}: not a Ray address; {accepted} (a port 1 to 65535)"
    return None


def token_map(where: str, doc: Any) -> dict[str, list[str] | TokenSpec]:
    """``doc`` checked as token -> [scopes] | {scopes, sources, name}; a ValueError lists every
    problem, naming tokens by their last 4 characters."""
    if not isinstance(doc, dict):
        raise ValueError(
            f"{where}: expected a JSON object of token -> [scopes], got {type(doc).__name__}"
        )
    out: dict[str, list[str] | TokenSpec] = {}
    problems = []
    for token, spec in doc.items():
        name = f"token {tail(str(token))}"
        if not isinstance(token, str):
            problems.append(f"{name}: a token must be a string")
        elif isinstance(spec, list) and all(isinstance(x, str) for x in spec):
            out[token] = spec
        elif isinstance(spec, TokenSpec):
            out[token] = spec
        elif isinstance(spec, dict):
            try:
                out[token] = TokenSpec.model_validate(spec)
            except ValidationError as exc:
                problems += [
                    f"{name}: {'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                    for e in exc.errors(include_input=False)
                ]
        else:
            problems.append(
                f'{name}: expected a list of scopes or {{"scopes": [...], "sources": [...]}}, '
                f"got {type(spec).__name__}"
            )
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))
    return out


def _shared(path: Any) -> bool:
    """Can users other than the owner read or write the file?"""
    try:
        return bool(Path(path).stat().st_mode & 0o077)
    except (OSError, ValueError):
        return False


def _json(what: str, text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise ValueError(
            f"{what} is not JSON ({why}); accepted: an object of token -> [scopes] or "
            '{"scopes": [...], "sources": [...], "name": "..."}'
        ) from None


def load_tokens_file(path: str) -> tuple[dict[str, Any], list[str]]:
    """Tokens from a file: a JSON object (as TWIN_TOKENS), or lines ``TOKEN SCOPES [SOURCES]``
    (comma-separated scopes and sources; blank lines and lines starting with '#' skipped).
    Returns (tokens, problems); problems name the file and line, never a whole token."""
    where = f"TWIN_TOKENS_FILE {path[:200]!r}"
    try:
        p = Path(path)
        if p.stat().st_size > MAX_TOKENS_FILE_BYTES:
            return {}, [f"{where}: larger than {MAX_TOKENS_FILE_BYTES} bytes"]
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return {}, [f"{where}: not UTF-8 text (byte {exc.start})"]
    except (OSError, ValueError) as exc:  # ValueError: a path with NUL
        return {}, [f"{where}: cannot be read ({getattr(exc, 'strerror', None) or exc})"]
    if text.lstrip().startswith("{"):
        try:
            return token_map(where, _json(where, text)), []
        except ValueError as exc:
            return {}, [str(exc)]
    tokens: dict[str, Any] = {}
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) not in (2, 3):
            problems.append(
                f"{where}:{n}: {len(parts)} fields; accepted: TOKEN SCOPES [SOURCES] "
                "(e.g. 'Xy3…Q read,ingest mes,tool-*')"
            )
            continue
        token, scopes = parts[0], parts[1].split(",")
        sources = parts[2].split(",") if len(parts) == 3 else []
        if token in tokens:
            problems.append(f"{where}:{n}: token {tail(token)} appears twice")
        tokens[token] = TokenSpec(scopes=scopes, sources=sources)
    return tokens, problems
