"""Lists of the managed documents, filtered, sorted and paged in the catalog (API.md section 3).

Why: a list call used to read, decode and present every object of a kind and then keep 100 of them,
so its cost grew with the catalog (attack report MEDIUM-10: 2,000 jobs, 30 clients, list p50 5.1 s).
Here one SELECT (WHERE, ORDER BY, LIMIT, OFFSET) and one COUNT do that work on SQLite and PostgreSQL,
and only the page's rows are decoded and presented.

The list parameters name fields of the *presented* object (the API shape), not of the stored
document. ``FIELDS`` says, per kind, where each top-level field of the API shape comes from:

- a column or a document path, with the ``Kind`` of value the presenter shows (a stored boolean is
  shown as 1/null ``FLAG`` or 1/0 ``BOOLEAN``, a time column as ISO-8601 text). These are matched and
  sorted in SQL exactly as ``api.functions.base.apply_list`` matches and sorts the presented objects;
- ``COMPUTED``: made by the presenter from other rows, or masked (a job's ``destination_name``,
  ``schedules``, ``hooks``; a destination's ``options``). SQL cannot see those: ``split`` says so, and
  the caller presents the rows SQL narrowed down and applies the Python rules to them (correct, and
  as slow as before for that one query).

A path outside the API shape, or below a scalar, is absent: Python sees None, so a find matches only
an empty value and a sort on it changes nothing; that is decided here without reading a row.
Field names never reach SQL text: a path is looked up in ``FIELDS``, and document paths and values are
bound parameters.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, and_, case, exists, false, func, literal, not_, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from snapkeep.clock import isoformat
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.migrations import schema

# Offsets and limits beyond this cannot matter (no catalog holds that many rows); SQLite's integers
# are 64-bit, so a larger request value is clamped rather than overflowing the driver.
MAX_ROWS = 2**62
_INT_RANGE = 2**63


class Kind(enum.Enum):
    """How the presenter shows a stored value (what find compares and sort orders)."""

    TEXT = "text"  # a string, shown as it is
    INT = "int"  # an integer, shown as it is
    FLAG = "flag"  # a boolean, shown as 1 or null
    BOOLEAN = "boolean"  # a boolean, shown as 1 or 0
    TEXT_LIST = "text_list"  # a list of strings
    TIME = "time"  # a time column, shown as ISO-8601 UTC with seconds precision
    OBJECT = "object"  # an object whose fields are listed
    COMPUTED = "computed"  # made by the presenter: only the Python rules can find or sort on it
    ABSENT = "absent"  # not in the API shape: None


@dataclass(frozen=True)
class Field:
    """Where a field of the API shape comes from: a column, or a path in the stored document."""

    kind: Kind
    column: str | None = None
    path: tuple[str, ...] = ()
    fields: Mapping[str, Field] = field(default_factory=dict)


def _col(name: str, kind: Kind) -> Field:
    return Field(kind, column=name)


def _doc(kind: Kind, *path: str) -> Field:
    return Field(kind, path=path)


def _object(*path: str, **fields: Kind) -> Field:
    return Field(Kind.OBJECT, path=path, fields={key: _doc(kind, *path, key) for key, kind in fields.items()})


COMPUTED = Field(Kind.COMPUTED)
_ID = _col("id", Kind.TEXT)
_NAME = _col("name", Kind.TEXT)
# Every managed object shows its owner (a column) and the owner's name (looked up by the presenter).
# A table without the ``owner`` column (before the users migration) shows neither: ``page`` treats a
# column the table lacks as absent, which is what the presenter then shows (nothing).
_OWNED = {"owner": _col("owner", Kind.TEXT), "owner_name": COMPUTED}

# Every top-level field of each kind's API object (the presenters in api/functions/); a test checks that
# the presenters show no key missing here, so a new field cannot be mistaken for an absent one.
FIELDS: dict[str, dict[str, Field]] = {
    "jobs": {
        "_id": _ID,
        "name": _NAME,
        "type": _doc(Kind.INT, "type"),
        "destination": _doc(Kind.TEXT_LIST, "destination"),
        "destination_name": COMPUTED,  # the destinations' names
        "contains": _doc(Kind.INT, "contains"),
        "options": _doc(Kind.INT, "options"),
        "structure": _doc(Kind.INT, "structure"),
        "encrypted": _doc(Kind.FLAG, "encrypted"),
        "include_list": _doc(Kind.TEXT_LIST, "include_list"),
        "exclude_list": _doc(Kind.TEXT_LIST, "exclude_list"),
        "filters": COMPUTED,  # a list of lists
        "schedules": COMPUTED,  # links with the schedules' names and types
        "time": _doc(Kind.INT, "time"),
        "hooks": COMPUTED,  # the hooks that apply to the job
        "monitor": _object("monitor", notran=Kind.INT, ranfor=Kind.INT),
        "retry_failed": _doc(Kind.BOOLEAN, "retry_failed"),
        "manually_retain": _doc(Kind.INT, "manually_retain"),
        "mysql_exclude_db_by_size": _doc(Kind.INT, "mysql_exclude_db_by_size"),
        **_OWNED,
        "next_run": COMPUTED,  # computed from the schedules when presented (issue 13, D10)
        "last_run": _col("last_run", Kind.TIME),
        "running": _col("running", Kind.FLAG),
        "disabled": _doc(Kind.FLAG, "disabled"),
        "node": _col("node", Kind.TEXT),  # the node that runs it (issue 16; index ix_jobs_node)
        "node_name": COMPUTED,
    },
    "destinations": {
        "_id": _ID,
        "name": _NAME,
        "type": _col("type", Kind.TEXT),
        "options": COMPUTED,  # secrets masked, the SFTP fingerprint added
        "disabled": _doc(Kind.FLAG, "disabled"),
        "readonly": _doc(Kind.FLAG, "readonly"),
        "threads": _doc(Kind.INT, "threads"),
        "disk_limit": _doc(Kind.INT, "disk_limit"),
        "disk_usage": COMPUTED,  # asked of the destination
        "count": COMPUTED,  # jobs using it
        "node": _doc(Kind.TEXT, "node"),  # a Local destination's node (issue 16); "" for shared ones
        **_OWNED,
    },
    "schedules": {
        "_id": _ID,
        "name": _NAME,
        "type": _doc(Kind.INT, "type"),
        "type_data": COMPUTED,  # an integer, a list or a job ID, by type
        "delay_amount": _doc(Kind.INT, "delay_amount"),
        "delay_type": _doc(Kind.INT, "delay_type"),
        "count": COMPUTED,  # jobs using it
        "jobs": COMPUTED,
        **_OWNED,
    },
    "hooks": {
        "_id": _ID,
        "name": _NAME,
        "script": _doc(Kind.TEXT, "script"),
        "position_type": _doc(Kind.INT, "position_type"),
        "position": _doc(Kind.INT, "position"),
        "data_list": _doc(Kind.TEXT_LIST, "data_list"),
        "disabled": _doc(Kind.FLAG, "disabled"),
        "timeout": _doc(Kind.INT, "timeout"),
        **_OWNED,
    },
    "account_filters": {
        "_id": _ID,
        "group_id": _col("group_id", Kind.TEXT),
        "name": _NAME,
        "type": _doc(Kind.INT, "type"),
        "condition": _doc(Kind.INT, "condition"),
        "list": _doc(Kind.TEXT_LIST, "list"),
        "usage": _doc(Kind.INT, "usage"),
        "range_start": _doc(Kind.TEXT, "range_start"),
        "range_end": _doc(Kind.TEXT, "range_end"),
        "regex": _doc(Kind.TEXT, "regex"),
        **_OWNED,
    },
}

ABSENT = Field(Kind.ABSENT)  # a path the API shape does not have: always None


def as_text(value: Any) -> str:
    """The text a find compares (API.md section 3): None is empty, booleans are 1 and 0."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@dataclass(frozen=True)
class ListQuery:
    """What a list asks for, in terms of the API shape.

    ``find``: (dotted path, value) pairs, all of which must match; ``sort``: (dotted path, 1 or -1) in
    order, ties broken by creation (oldest first) then ID; ``text``: a case-insensitive substring of the
    name (empty: any); ``skip`` and ``limit`` (None: no limit) page the result.
    """

    find: Sequence[tuple[str, Any]] = ()
    sort: Sequence[tuple[str, int]] = ()
    text: str = ""
    skip: int = 0
    limit: int | None = None


def resolve(kind: str, path: str) -> Field:
    """Where ``path`` of ``kind``'s API object comes from: a column or document field, ``ABSENT``, or
    ``COMPUTED`` (then only the Python rules can use it). Raises KeyError for an unknown kind."""
    parts = path.split(".")
    found = FIELDS[kind].get(parts[0], ABSENT)
    for part in parts[1:]:
        if found.kind is Kind.COMPUTED:
            return COMPUTED
        if found.kind is Kind.OBJECT:
            found = found.fields.get(part, ABSENT)
        elif found.kind is Kind.TEXT_LIST and part.isdigit():
            return COMPUTED  # an element by index: left to the Python rules
        else:
            return ABSENT  # below a scalar (or a list, by name): Python finds nothing there
    return COMPUTED if found.kind is Kind.OBJECT else found


def _integer(text: str) -> int | None:
    """``text`` as an integer when ``str(int)`` gives it back exactly (the Python rule compares text)."""
    try:
        number = int(text)
    except ValueError:
        return None
    return number if str(number) == text else None


def _find_in_sql(kind: str, path: str, value: Any) -> bool:
    found = resolve(kind, path)
    text = as_text(value)
    if found.kind is Kind.COMPUTED:
        return False
    if found.kind is Kind.TEXT_LIST:
        return not text.startswith("[")  # the Python rule also compares the list's printed form
    if found.kind is Kind.INT:
        number = _integer(text)
        return number is None or -_INT_RANGE < number < _INT_RANGE  # beyond 64 bits: Python compares
    return True


def _sort_in_sql(kind: str, path: str) -> bool:
    return resolve(kind, path).kind not in (Kind.COMPUTED, Kind.TEXT_LIST)


def split(kind: str, query: ListQuery) -> tuple[ListQuery, bool]:
    """The part of ``query`` that SQL can do, and whether that is all of it.

    When it is not (a find or sort on a ``COMPUTED`` field, or a sort on a list), the part is the
    conditions SQL can check and the text filter, without sort or paging: the caller presents those
    rows and applies the whole query with the Python rules (``api.functions.base.apply_list``)."""
    finds = [(path, value) for path, value in query.find if _find_in_sql(kind, path, value)]
    if len(finds) == len(query.find) and all(_sort_in_sql(kind, path) for path, _ in query.sort):
        return query, True
    return ListQuery(find=finds, text=query.text), False


# --- SQL ----------------------------------------------------------------------------------------


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class _Builder:
    """SQL expressions for one table on one dialect (SQLite or PostgreSQL)."""

    def __init__(self, table: Table, dialect: str) -> None:
        self.table = table
        self.sqlite = dialect == "sqlite"

    def fold(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        """Lower case as Python's ``str.lower`` (SQLite: that very function; PostgreSQL: ``lower``),
        compared by code point as Python compares strings."""
        if self.sqlite:
            return func.snapkeep_lower(value)
        return func.lower(value).collate("C")

    def value(self, found: Field) -> ColumnElement[Any]:
        if found.column:
            return self.table.c[found.column]
        extracted = self.table.c.document[found.path]
        value: ColumnElement[Any]
        if found.kind is Kind.INT:
            value = extracted.as_numeric(38, 0)
        elif found.kind in (Kind.FLAG, Kind.BOOLEAN):
            value = extracted.as_boolean()
        else:
            value = extracted.as_string()
        return value

    def truthy(self, found: Field) -> ColumnElement[bool]:
        if found.column:
            return self.table.c[found.column] != 0
        return func.coalesce(self.value(found), false()) == true()

    def matches(self, found: Field, text: str) -> ColumnElement[bool]:
        """The rule of ``base._matches``: the presented value, as text, equals ``text``."""
        if found.kind is Kind.ABSENT:
            return true() if text in ("", "0") else false()
        if "\x00" in text and not self.sqlite:
            return false()  # PostgreSQL text holds no NUL (nor may a parameter): nothing stored equals it
        if found.kind in (Kind.FLAG, Kind.BOOLEAN):
            shown_false = ("", "0") if found.kind is Kind.FLAG else ("0",)  # an unset flag is 0 too
            if text == "1":
                return self.truthy(found)
            return not_(self.truthy(found)) if text in shown_false else false()
        if found.kind is Kind.TEXT_LIST:
            return self._contains(found, text)
        value = self.value(found)
        if text == "":
            return value.is_(None) if found.kind is not Kind.TEXT else or_(value.is_(None), value == "")
        if text == "0":  # an unset (null) value matches 0, as in the Python rule
            if found.kind is Kind.TIME:
                return value.is_(None)
            return or_(value.is_(None), value == (0 if found.kind is Kind.INT else text))
        if found.kind is Kind.INT:
            number = _integer(text)
            return false() if number is None else value == number
        if found.kind is Kind.TIME:
            return self._at_second(value, text)
        return value == text

    def _contains(self, found: Field, text: str) -> ColumnElement[bool]:
        document = self.table.c.document
        if self.sqlite:
            path = "$" + "".join(f".{json.dumps(part)}" for part in found.path)
            elements = func.json_each(document, literal(path)).table_valued("value")
        else:
            elements = func.json_array_elements_text(document[found.path]).table_valued("value")
        return exists(select(literal(1)).select_from(elements).where(elements.c.value == text))

    @staticmethod
    def _at_second(value: ColumnElement[Any], text: str) -> ColumnElement[bool]:
        try:
            moment = _dt.datetime.fromisoformat(text)
        except ValueError:
            return false()
        if moment.tzinfo is None or isoformat(moment) != text:
            return false()
        return and_(value >= moment, value < moment + _dt.timedelta(seconds=1))

    def sort_key(self, found: Field) -> ColumnElement[Any]:
        """The order of ``base._sort_key`` (None first, then numbers, then lower-cased text)."""
        if found.kind in (Kind.FLAG, Kind.BOOLEAN):
            return case((self.truthy(found), 1), else_=0)
        value = self.value(found)
        if found.kind is Kind.TEXT:
            return self.fold(value)
        if found.kind is Kind.TIME:  # shown with seconds precision: equal within a second
            return func.substr(value, 1, 19) if self.sqlite else func.date_trunc("second", value)
        return value

    def text_filter(self, text: str) -> ColumnElement[bool]:
        name = self.table.c.name
        if self.sqlite:
            return func.instr(self.fold(name), text) > 0
        if "\x00" in text:
            return false()
        return func.strpos(func.lower(name), text) > 0


def _on(table: Table, found: Field) -> Field:
    """``found``, or ``ABSENT`` when it names a column ``table`` does not have (yet)."""
    return ABSENT if found.column and found.column not in table.c else found


def _register_functions(connection: Connection) -> None:
    """Give SQLite Python's ``str.lower`` (its own ``lower`` only folds ASCII), once per connection."""
    record = connection.connection
    if record.info.get("snapkeep_lower"):
        return
    record.driver_connection.create_function(  # type: ignore[union-attr]
        "snapkeep_lower", 1, _lower, deterministic=True
    )
    record.info["snapkeep_lower"] = True


def page(
    tx: Transaction, kind: str, query: ListQuery, *, owners: Collection[str] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The page of ``kind``'s stored objects that ``query`` asks for, and how many match in all.

    ``owners``: only objects whose ``owner`` column is one of these (None: every object); a kind
    without that column cannot be filtered by owner (ValueError, never a silent "all"). ``query`` must
    be one ``split`` found SQL can do whole (ValueError otherwise)."""
    table = schema.TABLES[kind]
    connection = tx.connection
    dialect = connection.dialect.name
    if dialect == "sqlite":
        _register_functions(connection)
    build = _Builder(table, dialect)
    conditions: list[ColumnElement[bool]] = []
    if owners is not None:
        if "owner" not in table.c:
            raise ValueError(f"{kind} have no owner column: cannot list them by owner")
        conditions.append(table.c.owner.in_(sorted(set(owners))))
    for path, value in query.find:
        if not _find_in_sql(kind, path, value):
            raise ValueError(f"find[{path}] of {kind} cannot be done in SQL: split the query first")
        conditions.append(build.matches(_on(table, resolve(kind, path)), as_text(value)))
    if query.text:
        conditions.append(build.text_filter(query.text.lower()))
    order: list[ColumnElement[Any]] = []
    for path, direction in query.sort:
        if not _sort_in_sql(kind, path):
            raise ValueError(f"sort[{path}] of {kind} cannot be done in SQL: split the query first")
        found = _on(table, resolve(kind, path))
        if found.kind is Kind.ABSENT:
            continue
        key = build.sort_key(found)
        order.append(key.asc().nulls_first() if direction >= 0 else key.desc().nulls_last())
    skip = min(max(query.skip, 0), MAX_ROWS)
    limit = None if query.limit is None else min(max(query.limit, 0), MAX_ROWS)
    # IDs first, then the documents of the page only: the sort never carries whole documents.
    ids = (
        select(table.c.id)
        .where(*conditions)
        .order_by(*order, table.c.created, table.c.id)
        .offset(skip or None)
        .limit(limit)
    )
    page_ids = [str(ident) for ident in connection.execute(ids).scalars()]
    rows = {row.id: row for row in connection.execute(select(table).where(table.c.id.in_(page_ids)))}
    objects = [tx.object_from_row(kind, rows[ident]) for ident in page_ids if ident in rows]
    if (limit is None or len(page_ids) < limit) and (page_ids or not skip):
        total = skip + len(page_ids)
    else:
        total = int(
            connection.execute(select(func.count()).select_from(table).where(*conditions)).scalar_one()
        )
    return objects, total


__all__ = ["FIELDS", "Field", "Kind", "ListQuery", "as_text", "page", "resolve", "split"]
