"""The container files: compose.yaml and the Dockerfile are well formed, and what the image runs
works. Docker cannot run here (no daemon, no image registry), so the image's entry point, its
environment and its health check are run outside a container against a real Mosquitto, with the
compose file's own commands and settings."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.live.conftest import MOSQUITTO, Broker, free_port
from twin.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in _instructions():
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _defaults(value: str) -> str:
    """A compose value with ${VAR:-default} replaced by its default (what an empty .env gives)."""
    return re.sub(r"\$\{[A-Z_]+:-((?:[^{}]|\{[^{}]*\})*)\}", r"\1", value)


def test_dockerfile_is_slim_non_root_with_a_health_check_and_twin_entry_point() -> None:
    """Slim Python 3.11 base, a non-root user, the twin as entry point serving by default, a
    health check on the readiness endpoint /ready at TWIN_PORT, the store on a volume, and every COPY source exists."""
    ins = _instructions()
    words = [w for w, _ in ins]
    assert ins[0] == ("FROM", "python:3.11-slim")
    users = [r for w, r in ins if w == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert json.loads(dict(ins)["ENTRYPOINT"]) == ["twin"]
    assert json.loads(dict(ins)["CMD"]) == ["serve"]
    assert "HEALTHCHECK" in words and "/ready'" in dict(ins)["HEALTHCHECK"]  # readiness
    env = _image_env()
    assert env["TWIN_HOST"] == "0.0.0.0" and dict(ins)["EXPOSE"] == env["TWIN_PORT"]
    assert env["TWIN_STORE"].startswith("/data/") and '"/data"' in dict(ins)["VOLUME"]
    for word, rest in ins:
        if word == "COPY":
            for src in rest.split()[:-1]:
                assert (ROOT / src).exists(), src


def test_compose_runs_broker_twin_and_emulator_with_valid_commands_and_settings() -> None:
    """compose.yaml: the three services; the twin's command and environment (with the defaults
    an empty .env gives) are accepted by `twin serve` and the settings; the emulator's command
    parses and publishes to the broker service; the store is on a named volume."""
    services = COMPOSE["services"]
    assert set(services) == {"broker", "twin", "emulator"}
    assert services["broker"]["image"].startswith("eclipse-mosquitto:")
    twin = services["twin"]
    parser = build_parser()
    args = parser.parse_args(twin["command"])
    assert args.command == "serve"
    env = {k: _defaults(str(v)) for k, v in twin["environment"].items()}
    assert env["TWIN_MQTT"].startswith("mqtt://broker:1883/")
    from twin_api.settings import Settings

    settings = Settings(**{k.removeprefix("TWIN_").lower(): v for k, v in env.items()})
    assert settings.mqtt and settings.store == "/data/events.db"
    assert any(v.split(":")[0] == "twin-data" for v in twin["volumes"])
    assert set(COMPOSE["volumes"]) >= {"twin-data"}
    assert twin["ports"][0].startswith("127.0.0.1:")  # a guessable development token: local only
    emu = parser.parse_args(services["emulator"]["command"])
    assert emu.command == "emulate" and emu.mqtt == "broker:1883"
    assert services["emulator"]["depends_on"]["twin"]["condition"] == "service_healthy"
    conf = (ROOT / "deploy" / "mosquitto.conf").read_text()
    assert "listener 1883" in conf
    assert any(v.startswith("./deploy/mosquitto.conf:") for v in services["broker"]["volumes"])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_what_the_image_runs_serves_the_demo_fab_fed_over_mqtt(tmp_path: Path) -> None:
    """The image's entry point with its environment and the compose settings (the broker a real
    Mosquitto on loopback instead of the `broker` service): the health check command passes,
    and the compose emulator's events reach the twin's store over MQTT."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = Broker(tmp_path)
    broker.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(_image_env())
    env.update(
        {k: _defaults(str(v)) for k, v in COMPOSE["services"]["twin"]["environment"].items()}
    )
    env.update(
        TWIN_HOST="127.0.0.1",  # tests stay on loopback; the image listens on 0.0.0.0
        TWIN_PORT=str(port),
        TWIN_STORE=str(tmp_path / "events.db"),
        TWIN_MQTT=f"mqtt://127.0.0.1:{broker.port}/twin/+/events/#",
        TWIN_PHYSICS="false",
    )
    twin_cmd = [sys.executable, "-m", "twin.cli", *COMPOSE["services"]["twin"]["command"]]
    proc = subprocess.Popen(twin_cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        check = shlex.split(dict(_instructions())["HEALTHCHECK"].split(" CMD ", 1)[1])
        assert check[0] == "python"
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read()
            ok = subprocess.run([sys.executable, *check[1:]], env=env, capture_output=True)
            if ok.returncode == 0:
                break
            assert time.monotonic() < deadline, ok.stderr.decode()[-2000:]
            time.sleep(1)
        emu = list(COMPOSE["services"]["emulator"]["command"])
        emu[emu.index("--mqtt") + 1] = f"127.0.0.1:{broker.port}"
        emu[emu.index("--hours") + 1] = "1"
        emu[emu.index("--speed") + 1] = "max"
        done = subprocess.run([sys.executable, "-m", "twin.cli", *emu], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]  # every event confirmed durable
        with sqlite3.connect(tmp_path / "events.db") as db:
            (stored,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
        assert stored > 100
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        broker.stop()


def _docker_runs() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "info"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _docker_runs(), reason="no Docker daemon on this machine")
@pytest.mark.timeout(1800)
def test_the_image_builds_and_answers_health(tmp_path: Path) -> None:
    """Where Docker runs: the image builds, starts, and its health check turns healthy."""
    tag = "twin:test"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1500)
    cid = subprocess.run(
        ["docker", "run", "-d", "-e", "TWIN_MODE=development", "-e",
         'TWIN_TOKENS={"test-token-0123456789abcdef": ["read"]}', tag],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            state = subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Health.Status}}", cid],
                capture_output=True,
                text=True,
            ).stdout.strip()
            if state == "healthy":
                return
            time.sleep(3)
        raise AssertionError(f"container not healthy: {state}")
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
