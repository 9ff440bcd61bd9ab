"""Lists paged in the catalog (jobs/listing.py), on SQLite and PostgreSQL.

The SQL page must answer exactly what the Python rules (``base.apply_list`` over every presented
object, the behaviour before) answer: the differential tests below compare the two on catalogs made
to collide (names differing only in case, unset times, equal values), for every managed kind.
"""

from __future__ import annotations

import datetime as _dt
import random
from typing import Any

import pytest
from sqlalchemy import event

from snapkeep.api.functions import base, destinations, filters, hooks, jobs, schedules
from snapkeep.clock import UTC
from snapkeep.jobs import listing
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.listing import ListQuery

KINDS = {
    "jobs": jobs.KIND,
    "destinations": destinations.KIND,
    "schedules": schedules.KIND,
    "hooks": hooks.KIND,
    "account_filters": filters.KIND,
}
NAMES = ["alpha", "Alpha", "ÄRGER", "ärger", "beta", "Beta", "gamma", "zeta", "a"]


def page(catalog: Catalog, query: ListQuery, **options: Any) -> tuple[list[str], int]:
    with catalog.transaction(write=False) as tx:
        rows, total = listing.page(tx, "jobs", query, **options)
    return [row["name"] for row in rows], total


def set_owner(catalog: Catalog, ident: str, owner: str) -> None:
    """Give job ``ident`` the owner value ``owner`` (document and column), as the owner rules would."""
    with catalog.transaction() as tx:
        stored = tx.require("jobs", ident, "Backup Job")
        document = {k: v for k, v in stored.items() if k not in ("_id", "running", "last_run", "next_run")}
        tx.replace("jobs", ident, {**document, "owner": owner})


@pytest.fixture
def named_jobs(make: Any, catalog: Catalog) -> list[dict[str, Any]]:
    """Five jobs: owners alice, bob, root; nested monitor values; one disabled."""
    destination = make.destination()
    specs = [
        ("beta", "alice", {"notran": 1, "ranfor": 2}, 2),
        ("Alpha", "bob", {"notran": 5, "ranfor": 0}, 1),
        ("gamma", "alice", {"notran": 3, "ranfor": 2}, 1),
        ("ärger", "root", {"notran": 3, "ranfor": 1}, 4),
        ("delta", "bob", {"notran": 0, "ranfor": 0}, 2),
    ]
    jobs = []
    for name, owner, monitor, structure in specs:
        job = make.job(name=name, destination=destination, monitor=monitor, structure=structure)
        set_owner(catalog, job["_id"], owner)
        jobs.append(job)
    return jobs


def test_find_on_a_nested_field(catalog: Catalog, named_jobs: list[dict[str, Any]]) -> None:
    assert page(catalog, ListQuery(find=[("monitor.notran", "3")])) == (["gamma", "ärger"], 2)
    assert page(catalog, ListQuery(find=[("monitor.notran", "3"), ("monitor.ranfor", 1)])) == (["ärger"], 1)
    assert page(catalog, ListQuery(find=[("monitor.notran", "03")])) == ([], 0)  # text, as the API shows it
    assert page(catalog, ListQuery(find=[("monitor.bogus", "")])) == (page(catalog, ListQuery())[0], 5)


def test_sort_with_several_keys_in_both_directions(
    catalog: Catalog, named_jobs: list[dict[str, Any]]
) -> None:
    by_structure_then_name = ListQuery(sort=[("structure", 1), ("name", -1)])
    assert page(catalog, by_structure_then_name)[0] == ["gamma", "Alpha", "delta", "beta", "ärger"]
    assert page(catalog, ListQuery(sort=[("monitor.ranfor", -1), ("name", 1)]))[0] == [
        "beta",
        "gamma",
        "ärger",
        "Alpha",
        "delta",
    ]
    # lower-cased names, compared by code point as Python does: "ä" after every ASCII letter
    assert page(catalog, ListQuery(sort=[("name", 1)]))[0] == ["Alpha", "beta", "delta", "gamma", "ärger"]


def test_skip_and_limit_page_and_total_counts_every_match(
    catalog: Catalog, named_jobs: list[dict[str, Any]]
) -> None:
    ordered = ListQuery(sort=[("name", 1)])
    assert page(catalog, ListQuery(sort=ordered.sort, skip=1, limit=2)) == (["beta", "delta"], 5)
    assert page(catalog, ListQuery(sort=ordered.sort, skip=4, limit=2)) == (["ärger"], 5)
    assert page(catalog, ListQuery(sort=ordered.sort, skip=9, limit=2)) == ([], 5)
    assert page(catalog, ListQuery(skip=2**70, limit=2**70)) == ([], 5)  # clamped, not an overflow


def test_owners_filter_on_the_owner_column(catalog: Catalog, named_jobs: list[dict[str, Any]]) -> None:
    assert page(catalog, ListQuery(), owners={"alice"}) == (["beta", "gamma"], 2)
    assert page(catalog, ListQuery(limit=1), owners=["bob", "root"]) == (["Alpha"], 3)
    assert page(catalog, ListQuery(), owners=()) == ([], 0)
    assert page(catalog, ListQuery(), owners=None)[1] == 5


def test_text_filter_ignores_case(catalog: Catalog, named_jobs: list[dict[str, Any]]) -> None:
    assert page(catalog, ListQuery(text="ALP")) == (["Alpha"], 1)
    assert page(catalog, ListQuery(text="ÄRG")) == (["ärger"], 1)
    assert page(catalog, ListQuery(text="%")) == ([], 0)  # no LIKE wildcards
    assert page(catalog, ListQuery(text="_")) == ([], 0)
    assert page(catalog, ListQuery(text="a"))[1] == 4  # "ärger" has no plain "a"


HOSTILE = [
    "name'); DROP TABLE jobs; --",
    'name") OR 1=1 --',
    "monitor.notran') OR ('1'='1",
    "$.name",
    "name\x00",
    "document",
    "id",
]


def test_hostile_field_names_and_values_never_reach_the_sql_text(
    catalog: Catalog, named_jobs: list[dict[str, Any]]
) -> None:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(catalog.engine, "before_cursor_execute", record)
    try:
        for path in HOSTILE:
            # a path outside the API shape is None: only an empty value matches it
            assert page(catalog, ListQuery(find=[(path, "x")])) == ([], 0)
            assert page(catalog, ListQuery(find=[(path, "")]))[1] == 5
            assert page(catalog, ListQuery(sort=[(path, -1)]))[0] == page(catalog, ListQuery())[0]
        value = "x' OR '1'='1"
        assert page(catalog, ListQuery(find=[("name", value)])) == ([], 0)
        assert page(catalog, ListQuery(find=[("monitor.notran", value)])) == ([], 0)
        assert page(catalog, ListQuery(find=[("destination", value)])) == ([], 0)
        assert page(catalog, ListQuery(text=value)) == ([], 0)
        for nul in ("a\x00", "\x00"):  # PostgreSQL takes no NUL in a parameter: nothing can equal it
            assert page(catalog, ListQuery(find=[("name", nul), ("destination", nul)], text=nul)) == ([], 0)
            assert page(catalog, ListQuery(text=nul)) == ([], 0)
    finally:
        event.remove(catalog.engine, "before_cursor_execute", record)
    pasted = [s for s in statements for bad in [*HOSTILE[:3], "OR '1'='1"] if bad in s]
    assert not pasted
    assert page(catalog, ListQuery())[1] == 5


def test_page_refuses_what_sql_cannot_do(catalog: Catalog, named_jobs: list[dict[str, Any]]) -> None:
    for query in (
        ListQuery(find=[("destination_name", "Local disk")]),
        ListQuery(sort=[("schedules", 1)]),
        ListQuery(sort=[("destination", 1)]),  # a list sorts by its printed form: Python only
    ):
        assert listing.split("jobs", query)[1] is False
        with catalog.transaction(write=False) as tx, pytest.raises(ValueError, match="split the query"):
            listing.page(tx, "jobs", query)
    narrowed, whole = listing.split(
        "jobs", ListQuery(find=[("owner", "bob"), ("hooks", "")], sort=[("name", 1)], text="a", limit=1)
    )
    assert (whole, narrowed) == (False, ListQuery(find=[("owner", "bob")], text="a"))


# --- the SQL page answers what the Python rules answer -----------------------------------------------


def _populate(make: Any, catalog: Catalog, rng: random.Random) -> None:
    targets = [make.destination(name=f"D{index}", path=f"/srv/d{index}") for index in range(3)]
    for _index in range(3):
        make.schedule(name=rng.choice(NAMES), type=1, type_data=rng.choice([1, 2, 6]))
    created = []
    for index in range(24):
        structure = rng.choice([1, 2, 4])
        job = make.job(
            name=rng.choice(NAMES),
            destination=targets[index % 3],
            type=2,
            structure=structure,
            monitor={"notran": rng.choice([0, 1, 3]), "ranfor": rng.choice([0, 2])},
            disabled=rng.choice([0, 1]),
            encrypted=rng.choice([0, 1]),
            retry_failed=rng.choice([0, 1]),
            include_list=rng.sample(["/home", "/srv", "/etc", "/var/www"], rng.randint(1, 2)),
            time=rng.choice([0, 130, 2359]),
        )
        created.append(job["_id"])
        set_owner(catalog, job["_id"], rng.choice(["root", "alice", "Bob"]))
    base_time = _dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    with catalog.transaction() as tx:
        for ident in created:
            if rng.random() < 0.6:
                moment = base_time + _dt.timedelta(seconds=rng.choice([0, 0.25, 0.75, 1, 3600]))
                tx.set_job_times(ident, last_run=moment, next_run=rng.choice([None, moment]))
            if rng.random() < 0.3:
                tx.set_job_running(ident, True)
    for _index in range(4):
        make.ok(
            "manageHook",
            {
                "action": "create",
                "name": rng.choice(NAMES),
                "script": rng.choice(["/bin/true", "/bin/false"]),  # real root-owned scripts (docs/hooks.md)
                "position_type": rng.choice([1, 2]),
                "position": 1,
                "data_list": rng.sample(created, rng.randint(0, 2)),
                "disabled": rng.choice([0, 1]),
            },
        )
        make.ok(
            "manageAccountFilter",
            {"action": "create", "name": rng.choice(NAMES), "type": 2, "list": rng.sample(["bob", "eve"], 1)},
        )


def _paths(kind: str) -> list[str]:
    # (a top-level field the object lacks is refused: test_a_field_the_objects_lack_is_refused)
    extra = ["name.x", "monitor", "monitor.notran", "monitor.bogus", "destination.0", "options.path"]
    return [*listing.FIELDS[kind], *(path for path in extra if path.split(".")[0] in listing.FIELDS[kind])]


def _random_query(rng: random.Random, kind: str, objects: list[dict[str, Any]]) -> dict[str, Any]:
    paths = _paths(kind)
    params: dict[str, Any] = {}
    find: dict[str, Any] = {}
    for path in rng.sample(paths, rng.choice([0, 0, 1, 1, 2])):
        shown = base._lookup(rng.choice(objects), path) if objects else None
        if isinstance(shown, list) and shown and rng.random() < 0.7:
            shown = rng.choice(shown)
        find[path] = rng.choice([base._as_text(shown), base._as_text(shown), "", "0", "1", "05", "[]", "x"])
    if find:
        params["find"] = find
    if rng.random() < 0.8:
        params["sort"] = {path: rng.choice([1, -1]) for path in rng.sample(paths, rng.randint(1, 3))}
    if rng.random() < 0.3:
        params["filter"] = rng.choice(["A", "ä", "ET", "zz", ""])
    params["skip"] = rng.choice([0, 0, 1, 5])
    params["limit"] = rng.choice([0, 1, 3, 100])
    return params


@pytest.mark.parametrize("seed", [1, 2])
def test_sql_pages_equal_the_python_rules(make: Any, api: Any, catalog: Catalog, seed: int) -> None:
    rng = random.Random(seed)
    _populate(make, catalog, rng)
    for kind, object_kind in KINDS.items():
        # every object as the API presents it, in creation order (what the Python rules started from)
        everything = api.call(f"list{object_kind.name}s", {"limit": 0})["data"][object_kind.plural]
        with catalog.transaction(write=False) as tx:
            assert [item["_id"] for item in everything] == tx.ids(kind)
        for _ in range(60):
            params = _random_query(rng, kind, everything)
            expected, total = base.apply_list(everything, base.list_params(dict(params)))
            answer = api.call(f"list{object_kind.name}s", dict(params))
            assert answer["success"] == 1, answer["message"]
            got = answer["data"]
            assert [item["_id"] for item in got[object_kind.plural]] == [item["_id"] for item in expected], (
                kind,
                params,
            )
            assert got["total"] == total, (kind, params)
            assert got[object_kind.plural] == expected


def test_a_field_the_objects_lack_is_refused(make: Any, api: Any) -> None:
    """Issue 13 (review D4): a typo in find/sort is named with the usable fields, not an empty answer."""
    make.job()
    for params, field in (
        ({"find": {"bogus": "1"}}, "find[bogus]"),
        ({"sort": {"start": "1"}}, "sort[start]"),
    ):
        for function in ("listBackupJobs", "listQueueGroups", "listLogs", "listBackups", "listUsers"):
            answer = api.call(function, params)
            if function in ("listBackupJobs", "listUsers"):  # (the others are empty here: nothing to name)
                assert answer["success"] == 0, (function, answer)
                assert answer["message"].startswith(f"{field}: no such field; use one of _id, "), answer
    disabled = make.job(name="off", disabled=1)
    enabled = api.call("listBackupJobs", {"find": {"disabled": "0"}})["data"]["jobs"]
    assert disabled["_id"] not in [job["_id"] for job in enabled]
    assert len(enabled) == 1, "find[disabled]=0 matches the unset flag (review D15)"


def test_fields_name_every_key_the_presenters_show(make: Any, api: Any, catalog: Catalog) -> None:
    _populate(make, catalog, random.Random(3))
    for kind, object_kind in KINDS.items():
        answer = api.call(f"list{object_kind.name}s", {"limit": 0})
        shown = {key for item in answer["data"][object_kind.plural] for key in item}
        assert shown <= set(listing.FIELDS[kind]), (kind, shown - set(listing.FIELDS[kind]))
        # only the owner fields may be named before a kind shows them (they come with the owner column)
        assert set(listing.FIELDS[kind]) - shown <= {"owner", "owner_name"}, kind


def test_list_indexes_exist(catalog: Catalog) -> None:
    from sqlalchemy import inspect

    with catalog.transaction(write=False) as tx:
        inspector = inspect(tx.connection)
        for table in ("jobs", "destinations", "schedules", "hooks", "account_filters"):
            names = {index["name"] for index in inspector.get_indexes(table)}
            assert {f"ix_{table}_created", f"ix_{table}_name"} <= names, table
        assert "ix_jobs_owner" in {index["name"] for index in inspector.get_indexes("jobs")}


def test_a_default_page_is_read_in_index_order_without_sorting_the_table(tmp_path: Any) -> None:
    """The plain page walks (created, id) and stops after the page: its cost does not grow with the table."""
    catalog = Catalog.open(tmp_path / "home")
    try:
        statements: list[str] = []
        event.listen(
            catalog.engine,
            "before_cursor_execute",
            lambda conn, cur, statement, *rest: statements.append(statement),
        )
        with catalog.transaction(write=False) as tx:
            listing.page(tx, "jobs", ListQuery(limit=100), owners={"alice"})
            listing.page(tx, "jobs", ListQuery(limit=100))
            ordered = [s for s in statements if "ORDER BY" in s]
            plans = [
                " ".join(str(row[-1]) for row in tx.connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}", p))
                for s, p in zip(ordered, [("alice", 100, 0), (100, 0)], strict=True)
            ]
    finally:
        catalog.close()
    assert "ix_jobs_owner" in plans[0], plans[0]
    assert "ix_jobs_created" in plans[1], plans[1]
    assert not [plan for plan in plans if "TEMP B-TREE" in plan]
