"""Account functions (API.md sections 3 and 6): listAccounts, getAccount, listBackupForAccounts.

Accounts come from the account provider configured in ``<home>/config.toml`` (``jobs.accounts``);
an account's ``_id`` and ``name`` are its username. ``listBackupForAccounts`` lists the accounts
that have backups in the catalog (also accounts the provider no longer lists: their backups stay
restorable), each with how many backups, the newest one, its destinations and the ``contains``
bits its backups hold; ``contains`` keeps accounts with a backup holding any of those bits.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from snapkeep.api.functions.base import CallContext, FunctionSpec, ListParams, Result, apply_list, param_specs
from snapkeep.jobs import accounts, backups
from snapkeep.jobs.models.base import NonNegative, Strict, validate


class AccountParams(Strict):
    id: Annotated[str, Field(alias="_id", min_length=1, description="the account's username")]


class BackupAccountsParams(ListParams):
    contains: NonNegative | None = Field(
        None, description="only accounts with a backup holding any of these bits"
    )


def list_accounts(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(ListParams, params)
    items = [
        accounts.present(account)
        for account in accounts.list_accounts(context.home)
        if context.caller.sees_account(account.username)
    ]
    page, total = apply_list(items, options)
    return "Accounts Listed Successfully", {"accounts": page, "total": total}


def get_account(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(AccountParams, params)
    return "Account Retrieved Successfully", accounts.present(accounts.get_account(context.home, options.id))


def list_backup_accounts(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(BackupAccountsParams, params)
    with context.catalog.transaction(write=False) as tx:
        rows = [row for row in backups.rows(tx) if row.account and context.caller.sees_account(row.account)]
    found: dict[str, dict[str, Any]] = {}
    for row in rows:  # oldest first: the last one seen is the newest
        item = backups.present(row)
        entry = found.setdefault(
            row.account,
            {"_id": row.account, "name": row.account, "account": row.account, "backups": 0, "contains": 0},
        )
        entry["backups"] += 1
        entry["contains"] |= int(item["backup_contains"])
        entry["last_backup"] = item["created"]
        entry["last_backup_id"] = item["_id"]
        entry.setdefault("destinations", [])
        if item["destination"] not in entry["destinations"]:
            entry["destinations"].append(item["destination"])
    items = [
        entry
        for entry in found.values()
        if options.contains is None or options.contains == 0 or entry["contains"] & options.contains
    ]
    items.sort(key=lambda entry: str(entry["account"]))
    page, total = apply_list(items, options)
    return "Accounts With Backups Listed Successfully", {"accounts": page, "total": total}


FUNCTIONS = [
    FunctionSpec(
        "listAccounts", "List the accounts of the account provider", param_specs(ListParams), list_accounts
    ),
    FunctionSpec("getAccount", "One account by username", param_specs(AccountParams), get_account),
    FunctionSpec(
        "listBackupForAccounts",
        "List the accounts that have backups",
        param_specs(BackupAccountsParams),
        list_backup_accounts,
    ),
]
