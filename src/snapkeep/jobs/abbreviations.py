"""IDs people can type (issue 14): a unique abbreviation of at least ``MIN_LENGTH`` characters.

An ID's first 8 characters are its creation time (objects made in the same second share them) and
its tail is random, so tables show the last 8; either end may be typed. ``resolve`` finds the one
object of a kind whose ID starts or ends with the text, among those the caller may see
(``jobs.access.visible``), so an abbreviation never reveals another user's object. No match is
"not found"; several are refused with the matches listed. The full ID is what is stored and answered.
"""

from __future__ import annotations

import re

from sqlalchemy import or_, select

from snapkeep.errors import NotFoundError, ValidationError
from snapkeep.jobs.access import LABELS, Principal, visible
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.migrations import schema

MIN_LENGTH = 6
#: most matches read for one abbreviation (an ambiguous one lists a few; more says nothing new)
MATCH_LIMIT = 20
_HEX = re.compile(rf"[0-9a-f]{{{MIN_LENGTH},23}}")

#: kind -> (table, ID columns) to search; a filter group is found by its ``group_id``, a backup by
#: its own ID or its item's (the components of an account backup need their full IDs)
COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "jobs": ("jobs", ("id",)),
    "destinations": ("destinations", ("id",)),
    "schedules": ("schedules", ("id",)),
    "hooks": ("hooks", ("id",)),
    "account_filters": ("account_filters", ("id",)),
    "filter_groups": ("account_filters", ("group_id",)),
    "queue_groups": ("queue_groups", ("id",)),
    "queue_items": ("queue_items", ("id",)),
    "logs": ("logs", ("id",)),
    "log_items": ("log_items", ("id",)),
    "backups": ("backups", ("id", "item_id")),
    "alerts": ("alerts", ("id",)),
    "users": ("users", ("id",)),
    "tokens": ("tokens", ("id",)),
}


def is_abbreviation(value: object) -> bool:
    """Whether ``value`` looks like an abbreviated ID (6 to 23 lowercase hex characters)."""
    return isinstance(value, str) and _HEX.fullmatch(value) is not None


def resolve(tx: Transaction, who: Principal, kind: str, text: str, field: str) -> str:
    """The full ID of the one ``kind`` object visible to ``who`` whose ID starts or ends with ``text``.
    Raises NotFoundError (none) and ValidationError naming ``field`` (several, listed)."""
    table_name, column_names = COLUMNS[kind]
    table = schema.TABLES[table_name]
    found: list[str] = []
    for column in (table.c[name] for name in column_names):
        query = (
            select(column)
            .where(or_(column.startswith(text, autoescape=True), column.endswith(text, autoescape=True)))
            .distinct()
            .limit(MATCH_LIMIT)
        )
        found += [str(ident) for ident in tx.connection.execute(query).scalars() if str(ident) not in found]
    mine = [ident for ident in found if visible(tx, who, kind, ident)]
    if not mine:
        raise NotFoundError(kind=LABELS.get(kind, kind), ident=text)
    if len(mine) > 1:
        raise ValidationError(
            field=field, problem=f"{text!r} matches several: {', '.join(sorted(mine))}; give more characters"
        )
    return mine[0]
