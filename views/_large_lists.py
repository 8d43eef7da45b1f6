"""Admin lists that stay fast on millions of rows: bounded counts, deferred-join pages, cheap links.

sqladmin counts a list with ``SELECT count(*) FROM (the whole filtered query)`` and
fetches a page with ``LIMIT n OFFSET m`` over whole rows. On a table of a million
appointments the count reads a whole index on every page view (0.4-0.7 s on MariaDB
here) and a deep page reads and throws away every full row before it. This mixin
keeps the same rows in the same order, and instead:

* **counts at most** ``offset + count_limit`` rows (``SELECT count(*) FROM (SELECT id
  ... LIMIT bound + 1)``): below the bound the count is exact; above it the list says
  "more than N" (:class:`CountAtLeast`), never a guessed or cached number. The bound
  moves with the page, so every page up to the one asked for, and ``count_limit`` rows
  after it, can be reached and is counted exactly.
* **finds the page's keys first** (``SELECT id ... ORDER BY ... LIMIT n OFFSET m`` as a
  derived table, which an index that matches the filter and sort answers without
  touching the rows), then loads only those rows, with the related rows of many-to-one
  columns (patient, doctor, department) joined in the same statement (a deferred join).
* **runs the count and the page's query at once**, on two connections (a page past the
  end is answered with the last page's number, and sqladmin redirects there).
* **orders ties by the primary key**, in the direction of the last sort column, so
  pages never overlap or skip rows when many rows share the sorted value.

The filters, search, sort and row scope are those of ``filtered_query``
(``views._access``), as for the export.

Rendering a page builds a link per row and per related cell; Starlette's ``url_for``
walks the routes each time (about 150 times a page). :meth:`LargeListMixin._build_url_for`
builds each kind of link once per request and fills in the key.
"""

from __future__ import annotations

import builtins
from typing import Any, ClassVar

import anyio
from sqladmin.helpers import get_object_identifier
from sqladmin.pagination import Pagination
from sqlalchemy import and_, asc, desc, func, select
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.interfaces import MANYTOONE
from sqlalchemy.sql.expression import Select
from starlette import status
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.requests import Request

#: Stands for the key in a link built once per request (no key contains it).
_KEY_MARK = "\x00key\x00"

#: Highest page number looked for (a larger one is clamped like any page past the end).
_MAX_PAGE = 10**9


class CountAtLeast(int):
    """A row count known only to exceed a bound: the int is ``bound + 1``, the text
    "more than <bound>" (sqladmin's list footer shows "Showing 1 to 25 of more than
    10,000 items").

    Args:
        bound (int): the rows counted before counting stopped.
    """

    def __new__(cls, bound: int) -> "CountAtLeast":
        return super().__new__(cls, bound + 1)

    @property
    def bound(self) -> int:
        """The number the list's rows are known to exceed."""
        return int(self) - 1

    def __str__(self) -> str:
        return f"more than {self.bound:,}"

    def __repr__(self) -> str:
        return f"CountAtLeast({self.bound})"


class LargeListMixin:
    """List paging for ``ModelView`` subclasses that may hold millions of rows.

    Class attributes:
        count_limit (int): rows counted beyond the current page's offset before the
            count becomes "more than N" (10,000; at least a page, so the next page is
            always offered when there is one).
    """

    count_limit: ClassVar[int] = 10_000

    def _list_sort_order(self, request: Request) -> builtins.list[tuple[str, bool]]:
        """(field, descending) pairs the list is sorted by, as sqladmin's ``sort_query`` reads them."""
        sort_by = request.query_params.get("sortBy")
        if sort_by:
            return [(sort_by, request.query_params.get("sort", "asc") == "desc")]
        return [(self._get_prop_name(f), d) for f, d in self._get_default_sort()]

    def _with_tie_breaker(self, stmt: Select, request: Request) -> Select:
        """``stmt`` ordered by the primary key after its own sort (same direction as the last sort column)."""
        keys = list(self.pk_columns)
        fields = self._list_sort_order(request)
        if fields and fields[-1][0] in {k.key for k in keys}:
            return stmt
        last_desc = fields[-1][1] if fields else False
        return stmt.order_by(*[desc(k) if last_desc else asc(k) for k in keys])

    async def bounded_count(self, request: Request, stmt: Select, bound: int) -> int:
        """Count the rows of ``stmt``, stopping after ``bound``.

        Args:
            request (Request): the list request.
            stmt (Select): the filtered, scoped list query.
            bound (int): the most rows counted.

        Returns:
            int: the exact count when it is at most ``bound``, else ``CountAtLeast(bound)``.
        """
        keys = stmt.with_only_columns(*self.pk_columns).order_by(None).limit(bound + 1).subquery()
        counted = await self.count(request, select(func.count()).select_from(keys))
        return CountAtLeast(bound) if counted > bound else counted

    def page_query(self, stmt: Select, request: Request, *, limit: int, offset: int) -> Select:
        """The rows of one page of ``stmt``: its keys first (a derived table), then those rows.

        Args:
            stmt (Select): the filtered, scoped, sorted list query (ties broken by key).
            request (Request): the list request (its sort is applied to the outer query again).
            limit (int): rows per page.
            offset (int): rows before the page.

        Returns:
            Select: the page's rows in the list's order; the related row of a many-to-one
            column joined in the same statement, related collections with ``selectinload``.
        """
        keys = stmt.with_only_columns(*self.pk_columns).limit(limit).offset(offset).subquery("page_keys")
        outer = select(self.model).join(keys, and_(*[k == keys.c[k.key] for k in self.pk_columns]))
        outer = self._with_tie_breaker(self.sort_query(outer, request), request)
        for relation in self._list_relations:
            one = relation.property.direction is MANYTOONE
            outer = outer.options(joinedload(relation) if one else selectinload(relation))
        return outer

    async def list(self, request: Request) -> Pagination:
        """One page of ``filtered_query``: bounded count, keys first, ties broken by key.

        Raises:
            HTTPException: 400 for a page or page size that is not a positive whole number.
        """
        # first: filtered_query refuses, with a reason, parameters the list does not offer
        stmt = self._with_tie_breaker(await self.filtered_query(request), request)
        page = self.validate_page_number(request.query_params.get("page"), 1)
        page_size = self.validate_page_number(request.query_params.get("pageSize"), self.page_size)
        page_size = min(page_size, max(self.page_size_options))
        if page_size < 1:
            raise HTTPException(status_code=status.HTTP_400_BAD_REQUEST, detail="Invalid page or pageSize parameter")
        page = min(max(page, 1), _MAX_PAGE)
        bound = (page - 1) * page_size + max(self.count_limit, page_size)
        found: dict[str, Any] = {}

        async def count() -> None:
            found["count"] = await self.bounded_count(request, stmt, bound)

        async def rows() -> None:
            query = self.page_query(stmt, request, limit=page_size, offset=(page - 1) * page_size)
            found["rows"] = await self._run_query(query)

        async with anyio.create_task_group() as tg:  # two connections: the count and the page at once
            tg.start_soon(count)
            tg.start_soon(rows)
        last = Pagination.max_page(found["count"], page_size)
        if page > last:  # past the end: sqladmin's list route redirects to the last page
            return Pagination(rows=[], page=last, page_size=page_size, count=found["count"])
        return Pagination(rows=found["rows"], page=page, page_size=page_size, count=found["count"])

    def _build_url_for(self, name: str, request: Request, obj: Any) -> URL:
        """The URL of route ``name`` (details, edit) for ``obj``: sqladmin's, built once per
        request, route and entity, with the key filled in (the same string ``url_for`` gives)."""
        cache = getattr(request.state, "portal_link_templates", None)
        if cache is None:
            cache = request.state.portal_link_templates = {}
        identity = self._identity_for_object(obj)
        template = cache.get((name, identity))
        if template is None:
            template = cache[(name, identity)] = str(request.url_for(name, identity=identity, pk=_KEY_MARK))
        return URL(template.replace(_KEY_MARK, str(get_object_identifier(obj))))
