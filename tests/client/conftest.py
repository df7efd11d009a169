"""A real `twin serve` of the demo fab (a subprocess on a free loopback port), shared by the
client tests, with one token per scope."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.services.conftest import TOKENS, free_port
from tests.services.test_cli import start, wait_healthy


@dataclass
class Served:
    url: str
    tokens: dict[str, str]  # scope -> token


def serve_demo(tmp_path, **env: str):
    """Start `twin serve` of the demo fab (no physics, a SQLite store in ``tmp_path``):
    (process, url). The caller stops the process."""
    port = free_port()
    env = {
        "TWIN_MODE": "development",
        "TWIN_TOKENS": json.dumps({t: [s] for s, t in TOKENS.items()}),
        "TWIN_WHATIF_WORKERS": "1",
        **env,
    }
    args = ["serve", "--scene", "scenes/demo-fab", "--port", str(port), "--no-physics",
            "--store", str(tmp_path / "events.db")]  # fmt: skip
    proc = start(args, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, token=TOKENS["admin"])
    except BaseException:
        stop(proc)
        raise
    return proc, url


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=30)
    except Exception:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Iterator[Served]:
    """One live server for the session's client tests."""
    proc, url = serve_demo(tmp_path_factory.mktemp("client"))
    try:
        yield Served(url, dict(TOKENS))
    finally:
        stop(proc)


@pytest.fixture
def admin(served):
    """A client with the admin token."""
    from twin.client import Twin

    with Twin(served.url, token=served.tokens["admin"]) as tw:
        yield tw
