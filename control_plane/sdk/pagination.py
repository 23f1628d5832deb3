"""Lazy iteration over cursor-paginated lists."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from control_plane.http.pagination import Page

T = TypeVar("T")

FetchPage = Callable[[str | None], Page[T]]


class PageIterator(Generic[T]):
    """Yields every item of a list, fetching the next page only when the current one is used up.

    Nothing is requested until the first item is asked for. :meth:`pages` walks the same
    list page by page instead (a fresh walk from the start).
    """

    def __init__(self, fetch: FetchPage[T]) -> None:
        self._fetch = fetch
        self._items = self._walk_items()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        return next(self._items)

    def pages(self) -> Iterator[Page[T]]:
        """Each page in order, following ``next_cursor`` until the server gives none."""
        cursor: str | None = None
        while True:
            page = self._fetch(cursor)
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def first_page(self) -> Page[T]:
        """Only the first page (its ``next_cursor`` says whether there is more)."""
        return self._fetch(None)

    def to_list(self, limit: int | None = None) -> list[T]:
        """Collect the items (at most ``limit``), fetching only the pages needed."""
        out: list[T] = []
        if limit is not None and limit <= 0:
            return out
        for item in self:
            out.append(item)
            if limit is not None and len(out) >= limit:
                break
        return out

    def _walk_items(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items
