"""Bearer tokens with scopes: 401 for a missing or unknown token, 403 for a missing scope.

Tokens are compared with ``hmac.compare_digest`` against every configured token (no early
exit), so the time taken says nothing about how much of a token matched. ``admin`` holds every
scope.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, WebSocket

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class TokenTable:
    """Configured tokens as bytes, ready for constant-time comparison."""

    def __init__(self, tokens: dict[str, list[str]]) -> None:
        self._table = [(t.encode(), frozenset(s)) for t, s in tokens.items()]

    def scopes_of(self, presented: str | None) -> frozenset[str] | None:
        """The scopes of a presented token, or None when it matches none."""
        if not presented:
            return None
        given = presented.encode()
        found: frozenset[str] | None = None
        for token, scopes in self._table:  # compare with every token: no timing hint
            if hmac.compare_digest(given, token):
                found = scopes
        return found


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def check(table: TokenTable, header: str | None, scope: str) -> frozenset[str]:
    """The caller's scopes if it holds ``scope``; raises 401/403 otherwise."""
    scopes = table.scopes_of(bearer(header))
    if scopes is None:
        why = "missing bearer token" if bearer(header) is None else "unknown token"
        raise HTTPException(401, f"{why} (send 'Authorization: Bearer <token>')", _CHALLENGE)
    if scope not in scopes and "admin" not in scopes:
        raise HTTPException(
            403, f"this token lacks the {scope!r} scope (it has: {', '.join(sorted(scopes))})"
        )
    return scopes


def ws_scopes(ws: WebSocket, scope: str) -> frozenset[str] | None:
    """For WebSockets: the header, or ``?token=`` (browsers cannot set headers); None: refused."""
    header = ws.headers.get("authorization")
    if header is None and ws.query_params.get("token"):
        header = f"Bearer {ws.query_params['token']}"
    try:
        return check(ws.app.state.tokens, header, scope)
    except HTTPException:
        return None
