"""MQTT on a plant network: TLS (``mqtts://``), client certificates, user name and password,
and MQTT 5 sessions.

Secrets never come from a command line (any user can list a process's arguments): the CLI
reads them from ``TWIN_MQTT_*`` variables, the API from its settings (the same names, also in
``.env``). A misconfiguration is one line that names what failed:

- a CA, certificate or key file that is missing or unreadable (checked before connecting);
- a TLS handshake the broker or the CA refuses (the first connection is made in the caller's
  thread, so the SSL error itself is reported, not a time-out);
- a broker that refuses the CONNECT (bad user name or password, not authorised).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

PROTOCOLS = ("3.1.1", "5")
# TWIN_MQTT_* variable -> MqttConfig field
ENV = {
    "TWIN_MQTT_CA_FILE": "ca_file",
    "TWIN_MQTT_CERT_FILE": "cert_file",
    "TWIN_MQTT_KEY_FILE": "key_file",
    "TWIN_MQTT_USERNAME": "username",
    "TWIN_MQTT_PASSWORD": "password",
    "TWIN_MQTT_PROTOCOL": "protocol",
}


def from_environment(given: dict[str, Any]) -> dict[str, Any]:
    """The security fields the TWIN_MQTT_* variables set, for those ``given`` leaves unset;
    TWIN_MQTT_PASSWORD_FILE holds the password in a file (its first line)."""
    out: dict[str, Any] = {}
    for var, name in ENV.items():
        if given.get(name) is None and os.environ.get(var):
            out[name] = os.environ[var]
    pw_file = os.environ.get("TWIN_MQTT_PASSWORD_FILE")
    if given.get("password") is None and "password" not in out and pw_file:
        out["password"] = read_password(pw_file)
    return out


def read_password(path: str) -> str:
    from twin.errors import InputError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("MQTT password file", [f"{path[:200]!r}: {exc}"]) from None
    return text.splitlines()[0] if text else ""


def problems(cfg: Any) -> list[str]:
    """Every problem of the security fields of an MqttConfig (files checked, not opened by
    paho yet)."""
    out = []
    if cfg.protocol not in PROTOCOLS:
        out.append(f"protocol {str(cfg.protocol)[:20]!r}: one of {', '.join(PROTOCOLS)}")
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(cfg, name)
        if path is None:
            continue
        if not isinstance(path, str) or not path or len(path) > 4096:
            out.append(f"{name}: a file path")
            continue
        if not cfg.tls:
            out.append(f"{name} {path[:200]!r} needs TLS: use mqtts://HOST:PORT")
        try:
            with open(path, "rb") as f:
                f.read(1)
        except (OSError, ValueError) as exc:
            out.append(f"{name} {path[:200]!r}: cannot be read ({getattr(exc, 'strerror', exc)})")
    if cfg.key_file is not None and cfg.cert_file is None:
        out.append("key_file without cert_file: a client key needs its certificate")
    for name in ("username", "password"):
        value = getattr(cfg, name)
        if value is None:
            continue
        try:
            size = len(value.encode("utf-8"))
        except (AttributeError, UnicodeEncodeError):
            out.append(f"{name}: text in UTF-8 (no lone surrogates)")
            continue
        if size > 65_535:  # the MQTT string limit
            out.append(f"{name}: at most 65535 bytes in UTF-8, got {size}")
    if cfg.password is not None and cfg.username is None:
        out.append("a password needs a user name (TWIN_MQTT_USERNAME)")
    return out


def apply(client: Any, cfg: Any) -> None:
    """Set TLS and credentials on a paho client (before it connects)."""
    if cfg.tls:
        client.tls_set(
            ca_certs=cfg.ca_file,  # None: the system's trusted CAs
            certfile=cfg.cert_file,
            keyfile=cfg.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.password)


def tls_failure(cfg: Any, exc: BaseException) -> str:
    """One line for a failed TLS handshake, naming the files that take part."""
    import re

    # "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer
    # certificate (_ssl.c:1006)" -> the words, without OpenSSL's source line
    reason = re.sub(r"\s*\(_ssl\.c:\d+\)", "", str(exc)) or type(exc).__name__
    files = ", ".join(
        f"{n} {getattr(cfg, n)}" for n in ("ca_file", "cert_file", "key_file") if getattr(cfg, n)
    )
    return (
        f"TLS with {cfg.host}:{cfg.port} failed: {str(reason)[:200]}"
        f" ({files or 'system CAs, no client certificate'}; TWIN_MQTT_CA_FILE, "
        "TWIN_MQTT_CERT_FILE, TWIN_MQTT_KEY_FILE)"
    )


def refused(cfg: Any, reason: str) -> str:
    """One line for a CONNECT the broker refused."""
    hint = (
        " (check TWIN_MQTT_USERNAME and TWIN_MQTT_PASSWORD)"
        if any(w in reason.lower() for w in ("password", "authori", "user name"))
        else ""
    )
    return f"broker {cfg.host}:{cfg.port} refused the connection: {reason}{hint}"
