"""Shapes shared by every resource: pages of a list and error bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class PageMeta(BaseModel):
    total: int  # items matching the filters
    offset: int
    limit: int
    next: int | None  # offset of the next page; null on the last one


class Page(PageMeta):
    items: list[Any]


class Problem(BaseModel):
    """Every error: ``detail`` says what is wrong and what is accepted."""

    detail: Any


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no or unknown bearer token"},
    403: {"model": Problem, "description": "the token lacks the scope this endpoint needs"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "unknown id (with close matches)"}
}
