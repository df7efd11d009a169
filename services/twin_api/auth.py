"""Bearer tokens with scopes and sources: 401 for a missing or unknown token, 403 for a missing
scope, and per source, whether the caller may publish it.

Tokens are compared with ``hmac.compare_digest`` against every configured token (no early
exit), so the time taken says nothing about how much of a token matched. ``admin`` holds every
scope and may publish every source. A token's ``sources`` are names (``mes``) or prefixes
ending in ``*`` (``tool-*``; ``*`` alone is every source); see ``twin_api.settings`` for
how tokens are configured and checked.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, WebSocket

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
MIN_TOKEN_BITS = 128  # estimated entropy a production token needs
GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# RFC 6750 b64token: what a client can send after "Bearer "
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/")
MAX_TOKEN_CHARS = 1024
MAX_SOURCE_CHARS = 200


def tail(token: str) -> str:
    """How a token is named in messages: its last 4 characters, never more (and not even
    those for a token under 12 characters, where 4 would be a good part of it)."""
    if len(token) < 12:
        return f"({len(token)} characters)"
    return "…" + ascii(token[-4:])[1:-1]


@dataclass(frozen=True)
class SourcePolicy:
    """Which sources one token may publish: ``policy(source) -> bool``. Also what a rejection
    says: ``policy.allowed`` (e.g. "mes, tool-*") and ``policy.reason(source)``."""

    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    any: bool = False

    def __call__(self, source: str) -> bool:
        return self.any or source in self.names or source.startswith(self.prefixes)

    @property
    def allowed(self) -> str:
        if self.any:
            return "any source"
        parts = sorted(self.names) + [p + "*" for p in sorted(self.prefixes)]
        return ", ".join(parts) if parts else "no source (its token lists no 'sources')"

    def reason(self, source: str) -> str:
        return f"this token may not publish source {source[:80]!r} (it may publish: {self.allowed})"

    @classmethod
    def of(cls, patterns: Iterable[str], *, admin: bool = False) -> SourcePolicy:
        pats = list(patterns)
        prefixes = tuple(p[:-1] for p in pats if p.endswith("*"))
        return cls(
            names=frozenset(p for p in pats if not p.endswith("*")),
            prefixes=prefixes,
            any=admin or "" in prefixes,
        )


NOBODY = SourcePolicy()


@dataclass(frozen=True)
class Grant:
    """What one token may do: its scopes, the sources it may publish, and a name for audits."""

    scopes: frozenset[str]
    publish: SourcePolicy = field(default=NOBODY)
    name: str = ""  # the configured name, else the token's last 4 characters

    @classmethod
    def of(cls, token: str, spec: Any) -> Grant:
        """From a list of scopes or a ``{"scopes", "sources", "name"}`` mapping or object."""
        if isinstance(spec, Mapping):
            scopes, sources, name = (
                spec.get("scopes", ()),
                spec.get("sources", ()),
                spec.get("name"),
            )
        elif hasattr(spec, "scopes"):
            scopes, sources, name = spec.scopes, spec.sources, getattr(spec, "name", None)
        else:
            scopes, sources, name = spec, (), None
        scopes = frozenset(scopes)
        return cls(
            scopes,
            SourcePolicy.of(sources, admin="admin" in scopes),
            name or f"token {tail(token)}",
        )


class TokenTable:
    """Configured tokens as bytes, ready for constant-time comparison. ``tokens`` maps a token
    to its scopes, or to ``{"scopes": [...], "sources": [...], "name": "..."}``."""

    def __init__(self, tokens: Mapping[str, Any]) -> None:
        self._table = [(t.encode(), Grant.of(t, s)) for t, s in tokens.items()]

    def grant_of(self, presented: str | None) -> Grant | None:
        """The grant of a presented token, or None when it matches none."""
        if not presented:
            return None
        try:
            given = presented.encode()
        except UnicodeEncodeError:  # a lone surrogate: no configured token has one
            return None
        found: Grant | None = None
        for token, grant in self._table:  # compare with every token: no timing hint
            if hmac.compare_digest(given, token):
                found = grant
        return found

    def scopes_of(self, presented: str | None) -> frozenset[str] | None:
        """The scopes of a presented token, or None when it matches none."""
        grant = self.grant_of(presented)
        return None if grant is None else grant.scopes


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def authorise(table: TokenTable, header: str | None, scope: str) -> Grant:
    """The caller's grant if it holds ``scope``; raises 401/403 otherwise."""
    grant = table.grant_of(bearer(header))
    if grant is None:
        why = "missing bearer token" if bearer(header) is None else "unknown token"
        raise HTTPException(401, f"{why} (send 'Authorization: Bearer <token>')", _CHALLENGE)
    if scope not in grant.scopes and "admin" not in grant.scopes:
        raise HTTPException(
            403, f"this token lacks the {scope!r} scope (it has: {', '.join(sorted(grant.scopes))})"
        )
    return grant


def check(table: TokenTable, header: str | None, scope: str) -> frozenset[str]:
    """The caller's scopes if it holds ``scope``; raises 401/403 otherwise."""
    return authorise(table, header, scope).scopes


def may_publish(table: TokenTable, header: str | None) -> SourcePolicy | None:
    """For a request's Authorization header: the predicate ``source -> bool`` of the sources
    its token may publish, or None when the token is unknown or lacks the ``ingest`` scope
    (the fast path then hands the request to the route, which answers 401/403)."""
    grant = table.grant_of(bearer(header))
    if grant is None or not ({"ingest", "admin"} & grant.scopes):
        return None
    return grant.publish


# WebSocket subprotocols a browser offers (it cannot set headers): ``twin.v1`` and
# ``twin.bearer.<token in base64url, unpadded>``; the server answers ``twin.v1``. The token
# then travels in a header, never in the URL (which access logs and proxies write down).
WS_PROTOCOL = "twin.v1"
WS_BEARER = "twin.bearer."


def ws_subprotocol_token(ws: WebSocket) -> str | None:
    """The token a browser sent in the ``twin.bearer.<base64url>`` subprotocol, if any."""
    for proto in ws.scope.get("subprotocols") or ():
        if isinstance(proto, str) and proto.startswith(WS_BEARER):
            coded = proto[len(WS_BEARER) :]
            if len(coded) > MAX_TOKEN_CHARS * 2:
                return None
            try:
                raw = base64.urlsafe_b64decode(coded + "=" * (-len(coded) % 4))
                return raw.decode("ascii")
            except (binascii.Error, ValueError):
                return None
    return None


def ws_accept_protocol(ws: WebSocket) -> str | None:
    """The subprotocol to accept with: ``twin.v1`` when the client offered it, else none."""
    return WS_PROTOCOL if WS_PROTOCOL in (ws.scope.get("subprotocols") or ()) else None


def ws_scopes(ws: WebSocket, scope: str) -> frozenset[str] | None:
    """For WebSockets: the header, the ``twin.bearer.`` subprotocol (browsers), or ``?token=``
    (kept for older clients; a URL may be logged); None: refused."""
    header = ws.headers.get("authorization")
    if header is None and (token := ws_subprotocol_token(ws)):
        header = f"Bearer {token}"
    if header is None and ws.query_params.get("token"):
        header = f"Bearer {ws.query_params['token']}"
    try:
        return check(ws.app.state.tokens, header, scope)
    except HTTPException:
        return None


# ------------------------------------------------------------------ token strength
_ALPHABETS = [
    frozenset(a)
    for a in (
        "0123456789",
        "0123456789abcdef",
        "0123456789ABCDEF",
        "abcdefghijklmnopqrstuvwxyz",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789abcdefghijklmnopqrstuvwxyz",
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    )
] + [TOKEN_CHARS | {"="}]


def entropy_bits(token: str) -> float:
    """A conservative estimate of a token's entropy: log2 of the smallest usual alphabet that
    holds all its characters, capped by log2 of its distinct characters plus one, times the
    characters that are not predictable: a character that continues a run of equal steps
    ("aaa", "abc", "246") or ends a three-character sequence seen before in the token
    ("abcabc…", "passpass") adds nothing. ``secrets.token_urlsafe(32)`` scores about 240."""
    if not token:
        return 0.0
    chars = set(token)
    size = next((len(a) for a in _ALPHABETS if chars <= a), 256)
    per_char = min(math.log2(size), math.log2(len(chars) + 1))
    seen: set[str] = set()
    free = 0
    for i, c in enumerate(token):
        gram = token[i - 2 : i + 1] if i >= 2 else ""
        stepped = i >= 2 and ord(c) - ord(token[i - 1]) == ord(token[i - 1]) - ord(token[i - 2])
        if not stepped and gram not in seen:
            free += 1
        if gram:
            seen.add(gram)
    return free * per_char


def token_problems(token: str, *, production: bool) -> list[str]:
    """What is wrong with a configured token, naming it only by its last 4 characters."""
    name = f"token {tail(token)}"
    if not token:
        return ["an empty token"]
    if len(token) > MAX_TOKEN_CHARS:
        return [f"{name}: {len(token)} characters (at most {MAX_TOKEN_CHARS})"]
    body = token.rstrip("=")
    bad = sorted({c for c in body if c not in TOKEN_CHARS})
    if bad or not body:
        shown = ", ".join(ascii(c) for c in bad[:5])
        return [
            f"{name}: characters a bearer token cannot carry ({shown or 'only ='}); accepted: "
            f"letters, digits and - . _ ~ + /, then '=' padding (generate one with: {GENERATE})"
        ]
    if production:
        bits = entropy_bits(token)
        if bits < MIN_TOKEN_BITS:
            return [
                f"{name}: too easy to guess (about {bits:.0f} bits estimated: repeats, runs or "
                f"few distinct characters; at least {MIN_TOKEN_BITS} needed in production); "
                f"generate one with: {GENERATE}"
            ]
    return []


def source_problems(pattern: Any) -> list[str]:
    """What is wrong with one entry of a token's ``sources``."""
    if not isinstance(pattern, str):
        return [f"a source must be a string, got {type(pattern).__name__}"]
    shown = ascii(pattern[:40])
    if not pattern or len(pattern) > MAX_SOURCE_CHARS:
        return [f"source {shown}: must be 1 to {MAX_SOURCE_CHARS} characters"]
    if not pattern.isprintable() or "*" in pattern[:-1]:
        return [
            f"source {shown}: printable characters, with '*' only at the end (a prefix: "
            "'tool-*'; '*' alone: every source)"
        ]
    return []
