"""Response envelopes: single resource, list, and error (wire protocol 1.4–1.6)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel

__all__ = [
    "ApiError",
    "ApiResponse",
    "DetailedApiError",
    "ListResponse",
    "PaginationOutput",
    "Sorting",
]

T = TypeVar("T")


class ApiResponse(BaseModel, Generic[T]):
    """The success envelope ``{"status": "success", "details": {...}}``.

    Example:
        >>> ApiResponse[dict[str, int]].model_validate(
        ...     {"status": "success", "details": {"n": 1}}
        ... ).details
        {'n': 1}
    """

    status: str
    details: T


class ApiError(BaseModel):
    """The error envelope ``{"status": "error", "code": ..., "message": ...}``.

    Example:
        >>> ApiError(code="not_found", message="Agent instance not found").status
        'error'
    """

    status: str = "error"
    code: str
    message: str


class DetailedApiError(ApiError):
    """An error envelope with field errors (``errors``), as sent with 400 and 422.

    Example:
        >>> DetailedApiError(code="required", message="bad", errors={"id": ["x"]}).errors
        {'id': ['x']}
    """

    errors: dict[str, Any]


class PaginationOutput(BaseModel):
    """Where a list page sits in the whole result.

    Example:
        >>> PaginationOutput(item_count=3, item_start=1, item_end=2, page_count=2,
        ...     page_index=1, page_offset=0, page_size=2, next_page_offset=2,
        ...     previous_page_offset=None).next_page_offset
        2

    Attributes:
        item_count: Items in the whole result.
        item_start: 1-based position of the page's first item.
        item_end: 1-based position of the page's last item.
        page_count: Number of pages.
        page_index: 1-based index of this page.
        page_offset: 0-based offset of this page's first item.
        page_size: Items per page.
        next_page_offset: Offset of the next page; None on the last page.
        previous_page_offset: Offset of the previous page; None on the first page.
    """

    item_count: int
    item_start: int
    item_end: int
    page_count: int
    page_index: int
    page_offset: int
    page_size: int
    next_page_offset: int | None
    previous_page_offset: int | None


class Sorting(BaseModel):
    """How a list was sorted.

    Example:
        >>> Sorting(field="id", direction="desc").direction
        'desc'
    """

    field: str
    direction: str


class ListResponse(BaseModel, Generic[T]):
    """The list envelope; ``pagination`` and ``sorting`` must be present (may be null).

    Example:
        >>> ListResponse[int].model_validate(
        ...     {"status": "success", "summaries": [1], "pagination": None, "sorting": None}
        ... ).summaries
        [1]
    """

    status: str
    summaries: list[T]
    pagination: PaginationOutput | None
    sorting: Sorting | None
