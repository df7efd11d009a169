"""Every error the API answers, in one shape: RFC 9457 ``application/problem+json``.

``{"type": "about:blank", "title": "Unprocessable Content", "status": 422, "detail": "one line:
what is wrong and what is accepted", "problems": [...]}``. ``problems`` is there when there is
more than one thing to say: the strings of an InputError, or, for a request FastAPI could not
validate, ``{"loc", "msg", "type"}`` per field (the input itself left out: it may hold what no
encoder writes). HTTPExceptions raised anywhere, the TwinError family and validation errors
all come out this way.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi.responses import Response

MEDIA_TYPE = "application/problem+json"


def problem_body(status: int, detail: Any, problems: list[Any] | None = None) -> dict[str, Any]:
    """The problem document for ``status``; a ``detail`` that is a dict with ``message`` and
    ``problems`` (an InputError's parts) or a list (validation errors) is taken apart."""
    if isinstance(detail, dict) and ("message" in detail or "problems" in detail):
        problems = list(detail.get("problems") or []) or problems
        what = detail.get("message") or "the request"
        detail = f"{what}: {problems[0]}" if problems else what
        if problems and len(problems) > 1:
            detail += f" (and {len(problems) - 1} more)"
    elif isinstance(detail, list):
        problems, detail = detail, f"{len(detail)} problem{'s' * (len(detail) != 1)} in the request"
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status,
                            "detail": str(detail)}  # fmt: skip
    if problems:
        body["problems"] = problems
    return body


def problem_response(
    status: int, detail: Any, problems: list[Any] | None = None, headers: dict | None = None
) -> Response:
    """A problem+json response; ASCII-escaped, so a lone surrogate in a message is no 500."""
    text = json.dumps(problem_body(status, detail, problems), ensure_ascii=True, default=str)
    return Response(text, status, headers=headers, media_type=MEDIA_TYPE)


def document(spec: dict[str, Any]) -> None:
    """Make the OpenAPI spec say what the API answers: every 4xx/5xx response is a Problem in
    application/problem+json (FastAPI's own 422 schema included)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = {
        "title": "Problem",
        "type": "object",
        "description": "RFC 9457 problem details: every error of the API has this shape.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "always about:blank"},
            "title": {"type": "string", "description": "the HTTP status phrase"},
            "status": {"type": "integer", "description": "the HTTP status code"},
            "detail": {"type": "string", "description": "what is wrong and what is accepted"},
            "problems": {
                "type": "array",
                "items": {},
                "description": "each problem, when there are several: strings, or "
                "{loc, msg, type} per field of a request that failed validation",
            },
        },
    }
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    ref = {"$ref": "#/components/schemas/Problem"}
    for ops in spec.get("paths", {}).values():
        for op in ops.values():
            for code, resp in op.get("responses", {}).items():
                if code[:1] in ("4", "5"):
                    resp["content"] = {MEDIA_TYPE: {"schema": ref}}
