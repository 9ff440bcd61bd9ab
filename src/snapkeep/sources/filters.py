"""Account filters (API.md section 5): which accounts an Accounts job backs up.

A filter tests one property of an account; ``condition`` 1 includes the accounts that match, 2
excludes them (passes the others). Types and what "matches" means:

=====  ======================  ==========================================================
type   name                    an account matches when
=====  ======================  ==========================================================
2      accounts list           its username is in ``list``
4      resellers               its owner is in ``list``, or it is a reseller named in ``list``
8      suspended               it is suspended
16     disk usage              its ``disk_usage`` is more than ``usage`` bytes
32     inodes                  its ``inodes`` are more than ``usage``
64     packages                its package is in ``list``
128    first-character range   its username's first character, case-insensitively, lies in
                               ``range_start``..``range_end``
256    regular expression      ``regex`` is found in its username (what ``re.search`` says,
                               computed in linear time: ``sources.name_regex``)
512    tags                    one of its tags is in ``list``
=====  ======================  ==========================================================

Filters share a group; an account passes a group when it passes every filter in it. A job's
``filters`` is a list of lists of group IDs: an account is selected when, for every inner list, it
passes at least one group of that list (OR inside a list, AND between lists). No lists selects
every account; an empty inner list constrains nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from snapkeep.errors import NotFoundError, ValidationError
from snapkeep.sources.accounts.base import Account
from snapkeep.sources.name_regex import RegexError, compile_name_regex

INCLUDE = 1
EXCLUDE = 2


@dataclass(frozen=True, slots=True)
class AccountFilter:
    """One filter, as the catalog stores it (``entries`` is the API's ``list``)."""

    type: int
    condition: int = INCLUDE
    entries: tuple[str, ...] = ()
    usage: int = 0
    range_start: str = ""
    range_end: str = ""
    regex: str = ""

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> AccountFilter:
        """A filter from its API/catalog document; raises ``ValidationError`` for an unknown type
        or condition or a bad regular expression."""
        kind = int(document["type"])
        if kind not in _MATCHERS:
            raise ValidationError(field="type", problem=f"unknown account filter type {kind}")
        condition = int(document.get("condition", INCLUDE))
        if condition not in (INCLUDE, EXCLUDE):
            raise ValidationError(
                field="condition", problem=f"must be 1 (include) or 2 (exclude), not {condition}"
            )
        regex = str(document.get("regex", "") or "")
        if kind == 256:
            try:
                compile_name_regex(regex)
            except RegexError as error:
                raise ValidationError(field="regex", problem=str(error)) from None
        return cls(
            type=kind,
            condition=condition,
            entries=tuple(str(entry) for entry in document.get("list", document.get("entries", ())) or ()),
            usage=int(document.get("usage", 0) or 0),
            range_start=str(document.get("range_start", "") or ""),
            range_end=str(document.get("range_end", "") or ""),
            regex=regex,
        )

    def matches(self, account: Account) -> bool:
        """Whether ``account`` has the property this filter tests (before the condition)."""
        return _MATCHERS[self.type](self, account)

    def passes(self, account: Account) -> bool:
        """Whether ``account`` passes: matches for include, does not match for exclude."""
        return self.matches(account) == (self.condition == INCLUDE)


def _in_range(flt: AccountFilter, account: Account) -> bool:
    if not account.username or not flt.range_start or not flt.range_end:
        return False
    first = account.username[0].lower()
    return flt.range_start.lower() <= first <= flt.range_end.lower()


_MATCHERS: dict[int, Callable[[AccountFilter, Account], bool]] = {
    2: lambda flt, account: account.username in flt.entries,
    4: lambda flt, account: (
        account.owner in flt.entries or (account.reseller and account.username in flt.entries)
    ),
    8: lambda flt, account: account.suspended,
    16: lambda flt, account: account.disk_usage > flt.usage,
    32: lambda flt, account: account.inodes > flt.usage,
    64: lambda flt, account: account.package in flt.entries,
    128: _in_range,
    256: lambda flt, account: compile_name_regex(flt.regex).search(account.username),
    512: lambda flt, account: any(tag in flt.entries for tag in account.tags),
}
FILTER_TYPES = tuple(sorted(_MATCHERS))


def passes_group(account: Account, group: Sequence[AccountFilter]) -> bool:
    """Whether ``account`` passes every filter of ``group`` (an empty group passes everyone)."""
    return all(flt.passes(account) for flt in group)


def groups_from_documents(documents: Iterable[Mapping[str, Any]]) -> dict[str, list[AccountFilter]]:
    """Filter documents (each with a ``group_id``) gathered into groups by ID."""
    groups: dict[str, list[AccountFilter]] = {}
    for document in documents:
        groups.setdefault(str(document["group_id"]), []).append(AccountFilter.from_document(document))
    return groups


def select_accounts(
    accounts: Iterable[Account],
    job_filters: Sequence[Sequence[str]],
    groups: Mapping[str, Sequence[AccountFilter]],
) -> list[Account]:
    """The accounts a job with ``job_filters`` covers, in the given order. Raises
    ``NotFoundError`` naming a group ID the job refers to that ``groups`` lacks."""
    for inner in job_filters:
        for group_id in inner:
            if group_id not in groups:
                raise NotFoundError(kind="Account filter group", ident=group_id)
    return [
        account
        for account in accounts
        if all(
            any(passes_group(account, groups[group_id]) for group_id in inner)
            for inner in job_filters
            if inner
        )
    ]
