"""Issue 16 end to end: three ``snapkeep serve`` nodes on loopback sharing one PostgreSQL catalog (a
database made for the test) and one S3 destination (``rclone serve s3``), each with its own fake host
tree of accounts (an inventory provider in its own ``config.toml``) and the same master key.

- every node's job runs on that node only (each job backs up exactly its node's accounts);
- ``runBackupJobManually`` sent to the three nodes at once for one job queues it once;
- node C is killed with -9 while its run holds a repository lock on S3: the others declare it down,
  its group becomes 104 and its lock is removed, within its ``--node-timeout`` (3 s) plus a margin;
- an account of the dead node C, backed up before (encrypted: the job key is sealed in the shared
  catalog), is restored through node A onto node B, into an account of B: its files compared byte
  for byte, its MariaDB database (recreated under B's account's prefix) by row checksums;
- a download made on node B (HTTPS, self-signed) is fetched through node A, which forwards the
  request to B pinned to B's registered certificate; one made on C answers 503 once C is down.
- a second live node on a SQLite catalog is refused at start with a clear message.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import require_server
from tests.e2e.conftest import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    SNAPKEEP,
    Instance,
    Server,
    free_port,
    fresh_postgres_database,
    postgres_answers,
    printed_token,
    start_server,
)
from tests.integration.test_account_runs import MARIADB_SQL, mariadb, mariadb_checksum, servers_answer
from tests.servers import RcloneS3Server

NODE_TIMEOUT = 3.0
#: how long after the kill the others must have declared C down and cleaned up after it
DOWN_WITHIN = NODE_TIMEOUT + 2 * 1.0 + 4.0  # timeout, two heartbeat intervals, a margin for the machine


@dataclass
class Node:
    name: str
    instance: Instance
    server: Server
    accounts: dict[str, Path]

    def ok(self, function: str, params: dict[str, Any] | None = None) -> Any:
        answer = self.server.call(function, params)
        assert answer["success"] == 1, (self.name, function, params, answer["message"])
        return answer["data"]


def _tree(home: Path, user: str, *, size: int = 0) -> None:
    (home / "public_html" / "img").mkdir(parents=True)
    (home / "public_html" / "index.php").write_text(f"<?php echo '{user}';\n" * 40)
    (home / "public_html" / "img" / "logo.bin").write_bytes(secrets.token_bytes(20_000))
    (home / "docs").mkdir()
    (home / "docs" / "notes.md").write_text(f"# notes of {user}\n" * 10)
    if size:
        (home / "big.bin").write_bytes(secrets.token_bytes(size))


def _configure(root: Path, home: Path, accounts: dict[str, Path], databases: dict[str, str]) -> None:
    lines = []
    for user, account_home in accounts.items():
        lines += ["[[account]]", f'username = "{user}"', f'home = "{account_home}"']
        if user in databases:
            lines += ["[[account.databases]]", 'engine = "mariadb"', f'name = "{databases[user]}"']
    (root / "inventory.toml").write_text("\n".join(lines) + "\n")
    (home / "config.toml").write_text(
        f'[accounts]\nprovider = "inventory"\ninventory = "{root / "inventory.toml"}"\n'
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, s3_server: RcloneS3Server) -> Iterator[dict[str, Node]]:
    require_server(postgres_answers(), f"PostgreSQL on {POSTGRES_HOST}:{POSTGRES_PORT}")
    require_server(servers_answer(), "MariaDB at 127.0.0.1:3306 and PostgreSQL at 127.0.0.1:5432")
    key = os.urandom(32)
    tag = secrets.token_hex(2)
    carol_db = f"carol{tag}_shop"  # dumped with carol's account, restored as dana{tag}_shop
    made_databases = [carol_db, f"dana{tag}_shop"]
    rows = ",".join(f"({n}, ' post {n} ', 'body {n}', {n}.25)" for n in range(1, 301))
    mariadb(f"CREATE DATABASE `{carol_db}`")
    mariadb(MARIADB_SQL.format(rows=rows), carol_db)
    layout = {
        "node-a": {f"alice{tag}": 0},
        "node-b": {f"bob{tag}": 0, f"dana{tag}": -1},  # dana: an empty account to restore into
        "node-c": {f"carol{tag}": 0},
    }
    nodes: dict[str, Node] = {}
    with fresh_postgres_database() as url:
        try:
            for name, accounts in layout.items():
                root = tmp_path_factory.mktemp(name)
                home = root / "home"
                home.mkdir(mode=0o700)
                key_file = home / "master.key"  # the nodes share one master key, each in its own file
                key_file.write_bytes(key)
                key_file.chmod(0o600)
                homes = {}
                for user, size in accounts.items():
                    homes[user] = root / "homes" / user
                    if size >= 0:
                        _tree(homes[user], user, size=size)
                    else:
                        homes[user].mkdir(parents=True)
                _configure(root, home, homes, {f"carol{tag}": carol_db} if name == "node-c" else {})
                instance = Instance("postgresql", home, url)
                log = root / "serve.log"
                # node B serves HTTPS (self-signed): the others reach it pinned to its fingerprint
                tls = ("--tls-self-signed",) if name == "node-b" else ()
                process, base_url, output = start_server(
                    instance, log, "--node", name, "--node-timeout", str(NODE_TIMEOUT), *tls
                )
                token = printed_token(output) or nodes["node-a"].server.token
                nodes[name] = Node(name, instance, Server(instance, process, base_url, log, token), homes)
            yield nodes
        finally:
            for node in nodes.values():
                node.server.stop()
            for database in made_databases:
                mariadb(f"DROP DATABASE IF EXISTS `{database}`")


def _wait(node: Node, group_id: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        group = node.ok("getQueueGroup", {"_id": group_id})
        if int(group["status"]) >= 100:
            return dict(group)
        assert time.monotonic() < deadline, f"queue group {group_id} did not finish: {group}"
        time.sleep(0.2)


def _names(folder: Path) -> list[str]:
    """The objects in a folder of the S3 server's disk ([] when there is none: rclone drops empty ones)."""
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def _files(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in skip
    }


def _fetch(node: Node, group_id: str) -> httpx.Response:
    return node.server.client.get(f"/download/{group_id}", headers=node.server.auth())


def test_three_nodes_share_a_catalog_and_an_s3_destination(
    cluster: dict[str, Node], s3_server: RcloneS3Server
) -> None:
    a, b, c = cluster["node-a"], cluster["node-b"], cluster["node-c"]
    listed = {node["name"]: node for node in a.ok("listNodes")["nodes"]}
    assert sorted(listed) == ["node-a", "node-b", "node-c"]
    assert all(node["alive"] == 1 and node["timeout"] == NODE_TIMEOUT for node in listed.values())

    s3_server.make_bucket("nodes")
    shared = a.ok(
        "manageDestination",
        {
            "action": "create",
            "name": "shared S3",
            "type": "S3",
            "options": {
                "bucket": "nodes",
                "endpoint": s3_server.endpoint,
                "access_key": s3_server.access_key,
                "secret_key": s3_server.secret_key,
                "path": "backups",
            },
        },
    )
    assert shared["node"] == ""
    jobs = {}
    for node in (a, b, c):  # each job made through its own node: it belongs to that node
        jobs[node.name] = node.ok(
            "manageBackupJob",
            {
                "action": "create",
                "name": f"accounts of {node.name}",
                "type": 1,
                "contains": 511,
                "structure": 1,
                "encrypted": 1,
                "destination": [shared["_id"]],
            },
        )
        assert jobs[node.name]["node"] == listed[node.name]["_id"]

    # runBackupJobManually for A's job sent to every node at once: queued once
    answers: list[dict[str, Any]] = []
    barrier = threading.Barrier(3)

    def run_through(node: Node) -> None:
        barrier.wait()
        answers.append(node.server.call("runBackupJobManually", {"_id": jobs["node-a"]["_id"]}))

    threads = [threading.Thread(target=run_through, args=(node,)) for node in (a, b, c)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answer["success"] for answer in answers) == [0, 0, 1], answers
    queued = [answer["data"]["queue_group_id"] for answer in answers if answer["success"]]
    for node in (b, c):
        queued.append(node.ok("runBackupJobManually", {"_id": jobs[node.name]["_id"]})["queue_group_id"])
    for group_id in queued:
        done = _wait(a, group_id)
        assert done["status"] == 100, done
    groups = {group["job_id"]: group for group in a.ok("listQueueGroups", {"limit": 0})["groups"]}
    assert len([group for group in groups.values() if group["job_id"] == jobs["node-a"]["_id"]]) == 1
    for name, job in jobs.items():
        assert groups[job["_id"]]["node"] == listed[name]["_id"]
        backed_up = {backup["account"] for backup in a.ok("listBackups", {"limit": 0})["backups"]
                     if backup["job_id"] == job["_id"]}  # fmt: skip
        expected = set(cluster[name].accounts)
        assert backed_up == expected, (name, backed_up)  # only that node's accounts

    # a download of B's backup, asked through A, is made on B; fetched through A (forwarded to
    # B over HTTPS, pinned) it is B's file byte for byte
    assert listed["node-b"]["api"] == b.server.base_url
    assert listed["node-b"]["tls_fingerprint"]
    assert listed["node-a"]["api"] == a.server.base_url
    assert not listed["node-a"]["tls_fingerprint"]
    backups = a.ok("listBackups", {"limit": 0})["backups"]
    of_b = next(item for item in backups if item["account"].startswith("bob"))
    of_c = next(item for item in backups if item["job_id"] == jobs["node-c"]["_id"])
    home_of_b = {of_b["_id"]: {"/homedir": "Directory"}}  # its files: the 20 kB logo among them
    download = a.ok("addQueueItems", {"type": 4, "snapshot_id": of_b["_id"], "files": home_of_b})
    assert download["node"] == listed["node-b"]["_id"]
    on_c = a.ok("addQueueItems", {"type": 4, "snapshot_id": of_c["_id"]})["_id"]
    for group_id in (download["_id"], on_c):
        assert _wait(a, group_id)["status"] == 100
    through_a = _fetch(a, download["_id"])
    assert through_a.status_code == 200, through_a.text
    assert through_a.content == _fetch(b, download["_id"]).content
    assert int(through_a.headers["content-length"]) == len(through_a.content) > 20_000
    assert download["_id"] in through_a.headers["content-disposition"]
    # forwarded with the caller's credentials: a token B does not know is refused on A already
    stranger = a.server.client.get(f"/download/{download['_id']}", headers=a.server.auth("nope"))
    assert stranger.status_code == 401
    # the panel's way: a session cookie with its CSRF value in the link, forwarded as they came
    with httpx.Client(base_url=a.server.base_url, timeout=60.0) as browser:
        signed = browser.post("/ui/session", json={"token": a.server.token})
        assert signed.status_code == 200, signed.text
        csrf = signed.json()["data"]["csrf"]
        by_cookie = browser.get(f"/download/{download['_id']}", params={"csrf": csrf})
        assert by_cookie.status_code == 200, by_cookie.text
        assert by_cookie.content == through_a.content
        assert browser.get(f"/download/{download['_id']}").status_code == 403  # cookie alone
    # a request that was already forwarded is never forwarded again (no loop between two nodes)
    again = {**a.server.auth(), "X-Snapkeep-Forwarded-By": listed["node-c"]["_id"]}
    looped = a.server.client.get(f"/download/{download['_id']}", headers=again)
    assert looped.status_code == 404
    assert "was made on node 'node-b'" in looped.json()["message"]

    # C runs again with a big file; killed -9 while its run holds a lock on the S3 destination
    carol = next(iter(c.accounts))
    before = _files(c.accounts[carol])
    checksum = mariadb_checksum(f"{carol}_shop")
    (c.accounts[carol] / "big.bin").write_bytes(secrets.token_bytes(96 * 1024 * 1024))
    running = c.ok("runBackupJobManually", {"_id": jobs["node-c"]["_id"]})["queue_group_id"]
    locks = s3_server.root / "nodes" / "backups" / jobs["node-c"]["_id"] / "locks"
    deadline = time.monotonic() + 60
    while not _names(locks):
        assert time.monotonic() < deadline, "node C's run never took its repository lock"
        time.sleep(0.02)
    c.server.process.send_signal(signal.SIGKILL)
    c.server.process.wait(10)
    killed = time.monotonic()
    while True:
        group = a.ok("getQueueGroup", {"_id": running})
        state = b.ok("getNode", {"_id": "node-c"})["state"]
        if group["status"] == 104 and state == "down" and not _names(locks):
            break
        assert time.monotonic() - killed < DOWN_WITHIN, (group["status_name"], state, _names(locks))
        time.sleep(0.1)
    took = time.monotonic() - killed
    print(f"node C declared down, its group 104 and its lock removed {took:.1f} s after kill -9")
    titles = [alert["title"] for alert in a.ok("listAlerts", {"limit": 0})["alerts"]]
    assert "Node node-c is down" in titles
    # the download made on C cannot be fetched while C is down: a clear answer naming it
    gone = _fetch(a, on_c)
    assert gone.status_code == 503, gone.text
    assert "node 'node-c'" in gone.json()["message"]
    assert "down" in gone.json()["message"]

    # carol (on the dead node C) restored through A onto node B, into B's account dana
    dana = next(user for user in b.accounts if user.startswith("dana"))
    backup = next(item for item in a.ok("listBackups", {"limit": 0})["backups"] if item["account"] == carol)
    restore = a.ok(
        "addQueueItems",
        {
            "type": 2,
            "snapshot_id": backup["_id"],
            # its files and database (this inventory account has no mail)
            "files": {backup["_id"]: {"/homedir": "Directory", f"/databases/mariadb/{carol}_shop": "File"}},
            "options": {"node": "node-b", "target_account": dana},
        },
    )
    assert restore["node"] == listed["node-b"]["_id"]
    done = _wait(a, restore["_id"])
    assert done["status"] == 100, b.ok("getLog", {"_id": done["log_id"], "content": 1})["content"]
    assert _files(b.accounts[dana]) == before  # byte for byte, without the file of the killed run
    assert mariadb_checksum(f"{dana}_shop") == checksum  # the rows, under dana's prefix
    # node C is gone: it can be removed once its job is moved or deleted
    b.ok("deleteBackupJob", {"_id": jobs["node-c"]["_id"]})
    assert b.ok("deleteNode", {"_id": "node-c"})["name"] == "node-c"
    assert sorted(node["name"] for node in a.ok("listNodes")["nodes"]) == ["node-a", "node-b"]


def test_a_second_node_on_a_sqlite_catalog_is_refused_at_start(tmp_path: Path) -> None:
    first = Instance("sqlite", tmp_path / "first", None)
    process, base_url, _output = start_server(first, tmp_path / "first.log", "--node", "one")
    running = Server(first, process, base_url, tmp_path / "first.log", "")
    try:
        second = Instance("sqlite", tmp_path / "second", f"sqlite:///{first.home / 'catalog.db'}")
        refused = subprocess.run(
            [str(SNAPKEEP), "serve", "--host", "127.0.0.1", "--port", str(free_port()), "--node", "two"],
            env=second.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode != 0
        assert "a SQLite catalog serves one node, and node 'one'" in refused.stderr + refused.stdout
        assert "several nodes need a shared PostgreSQL catalog" in refused.stderr + refused.stdout
    finally:
        running.stop()
