"""compose.ha.yaml and deploy/haproxy.cfg: two twin servers on one PostgreSQL store behind a
proxy, wired consistently. Docker cannot run here, so the files are parsed and checked against
the settings and the CLI; the fail-over itself is tested with real processes in
tests/live/test_replica_failover.py."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from twin.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
HA = yaml.safe_load((ROOT / "compose.ha.yaml").read_text(encoding="utf-8"))
HAPROXY = (ROOT / "deploy" / "haproxy.cfg").read_text(encoding="utf-8")
TWINS = ("twin-1", "twin-2")


def _defaults(value: str) -> str:
    """A compose value with ${VAR:-default} replaced by its default (what an empty .env gives)."""
    return re.sub(r"\$\{[A-Z_]+:-((?:[^{}]|\{[^}]*\})*)\}", r"\1", value)


def _env(service: str) -> dict[str, str]:
    return {k: _defaults(str(v)) for k, v in HA["services"][service]["environment"].items()}


def test_the_ha_compose_runs_postgres_broker_two_twins_and_a_proxy() -> None:
    """compose.ha.yaml holds PostgreSQL, Mosquitto, two twin servers, the proxy (an official
    image) and the emulator; the twins' image has the postgres extra; nothing but the proxy is
    published, and only on loopback."""
    services = HA["services"]
    assert set(services) == {"postgres", "broker", "proxy", "emulator", *TWINS}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["broker"]["image"].startswith("eclipse-mosquitto:")
    assert services["proxy"]["image"].startswith("haproxy:")
    for name in TWINS:
        extras = services[name]["build"]["args"]["EXTRAS"].split(",")
        assert "postgres" in extras and "api" in extras
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "ports" not in services[name]
    (port,) = services["proxy"]["ports"]
    assert port.startswith("127.0.0.1:")
    assert "healthcheck" in services["postgres"]


def test_each_twin_is_a_valid_server_on_the_shared_store() -> None:
    """Each twin's command parses as `twin serve`; its environment (with the defaults an empty
    .env gives) is accepted by the settings; both name the same PostgreSQL store, whose user,
    password and database are the postgres service's; each advertises its own service URL; MQTT
    goes to the broker service."""
    from twin_api.roles import replicated
    from twin_api.settings import Settings

    pg = _env("postgres")
    stores, adverts = set(), set()
    for name in TWINS:
        assert build_parser().parse_args(HA["services"][name]["command"]).command == "serve"
        env = _env(name)
        s = Settings(**{k.removeprefix("TWIN_").lower(): v for k, v in env.items()})
        assert replicated(s.store)
        url = urlsplit(s.store)
        assert (url.hostname, url.port or 5432) == ("postgres", 5432)
        assert (url.username, url.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
        assert url.path.lstrip("/") == pg["POSTGRES_DB"]
        assert s.advertise_url == f"http://{name}:8000"
        assert s.mqtt and s.mqtt.startswith("mqtt://broker:1883/")
        stores.add(s.store)
        adverts.add(s.advertise_url)
    assert len(stores) == 1 and len(adverts) == len(TWINS)
    emu = build_parser().parse_args(HA["services"]["emulator"]["command"])
    assert emu.command == "emulate" and emu.mqtt == "broker:1883"


def test_the_proxy_balances_over_every_twin_and_checks_health() -> None:
    """deploy/haproxy.cfg is mounted where the image reads it, listens on the port the compose
    file publishes, sends to every twin service on its port with a /health check, and retries
    only connection failures (a request that reached a server is not sent twice)."""
    proxy = HA["services"]["proxy"]
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in proxy["volumes"]
    inner = proxy["ports"][0].rsplit(":", 1)[1]
    assert re.search(rf"^\s*bind :{inner}\s*$", HAPROXY, re.M)
    servers = dict(re.findall(r"^\s*server (\S+) (\S+) check\s*$", HAPROXY, re.M))
    assert servers == {name: f"{name}:8000" for name in TWINS}
    assert re.search(r"^\s*option httpchk GET /health\s*$", HAPROXY, re.M)
    assert re.search(r"^\s*balance roundrobin\s*$", HAPROXY, re.M)
    assert re.search(r"^\s*retry-on conn-failure\s*$", HAPROXY, re.M)
    for line in HAPROXY.splitlines():  # no comment after a value: each on a line of its own
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        assert "#" not in line or not code.strip(), line
