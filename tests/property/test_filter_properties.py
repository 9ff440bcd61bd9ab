"""Account filter selection against a direct, naive evaluation of API.md's rules."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from snapkeep.sources.accounts.base import Account
from snapkeep.sources.filters import AccountFilter, select_accounts

NAMES = st.sampled_from(["alice", "bob", "carol", "dave", "Eve", "zed", "mallory", "0day"])
WORDS = st.sampled_from(["a", "b", "c", "root", "gold", "silver", "alice", "bob"])

accounts_strategy = st.builds(
    lambda name, owner, reseller, package, suspended, tags, usage, inodes: Account(
        username=name,
        home=f"/home/{name}",
        owner=owner,
        reseller=reseller,
        package=package,
        suspended=suspended,
        tags=tuple(tags),
        disk_usage=usage,
        inodes=inodes,
    ),
    NAMES,
    WORDS,
    st.booleans(),
    WORDS,
    st.booleans(),
    st.lists(WORDS, max_size=3),
    st.integers(0, 1000),
    st.integers(0, 1000),
)

filter_strategy = st.builds(
    AccountFilter,
    type=st.sampled_from([2, 4, 8, 16, 32, 64, 128, 256, 512]),
    condition=st.sampled_from([1, 2]),
    entries=st.lists(st.one_of(WORDS, NAMES), max_size=3).map(tuple),
    usage=st.integers(0, 1000),
    range_start=st.sampled_from(["a", "c", "0"]),
    range_end=st.sampled_from(["c", "m", "z"]),
    regex=st.sampled_from(["^a", "o", "e$", "[0-9]", "^(bob|zed)$"]),
)


def naive_matches(flt: AccountFilter, account: Account) -> bool:
    """API.md section 5, written out once more without the lookup table."""
    if flt.type == 2:
        hit = account.username in flt.entries
    elif flt.type == 4:
        hit = account.owner in flt.entries or (account.reseller and account.username in flt.entries)
    elif flt.type == 8:
        hit = account.suspended
    elif flt.type == 16:
        hit = account.disk_usage > flt.usage
    elif flt.type == 32:
        hit = account.inodes > flt.usage
    elif flt.type == 64:
        hit = account.package in flt.entries
    elif flt.type == 128:
        hit = ord(flt.range_start.lower()) <= ord(account.username[0].lower()) <= ord(flt.range_end.lower())
    elif flt.type == 256:
        hit = bool(re.compile(flt.regex).search(account.username))
    else:
        hit = bool(set(account.tags) & set(flt.entries))
    return hit if flt.condition == 1 else not hit


def naive_select(accounts, job_filters, groups):
    chosen = []
    for account in accounts:
        keep = True
        for inner in job_filters:
            if not inner:
                continue
            passed_one = False
            for group_id in inner:
                if all(naive_matches(flt, account) for flt in groups[group_id]):
                    passed_one = True
            keep = keep and passed_one
        if keep:
            chosen.append(account)
    return chosen


@settings(max_examples=300, deadline=None)
@given(
    accounts=st.lists(accounts_strategy, max_size=8),
    groups=st.lists(st.lists(filter_strategy, min_size=1, max_size=3), min_size=1, max_size=4),
    data=st.data(),
)
def test_selection_matches_naive_evaluation(accounts, groups, data):
    by_id = {f"g{index}": group for index, group in enumerate(groups)}
    ids = sorted(by_id)
    job_filters = data.draw(st.lists(st.lists(st.sampled_from(ids), max_size=3), max_size=3))
    assert select_accounts(accounts, job_filters, by_id) == naive_select(accounts, job_filters, by_id)


@given(accounts=st.lists(accounts_strategy, max_size=6), flt=filter_strategy)
def test_exclude_is_the_complement_of_include(accounts, flt):
    include = AccountFilter(**{**_fields(flt), "condition": 1})
    exclude = AccountFilter(**{**_fields(flt), "condition": 2})
    for account in accounts:
        assert include.passes(account) != exclude.passes(account)


@given(accounts=st.lists(accounts_strategy, max_size=6))
def test_no_filters_select_every_account(accounts):
    assert select_accounts(accounts, [], {}) == accounts


def _fields(flt: AccountFilter) -> dict:
    return {name: getattr(flt, name) for name in AccountFilter.__slots__}
