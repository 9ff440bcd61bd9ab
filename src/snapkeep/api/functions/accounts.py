"""Account functions (API.md sections 3 and 6): listAccounts, getAccount, listBackupForAccounts.

Accounts come from the account provider configured in ``<home>/config.toml`` (``jobs.accounts``);
an account's ``_id`` is a stable 24-hex ID derived from its username (``account_id``), its ``name``
the username; every ``_id``/``account_id`` parameter takes either. ``listBackupForAccounts`` lists the
accounts that have backups in the catalog (also accounts the provider no longer lists: their backups stay
restorable), each with how many backups, the newest one, its destinations and the ``contains``
bits its backups hold; ``contains`` keeps accounts with a backup holding any of those bits.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from snapkeep.api.functions.base import CallContext, FunctionSpec, ListParams, Result, apply_list, param_specs
from snapkeep.errors import NotFoundError, ValidationError
from snapkeep.jobs import access, accounts, backups, settings
from snapkeep.jobs.codes import JobType
from snapkeep.jobs.models.base import IdList, NonNegative, ObjectId, Strict, choice, listish, validate
from snapkeep.sources.accounts.base import account_id


class AccountParams(Strict):
    id: Annotated[str, Field(alias="_id", min_length=1, description="the account's _id or username")]


class BackupAccountsParams(ListParams):
    contains: NonNegative | None = Field(
        None, description="only accounts with a backup holding any of these bits"
    )
    type: Annotated[int | None, choice(JobType.labels())] = Field(
        None, description="1 Accounts (the only backups that belong to accounts), as JetBackup's call sends"
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
        rows = [row for row in backups.rows(tx) if row.account and access.sees_backup(context.caller, row)]
    # an account is its node's: "alice" of two servers is two entries (docs/nodes.md)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:  # oldest first: the last one seen is the newest
        item = backups.present(row)
        entry = found.setdefault(
            (backups.node_of(row), row.account),
            {
                "_id": account_id(row.account),
                "account_id": account_id(row.account),
                "name": row.account,
                "account": row.account,
                "node": backups.node_of(row),
                "backups": 0,
                "contains": 0,
            },
        )
        entry["backups"] += 1
        entry["contains"] |= int(item["backup_contains"])
        entry["last_backup"] = item["created"]
        entry["last_backup_id"] = item["_id"]
        entry["backup"] = item  # JetBackup's shape: {account_id, account, backup{...}} (the newest)
        entry.setdefault("destinations", [])
        if item["destination"] not in entry["destinations"]:
            entry["destinations"].append(item["destination"])
    items = [
        entry
        for entry in found.values()
        if (options.contains is None or options.contains == 0 or entry["contains"] & options.contains)
        and options.type in (None, JobType.ACCOUNTS)
    ]
    items.sort(key=lambda entry: (str(entry["account"]), str(entry["node"])))
    page, total = apply_list(items, options)
    return "Accounts With Backups Listed Successfully", {"accounts": page, "total": total}


class ByFiltersParams(ListParams):
    filters: Annotated[list[IdList], BeforeValidator(listish)] = Field(
        description="filters[i][j]=GROUP_ID: groups ANDed across i, ORed within i (as a job's filters)"
    )


def list_by_filters(context: CallContext, params: dict[str, Any]) -> Result:
    """``listAccountsByFilters``: the accounts a job with these ``filters`` would back up (the
    caller's own accounts only)."""
    options = validate(ByFiltersParams, params)
    listed = [a for a in accounts.list_accounts(context.home) if context.caller.sees_account(a.username)]
    with context.catalog.transaction(write=False) as tx:
        for outer, group in enumerate(options.filters):
            for inner, group_id in enumerate(group):
                if not access.visible(tx, context.caller, "filter_groups", group_id) or not tx.all(
                    "account_filters", group_id=group_id
                ):
                    raise ValidationError(
                        field=f"filters[{outer}][{inner}]",
                        problem=f"no such account filter group: {group_id}",
                    )
        chosen = accounts.job_accounts(tx, listed, {"filters": options.filters})
    page, total = apply_list([accounts.present(account) for account in chosen], options)
    return "Accounts Listed Successfully", {"accounts": page, "total": total}


class ExcludeListParams(Strict):
    account_id: str = Field(min_length=1, description="the account's _id or username")
    job_id: ObjectId | None = Field(None, description="the Backup Job it applies to (default: every job)")
    entries: Annotated[list[str], BeforeValidator(listish)] = Field(
        default_factory=list, alias="list", description="globs relative to the account's home; empty removes"
    )


class GetExcludeListParams(Strict):
    account_id: str = Field(min_length=1, description="the account's _id or username")


def _username(context: CallContext, ident: str) -> str:
    """The username of account ``ident`` (its ``_id`` or username), from the provider or its backups."""
    try:
        return accounts.get_account(context.home, ident).username
    except NotFoundError:
        with context.catalog.transaction(write=False) as tx:
            for row in backups.rows(tx):
                if row.account and ident in (row.account, account_id(row.account)):
                    return row.account
        raise


def manage_exclude_list(context: CallContext, params: dict[str, Any]) -> Result:
    """``manageAccountExcludeList``: an account's own excludes for one job or every job, added to the
    job's and the provider's excludes when its backups run."""
    options = validate(ExcludeListParams, params)
    username = _username(context, options.account_id)
    with context.catalog.transaction() as tx:
        if options.job_id is not None and tx.get("jobs", options.job_id) is None:
            raise ValidationError(field="job_id", problem=f"no such Backup Job: {options.job_id}")
        lists = settings.save_account_excludes(
            tx, username, options.job_id or settings.ALL_JOBS, options.entries
        )
    return "Account Exclude List Saved Successfully", _present_lists(username, lists)


def get_exclude_list(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(GetExcludeListParams, params)
    username = _username(context, options.account_id)
    with context.catalog.transaction(write=False) as tx:
        lists = settings.account_excludes(tx, username)
    return "Account Exclude List Retrieved Successfully", _present_lists(username, lists)


def _present_lists(username: str, lists: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "account_id": account_id(username),
        "account": username,
        "list": lists.get(settings.ALL_JOBS, []),
        "jobs": [{"job_id": job, "list": patterns} for job, patterns in sorted(lists.items()) if job],
    }


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
    FunctionSpec(
        "manageAccountExcludeList",
        "Set an account's exclude list for one Backup Job or every job",
        param_specs(ExcludeListParams),
        manage_exclude_list,
    ),
    FunctionSpec(
        "getAccountExcludeList",
        "An account's exclude lists",
        param_specs(GetExcludeListParams),
        get_exclude_list,
    ),
    FunctionSpec(
        "listAccountsByFilters",
        "The accounts a set of account filter groups selects",
        param_specs(ByFiltersParams),
        list_by_filters,
    ),
]
