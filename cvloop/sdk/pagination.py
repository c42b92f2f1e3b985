"""Walking the contract's lists (`limit`/`offset` in, `{"items": [...], "total": n}` out)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

MAX_PAGE = 500  # the server's largest `limit`

FetchPage = Callable[[int, int], dict[str, Any]]  # (limit, offset) -> one page


def paginate(
    fetch: FetchPage, *, limit: int | None = None, offset: int = 0, page_size: int = 100
) -> Iterator[dict[str, Any]]:
    """Yield items from `offset` on, page by page, until `limit` items or the end of the list.

    Offsets are positions in a list that may grow while it is read (new predictions): with the newest
    first, an item can show up twice; pass `until` to the list, or order oldest first, for a stable walk."""
    if not 1 <= page_size <= MAX_PAGE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE}")
    if (limit is not None and limit < 0) or offset < 0:
        raise ValueError("limit and offset must be >= 0")
    yielded = 0
    while limit is None or yielded < limit:
        size = page_size if limit is None else min(page_size, limit - yielded)
        page = fetch(size, offset)
        items = page["items"]
        yield from items
        yielded += len(items)
        offset += len(items)
        if len(items) < size or offset >= page["total"]:
            return
