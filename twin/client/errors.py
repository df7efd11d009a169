"""The errors of ``twin.client``: all ``TwinError`` subclasses, so one ``except TwinError``
catches every failure of the twin and of its client alike.

An error the server answered carries its RFC 9457 problem document (``problem``, with
``status``, ``detail`` and, when there are several, ``problems``); the message names the
request (method and path) and the server's one-line detail.
"""

from __future__ import annotations

from typing import Any

from twin.errors import TwinError


class ClientError(TwinError):
    """Base of every error ``twin.client`` raises."""


class ClientConfigError(ClientError):
    """A bad argument to the client itself (URL, token, id, page size): nothing was sent."""


class TwinUnreachable(ClientError):
    """No answer from the twin: connection refused, name unknown, or a time-out."""


class ProtocolError(ClientError):
    """The twin answered something the client cannot read: not JSON, not the expected shape,
    or larger than the client accepts (``max_body``)."""


class ApiError(ClientError):
    """The twin answered an error status. ``status`` is the HTTP status, ``problem`` the
    problem+json document (or a minimal one made up when the body was none), ``detail`` its
    one-line detail and ``problems`` the list of problems (empty when there was one)."""

    def __init__(self, method: str, path: str, status: int, problem: dict[str, Any]) -> None:
        self.method, self.path, self.status = method, path, status
        self.problem = problem
        self.detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        problems = problem.get("problems")
        self.problems: list[Any] = list(problems) if isinstance(problems, list) else []
        more = "".join(f"\n  - {_line(p)}" for p in self.problems[:20])
        if len(self.problems) > 20:
            more += f"\n  - ... and {len(self.problems) - 20} more"
        super().__init__(f"{method} {path}: {status} {self.detail}{more}")


def _line(problem: Any) -> str:
    """One problem of a problem+json list as one line ({loc, msg} objects too)."""
    if isinstance(problem, dict) and "msg" in problem:
        loc = ".".join(str(x) for x in problem.get("loc") or ())
        return f"{loc}: {problem['msg']}" if loc else str(problem["msg"])
    return str(problem)


class Unauthorized(ApiError):
    """401: the token is missing or unknown (set TWIN_TOKEN or pass ``token=``)."""


class Forbidden(ApiError):
    """403: the token lacks the scope (or may not publish the source) the request needs."""


class NotFound(ApiError):
    """404: the id names nothing known; ``detail`` has the server's close matches."""


class Conflict(ApiError):
    """409: the request does not fit the twin's state now (e.g. no forecast has completed)."""


class RequestRefused(ApiError):
    """400, 413 or 422: the request itself is wrong (bad filter value, bad body, too large);
    ``problems`` lists every problem the server found."""


class TooBusy(ApiError):
    """429 or 503: the twin is at a cap (jobs queued, stream clients) or not ready; try again
    after ``retry_after`` seconds (None when the server did not say)."""

    def __init__(self, method: str, path: str, status: int, problem: dict[str, Any],
                 retry_after: float | None = None) -> None:  # fmt: skip
        super().__init__(method, path, status, problem)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the twin failed to answer the request."""


class StreamClosed(ClientError):
    """The event stream ended: refused, dropped for being too slow past the client's retries,
    or closed by the twin. ``code`` is the WebSocket close code (None when unknown) and
    ``resume`` the stream position to resume after (``Twin.stream(since=resume)``)."""

    def __init__(self, message: str, code: int | None = None, resume: int | None = None):
        super().__init__(message)
        self.code, self.resume = code, resume


class JobFailed(ClientError):
    """A what-if or forecast job ended ``failed`` or ``cancelled``; ``job`` is its last
    public document (``job["error"]`` says why it failed)."""

    def __init__(self, kind: str, job: dict[str, Any]) -> None:
        self.job = job
        why = f": {job.get('error')}" if job.get("error") else ""
        super().__init__(f"{kind} job {job.get('id')} {job.get('status')}{why}")


class JobTimeout(ClientError):
    """``Job.wait(timeout=...)`` ran out before the job ended; the job goes on running."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: RequestRefused,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: RequestRefused,
    422: RequestRefused,
}


def api_error(
    method: str, path: str, status: int, problem: dict[str, Any], retry_after: float | None
) -> ApiError:
    """The ApiError subclass for ``status``."""
    if status in (429, 503):
        return TooBusy(method, path, status, problem, retry_after)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(method, path, status, problem)
