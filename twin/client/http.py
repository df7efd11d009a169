"""The HTTP core of ``twin.client.Twin``: requests, errors, ETags, paging.

One ``httpx.Client`` per client. Every GET goes through ``get``: it sends ``If-None-Match``
when it holds an ETag for that URL and answers a 304 from its cache, reads at most
``max_body`` bytes, and turns every error status into a ``ClientError`` subclass carrying the
server's problem+json document. List endpoints are read through ``pages``, which follows
whichever paging the server uses (a ``Link: rel="next"`` header, a ``next`` offset, cursor or
link in the body, or ``next_after``/``more`` for the event history) until the last page.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

from twin.client import errors as E

DEFAULT_URL = "http://127.0.0.1:8000"  # where `twin up` listens
MAX_BODY = 256 * 2**20  # bytes: the largest answer the client reads (a full /state fits)
MAX_ID_CHARS = 1000  # an id longer than this names nothing the twin keeps
RETRY_WAIT = 10.0  # s: the longest Retry-After a GET waits for by itself
CACHE_ENTRIES = 256  # ETag cache: URLs remembered, least recently used dropped first
CACHE_BYTES = 64 * 2**20  # ...and their bodies in all (one body over an eighth is not kept)
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")  # RFC 6750 b64token
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


class HttpClient:
    """The connection to a twin: see ``twin.client.Twin`` for the arguments."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        max_body: int = MAX_BODY,
        etags: bool = True,
        retries: int = 3,
        prefix: str = "",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = url if url is not None else os.environ.get("TWIN_URL") or DEFAULT_URL
        self.url = _base_url(url)
        token = token if token is not None else os.environ.get("TWIN_TOKEN") or None
        self._token = _checked_token(token)
        if not (isinstance(max_body, int) and max_body > 0):
            raise E.ClientConfigError(f"max_body {max_body!r}: must be a number of bytes > 0")
        self.max_body = max_body
        self.timeout = timeout
        self.etags = etags
        self.retries = retries  # GETs answered 429/503 with a short Retry-After: tried again
        if not (isinstance(prefix, str) and re.fullmatch(r"(/[A-Za-z0-9._~-]+)*", prefix)):
            raise E.ClientConfigError(
                f"prefix {prefix!r}: a path prefix like '/v1' (or '' for none)"
            )
        self.prefix = prefix  # the API version's path prefix, put before every path
        self._cache: OrderedDict[str, tuple[str, bytes]] = OrderedDict()  # url: (etag, body)
        self._cache_bytes = 0
        self.cache_hits = 0  # answers served from the cache after a 304
        headers = {"Accept": "application/json", "User-Agent": "twin.client"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    # ------------------------------------------------------------------ life cycle
    def close(self) -> None:
        """Close the connections (the client cannot be used after)."""
        self._http.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}({self.url!r}, token={'set' if self._token else None})"

    @property
    def token(self) -> str | None:
        return self._token

    # ------------------------------------------------------------------ raw requests
    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The JSON answer of ``GET path?params`` (revalidated from the ETag cache)."""
        return self._get(path, params)[0]

    def post(self, path: str, body: Any, *, expect: Iterable[int] = (200, 201, 202)) -> Any:
        """The JSON answer of ``POST path`` with ``body`` as JSON."""
        content = _dumps(body, path)
        return self._send("POST", path, None, content, expect)[0]

    def delete(self, path: str) -> Any:
        """The JSON answer of ``DELETE path``."""
        return self._send("DELETE", path, None, None, (200, 202, 204))[0]

    def _get(self, path: str, params: Mapping[str, Any] | None) -> tuple[Any, httpx.Headers]:
        """A GET; one answered 429 or 503 with a Retry-After of at most RETRY_WAIT s is sent
        again after that wait, ``retries`` times at most (a read changes nothing)."""
        for attempt in range(self.retries + 1):
            try:
                return self._send("GET", path, params, None, (200,))
            except E.TooBusy as exc:
                wait = exc.retry_after
                if attempt == self.retries or wait is None or not 0 <= wait <= RETRY_WAIT:
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        expect: Iterable[int],
    ) -> tuple[Any, httpx.Headers]:
        if not isinstance(path, str) or "://" in path.split("?")[0] or path.startswith("//"):
            raise E.ClientConfigError(
                f"path {str(path)[:100]!r}: a path on the twin ('/lots'), not a URL (the token "
                "goes only to the twin's own URL)"
            )
        params = _params(params)
        if self.prefix and path.startswith("/") and not path.startswith(self.prefix + "/"):
            path = self.prefix + path  # (links the twin writes carry the prefix already)
        request = self._http.build_request(
            method,
            path,
            params=params,
            content=content,
            headers={"Content-Type": "application/json"} if content is not None else None,
        )
        key = str(request.url)
        cached = self._cache.get(key) if (method == "GET" and self.etags) else None
        if cached is not None:
            request.headers["If-None-Match"] = cached[0]
        shown = _shown_path(request.url)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise E.TwinUnreachable(
                f"{method} {shown}: no answer from {self.url} within {self.timeout:g} s ({exc})"
            ) from None
        except httpx.HTTPError as exc:
            raise E.TwinUnreachable(
                f"{method} {shown}: cannot reach the twin at {self.url} ({exc}); is it running "
                "(`twin up`, or TWIN_URL)?"
            ) from None
        try:
            if response.status_code == 304 and cached is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return _loads(cached[1], method, shown), response.headers
            body = self._read(response, method, shown)
        finally:
            response.close()
        status = response.status_code
        if status not in expect:
            raise _error(method, shown, status, body, response.headers)
        if status == 204 or not body:
            return None, response.headers
        doc = _loads(body, method, shown)
        etag = response.headers.get("etag")
        if method == "GET" and self.etags and etag and len(body) <= CACHE_BYTES // 8:
            old = self._cache.pop(key, None)
            self._cache_bytes += len(body) - (len(old[1]) if old else 0)
            self._cache[key] = (etag, body)
            while len(self._cache) > CACHE_ENTRIES or self._cache_bytes > CACHE_BYTES:
                self._cache_bytes -= len(self._cache.popitem(last=False)[1][1])
        return doc, response.headers

    def _read(self, response: httpx.Response, method: str, shown: str) -> bytes:
        """The body, refused past ``max_body`` bytes (announced or streamed)."""
        declared = response.headers.get("content-length")
        too_big = (
            f"{method} {shown}: the answer is larger than the client accepts "
            f"(max_body {self.max_body:,} bytes); ask for less (filters, limit) or raise max_body"
        )
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise E.ProtocolError(too_big + f"; it announced {int(declared):,}")
        parts, size = [], 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_body:
                    raise E.ProtocolError(too_big)
                parts.append(chunk)
        except httpx.HTTPError as exc:
            raise E.TwinUnreachable(f"{method} {shown}: the answer broke off ({exc})") from None
        return b"".join(parts)

    # ------------------------------------------------------------------ paging
    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, page after page, until the last one. ``page_size``
        is the ``limit`` asked per page (None: the server's default)."""
        params = dict(params or {})
        if page_size is not None:
            if not (isinstance(page_size, int) and not isinstance(page_size, bool)
                    and page_size >= 1):  # fmt: skip
                raise E.ClientConfigError(f"page_size {page_size!r}: must be an integer >= 1")
            params["limit"] = page_size
        seen: set[str] = set()
        url: str | None = None  # a next link, when the server gives one
        while True:
            doc, headers = self._get(url or path, None if url else params)
            shown = _shown_path(url or path)
            if isinstance(doc, list):  # an unpaged list
                yield from doc
                return
            if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
                raise E.ProtocolError(f"GET {shown}: expected a page {{'items': [...]}}, got "
                                      f"{_kind(doc)}")  # fmt: skip
            items = doc["items"]
            yield from items
            step = _next_page(doc, headers, items)
            if step is None:
                return
            kind, value = step
            if kind == "url":
                url = self._same_origin(value, url or path, shown)
                mark = url
            else:
                params[kind] = value
                url = None
                mark = f"{kind}={value}"
            if mark in seen:
                raise E.ProtocolError(f"GET {shown}: the next page is {mark} again (a loop)")
            seen.add(mark)

    def _same_origin(self, link: str, current: str, shown: str) -> str:
        """A next-page link as a path under the base URL; a link elsewhere is refused."""
        if link.startswith("?"):
            link = current.split("?")[0] + link
        if not link.startswith(("http://", "https://")):
            link = urljoin(self.url + "/", link.lstrip("/"))
        if not link.startswith(self.url + "/"):
            raise E.ProtocolError(
                f"GET {shown}: the next page is at {link[:200]!r}, outside {self.url}"
            )
        return link[len(self.url) :]

    # ------------------------------------------------------------------ ids
    @staticmethod
    def _id(kind: str, value: Any) -> str:
        """``value`` checked and escaped as one path segment."""
        if not isinstance(value, str):
            raise E.ClientConfigError(f"{kind} id {value!r}: must be a string")
        if not value or len(value) > MAX_ID_CHARS:
            raise E.ClientConfigError(
                f"{kind} id of {len(value)} characters: must be 1 to {MAX_ID_CHARS}"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise E.ClientConfigError(
                f"{kind} id {ascii(value[:60])}: not valid text (it holds a lone surrogate, "
                "which no id of the twin can); ids are UTF-8 strings"
            ) from None
        return quote(value, safe="")


# ---------------------------------------------------------------------- helpers
def _base_url(url: Any) -> str:
    if not isinstance(url, str):
        raise E.ClientConfigError(f"url {url!r}: must be a string like {DEFAULT_URL!r}")
    try:
        parts = urlsplit(url.strip())
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        ok = False
    if not ok or any(c in url for c in "\r\n\t ") or not url.isprintable():
        raise E.ClientConfigError(
            f"url {ascii(url[:200])}: not an http(s) URL; accepted: e.g. {DEFAULT_URL!r}"
        )
    return url.strip().rstrip("/")


def _checked_token(token: Any) -> str | None:
    if token is None or token == "":
        return None
    if not isinstance(token, str):
        raise E.ClientConfigError(f"token: must be a string, got {type(token).__name__}")
    token = token.strip()
    if len(token) > 1024 or not _TOKEN_CHARS.match(token):
        raise E.ClientConfigError(
            f"token ({len(token)} characters): not a bearer token; accepted: up to 1024 letters, "
            "digits and - . _ ~ + /, then '=' padding (set TWIN_TOKEN or pass token=)"
        )
    return token


def _params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the None ones; lists joined with commas; checked as text."""
    if not params:
        return None
    out: dict[str, Any] = {}
    for k, v in params.items():
        if v is None:
            continue
        if hasattr(v, "isoformat") and hasattr(v, "utcoffset"):  # datetime, pandas Timestamp
            v = _iso_utc(k, v)
        if isinstance(v, (list, tuple, set, frozenset)):
            v = ",".join(str(x) for x in v)
        elif isinstance(v, bool):
            v = str(v).lower()
        elif not isinstance(v, (str, int, float)):
            raise E.ClientConfigError(f"parameter {k}={v!r}: must be text, a number or a list")
        text = str(v)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise E.ClientConfigError(
                f"parameter {k}={ascii(text[:60])}: not valid text (a lone surrogate)"
            ) from None
        out[k] = text if not isinstance(v, (int, float)) else v
    return out


def _iso_utc(name: str, t: Any) -> str:
    """A timezone-aware datetime as the twin's ISO 8601 UTC text."""
    import datetime as dt

    if t.utcoffset() is None:
        raise E.ClientConfigError(
            f"parameter {name}={t!r}: a datetime without a timezone is ambiguous; give a "
            "timezone-aware one (e.g. pandas.Timestamp(..., tz='UTC'))"
        )
    utc = t.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _shown_path(url: Any) -> str:
    """A request's path and query, for messages (never the host's credentials)."""
    if isinstance(url, httpx.URL):
        return url.raw_path.decode("ascii", "replace")[:300]
    return str(url)[:300]


def _dumps(body: Any, path: str) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=True, allow_nan=False, default=_default).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise E.ClientConfigError(f"POST {path}: the body cannot be sent as JSON ({exc})") from None


def _default(obj: Any) -> Any:
    to_dict = getattr(obj, "to_dict", None)  # twin.live.events.Event
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"{type(obj).__name__} is not JSON")


def _loads(body: bytes, method: str, shown: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        head = body[:80].decode("utf-8", "replace")
        raise E.ProtocolError(
            f"{method} {shown}: the answer is not JSON ({exc}); it begins {head!r}"
        ) from None


def _kind(doc: Any) -> str:
    if isinstance(doc, dict):
        return "an object with keys " + ", ".join(sorted(map(str, doc))[:8])
    return type(doc).__name__


def _error(method: str, shown: str, status: int, body: bytes, headers: httpx.Headers) -> E.ApiError:
    problem: dict[str, Any] | None = None
    try:
        doc = json.loads(body) if body else None
        if isinstance(doc, dict):
            problem = doc
            if not isinstance(doc.get("detail"), str) and "detail" in doc:  # an older shape
                problem = {**doc, "detail": json.dumps(doc["detail"])[:500]}
    except (ValueError, RecursionError):
        pass
    if problem is None:
        text = body[:200].decode("utf-8", "replace").strip()
        problem = {"type": "about:blank", "status": status, "detail": text or f"HTTP {status}"}
    retry = headers.get("retry-after")
    try:
        retry_after = float(retry) if retry is not None else None
    except ValueError:
        retry_after = None
    return E.api_error(method, shown, status, problem, retry_after)


def _next_page(
    doc: dict[str, Any], headers: httpx.Headers, items: list[Any]
) -> tuple[str, Any] | None:
    """Where the next page is: ("url", link), (parameter, value), or None after the last."""
    link = headers.get("link")
    if link:
        m = _LINK_NEXT.search(link)
        if m:
            return ("url", m.group(1)) if items else None
    if "next_after" in doc:  # the event history: a stream position and a "more" flag
        if not doc.get("more") or not items:
            return None
        return ("after", doc["next_after"])
    nxt = doc.get("next", doc.get("next_cursor"))
    if nxt is None or nxt == "" or not items:
        return None
    if isinstance(nxt, bool):
        raise E.ProtocolError(f"a page's next is {nxt!r}: expected an offset, cursor or link")
    if isinstance(nxt, int):
        return ("offset", nxt)
    if isinstance(nxt, str):
        if nxt.startswith(("/", "http://", "https://", "?")):
            return ("url", nxt)
        return ("cursor", nxt)
    raise E.ProtocolError(f"a page's next is {nxt!r}: expected an offset, cursor or link")
