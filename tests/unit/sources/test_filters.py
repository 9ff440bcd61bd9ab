"""Each account filter type, include and exclude: which accounts it keeps and which it drops."""

from __future__ import annotations

import pytest

from snapkeep.errors import NotFoundError, ValidationError
from snapkeep.sources.accounts.base import Account
from snapkeep.sources.filters import AccountFilter, groups_from_documents, select_accounts

ACCOUNTS = [
    Account("alice", "/home/alice", owner="res1", package="gold", tags=("vip",), disk_usage=5000, inodes=50),
    Account("bob", "/home/bob", owner="root", package="basic", suspended=True, disk_usage=100, inodes=900),
    Account("res1", "/home/res1", owner="root", reseller=True, package="gold", disk_usage=0, inodes=1),
    Account(
        "Zoe", "/home/Zoe", owner="res1", package="basic", tags=("vip", "eu"), disk_usage=10**9, inodes=10
    ),
]

CASES = [
    # (document, usernames kept by include)
    ({"type": 2, "list": ["alice", "bob"]}, ["alice", "bob"]),
    ({"type": 4, "list": ["res1"]}, ["alice", "res1", "Zoe"]),
    ({"type": 8}, ["bob"]),
    ({"type": 16, "usage": 1000}, ["alice", "Zoe"]),
    ({"type": 32, "usage": 40}, ["alice", "bob"]),
    ({"type": 64, "list": ["gold"]}, ["alice", "res1"]),
    ({"type": 128, "range_start": "a", "range_end": "c"}, ["alice", "bob"]),
    ({"type": 128, "range_start": "R", "range_end": "z"}, ["res1", "Zoe"]),
    ({"type": 256, "regex": "^[a-c]|e$"}, ["alice", "bob", "Zoe"]),
    ({"type": 512, "list": ["vip"]}, ["alice", "Zoe"]),
]


def usernames(accounts):
    return [account.username for account in accounts]


@pytest.mark.parametrize(
    ("document", "kept"), CASES, ids=[f"type{c[0]['type']}-{i}" for i, c in enumerate(CASES)]
)
def test_include_keeps_matches_and_exclude_keeps_the_rest(document, kept):
    groups = groups_from_documents(
        [{**document, "group_id": "inc", "condition": 1}, {**document, "group_id": "exc", "condition": 2}]
    )
    assert usernames(select_accounts(ACCOUNTS, [["inc"]], groups)) == kept
    rest = [name for name in usernames(ACCOUNTS) if name not in kept]
    assert usernames(select_accounts(ACCOUNTS, [["exc"]], groups)) == rest


def test_group_needs_every_filter_lists_or_inside_and_between():
    groups = groups_from_documents(
        [
            {"group_id": "gold-vip", "type": 64, "list": ["gold"]},
            {"group_id": "gold-vip", "type": 512, "list": ["vip"]},
            {"group_id": "suspended", "type": 8},
            {"group_id": "not-zoe", "type": 2, "list": ["Zoe"], "condition": 2},
        ]
    )
    assert usernames(select_accounts(ACCOUNTS, [["gold-vip"]], groups)) == ["alice"]
    assert usernames(select_accounts(ACCOUNTS, [["gold-vip", "suspended"]], groups)) == ["alice", "bob"]
    assert usernames(select_accounts(ACCOUNTS, [["gold-vip", "suspended"], ["not-zoe"]], groups)) == [
        "alice",
        "bob",
    ]
    assert usernames(select_accounts(ACCOUNTS, [["suspended"], ["gold-vip"]], groups)) == []
    assert usernames(select_accounts(ACCOUNTS, [], groups)) == usernames(ACCOUNTS)


def test_unknown_group_and_bad_documents_are_named():
    with pytest.raises(NotFoundError, match="Account filter group not found: nope"):
        select_accounts(ACCOUNTS, [["nope"]], {})
    with pytest.raises(ValidationError, match="type"):
        AccountFilter.from_document({"type": 3})
    with pytest.raises(ValidationError, match="regex"):
        AccountFilter.from_document({"type": 256, "regex": "("})
    with pytest.raises(ValidationError, match="condition"):
        AccountFilter.from_document({"type": 8, "condition": 3})
