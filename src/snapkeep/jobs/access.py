"""Who may see what: the caller as a ``Principal`` and the visibility of every kind of object.

The API's dispatcher (``api.permissions``) decides which functions a role may call; this module
answers the questions those rules and the runs ask about objects:

- ``principal(tx, user, home)``: a user with what it may reach: ``accounts`` (usernames; None = all,
  for root), the home folders of those accounts, its item permissions.
- ``visible(tx, who, kind, ident)``: may ``who`` see object ``ident`` of ``kind``? An object it may not
  see is answered exactly like one that does not exist (no existence oracle).
- ``owners(who)``: the owner IDs a list of managed objects is filtered to (None = no filter).
- ``sees_backup(who, row)``: may ``who`` see a backup row.
- ``item_allowed(who, action, component)``: may ``who`` restore/download that component of an
  account backup.
- ``inside_homes(who, path)``: is an absolute path inside one of ``who``'s accounts' homes.

Resellers own the accounts whose provider ``owner`` is the reseller's name plus those root lists in
its ``accounts``; an account owner owns its one account.
"""

from __future__ import annotations

import logging
import os.path
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from snapkeep.clock import SYSTEM, Clock
from snapkeep.errors import NotFoundError, SnapkeepError
from snapkeep.jobs import accounts as account_provider
from snapkeep.jobs import backups, logs, nodes, queue
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.users import ACCOUNT, COMPONENT_ITEMS, RESELLER, ROOT, ROOT_ID, User, all_allowed
from snapkeep.jobs.users import get as get_user
from snapkeep.sources.accounts.base import account_id

log = logging.getLogger(__name__)

#: catalog kind -> the label of its "not found" message
LABELS = {
    "jobs": "Backup Job",
    "destinations": "Destination",
    "schedules": "Schedule",
    "hooks": "Hook",
    "account_filters": "Account Filter",
    "queue_groups": "Queue Group",
    "queue_items": "Queue Item",
    "log_items": "Log Item",
    "filter_groups": "Account Filter Group",
    "logs": "Log",
    "backups": "Backup",
    "accounts": "Account",
    "alerts": "Alert",
    "users": "User",
    "tokens": "Token",
}
OWNED_KINDS = ("jobs", "destinations", "schedules", "hooks", "account_filters")


@dataclass(frozen=True)
class Principal:
    """A caller with what it may reach. The default is root."""

    id: str = ROOT_ID
    name: str = "root"
    role: str = ROOT
    account: str = ""
    accounts: frozenset[str] | None = None
    homes: tuple[str, ...] = ()
    permissions: Mapping[str, Mapping[str, bool]] = field(default_factory=all_allowed)
    manage_destinations: bool = False
    #: the node ``accounts`` are on ("" = any): an account is identified by its node and username,
    #: so a backup of "alice" made on another node is another customer's (docs/nodes.md)
    node: str = ""

    @property
    def admin(self) -> bool:
        """Root: sees and manages everything."""
        return self.role == ROOT

    @property
    def user(self) -> str:
        """The ID owners are recorded with (queue groups, logs, new objects)."""
        return self.id

    def sees_account(self, username: str) -> bool:
        """Is ``username`` (or an account ``_id``) one of the caller's accounts."""
        if self.accounts is None or username in self.accounts:
            return True
        return any(account_id(name) == username for name in self.accounts)


ROOT_PRINCIPAL = Principal()


@dataclass(frozen=True)
class Holding:
    """What ownership needs of an account: its name, home folder and owner."""

    username: str
    home: str
    owner: str


#: seconds a listing of the provider's accounts serves callers (a listing may measure homes and ask
#: database servers: far too slow for every request); an owner change shows within this time
HOLDINGS_TTL = 30.0
_holdings: dict[str, tuple[float, tuple[Holding, ...]]] = {}
_holdings_lock = threading.Lock()


def holdings(home: Path, clock: Clock = SYSTEM) -> tuple[Holding, ...]:
    """The provider's accounts (name, home, owner), listed at most every ``HOLDINGS_TTL`` seconds per
    data directory. A provider that cannot be read gives none: access narrows, never widens."""
    key = str(home)
    now = clock.monotonic()
    with _holdings_lock:
        cached = _holdings.get(key)
        if cached is not None and now - cached[0] < HOLDINGS_TTL:
            return cached[1]
    try:
        listed = tuple(Holding(a.username, a.home, a.owner) for a in account_provider.list_accounts(home))
    except SnapkeepError as error:
        log.warning("account provider: %s", error)
        listed = ()
    with _holdings_lock:
        if len(_holdings) > 64:  # one entry per data directory; tests open many
            _holdings.clear()
        _holdings[key] = (now, listed)
    return listed


def principal(tx: Transaction, user: User, home: Path | None) -> Principal:
    """``user`` with the accounts it owns (a reseller's from the account provider's ``owner``)."""
    if user.role == ROOT:
        return Principal(id=user.id, name=user.name)
    listed = holdings(home) if home is not None else ()
    if user.role == RESELLER:
        names = {a.username for a in listed if a.owner == user.name} | set(user.accounts)
        node = nodes.local_id(home) if home is not None else ""  # its provider's accounts: this node's
    else:
        names = {user.account} if user.account else set()
        node = user.node
    homes = tuple(sorted(a.home for a in listed if a.username in names and a.home))
    return Principal(
        id=user.id,
        name=user.name,
        role=user.role,
        account=user.account if user.role == ACCOUNT else "",
        accounts=frozenset(names),
        homes=homes,
        permissions=user.permissions,
        manage_destinations=user.manage_destinations,
        node=node,
    )


def owner_principal(tx: Transaction, owner: str, home: Path | None) -> Principal:
    """The principal of an object's ``owner`` (a user ID): what a run of a job owned by a reseller
    may reach. An owner that no longer exists reaches nothing."""
    user = get_user(tx, owner)
    if user is None:
        return Principal(id=owner, name="", role=ACCOUNT, accounts=frozenset())
    return principal(tx, user, home)


def run_filter(tx: Transaction, who: Principal) -> Callable[[Mapping[str, Any]], bool]:
    """For lists of queue groups and logs (API shape, with ``owner`` and ``job_id``): is one of them
    ``who``'s: its own, or (a reseller) of a job it owns."""
    if who.admin:
        return lambda item: True
    jobs = schema.jobs
    own_jobs = set()
    if who.role == RESELLER:
        own_jobs = set(tx.connection.execute(select(jobs.c.id).where(jobs.c.owner == who.id)).scalars())
    return lambda item: (
        item.get("owner") == who.id or (bool(item.get("job_id")) and item.get("job_id") in own_jobs)
    )


def owners(who: Principal) -> frozenset[str] | None:
    """The owners whose objects ``who`` sees in lists (None: every object)."""
    return None if who.admin else frozenset({who.id})


def _owner(tx: Transaction, kind: str, ident: str) -> str | None:
    table = schema.TABLES[kind]
    value = tx.connection.execute(select(table.c.owner).where(table.c.id == ident)).scalar_one_or_none()
    return None if value is None else str(value)


def _group_or_log_visible(tx: Transaction, who: Principal, kind: str, ident: str) -> bool:
    table = schema.TABLES[kind]
    row = tx.connection.execute(select(table.c.owner, table.c.job_id).where(table.c.id == ident)).first()
    if row is None:
        return False
    if row.owner == who.id:
        return True
    return who.role == RESELLER and bool(row.job_id) and _owner(tx, "jobs", str(row.job_id)) == who.id


def sees_backup(who: Principal, row: backups.BackupRecord) -> bool:
    """May ``who`` see backup ``row``: root always; a reseller its accounts' and its own jobs'
    backups; an account owner its account's. An account backup made on another node than the one
    ``who``'s accounts are on is another account of the same name (``Principal.node``)."""
    if who.admin:
        return True
    if row.account:
        made_on = backups.node_of(row)
        if who.node and made_on and made_on != who.node:
            return False
        return who.sees_account(row.account)
    return who.role == RESELLER and str(row.document.get("owner") or "") == who.id


def backup_visible(tx: Transaction, who: Principal, ident: str) -> bool:
    try:
        row = backups.row(tx, ident)
    except NotFoundError:
        return False
    return sees_backup(who, row)


def visible(tx: Transaction, who: Principal, kind: str, ident: str) -> bool:
    """May ``who`` see object ``ident`` of ``kind``. True for root (existence is the handler's)."""
    if who.admin:
        return True
    if kind in OWNED_KINDS:
        return _owner(tx, kind, ident) == who.id
    if kind in ("queue_groups", "logs"):
        return _group_or_log_visible(tx, who, kind, ident)
    if kind == "backups":
        return backup_visible(tx, who, ident)
    if kind == "queue_items":
        group = queue.group_of_item(tx, ident)
        return group is not None and _group_or_log_visible(tx, who, "queue_groups", group)
    if kind == "log_items":
        log_id = logs.log_of_item(tx, ident)
        return log_id is not None and _group_or_log_visible(tx, who, "logs", log_id)
    if kind == "filter_groups":
        return any(item["owner"] == who.id for item in tx.all("account_filters", group_id=ident))
    if kind == "accounts":
        return who.sees_account(ident)
    return False


def item_allowed(who: Principal, action: str, component: str) -> bool:
    """May ``who`` restore (``action`` "restore") or download ("download") ``component`` of an
    account backup. ``config`` is for root and resellers only."""
    if who.admin:
        return True
    item = COMPONENT_ITEMS.get(component)
    if item is None:
        return who.role == RESELLER
    return bool(who.permissions.get(action, {}).get(item, True))


def inside_homes(who: Principal, path: str) -> bool:
    """Is ``path`` (absolute) inside one of ``who``'s accounts' home folders (root: anywhere)."""
    if who.admin:
        return True
    normal = os.path.normpath(path)
    return any(normal == home or normal.startswith(home.rstrip("/") + "/") for home in who.homes)


__all__ = [
    "LABELS",
    "ROOT_PRINCIPAL",
    "Principal",
    "inside_homes",
    "item_allowed",
    "owners",
    "principal",
    "sees_backup",
    "visible",
]
