"""Fixtures: the API in process (TestClient) and on a real uvicorn server on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from twin_api.app import UVICORN_OPTIONS, create_app
from twin_api.settings import Settings

TOKENS = {
    "admin": "admin-token-0123456789abcdef",
    "read": "read-token-0123456789abcdef",
    "ingest": "ingest-token-0123456789abcdef",
    "whatif": "whatif-token-0123456789abcdef",
}


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


ADMIN = auth("admin")


def make_settings(**kw) -> Settings:
    base = dict(
        tokens={t: [s] for s, t in TOKENS.items()},
        physics=False,
        whatif_workers=2,
    )
    base.update(kw)
    return Settings(**base)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving ``create_app(settings)`` in a thread; ``url`` is its base address."""

    start_timeout = 60.0  # s; subclasses that build their own server keep it

    def __init__(
        self, settings: Settings, *, port: int | None = None, start_timeout: float = 60.0
    ) -> None:
        import uvicorn

        self.app = create_app(settings)
        self.port = port if port is not None else free_port()
        self.start_timeout = start_timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, **UVICORN_OPTIONS)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def runtime(self):
        return self.app.state.runtime


@pytest.fixture(scope="session")
def live(tmp_path_factory) -> Iterator[LiveServer]:
    """A real server with a SQLite store, shared by the tests of the session."""
    store = tmp_path_factory.mktemp("api") / "events.db"
    with LiveServer(make_settings(store=str(store), synchronous="NORMAL")) as srv:
        yield srv


@pytest.fixture(scope="session")
def inproc() -> Iterator:
    """The same app in process (memory store), through Starlette's TestClient."""
    from fastapi.testclient import TestClient

    with TestClient(create_app(make_settings())) as client:
        yield client


@pytest.fixture(params=["inproc", "uvicorn"])
def api(request, inproc, live) -> Iterator:
    """Each test that takes ``api`` runs in process and against the real server."""
    if request.param == "inproc":
        yield inproc
    else:
        with httpx.Client(base_url=live.url, timeout=30) as client:
            yield client
