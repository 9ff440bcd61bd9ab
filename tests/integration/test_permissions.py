"""Who may call what (issue 11): every function of the table, for root, reseller and account owner.

``EXPECTED`` is written here, apart from ``api.permissions.RULES``: a function added to the table
without a line here (and a rule there) fails ``test_every_function_has_a_rule_and_an_expectation``.
For each function and role, a refused call answers ``permission denied: FUNCTION`` and leaves the
catalog dump as it was; an allowed call on the caller's own objects succeeds (or fails only for the
reason ``SAMPLES`` names, never for a permission). The later tests check ownership: lists filtered,
other users' objects "not found" exactly like missing ones, owner, folders and restore targets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import TickingClock

from snapkeep.api.dispatch import FUNCTIONS, Api
from snapkeep.api.permissions import RULES
from snapkeep.ids import new_id
from snapkeep.jobs import access, backups, logs, queue, settings, users
from snapkeep.jobs.access import Principal
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.codes import LogLevel, QueueType
from snapkeep.jobs.logs import LogType, RunLog
from snapkeep.jobs.migrations import schema

ROOT, RESELLER, ACCOUNT = "root", "reseller", "account"
ALL = {ROOT, RESELLER, ACCOUNT}
STAFF = {ROOT, RESELLER}
ONLY_ROOT = {ROOT}

# function -> the roles that may call it (issue 11, "Build" 2)
EXPECTED: dict[str, set[str]] = {
    **{f"{verb}BackupJob": STAFF for verb in ("manage", "get", "duplicate", "delete")},
    "listBackupJobs": STAFF,
    "runBackupJobManually": STAFF,
    **{f"{verb}Destination": STAFF for verb in ("manage", "get", "validate", "delete")},
    "listDestinations": STAFF,
    "listDestinationTypes": STAFF,
    **{f"{verb}Schedule": STAFF for verb in ("manage", "get", "delete")},
    "listSchedules": STAFF,
    **{f"{verb}Hook": ONLY_ROOT for verb in ("manage", "get", "delete")},
    "listHooks": ONLY_ROOT,
    **{f"{verb}AccountFilter": STAFF for verb in ("manage", "get", "delete")},
    "listAccountFilters": STAFF,
    "listAccountFilterGroups": STAFF,
    "getAccountFilterGroup": STAFF,
    "listQueueGroups": ALL,
    "getQueueGroup": ALL,
    "listQueueItems": ALL,
    "stopQueueGroup": STAFF,
    "rerunFailedQueueGroup": STAFF,
    "getQueueItem": ALL,
    "clearQueue": STAFF,
    "stopAllQueueGroup": STAFF,
    "listAlerts": ONLY_ROOT,
    "getAlert": ONLY_ROOT,
    "clearAlerts": ONLY_ROOT,
    "listLogs": ALL,
    "getLog": ALL,
    "listLogItems": ALL,
    "getLogItem": ALL,
    "deleteLog": STAFF,
    "listBackups": ALL,
    "getBackupItems": ALL,
    "getBackupItem": ALL,
    "listBackupFiles": ALL,
    "manageBackupLock": STAFF,
    "deleteSnapshot": STAFF,
    "addQueueItems": ALL,
    "addMultiAccountQueueItems": STAFF,
    "listBackupForType": ALL,
    "listBackupForTypeName": ALL,
    "deleteAccountSnapshots": STAFF,
    "downloadBackupFile": ALL,
    "reindexDestination": ONLY_ROOT,
    **{
        f"{verb}Settings{group}": ONLY_ROOT
        for verb in ("get", "manage")
        for group in ("Performance", "General", "Notification", "Integrity")
    },
    "listAccounts": STAFF,
    "getAccount": ALL,
    "listBackupForAccounts": ALL,
    "listAccountsByFilters": STAFF,
    "manageAccountExcludeList": STAFF,
    "getAccountExcludeList": ALL,
    **{f"{verb}User": ONLY_ROOT for verb in ("manage", "get", "delete")},
    "listUsers": ONLY_ROOT,
    "createToken": ONLY_ROOT,
    "listTokens": ONLY_ROOT,
    "revokeToken": ONLY_ROOT,
    # issue 16: the nodes sharing the catalog
    "listNodes": ONLY_ROOT,
    "getNode": ONLY_ROOT,
    "deleteNode": ONLY_ROOT,
}


@dataclass
class World:
    """A catalog with three callers and objects of each: root's, the reseller's and alice's."""

    catalog: Catalog
    api: Api
    home: Path
    who: dict[str, Principal] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def call(self, role: str, function: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.api.call(function, params or {}, self.who[role])

    def ok(self, role: str, function: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.call(role, function, params)
        assert answer["success"] == 1, (role, function, params, answer["message"])
        return dict(answer["data"])

    def principal(self, name: str) -> Principal:
        with self.catalog.transaction(write=False) as tx:
            return access.principal(tx, users.named(tx, name), self.home)


def _inventory(root: Path, home: Path) -> dict[str, Path]:
    homes = {}
    blocks = []
    for name, owner in (("alice", "res"), ("bob", "res"), ("carol", "root")):
        homes[name] = root / "homes" / name
        (homes[name] / "www").mkdir(parents=True)
        (homes[name] / "www" / "index.html").write_text(f"{name}\n")
        blocks.append(f'[[account]]\nusername = "{name}"\nhome = "{homes[name]}"\nowner = "{owner}"\n')
    (root / "inventory.toml").write_text("\n".join(blocks))
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[accounts]\nprovider = "inventory"\ninventory = "{root / "inventory.toml"}"\n'
    )
    return homes


def _backup(world: World, job_id: str, account: str, destination_id: str) -> str:
    with world.catalog.transaction() as tx:
        job = tx.require("jobs", job_id, "Backup Job")
        destination = tx.require("destinations", destination_id, "Destination")
        components = backups.component_items(["config", "homedir", "databases", "email"], tx.clock)
        return backups.record(
            tx,
            job={**job, "type": 1},  # an Accounts backup (the job's own type does not matter here)
            destination=destination,
            engine_id="e" * 64,
            created=tx.clock.now(),
            size=10,
            tags=["manual"],
            details={"account": account, "home": f"/nowhere/{account}", "components": components},
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    home = tmp_path / "home"
    catalog = Catalog.open(home, clock=TickingClock())
    made = World(catalog, Api(catalog, clock=catalog.clock), home)
    homes = _inventory(tmp_path, home)
    made.who[ROOT] = access.ROOT_PRINCIPAL
    res = made.ok(
        ROOT, "manageUser", {"action": "create", "name": "res", "role": "reseller", "manage_destinations": 1}
    )
    made.ok(ROOT, "manageUser", {"action": "create", "name": "alice", "role": "account", "account": "alice"})
    made.ok(ROOT, "manageUser", {"action": "create", "name": "carol", "role": "account", "account": "carol"})
    made.who[RESELLER] = made.principal("res")
    made.who[ACCOUNT] = made.principal("alice")
    made.who["carol"] = made.principal("carol")
    ids = made.ids
    ids["res"] = res["_id"]
    ids["homes"] = str(tmp_path / "homes")
    ids["alice_home"] = str(homes["alice"])
    store = tmp_path / "store"
    store.mkdir()
    for owner, role in (("root", ROOT), ("res", RESELLER)):
        extra = {"owner": res["_id"]} if owner == "res" else {}
        ids[f"{owner}.destination"] = made.ok(
            ROOT,
            "manageDestination",
            {
                "action": "create",
                "name": f"{owner} disk",
                "type": "Local",
                "options": {"path": str(store)},
                **extra,
            },
        )["_id"]
        ids[f"{owner}.schedule"] = made.ok(
            role,
            "manageSchedule",
            {"action": "create", "name": f"{owner} daily", "type": 2, "type_data": [1, 2]},
        )["_id"]
        ids[f"{owner}.filter"] = made.ok(
            role,
            "manageAccountFilter",
            {"action": "create", "name": f"{owner} filter", "type": 2, "condition": 1, "list": ["alice"]},
        )["_id"]
        ids[f"{owner}.job"] = made.ok(
            role,
            "manageBackupJob",
            {
                "action": "create",
                "name": f"{owner} job",
                "type": 2,
                "contains": 511,
                "structure": 1,
                "destination": [ids[f"{owner}.destination"]],
                "include_list": [str(homes["alice"] / "www")],
            },
        )["_id"]
    ids["root.hook"] = made.ok(
        ROOT,
        "manageHook",
        {"action": "create", "name": "h", "position_type": 1, "position": 1, "script": "/bin/true"},
    )["_id"]
    ids["alice.backup"] = _backup(made, ids["res.job"], "alice", ids["res.destination"])
    ids["carol.backup"] = _backup(made, ids["root.job"], "carol", ids["root.destination"])
    with catalog.transaction() as tx:
        for owner, role in (("root", ROOT), ("res", RESELLER)):
            group = queue.enqueue_backup(
                tx, tx.require("jobs", ids[f"{owner}.job"], "j"), owner=made.who[role].id
            )
            ids[f"{owner}.group"] = group["_id"]
    restore = made.ok(
        ACCOUNT, "addQueueItems", {"type": 2, "items": [_component(made, "alice.backup", "homedir")]}
    )
    ids["alice.group"] = restore["_id"]
    for owner, role in (("root", ROOT), ("res", RESELLER), ("alice", ACCOUNT)):
        run_log = RunLog.start(
            catalog,
            home,
            log_type=LogType.BACKUP,
            owner=made.who[role].id,
            name=f"{owner} log",
            job_id=ids.get(f"{owner}.job"),
            group_id=ids[f"{owner}.group"],
        )
        ids[f"{owner}.log"] = run_log.id
        run_log.write(LogLevel.INFO, f"a line of {owner}'s log")
        ids[f"{owner}.line"] = str(world_line(catalog, run_log.id))
        with catalog.transaction() as tx:
            ids[f"{owner}.item"] = queue_item(tx, ids[f"{owner}.group"])
    return made


def world_line(catalog: Catalog, log_id: str) -> str:
    with catalog.transaction(write=False) as tx:
        return str(logs.list_items(tx, log_id)[0]["_id"])


def queue_item(tx: Any, group_id: str) -> str:
    """A queue item of ``group_id``, as a run would add it (inserted here: only a run adds items)."""
    ident = new_id(tx.clock)
    tx.connection.execute(
        schema.queue_items.insert().values(
            id=ident, group_id=group_id, type=1, status=1, created=tx.clock.now(), document={"name": "item"}
        )
    )
    return ident


def _component(world: World, backup: str, name: str) -> str:
    with world.catalog.transaction(write=False) as tx:
        row = backups.row(tx, world.ids[backup])
    return next(item["_id"] for item in row.document["components"] if item["name"] == name)


def _own(world: World, role: str, kind: str) -> str:
    return world.ids[f"{'root' if role == ROOT else 'res'}.{kind}"]


def _backup_of(world: World, role: str) -> str:
    return world.ids["carol.backup" if role == ROOT else "alice.backup"]


def _group_of(world: World, role: str) -> str:
    return world.ids[{ROOT: "root.group", RESELLER: "res.group", ACCOUNT: "alice.group"}[role]]


def _log_key(role: str) -> str:
    return {ROOT: "root", RESELLER: "res", ACCOUNT: "alice"}[role]


def _filter_group(world: World, role: str) -> str:
    with world.catalog.transaction(write=False) as tx:
        return str(tx.require("account_filters", _own(world, role, "filter"), "f")["group_id"])


def _log_of(world: World, role: str) -> str:
    return world.ids[{ROOT: "root.log", RESELLER: "res.log", ACCOUNT: "alice.log"}[role]]


Sample = Callable[[World, str], dict[str, Any]]
# function -> (params of an allowed call on the caller's own objects, a failure that is acceptable)
SAMPLES: dict[str, tuple[Sample, str]] = {
    "manageBackupJob": (lambda w, r: {"action": "modify", "_id": _own(w, r, "job"), "name": "renamed"}, ""),
    "getBackupJob": (lambda w, r: {"_id": _own(w, r, "job")}, ""),
    "listBackupJobs": (lambda w, r: {}, ""),
    "duplicateBackupJob": (lambda w, r: {"_id": _own(w, r, "job")}, ""),
    "runBackupJobManually": (lambda w, r: {"_id": _own(w, r, "job")}, "already"),
    "deleteBackupJob": (lambda w, r: {"_id": _own(w, r, "job")}, "running"),
    "manageDestination": (
        lambda w, r: {"action": "modify", "_id": _own(w, r, "destination"), "name": "n"},
        "",
    ),
    "getDestination": (lambda w, r: {"_id": _own(w, r, "destination")}, ""),
    "listDestinations": (lambda w, r: {}, ""),
    "validateDestination": (lambda w, r: {"_id": _own(w, r, "destination")}, ""),
    "listDestinationTypes": (lambda w, r: {}, ""),
    "deleteDestination": (lambda w, r: {"_id": _own(w, r, "destination")}, "used by"),
    "manageSchedule": (lambda w, r: {"action": "modify", "_id": _own(w, r, "schedule"), "name": "n"}, ""),
    "getSchedule": (lambda w, r: {"_id": _own(w, r, "schedule")}, ""),
    "listSchedules": (lambda w, r: {}, ""),
    "deleteSchedule": (lambda w, r: {"_id": _own(w, r, "schedule")}, ""),
    "manageHook": (lambda w, r: {"action": "modify", "_id": w.ids["root.hook"], "name": "n"}, ""),
    "getHook": (lambda w, r: {"_id": w.ids["root.hook"]}, ""),
    "listHooks": (lambda w, r: {}, ""),
    "deleteHook": (lambda w, r: {"_id": w.ids["root.hook"]}, ""),
    "manageAccountFilter": (lambda w, r: {"action": "modify", "_id": _own(w, r, "filter"), "name": "n"}, ""),
    "getAccountFilter": (lambda w, r: {"_id": _own(w, r, "filter")}, ""),
    "listAccountFilters": (lambda w, r: {}, ""),
    "listAccountFilterGroups": (lambda w, r: {}, ""),
    "getAccountFilterGroup": (lambda w, r: {"_id": _filter_group(w, r)}, ""),
    "deleteAccountFilter": (lambda w, r: {"_id": _own(w, r, "filter")}, ""),
    "listQueueGroups": (lambda w, r: {}, ""),
    "getQueueGroup": (lambda w, r: {"_id": _group_of(w, r)}, ""),
    "listQueueItems": (lambda w, r: {"group_id": _group_of(w, r)}, ""),
    "stopQueueGroup": (lambda w, r: {"_id": _group_of(w, r)}, "has already finished"),  # stopAll ran
    "rerunFailedQueueGroup": (lambda w, r: {"_id": _group_of(w, r)}, "has nothing to rerun"),
    "getQueueItem": (lambda w, r: {"_id": w.ids[f"{_log_key(r)}.item"]}, ""),
    "clearQueue": (lambda w, r: {}, ""),
    "stopAllQueueGroup": (lambda w, r: {}, ""),
    "listAlerts": (lambda w, r: {}, ""),
    "getAlert": (lambda w, r: {"_id": "f" * 24}, "Alert not found"),
    "clearAlerts": (lambda w, r: {}, ""),
    "listLogs": (lambda w, r: {}, ""),
    "getLog": (lambda w, r: {"_id": _log_of(w, r)}, ""),
    "listLogItems": (lambda w, r: {"log_id": _log_of(w, r)}, ""),
    "getLogItem": (lambda w, r: {"_id": w.ids[f"{_log_key(r)}.line"]}, ""),
    "deleteLog": (lambda w, r: {"_id": _log_of(w, r)}, "still going"),
    "listBackups": (lambda w, r: {}, ""),
    "getBackupItems": (lambda w, r: {"_id": _backup_of(w, r)}, ""),
    "getBackupItem": (lambda w, r: {"_id": _component(w, "alice.backup", "homedir")}, ""),
    # the world's backups are catalog rows only: the allowed call gets as far as the destination
    "listBackupFiles": (lambda w, r: {"_id": _component(w, "alice.backup", "homedir")}, "no repository"),
    "manageBackupLock": (lambda w, r: {"_id": _backup_of(w, r), "locked": 1}, ""),
    "deleteSnapshot": (lambda w, r: {"_id": _backup_of(w, r)}, "is locked"),  # manageBackupLock ran first
    "addQueueItems": (lambda w, r: {"type": 4, "items": [_component(w, "alice.backup", "databases")]}, ""),
    "downloadBackupFile": (lambda w, r: {"_id": _group_of(w, r)}, "not a download"),
    "reindexDestination": (lambda w, r: {"_id": w.ids["root.destination"]}, ""),
    "listAccounts": (lambda w, r: {}, ""),
    "getAccount": (lambda w, r: {"_id": "alice"}, ""),
    "listBackupForAccounts": (lambda w, r: {}, ""),
    "listAccountsByFilters": (lambda w, r: {"filters": [[_filter_group(w, r)]]}, ""),
    "manageAccountExcludeList": (lambda w, r: {"account_id": "alice", "list": ["cache/**"]}, ""),
    "getAccountExcludeList": (lambda w, r: {"account_id": "alice"}, ""),
    "addMultiAccountQueueItems": (lambda w, r: {"type": 4, "accounts": ["alice"]}, ""),
    "listBackupForType": (lambda w, r: {"type": 1}, ""),
    "listBackupForTypeName": (lambda w, r: {"type": 1, "account_id": "alice", "name": "alice"}, ""),
    "deleteAccountSnapshots": (lambda w, r: {"account_id": "alice"}, "no repository"),
    "manageUser": (
        lambda w, r: {"action": "create", "name": "dave", "role": "account", "account": "bob"},
        "",
    ),
    "getUser": (lambda w, r: {"_id": w.ids["res"]}, ""),
    "listUsers": (lambda w, r: {}, ""),
    "deleteUser": (lambda w, r: {"_id": w.ids["res"]}, "still owns"),
    "createToken": (lambda w, r: {"user": "res", "expires": "30d"}, ""),
    "listTokens": (lambda w, r: {}, ""),
    "revokeToken": (lambda w, r: {"_id": "f" * 24}, "Token not found"),
    "listNodes": (lambda w, r: {}, ""),
    "getNode": (lambda w, r: {"_id": "no-such-node"}, "Node not found"),
    "deleteNode": (lambda w, r: {"_id": "no-such-node"}, "Node not found"),
}
for _group in ("Performance", "General", "Notification", "Integrity"):
    SAMPLES[f"getSettings{_group}"] = (lambda w, r: {}, "")
SAMPLES["manageSettingsPerformance"] = (lambda w, r: {"backup_forks": 2}, "")
SAMPLES["manageSettingsGeneral"] = (lambda w, r: {"logs_ttl": 10}, "")
SAMPLES["manageSettingsNotification"] = (lambda w, r: {}, "")
SAMPLES["manageSettingsIntegrity"] = (lambda w, r: {"hour": 3}, "")


def test_every_function_has_a_rule_and_an_expectation() -> None:
    assert set(FUNCTIONS) == set(EXPECTED), "a function without an expected rule here"
    assert set(FUNCTIONS) == set(RULES), "a function without a rule in api.permissions"
    assert set(FUNCTIONS) == set(SAMPLES)
    for name, rule in RULES.items():
        assert set(rule.roles) == EXPECTED[name], name


@pytest.mark.parametrize("role", [ROOT, RESELLER, ACCOUNT])
def test_each_role_is_allowed_or_refused_for_every_function(world: World, role: str) -> None:
    """Every function, in turn: refused ones change nothing, allowed ones work."""
    for function in sorted(FUNCTIONS, key=lambda name: (name.startswith("delete"), name)):
        sample, acceptable = SAMPLES[function]
        params = sample(world, role)
        if role not in EXPECTED[function]:
            before = world.catalog.dump()
            answer = world.call(role, function, params)
            assert (answer["success"], answer["message"]) == (0, f"permission denied: {function}"), answer
            assert world.catalog.dump() == before, f"{function} by {role} changed the catalog"
            continue
        answer = world.call(role, function, params)
        if answer["success"] != 1:
            assert "permission denied" not in answer["message"], (function, role)
            assert acceptable, (function, role, answer["message"])
            assert acceptable in answer["message"], (function, role, answer["message"])


def test_lists_show_only_the_callers_own_objects(world: World) -> None:
    ids = world.ids
    assert {job["_id"] for job in world.ok(RESELLER, "listBackupJobs")["jobs"]} == {ids["res.job"]}
    assert world.ok(ROOT, "listBackupJobs")["total"] == 2
    for function, key, own in (
        ("listDestinations", "destinations", "res.destination"),
        ("listSchedules", "schedules", "res.schedule"),
        ("listAccountFilters", "filters", "res.filter"),
    ):
        assert [item["_id"] for item in world.ok(RESELLER, function)[key]] == [ids[own]], function
    assert {b["_id"] for b in world.ok(ACCOUNT, "listBackups")["backups"]} == {ids["alice.backup"]}
    assert {b["_id"] for b in world.ok(RESELLER, "listBackups")["backups"]} == {ids["alice.backup"]}
    assert world.ok(ROOT, "listBackups")["total"] == 2
    assert [a["name"] for a in world.ok(RESELLER, "listAccounts")["accounts"]] == ["alice", "bob"]
    assert [a["account"] for a in world.ok(ACCOUNT, "listBackupForAccounts")["accounts"]] == ["alice"]
    assert {g["_id"] for g in world.ok(ACCOUNT, "listQueueGroups")["groups"]} == {ids["alice.group"]}
    assert {g["_id"] for g in world.ok(RESELLER, "listQueueGroups")["groups"]} == {ids["res.group"]}
    assert {log["_id"] for log in world.ok(ACCOUNT, "listLogs")["logs"]} == {ids["alice.log"]}
    assert world.ok("carol", "listBackups")["total"] == 1


def test_another_users_object_is_not_found_like_a_missing_one(world: World) -> None:
    ids = world.ids
    missing = "0123456789abcdef01234567"
    for role, function, ident, label in (
        (RESELLER, "getBackupJob", ids["root.job"], "Backup Job"),
        (RESELLER, "deleteBackupJob", ids["root.job"], "Backup Job"),
        (RESELLER, "getDestination", ids["root.destination"], "Destination"),
        (RESELLER, "getSchedule", ids["root.schedule"], "Schedule"),
        (ACCOUNT, "getBackupItems", ids["carol.backup"], "Backup"),
        (ACCOUNT, "getQueueGroup", ids["res.group"], "Queue Group"),
        (ACCOUNT, "getLog", ids["root.log"], "Log"),
        (RESELLER, "getBackupItems", ids["carol.backup"], "Backup"),
    ):
        hidden = world.call(role, function, {"_id": ident})
        absent = world.call(role, function, {"_id": missing})
        assert hidden["message"] == f"{label} not found: {ident}", (function, hidden)
        assert absent["message"] == f"{label} not found: {missing}", (function, absent)
    before = world.catalog.dump()
    refused = world.call(ACCOUNT, "addQueueItems", {"type": 2, "snapshot_id": ids["carol.backup"]})
    assert refused["message"] == f"Backup not found: {ids['carol.backup']}"
    assert world.call(ACCOUNT, "getAccount", {"_id": "carol"})["message"] == "Account not found: carol"
    assert world.catalog.dump() == before


def test_only_root_sets_owner_and_resellers_stay_in_their_accounts(world: World) -> None:
    ids = world.ids
    before = world.catalog.dump()
    job = {
        "action": "create",
        "name": "x",
        "type": 2,
        "contains": 511,
        "structure": 1,
        "destination": [ids["res.destination"]],
    }
    for params in (
        {**job, "owner": users.ROOT_ID, "include_list": [ids["alice_home"]]},
        {**job, "include_list": ["/etc"]},
        {**job, "include_list": [ids["alice_home"] + "/../carol"]},
        {"action": "modify", "_id": ids["res.job"], "owner": world.who[ACCOUNT].id},
    ):
        answer = world.call(RESELLER, "manageBackupJob", params)
        assert answer["message"] == "permission denied: manageBackupJob", params
    foreign = {**job, "destination": [ids["root.destination"]], "include_list": [ids["alice_home"]]}
    answer = world.call(RESELLER, "manageBackupJob", foreign)
    assert answer["message"] == f"destination[0]: no such destination: {ids['root.destination']}"
    assert world.catalog.dump() == before
    world.ok(ROOT, "manageUser", {"action": "modify", "_id": ids["res"], "manage_destinations": 0})
    world.who[RESELLER] = world.principal("res")
    before = world.catalog.dump()
    for function, params in (
        ("manageDestination", {"action": "create", "name": "d", "type": "Local"}),
        ("deleteDestination", {"_id": ids["res.destination"]}),
    ):
        assert world.call(RESELLER, function, params)["message"] == f"permission denied: {function}"
    assert world.ok(RESELLER, "getDestination", {"_id": ids["res.destination"]})["name"] == "res disk"
    assert world.catalog.dump() == before
    made = world.ok(RESELLER, "manageBackupJob", {**job, "include_list": [ids["alice_home"] + "/www"]})
    assert (made["owner"], made["owner_name"]) == (ids["res"], "res")
    given = world.ok(
        ROOT, "manageBackupJob", {"action": "modify", "_id": made["_id"], "owner": users.ROOT_ID}
    )
    assert given["owner_name"] == "root"


def test_account_restores_stay_in_its_account_and_follow_its_item_permissions(world: World) -> None:
    ids = world.ids
    databases = _component(world, "alice.backup", "databases")
    before = world.catalog.dump()
    for params in (
        {"type": 2, "items": [databases], "options": {"target": "/etc"}},
        {"type": 2, "items": [databases], "options": {"target_account": "carol"}},
        {"type": 2, "snapshot_id": ids["alice.backup"]},  # the whole backup holds config: root's
    ):
        assert world.call(ACCOUNT, "addQueueItems", params)["message"] == "permission denied: addQueueItems"
    assert world.catalog.dump() == before
    alice = world.who[ACCOUNT].id
    world.ok(
        ROOT, "manageUser", {"action": "modify", "_id": alice, "permissions": {"restore": {"databases": 0}}}
    )
    world.who[ACCOUNT] = world.principal("alice")
    refused = world.call(ACCOUNT, "addQueueItems", {"type": 2, "items": [databases]})
    assert refused["message"] == "permission denied: addQueueItems"
    assert world.ok(ACCOUNT, "addQueueItems", {"type": 4, "items": [databases]})["type"] == QueueType.DOWNLOAD
    homedir = _component(world, "alice.backup", "homedir")
    inside = {"type": 2, "items": [homedir], "options": {"target": ids["alice_home"] + "/old"}}
    assert world.ok(ACCOUNT, "addQueueItems", inside)["type"] == QueueType.RESTORE


def test_tokens_expire_and_are_revoked(world: World) -> None:
    made = world.ok(ROOT, "createToken", {"user": "alice", "expires": "1h", "name": "laptop"})
    catalog = world.catalog
    assert catalog.verify_token(made["token"]) == world.who[ACCOUNT].id
    listed = world.ok(ROOT, "listTokens", {"user": "alice"})["tokens"]
    assert [(t["name"], t["state"]) for t in listed] == [("laptop", "active")]
    assert all("token" not in t and "secret_hash" not in t for t in listed)
    later = Catalog(catalog.engine, clock=_Later(dt.timedelta(hours=2)), home=catalog.home)
    assert later.verify_token(made["token"]) is None
    world.ok(ROOT, "revokeToken", {"_id": made["_id"]})
    assert catalog.verify_token(made["token"]) is None
    assert world.ok(ROOT, "listTokens", {"user": "alice"})["tokens"][0]["state"] == "revoked"
    refused = world.call(ROOT, "createToken", {"user": "alice", "expires": "soon"})
    assert refused["message"].startswith("expires: must be a number and a unit")


class _Later:
    def __init__(self, ahead: dt.timedelta) -> None:
        self.ahead = ahead

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.ahead


def test_users_are_validated_and_root_is_fixed(world: World) -> None:
    for params, message in (
        ({"action": "create", "name": "x y", "role": "account", "account": "a"}, "name: must be 1-64"),
        ({"action": "create", "name": "x", "role": "admin"}, "role: must be reseller or account"),
        ({"action": "create", "name": "x", "role": "account"}, "account: is required"),
        ({"action": "create", "name": "res", "role": "reseller"}, "a user named 'res' already exists"),
        ({"action": "modify", "_id": users.ROOT_ID, "name": "boss"}, "_id: root has every permission"),
        ({"action": "modify", "_id": world.ids["res"], "role": "account"}, "role: cannot change"),
        (
            {"action": "modify", "_id": world.ids["res"], "permissions": {"restore": {"dns": 2}}},
            "permissions[restore][dns]: must be 0 or 1 (got 2)",
        ),
    ):
        answer = world.call(ROOT, "manageUser", params)
        assert answer["success"] == 0, params
        assert answer["message"].startswith(message), (params, answer["message"])
    assert world.call(ROOT, "deleteUser", {"_id": world.ids["res"]})["message"].startswith(
        "user 'res' still owns"
    )


def test_a_reseller_sends_hooks_back_but_never_changes_them(world: World) -> None:
    job = world.ok(RESELLER, "getBackupJob", {"_id": world.ids["res.job"]})
    assert [hook["_id"] for hook in job["hooks"]] == [world.ids["root.hook"]]  # root's hook, for every job
    echoed = {key: value for key, value in job.items() if key != "_id"}
    assert world.ok(RESELLER, "manageBackupJob", {"action": "modify", "_id": job["_id"], **echoed}) == job
    before = world.catalog.dump()
    answer = world.call(RESELLER, "manageBackupJob", {"action": "modify", "_id": job["_id"], "hooks": []})
    assert answer["message"] == "permission denied: manageBackupJob"
    assert world.catalog.dump() == before


def test_the_account_functions_a_jetbackup_script_calls(world: World) -> None:
    """Issue 13 section 5: listBackupForType(Name), listAccountsByFilters, addMultiAccountQueueItems,
    deleteAccountSnapshots (its locked path: the backups here have no repository behind them)."""
    ids = world.ids
    by_type = world.ok(ROOT, "listBackupForType", {"type": 1})["items"]
    assert [(item["name"], item["backups"]) for item in by_type] == [("alice", 1), ("carol", 1)]
    assert [item["name"] for item in world.ok(ACCOUNT, "listBackupForType", {"type": 1})["items"]] == [
        "alice"
    ]
    alice_id = world.ok(ROOT, "getAccount", {"_id": "alice"})["_id"]
    named = world.ok(
        ROOT, "listBackupForTypeName", {"type": 1, "contains": 511, "account_id": alice_id, "name": "alice"}
    )
    assert [backup["_id"] for backup in named["backups"]] == [ids["alice.backup"]]
    wrong = world.call(ROOT, "listBackupForTypeName", {"type": 1, "account_id": alice_id, "name": "carol"})
    assert wrong["message"] == f"name: is not the username of account {alice_id}"
    hidden = world.call(ACCOUNT, "listBackupForTypeName", {"type": 1, "account_id": "carol", "name": "carol"})
    assert hidden["message"] == "Account not found: carol"

    selected = world.ok(RESELLER, "listAccountsByFilters", {"filters": [[_filter_group(world, RESELLER)]]})
    assert [account["name"] for account in selected["accounts"]] == ["alice"]
    foreign = world.call(RESELLER, "listAccountsByFilters", {"filters": [[_filter_group(world, ROOT)]]})
    assert foreign["message"].startswith("filters[0][0]: no such account filter group")

    queued = world.ok(ROOT, "addMultiAccountQueueItems", {"type": 4, "accounts": ["alice", "carol"]})
    assert [group["data"]["_id"] for group in queued["groups"]] == [ids["alice.backup"], ids["carol.backup"]]
    before = world.catalog.dump()
    none = world.call(ROOT, "addMultiAccountQueueItems", {"type": 4, "accounts": ["alice", "bob"]})
    assert none["message"] == "accounts[1]: no backup of account 'bob'"
    refused = world.call(RESELLER, "addMultiAccountQueueItems", {"type": 4, "accounts": ["carol"]})
    assert refused["message"] == "Account not found: carol"
    assert world.catalog.dump() == before, "all accounts queued or none"

    world.ok(ROOT, "manageBackupLock", {"_id": ids["alice.backup"], "locked": 1})
    kept = world.ok(RESELLER, "deleteAccountSnapshots", {"account_id": "alice"})
    assert (kept["deleted"], kept["locked"]) == ([], [ids["alice.backup"]])


def test_account_exclude_lists_are_kept_per_job_and_checked(world: World) -> None:
    """Issue 13 section 5: manageAccountExcludeList / getAccountExcludeList."""
    ids = world.ids
    world.ok(RESELLER, "manageAccountExcludeList", {"account_id": "alice", "list": ["cache/**", "tmp/*"]})
    world.ok(
        RESELLER,
        "manageAccountExcludeList",
        {"account_id": "alice", "job_id": ids["res.job"], "list": ["*.log"]},
    )
    seen = world.ok(ACCOUNT, "getAccountExcludeList", {"account_id": "alice"})
    assert (seen["account"], seen["list"]) == ("alice", ["cache/**", "tmp/*"])
    assert seen["jobs"] == [{"job_id": ids["res.job"], "list": ["*.log"]}]
    with world.catalog.transaction(write=False) as tx:
        assert settings.excludes_for_run(tx, "alice", ids["res.job"]) == ["cache/**", "tmp/*", "*.log"]
    before = world.catalog.dump()
    for params, message in (
        ({"account_id": "alice", "list": ["[z-a]"]}, "list[0]: "),
        (
            {"account_id": "alice", "job_id": ids["root.job"], "list": ["x"]},
            f"Backup Job not found: {ids['root.job']}",
        ),
        ({"account_id": "carol", "list": ["x"]}, "Account not found: carol"),
    ):
        answer = world.call(RESELLER, "manageAccountExcludeList", params)
        assert answer["message"].startswith(message), (params, answer["message"])
    assert world.catalog.dump() == before
    world.ok(RESELLER, "manageAccountExcludeList", {"account_id": "alice", "list": []})
    assert world.ok(ROOT, "getAccountExcludeList", {"account_id": "alice"})["list"] == []


def test_ids_may_be_abbreviated_among_what_the_caller_sees(world: World) -> None:
    """Issue 14: a unique start or end of at least 6 characters stands for the ID, only among the
    caller's own objects; an ambiguous one lists the matches."""
    ids = world.ids
    root_job, res_job = ids["root.job"], ids["res.job"]
    assert world.ok(ROOT, "getBackupJob", {"_id": root_job[-8:]})["_id"] == root_job
    assert world.ok(RESELLER, "getBackupJob", {"_id": res_job[-6:]})["_id"] == res_job
    hidden = world.call(RESELLER, "getBackupJob", {"_id": root_job[-8:]})
    assert hidden["message"] == f"Backup Job not found: {root_job[-8:]}"
    shared = root_job[:8]  # the creation second: both jobs (and more) start with it
    assert res_job.startswith(shared)
    ambiguous = world.call(ROOT, "getBackupJob", {"_id": shared})
    assert ambiguous["message"].startswith(f"_id: '{shared}' matches several: ")
    assert root_job in ambiguous["message"]
    assert res_job in ambiguous["message"]
    assert world.ok(RESELLER, "getBackupJob", {"_id": shared})["_id"] == res_job, "the only one it sees"
    short = world.call(ROOT, "getBackupJob", {"_id": root_job[-5:]})
    assert short["message"].startswith("_id: must be an ID of 24 lowercase hex characters")
    queued = world.ok(
        ACCOUNT, "addQueueItems", {"type": 4, "items": [_component(world, "alice.backup", "homedir")]}
    )
    assert world.ok(ACCOUNT, "getQueueGroup", {"_id": queued["_id"][-8:]})["_id"] == queued["_id"]
    assert world.ok(ROOT, "getHook", {"_id": ids["root.hook"][-8:]})["_id"] == ids["root.hook"]


def test_backup_for_accounts_answers_in_jetbackups_shape(world: World) -> None:
    """Issue 13 section 5: `listBackupForAccounts type=1&contains=511` (the PHP sample call)."""
    entries = world.ok(ROOT, "listBackupForAccounts", {"type": 1, "contains": 511})["accounts"]
    alice = next(entry for entry in entries if entry["account"] == "alice")
    assert alice["account_id"] == world.ok(ROOT, "getAccount", {"_id": "alice"})["_id"]
    assert alice["backup"]["_id"] == world.ids["alice.backup"]
    assert alice["backup"]["backup_type"] == 1
    assert world.ok(ROOT, "listBackupForAccounts", {"type": 2})["accounts"] == []
