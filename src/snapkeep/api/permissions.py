"""Who may call what: one rule per API function, applied by the dispatcher before the handler runs.

Every function of the table has a rule here (``tests/integration/test_permissions.py`` fails for a
function without one, and the dispatcher refuses such a function for everyone but root). A rule
names the roles that may call the function, the parameters that name objects the caller must be
able to see (an object it may not see is answered "not found", like one that does not exist), and
for some functions a check of the arguments (who may set ``owner``, which folders a reseller's job
may back up, where an account owner may restore to). docs/users.md has the table in prose.

Root passes every rule without a catalog read. A refusal raises ``AccessDenied``; the
dispatcher answers ``permission denied: FUNCTION`` and logs the user and the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from snapkeep.errors import AccessDenied, NotFoundError, ValidationError
from snapkeep.ids import is_id
from snapkeep.jobs import abbreviations, links
from snapkeep.jobs.access import LABELS, Principal, inside_homes, visible
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.users import ACCOUNT, RESELLER, ROOT

EVERYONE = frozenset({ROOT, RESELLER, ACCOUNT})
STAFF = frozenset({ROOT, RESELLER})
ROOT_ONLY = frozenset({ROOT})

Check = Callable[[Transaction, Principal, Mapping[str, Any]], None]


@dataclass(frozen=True)
class Rule:
    """``roles`` may call; each ``(parameter, kind)`` of ``objects`` must be visible to the caller;
    ``check`` looks at the arguments; ``grant`` names a flag a reseller also needs."""

    roles: frozenset[str]
    objects: tuple[tuple[str, str], ...] = ()
    check: Check | None = None
    grant: str | None = None


def _values(params: Mapping[str, Any], name: str, kind: str) -> Iterable[str]:
    """The object references ``name`` holds (accounts: any name or ``_id``; others: IDs only, a
    malformed one is the handler's to refuse by name)."""
    value = params.get(name)
    values = (
        list(value.values()) if isinstance(value, Mapping) else value if isinstance(value, list) else [value]
    )
    if kind == "accounts":
        return [item for item in values if isinstance(item, str) and item]
    return [item for item in values if isinstance(item, str) and is_id(item)]


def _owner_is_caller(tx: Transaction, who: Principal, params: Mapping[str, Any]) -> None:
    owner = params.get("owner")
    if owner not in (None, "", who.id):
        raise AccessDenied("only root may set owner")


def _references(tx: Transaction, who: Principal, params: Mapping[str, Any]) -> None:
    """A reseller's job may name only its own destinations, schedules and filter groups, and back up
    only folders inside its accounts' homes (the stored list too, when ``type`` changes). Only root
    moves a job to another node: others may send ``node`` back unchanged (issue 16)."""
    _owner_is_caller(tx, who, params)
    node = params.get("node")
    if node not in (None, ""):
        ident = params.get("_id")
        stored = tx.get("jobs", ident) if isinstance(ident, str) and is_id(ident) else None
        if stored is None or node != stored.get("node"):
            raise AccessDenied("only root may set node")
    for index, ident in enumerate(_as_list(params.get("destination"))):
        if isinstance(ident, str) and is_id(ident) and not visible(tx, who, "destinations", ident):
            raise ValidationError(field=f"destination[{index}]", problem=f"no such destination: {ident}")
    for index, link in enumerate(_as_list(params.get("schedules"))):
        ident = link.get("_id") if isinstance(link, Mapping) else None
        if isinstance(ident, str) and is_id(ident) and not visible(tx, who, "schedules", ident):
            raise ValidationError(field=f"schedules[{index}][_id]", problem=f"no such schedule: {ident}")
    for outer, group in enumerate(_as_list(params.get("filters"))):
        for inner, group_id in enumerate(_as_list(group)):
            if isinstance(group_id, str) and not _filter_group_visible(tx, who, group_id):
                raise ValidationError(
                    field=f"filters[{outer}][{inner}]", problem=f"no such account filter group: {group_id}"
                )
    if "hooks" in params:
        _hooks_unchanged(tx, params)
    paths = params.get("include_list")
    if paths is None and isinstance(params.get("_id"), str) and is_id(params["_id"]):
        stored = tx.get("jobs", params["_id"])
        paths = (stored or {}).get("include_list")
    for index, path in enumerate(_as_list(paths)):
        if isinstance(path, str) and not inside_homes(who, path):
            raise AccessDenied(f"include_list[{index}]: {path!r} is outside your accounts' home folders")


def _hooks_unchanged(tx: Transaction, params: Mapping[str, Any]) -> None:
    """Hooks are root's: a reseller may send a job's ``hooks`` back as ``getBackupJob`` showed them
    (a read-modify-write), never change them."""
    try:
        named = set(links.named_ids(params["hooks"], "hooks"))
    except ValidationError:
        return  # the handler names the bad entry
    ident = params.get("_id")
    job_id = ident if isinstance(ident, str) and is_id(ident) else ""
    current = {hook["_id"] for hook in tx.all("hooks") if links.applies(hook, job_id)}
    if named != current:
        raise AccessDenied("hooks: only root attaches hooks to jobs")


def _filter_group_visible(tx: Transaction, who: Principal, group_id: str) -> bool:
    return any(item["owner"] == who.id for item in tx.all("account_filters", group_id=group_id))


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    return list(value) if isinstance(value, list) else ([] if value is None else [value])


def _restore_target(tx: Transaction, who: Principal, params: Mapping[str, Any]) -> None:
    """Non-root restores go into the caller's own accounts: ``options[target]`` inside their homes,
    ``options[target_account]`` one of them."""
    options = params.get("options")
    if not isinstance(options, Mapping):
        return
    target = options.get("target")
    if isinstance(target, str) and target and not inside_homes(who, target):
        raise AccessDenied(f"options[target]: {target!r} is outside your accounts' home folders")
    account = options.get("target_account")
    if isinstance(account, str) and account and not who.sees_account(account):
        raise AccessDenied(f"options[target_account]: {account!r} is not your account")


def _objects(*pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return pairs


_ID = "_id"


def _owned(kind: str, check: Check | None = _owner_is_caller, grant: str | None = None) -> dict[str, Rule]:
    """The rules of an ObjectKind's four functions for the staff (root and resellers)."""
    return {
        "manage": Rule(STAFF, _objects((_ID, kind)), check, grant),
        "get": Rule(STAFF, _objects((_ID, kind))),
        "list": Rule(STAFF),
        "delete": Rule(STAFF, _objects((_ID, kind)), grant=grant),
    }


def _kind_rules(name: str, plural: str, kind: str, **options: Any) -> dict[str, Rule]:
    rules = _owned(kind, **options)
    return {
        f"manage{name}": rules["manage"],
        f"get{name}": rules["get"],
        f"list{plural}": rules["list"],
        f"delete{name}": rules["delete"],
    }


RULES: dict[str, Rule] = {
    **_kind_rules("BackupJob", "BackupJobs", "jobs", check=_references),
    "duplicateBackupJob": Rule(STAFF, _objects((_ID, "jobs"))),
    "runBackupJobManually": Rule(STAFF, _objects((_ID, "jobs"))),
    **_kind_rules("Destination", "Destinations", "destinations", grant="manage_destinations"),
    "validateDestination": Rule(STAFF, _objects((_ID, "destinations"))),
    "listDestinationTypes": Rule(STAFF),
    **_kind_rules("Schedule", "Schedules", "schedules"),
    # a hook is a command the service runs as its own user: root's alone
    "manageHook": Rule(ROOT_ONLY),
    "getHook": Rule(ROOT_ONLY),
    "listHooks": Rule(ROOT_ONLY),
    "deleteHook": Rule(ROOT_ONLY),
    **_kind_rules("AccountFilter", "AccountFilters", "account_filters"),
    "listAccountFilterGroups": Rule(STAFF),
    "getAccountFilterGroup": Rule(STAFF, _objects((_ID, "filter_groups"))),
    "listQueueGroups": Rule(EVERYONE),
    "getQueueGroup": Rule(EVERYONE, _objects((_ID, "queue_groups"))),
    "listQueueItems": Rule(EVERYONE, _objects(("group_id", "queue_groups"))),
    "stopQueueGroup": Rule(STAFF, _objects((_ID, "queue_groups"))),
    "rerunFailedQueueGroup": Rule(STAFF, _objects((_ID, "queue_groups"))),
    "getQueueItem": Rule(EVERYONE, _objects((_ID, "queue_items"))),
    "clearQueue": Rule(STAFF),  # the caller's own finished groups (root: everyone's)
    "stopAllQueueGroup": Rule(STAFF),  # the caller's own groups (root: everyone's)
    "listAlerts": Rule(ROOT_ONLY),
    "getAlert": Rule(ROOT_ONLY),
    "clearAlerts": Rule(ROOT_ONLY),
    "listLogs": Rule(EVERYONE),
    "getLog": Rule(EVERYONE, _objects((_ID, "logs"))),
    "listLogItems": Rule(EVERYONE, _objects(("log_id", "logs"))),
    "getLogItem": Rule(EVERYONE, _objects((_ID, "log_items"))),
    "deleteLog": Rule(STAFF, _objects((_ID, "logs"))),
    "listBackups": Rule(EVERYONE),
    "getBackupItems": Rule(EVERYONE, _objects((_ID, "backups"))),
    "getBackupItem": Rule(EVERYONE, _objects((_ID, "backups"))),
    "listBackupFiles": Rule(EVERYONE, _objects((_ID, "backups"))),
    "manageBackupLock": Rule(STAFF, _objects((_ID, "backups"))),
    "deleteSnapshot": Rule(STAFF, _objects((_ID, "backups"))),
    "addQueueItems": Rule(
        EVERYONE, _objects(("snapshot_id", "backups"), ("items", "backups")), _restore_target
    ),
    "addMultiAccountQueueItems": Rule(STAFF, _objects(("accounts", "accounts")), _restore_target),
    "listBackupForType": Rule(EVERYONE),
    "listBackupForTypeName": Rule(EVERYONE, _objects(("account_id", "accounts"), ("name", "accounts"))),
    "deleteAccountSnapshots": Rule(STAFF, _objects(("account_id", "accounts"))),
    "downloadBackupFile": Rule(EVERYONE, _objects((_ID, "queue_groups"))),
    "reindexDestination": Rule(ROOT_ONLY),
    "getSettingsPerformance": Rule(ROOT_ONLY),
    "manageSettingsPerformance": Rule(ROOT_ONLY),
    "getSettingsGeneral": Rule(ROOT_ONLY),
    "manageSettingsGeneral": Rule(ROOT_ONLY),
    "getSettingsNotification": Rule(ROOT_ONLY),
    "manageSettingsNotification": Rule(ROOT_ONLY),
    "getSettingsIntegrity": Rule(ROOT_ONLY),
    "manageSettingsIntegrity": Rule(ROOT_ONLY),
    "listAccounts": Rule(STAFF),
    "getAccount": Rule(EVERYONE),
    "listBackupForAccounts": Rule(EVERYONE),
    "listAccountsByFilters": Rule(STAFF),
    "manageAccountExcludeList": Rule(STAFF, _objects(("account_id", "accounts"), ("job_id", "jobs"))),
    "getAccountExcludeList": Rule(EVERYONE, _objects(("account_id", "accounts"))),
    "manageUser": Rule(ROOT_ONLY),
    "getUser": Rule(ROOT_ONLY),
    "listUsers": Rule(ROOT_ONLY),
    "deleteUser": Rule(ROOT_ONLY),
    "createToken": Rule(ROOT_ONLY),
    "listTokens": Rule(ROOT_ONLY),
    "revokeToken": Rule(ROOT_ONLY),
    "listNodes": Rule(ROOT_ONLY),
    "getNode": Rule(ROOT_ONLY),
    "deleteNode": Rule(ROOT_ONLY),
}


#: Parameters naming objects in functions whose rule lists none (root's), for abbreviations
_MORE_IDS: dict[str, tuple[tuple[str, str], ...]] = {
    "manageHook": ((_ID, "hooks"),),
    "getHook": ((_ID, "hooks"),),
    "deleteHook": ((_ID, "hooks"),),
    "getAlert": ((_ID, "alerts"),),
    "clearAlerts": ((_ID, "alerts"),),
    "manageUser": ((_ID, "users"),),
    "getUser": ((_ID, "users"),),
    "deleteUser": ((_ID, "users"),),
    "revokeToken": ((_ID, "tokens"),),
    "reindexDestination": ((_ID, "destinations"),),
    "listLogs": (("job_id", "jobs"),),
}


def expand_abbreviations(
    tx_factory: Callable[[], Any], who: Principal, function: str, params: dict[str, Any]
) -> None:
    """Replace each abbreviated ID (6 to 23 hex characters: an ID's start or end, ``jobs.abbreviations``)
    in the parameters that name objects with the one full ID the caller may see. Raises NotFoundError
    and ValidationError (ambiguous, naming the parameter)."""
    rule = RULES.get(function)
    pairs = (*(rule.objects if rule is not None else ()), *_MORE_IDS.get(function, ()))
    wanted = [
        (name, kind)
        for name, kind in pairs
        if kind in abbreviations.COLUMNS and _abbreviated(params.get(name))
    ]
    if not wanted:
        return
    with tx_factory() as tx:
        for name, kind in wanted:
            value = params[name]
            if isinstance(value, list):
                params[name] = [
                    abbreviations.resolve(tx, who, kind, item, f"{name}[{index}]")
                    if abbreviations.is_abbreviation(item)
                    else item
                    for index, item in enumerate(value)
                ]
            else:
                params[name] = abbreviations.resolve(tx, who, kind, value, name)


def _abbreviated(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(abbreviations.is_abbreviation(item) for item in values)


def decide(tx_factory: Callable[[], Any], who: Principal, function: str, params: Mapping[str, Any]) -> None:
    """Allow ``who`` to call ``function`` with ``params``, or raise AccessDenied (the function or
    an argument is not theirs) or NotFoundError (an object they may not see, answered as missing).
    ``tx_factory`` opens a read transaction (only non-root callers need one)."""
    if who.admin:
        return
    rule = RULES.get(function)
    if rule is None:
        raise AccessDenied("this function has no permission rule")
    if who.role not in rule.roles:
        raise AccessDenied(f"role {who.role} may not call it")
    if rule.grant is not None and who.role == RESELLER and not getattr(who, rule.grant):
        raise AccessDenied(f"root has not granted {rule.grant}")
    if function == "getAccount" and not who.sees_account(str(params.get(_ID) or "")):
        raise NotFoundError(kind=LABELS["accounts"], ident=str(params.get(_ID) or ""))
    if not rule.objects and rule.check is None:
        return
    with tx_factory() as tx:
        for name, kind in rule.objects:
            for ident in _values(params, name, kind):
                if not visible(tx, who, kind, ident):
                    raise NotFoundError(kind=LABELS[kind], ident=ident)
        if rule.check is not None:
            rule.check(tx, who, params)


__all__ = ["EVERYONE", "ROOT_ONLY", "RULES", "STAFF", "Rule", "decide"]
