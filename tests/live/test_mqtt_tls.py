"""MQTT on a plant network: a real Mosquitto with TLS, client certificates and a password file,
certificates made by the test (openssl). Events reach the store end to end over mqtts:// on
MQTT 3.1.1 and 5; each misconfiguration is one line naming what failed."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.live.conftest import MOSQUITTO, free_port
from twin.errors import InputError
from twin.live.mqtt import MqttConfig, MqttSink, MqttSource
from twin.live.order import ReorderConfig
from twin.live.state import TwinState, apply_all
from twin.live.store import SQLiteStore
from twin.live.sync import SyncConfig, Synchroniser

OPENSSL = shutil.which("openssl")
PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
USER, PASSWORD = "twin", "s3cret-pass"


def _ssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed
    by the CA; and an unrelated CA the broker does not trust."""
    _ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=twin-test-ca",
         "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    _ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other-ca",
         "-keyout", "other.key", "-out", "other.crt", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        _ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        _ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *ext, cwd=d)  # fmt: skip


class TlsBroker:
    def __init__(self, d: Path) -> None:
        self.dir, self.port = d, free_port()
        subprocess.run([PASSWD, "-c", "-b", str(d / "passwd"), USER, PASSWORD], check=True,
                       capture_output=True)  # fmt: skip
        (d / "passwd").chmod(0o600)
        (d / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"user {getpass.getuser()}\n"
            f"cafile {d / 'ca.crt'}\ncertfile {d / 'server.crt'}\nkeyfile {d / 'server.key'}\n"
            "require_certificate true\n"
            f"password_file {d / 'passwd'}\nallow_anonymous false\n"
            f"persistence true\npersistence_location {d}/\n"
            "max_queued_messages 0\nmax_inflight_messages 0\n"
        )
        log = (d / "mosquitto.log").open("a")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(d / "mosquitto.conf")], stdout=log,
                                     stderr=log)  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, (d / "mosquitto.log").read_text()
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def cfg(self, client_id: str, **kw) -> MqttConfig:
        base = dict(
            ca_file=str(self.dir / "ca.crt"),
            cert_file=str(self.dir / "client.crt"),
            key_file=str(self.dir / "client.key"),
            username=USER,
            password=PASSWORD,
        )
        base.update(kw)
        return MqttConfig.from_url(f"mqtts://127.0.0.1:{self.port}/twin/fab1/events/#",
                                   client_id=client_id, max_backoff=1.0, **base)  # fmt: skip


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    if not (OPENSSL and Path(MOSQUITTO).exists() and Path(PASSWD).exists()):
        pytest.skip("needs openssl, mosquitto and mosquitto_passwd (apt-get install mosquitto)")
    d = tmp_path_factory.mktemp("tls")
    make_pki(d)
    broker = TlsBroker(d)
    yield broker
    broker.stop()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_events_reach_the_store_over_tls_with_certificates_and_password(
    tls_broker, tmp_path, catalog, stream, protocol
):
    """mqtts:// with a client certificate and a password: every event is stored once, end to end
    (the twin's confirmations travel back over TLS too), and the state equals the replay."""
    source = MqttSource(tls_broker.cfg(f"twin-{protocol}", protocol=protocol))
    store = SQLiteStore(tmp_path / "twin.db")
    sync = Synchroniser(store, catalog, cfg=SyncConfig(batch=500, reorder=ReorderConfig(
        window=100_000, max_wait=2.0)))  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(target=lambda: sync.run(source, stop=stop.is_set), daemon=True)
    thread.start()
    sink = MqttSink(tls_broker.cfg(f"emu-{protocol}", protocol=protocol, batch=20), fab="fab1",
                    end_to_end=True)  # fmt: skip
    try:
        for e in stream:
            sink.publish(e)
        assert sink.flush_confirmed(60)
    finally:
        sink.close()
        stop.set()
        thread.join(10)
        source.close()
    assert store.count() == len(stream) and store.dead_letter_count() == 0
    assert (
        store.state_at(None, catalog).fingerprint()
        == apply_all(TwinState(catalog), stream).fingerprint()
    )
    store.close()


def _one_line(exc: InputError) -> str:
    (line,) = exc.problems
    return line


def test_a_wrong_password_is_one_line_naming_the_settings(tls_broker):
    """A refused CONNECT ends at once (no 10 s wait) with the broker's reason and the settings."""
    t0 = time.monotonic()
    with pytest.raises(InputError) as err:
        MqttSource(tls_broker.cfg("bad-pw", password="wrong"), connect_timeout=10)
    line = _one_line(err.value)
    assert "refused the connection" in line and "TWIN_MQTT_PASSWORD" in line
    assert time.monotonic() - t0 < 5


def test_an_untrusted_server_certificate_is_one_line_naming_the_ca_file(tls_broker):
    """A CA that did not sign the broker's certificate: the TLS error itself, with the files."""
    other = str(tls_broker.dir / "other.crt")
    with pytest.raises(InputError) as err:
        MqttSink(tls_broker.cfg("bad-ca", ca_file=other), fab="fab1")
    line = _one_line(err.value)
    assert "TLS with 127.0.0.1" in line and "certificate verify failed" in line and other in line


def test_no_client_certificate_is_refused_by_the_broker(tls_broker):
    """Without the client certificate the broker (require_certificate) ends the handshake: an
    error, not a connection."""
    with pytest.raises(InputError) as err:
        MqttSink(tls_broker.cfg("no-cert", cert_file=None, key_file=None), fab="fab1",
                 connect_timeout=5)  # fmt: skip
    assert "127.0.0.1" in _one_line(err.value)


@pytest.mark.parametrize(
    "kw, says",
    [
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file '/nonexistent/ca.pem': cannot be read"),
        ({"key_file": "k.pem", "cert_file": None}, "key_file without cert_file"),
        ({"password": "x", "username": None}, "a password needs a user name"),
        ({"username": "\ud800"}, "no lone surrogates"),
        ({"password": "p" * 70_000}, "at most 65535 bytes"),
        ({"protocol": "4"}, "one of 3.1.1, 5"),
        ({"session_expiry": -1}, "session_expiry -1"),
    ],
)
def test_bad_security_settings_are_refused_before_connecting(kw, says, tmp_path):
    """Garbage, huge and hostile security settings: one error naming the field, nothing sent."""
    with pytest.raises(InputError, match="MQTT configuration") as err:
        cfg = MqttConfig.from_url("mqtts://127.0.0.1:1/t", **kw)
        cfg.check()
    assert any(says in p for p in err.value.problems), err.value.problems


def test_a_certificate_file_without_tls_is_refused():
    """CA or certificate files on a plain mqtt:// address are a mistake, said so."""
    with pytest.raises(InputError, match="needs TLS: use mqtts://"):
        MqttConfig.from_url("mqtt://127.0.0.1:1883/t", ca_file=__file__).check()


def test_security_settings_come_from_twin_mqtt_variables(monkeypatch, tmp_path):
    """TWIN_MQTT_* fill what the caller left unset (never a command line), the password also
    from a file; mqtts:// defaults to port 8883; the password is not in the repr."""
    pw = tmp_path / "pw"
    pw.write_text("from-file\nignored\n")
    monkeypatch.setenv("TWIN_MQTT_USERNAME", "alice")
    monkeypatch.setenv("TWIN_MQTT_PASSWORD_FILE", str(pw))
    monkeypatch.setenv("TWIN_MQTT_PROTOCOL", "5")
    cfg = MqttConfig.from_url("mqtts://broker.example")
    assert (cfg.port, cfg.tls, cfg.username, cfg.password, cfg.protocol) == (
        8883,
        True,
        "alice",
        "from-file",
        "5",
    )
    assert "from-file" not in repr(cfg)
    assert MqttConfig.from_url("mqtt://h", username="bob").username == "bob"  # given wins
