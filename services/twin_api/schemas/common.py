"""Shapes shared by every resource: pages of a list and error bodies.

Every property has a description and every response model an example (tests/services/
test_conventions.py walks /openapi.json for them); ``example_of`` builds a page's example from
its item's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def described(example: dict[str, Any]) -> ConfigDict:
    """A model config whose JSON schema carries ``example`` (OpenAPI 3.1: ``examples``)."""
    return ConfigDict(json_schema_extra={"examples": [example]})


def example_of(model: type[BaseModel]) -> dict[str, Any]:
    """The first example of a model made with ``described``."""
    extra = model.model_config.get("json_schema_extra") or {}
    return extra["examples"][0]  # type: ignore[index,call-overload]


def page_example(item: dict[str, Any], total: int = 32) -> dict[str, Any]:
    """The example page of a list: its first item of ``total``, more to come."""
    return {"total": total, "offset": 0, "limit": 1, "next": 1, "next_cursor": "bzE",
            "items": [item]}  # fmt: skip


def json_example(example: dict[str, Any], description: str) -> dict[str, Any]:
    """An OpenAPI response (for ``responses=``) of JSON with ``example``, for the answers
    that have no response model."""
    return {"description": description, "content": {"application/json": {"example": example}}}


class PageMeta(BaseModel):
    total: int = Field(description="items matching the filters")
    offset: int = Field(description="items skipped before this page")
    limit: int = Field(description="items per page asked for (at most TWIN_MAX_PAGE)")
    next: int | None = Field(description="offset of the next page; null on the last one")
    next_cursor: str | None = Field(
        description="opaque cursor of the next page (?cursor=); null on the last one"
    )


class Page(PageMeta):
    items: list[Any] = Field(description="this page's items")


class Problem(BaseModel):
    """Every error: ``detail`` says what is wrong and what is accepted."""

    detail: Any = Field(description="what is wrong and what is accepted")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no or unknown bearer token"},
    403: {"model": Problem, "description": "the token lacks the scope this endpoint needs"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "unknown id (with close matches)"}
}
