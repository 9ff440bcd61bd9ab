"""Nodes: the ``snapkeep serve`` processes sharing one catalog (issue 16, docs/nodes.md).

Every ``snapkeep serve`` registers as a **node**: a row of the catalog's ``nodes`` table with a stable
ID (kept in ``<home>/node.id``, 0600, made on first need), a name (``--node``, default the host
name; unique), its host, process ID, version, start time and a heartbeat it renews every few seconds.
A job belongs to a node (``jobs.node``): only that node's scheduler queues it and only that node's
workers claim its groups, because the files it backs up are on that server.

A node whose heartbeat is older than its own ``timeout`` (recorded at registration from
``serve --node-timeout``) is **declared down** by any live node's ``sweep``: its row becomes
``down``, its Processing queue groups become 104 Never Finished (``queue.mark_node_down``) and a
critical alert is raised; the caller (the service) then removes the repository locks its process
held. The row locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so of several sweeping nodes one
declares it. A down node can be removed (``remove``); a live one cannot.

SQLite stays single-node: ``register`` refuses a second live node on a SQLite catalog.

Times are the nodes' own clocks (the injected clock): servers sharing a catalog keep NTP time, and
the timeout (60 s by default) is far above a sane skew.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from snapkeep import __version__
from snapkeep.clock import isoformat
from snapkeep.engine.repository.locks import process_alive
from snapkeep.errors import ConfigError, ConflictError, NotFoundError, ValidationError
from snapkeep.home import open_private
from snapkeep.ids import is_id, new_id
from snapkeep.jobs import alerts, queue, sealing
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.codes import QueueStatus
from snapkeep.jobs.migrations import schema

LABEL = "Node"
NODE_FILE = "node.id"
UP, DOWN = "up", "down"
DEFAULT_TIMEOUT = 60.0
MIN_TIMEOUT, MAX_TIMEOUT = 2.0, 3600.0
NAME_LIMIT = 255


def heartbeat_interval(timeout: float) -> float:
    """How often a node with ``timeout`` renews its heartbeat: 5 s, or a quarter of a short timeout."""
    return max(0.2, min(5.0, timeout / 4))


# --- the node's own ID (in its home) ---------------------------------------------------------------


def local_id(home: Path) -> str:
    """The ID of the node ``home`` belongs to, read from ``<home>/node.id`` or made (0600) on first
    need. Raises ConfigError when the file cannot be read or written, or holds no ID."""
    path = Path(home) / NODE_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the node ID {path}: {error}") from None
    if text:
        if not is_id(text):
            raise ConfigError(f"{path} does not hold a node ID (24 lowercase hex characters)")
        return text
    ident = new_id()
    try:
        Path(home).mkdir(parents=True, exist_ok=True)
        descriptor = open_private(path, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(ident + "\n")
    except OSError as error:
        raise ConfigError(f"cannot write the node ID {path}: {error.strerror}") from None
    return ident


def check_name(name: str) -> str:
    """A node name: 1-255 printable characters without spaces at either end. Raises ValidationError."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValidationError(field="node", problem=f"a node name must be non-empty text (got {name!r})")
    if len(name) > NAME_LIMIT or not name.isprintable():
        raise ValidationError(
            field="node", problem=f"a node name is at most {NAME_LIMIT} printable characters"
        )
    return name


def check_api_url(url: str) -> str:
    """A node's API address as the other nodes reach it: ``http(s)://HOST[:PORT]`` with no path,
    query or credentials. Raises ValidationError naming ``advertise-url``."""
    parts = urllib.parse.urlsplit(url)
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = f"must start with http:// or https:// (got {url!r})"
    elif not parts.hostname or parts.username or parts.password:
        problem = f"must name a host, without a user or password (got {url!r})"
    elif parts.path not in ("", "/") or parts.query or parts.fragment:
        problem = f"must be the API's root, without a path or query (got {url!r})"
    else:
        try:
            parts.port  # noqa: B018 (raises ValueError for a port out of range)
        except ValueError:
            problem = f"has no valid port (got {url!r})"
    if problem:
        raise ValidationError(field="advertise-url", problem=problem)
    return url.rstrip("/")


# --- rows ---------------------------------------------------------------------------------------------


def _alive(row: Any, now: _dt.datetime) -> bool:
    return bool(row.state == UP and (now - row.heartbeat).total_seconds() <= row.timeout)


def present(row: Any, now: _dt.datetime, *, jobs: int = 0) -> dict[str, Any]:
    """A node in API shape; ``alive`` is 1 when it is up and its heartbeat is within its timeout."""
    return {
        "_id": row.id,
        "name": row.name,
        "host": row.host,
        "pid": row.pid,
        "version": row.version,
        "state": row.state,
        "alive": 1 if _alive(row, now) else 0,
        "started": isoformat(row.started),
        "heartbeat": isoformat(row.heartbeat),
        "heartbeat_age": round(max(0.0, (now - row.heartbeat).total_seconds()), 1),
        "timeout": row.timeout,
        "down_since": isoformat(row.down_since),
        "jobs": jobs,
        "api": str((row.document or {}).get("api") or ""),
        "tls_fingerprint": str((row.document or {}).get("tls_fingerprint") or ""),
    }


def _job_counts(tx: Transaction) -> dict[str, int]:
    jobs = schema.jobs
    query = select(jobs.c.node, func.count()).where(jobs.c.node.is_not(None)).group_by(jobs.c.node)
    return {str(node): int(count) for node, count in tx.connection.execute(query)}


def list_nodes(tx: Transaction) -> list[dict[str, Any]]:
    """Every node, by name, with how many jobs belong to it."""
    table = schema.nodes
    counts = _job_counts(tx)
    now = tx.clock.now()
    rows = tx.connection.execute(select(table).order_by(table.c.name, table.c.id))
    return [present(row, now, jobs=counts.get(row.id, 0)) for row in rows]


def _find(tx: Transaction, ident: str, *, lock: bool = False) -> Any:
    table = schema.nodes
    query = select(table).where(or_(table.c.id == ident, table.c.name == ident))
    row = tx.connection.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFoundError(kind=LABEL, ident=ident)
    return row


def get_node(tx: Transaction, ident: str) -> dict[str, Any]:
    """The node with ID or name ``ident``. Raises NotFoundError."""
    row = _find(tx, ident)
    return present(row, tx.clock.now(), jobs=_job_counts(tx).get(row.id, 0))


def resolve(tx: Transaction, ident: str, *, field_name: str = "node") -> str:
    """The ID of the node named (by ID or name) ``ident``. Raises ValidationError naming ``field_name``
    when there is no such node (a job or a restore must name a registered node)."""
    try:
        return str(_find(tx, ident).id)
    except NotFoundError:
        raise ValidationError(field=field_name, problem=f"no such node: {ident}") from None


def leader(tx: Transaction) -> str | None:
    """The node that runs the catalog-wide passes (the job monitor, the daily integrity check): the
    live node with the smallest ID; None when no node is alive. When it dies, the next one takes over
    as soon as it is past its timeout."""
    table = schema.nodes
    now = tx.clock.now()
    rows = tx.connection.execute(select(table).where(table.c.state == UP).order_by(table.c.id)).all()
    return next((str(row.id) for row in rows if _alive(row, now)), None)


def job_ids(tx: Transaction, node: str | None) -> list[str]:
    """The IDs of the jobs of ``node`` in creation order (every job when None): a scheduler pass
    (index ``ix_jobs_node``)."""
    if node is None:
        return tx.ids("jobs")
    jobs = schema.jobs
    query = select(jobs.c.id).where(jobs.c.node == node).order_by(jobs.c.created, jobs.c.id)
    return [str(ident) for ident in tx.connection.execute(query).scalars()]


def serving_node(tx: Transaction) -> str | None:
    """The node of the data directory ``tx``'s catalog was opened for (the node serving an API call
    or running a command: ``local_id``); None for a catalog opened without one."""
    return local_id(tx.home) if tx.home is not None else None


def names(tx: Transaction) -> dict[str, str]:
    """Node ID -> name, for presenting what belongs to nodes."""
    table = schema.nodes
    return {str(row.id): str(row.name) for row in tx.connection.execute(select(table.c.id, table.c.name))}


def check_master_key(catalog: Catalog) -> None:
    """A node must hold the master key its catalog's secrets are sealed with (issue 16: nodes share
    one key, each in its own 0600 file). Raises ConfigError naming the key file when the catalog
    holds sealed values and this home has no key, or another key."""
    from snapkeep.jobs.seal_catalog import find_sealed  # seal_catalog imports most of jobs

    if catalog.home is None:
        return
    found = find_sealed(catalog.engine)
    if found is None:
        return
    path = sealing.key_path(catalog.home)
    if not sealing.has_key(catalog.home):
        raise ConfigError(
            f"this catalog holds secrets sealed with master key {found}, and this node has no master "
            f"key: {path} does not exist. Copy the master key file of the other nodes there (mode "
            f"0600), or set {sealing.ENVIRONMENT} to it (docs/nodes.md, docs/secrets.md)"
        )
    master = sealing.master_key(catalog.home, create=False)
    if master.ident != found:
        raise ConfigError(
            f"this catalog holds secrets sealed with master key {found}, but {path} is master key "
            f"{master.ident}: copy the other nodes' master key file there (docs/nodes.md)"
        )


# --- registration and heartbeats ---------------------------------------------------------------------


@dataclass(frozen=True)
class Me:
    """What a starting node says of itself."""

    id: str
    name: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    version: str = __version__
    timeout: float = DEFAULT_TIMEOUT
    #: where the other nodes reach this node's API (``serve --advertise-url``), and the SHA-256
    #: fingerprint of its TLS certificate ("" for plain HTTP): a download made on this node is
    #: fetched through any other node, which forwards the request here (``api/forward.py``)
    api: str = ""
    tls_fingerprint: str = ""


def register(tx: Transaction, me: Me) -> dict[str, Any]:
    """Register (or re-register) node ``me`` as up now; return it in API shape.

    Refuses (ConflictError) a name another node has, and a node ID whose row is up with a fresh
    heartbeat from another process (the same home served twice); refuses (ConfigError) a second live
    node on a SQLite catalog. Jobs and unfinished queue groups without a node (from before nodes)
    are adopted by the registering node.
    """
    check_name(me.name)
    if me.api:
        check_api_url(me.api)
    if not MIN_TIMEOUT <= me.timeout <= MAX_TIMEOUT:
        raise ValidationError(
            field="node-timeout",
            problem=f"must be {MIN_TIMEOUT:g}-{MAX_TIMEOUT:g} seconds (got {me.timeout:g})",
        )
    table = schema.nodes
    now = tx.clock.now()
    # only this node's row is locked (the others keep beating); the name is unique in the table too
    rows = [row for row in tx.connection.execute(select(table)).all() if row.id != me.id]
    mine = tx.connection.execute(select(table).where(table.c.id == me.id).with_for_update()).first()
    for row in rows:
        if row.name == me.name:
            raise ConflictError(
                f"node name {me.name!r} is taken by node {row.id} (host {row.host}, {row.state}): choose "
                "another --node, or remove that node (`snapkeep nodes remove`) once it is down"
            )
    if mine is not None and _alive(mine, now) and (mine.host, mine.pid) != (me.host, me.pid):
        same_host_dead = mine.host == me.host and not process_alive(mine.pid)
        if not same_host_dead:
            raise ConflictError(
                f"node {mine.name!r} ({me.id}) is already running (pid {mine.pid} on {mine.host}, heartbeat "
                f"{(now - mine.heartbeat).total_seconds():.0f}s ago): one snapkeep serve per data directory"
            )
    if tx.connection.dialect.name == "sqlite":
        others = [row for row in rows if _alive(row, now)]
        if others:
            other = others[0]
            raise ConfigError(
                f"a SQLite catalog serves one node, and node {other.name!r} (pid {other.pid} on "
                f"{other.host}) is up on it: several nodes need a shared PostgreSQL catalog "
                "(--catalog postgresql://..., docs/nodes.md)"
            )
    values = {
        "name": me.name,
        "host": me.host,
        "pid": me.pid,
        "version": me.version,
        "state": UP,
        "started": now,
        "heartbeat": now,
        "timeout": float(me.timeout),
        "down_since": None,
        "document": {"api": me.api, "tls_fingerprint": me.tls_fingerprint} if me.api else {},
    }
    if mine is None:
        tx.connection.execute(table.insert().values(id=me.id, created=now, **values))
    else:
        tx.connection.execute(update(table).where(table.c.id == me.id).values(**values))
    # a SQLite catalog has one node: everything in it is that node's (a catalog brought to a new
    # data directory with ``dr import`` keeps running); on PostgreSQL another server's jobs may name
    # a node that has not registered yet, so only what names no node is adopted there
    _adopt(tx, me.id, alone=tx.connection.dialect.name == "sqlite")
    return get_node(tx, me.id)


def _adopt(tx: Transaction, node: str, *, alone: bool) -> None:
    """Jobs and unfinished groups without a node (from before nodes) become ``node``'s. The node of
    a single-node (SQLite) catalog (``alone``) also takes those of any other node ID, with their
    Local destinations, its backups' accounts and its account users (a catalog restored with
    ``snapkeep dr import`` into a new data directory, whose node ID is new)."""
    jobs = schema.jobs
    orphan = jobs.c.node.is_(None) | (jobs.c.node != node) if alone else jobs.c.node.is_(None)
    adopted = tx.connection.execute(update(jobs).where(orphan).values(node=node)).rowcount
    queue.adopt_groups(tx, node, every=alone)
    # what another node ID left (a dr import) shows in its jobs: no scan of every backup at each start
    if alone and adopted:
        for destination in tx.all("destinations", type="Local"):
            if destination.get("node") and destination["node"] != node:
                document = {key: value for key, value in destination.items() if key != "_id"}
                tx.replace("destinations", str(destination["_id"]), {**document, "node": node})
        # the accounts of its backups and account users are this server's too
        for table in (schema.backups, schema.users):
            for row in tx.connection.execute(select(table.c.id, table.c.document)).all():
                document = dict(row.document or {})
                if document.get("node") and document["node"] != node:
                    tx.connection.execute(
                        update(table).where(table.c.id == row.id).values(document={**document, "node": node})
                    )


def heartbeat(tx: Transaction, node: str) -> bool:
    """Renew ``node``'s heartbeat. False when it is no longer up (another node declared it down, or
    it was removed): its runs were ended as Never Finished, and the caller stops them and registers
    again."""
    table = schema.nodes
    result = tx.connection.execute(
        update(table).where(table.c.id == node, table.c.state == UP).values(heartbeat=tx.clock.now())
    )
    return bool(result.rowcount == 1)


def leave(tx: Transaction, node: str) -> None:
    """A node stopping cleanly says so: its row is down at once (nothing of it is left running)."""
    table = schema.nodes
    now = tx.clock.now()
    tx.connection.execute(
        update(table).where(table.c.id == node, table.c.state == UP).values(state=DOWN, down_since=now)
    )


# --- declaring nodes down ---------------------------------------------------------------------------


@dataclass
class DownNode:
    """A node ``sweep`` declared down: what it left (groups now 104, jobs whose locks to release)."""

    id: str
    name: str
    host: str
    pid: int
    groups: list[dict[str, Any]]
    alert_ids: list[str]
    #: (job ID, destination IDs) of the Backup groups it left running
    jobs: list[tuple[str, list[str]]]


def sweep(tx: Transaction, me: str, *, connected_since: _dt.datetime | None = None) -> list[DownNode]:
    """Declare down every other node whose heartbeat is older than its timeout; return them.

    The up nodes are read without locks (index ``ix_nodes_state_heartbeat``); only a silent one is
    then locked ``FOR UPDATE SKIP LOCKED`` (PostgreSQL) and looked at again, so live nodes' heartbeats
    never wait for a sweep, and of several nodes sweeping at once one declares it; the state moves
    with a conditional UPDATE. Its Processing groups become 104 Never Finished and a critical alert
    names it.

    ``connected_since`` is when the sweeping node's own heartbeats last started to succeed: a node is
    declared down only when the sweeper has itself been reaching the catalog for that node's whole
    timeout, so after an outage of the catalog every node gets the time to beat again before anyone
    judges it (otherwise the first node back would declare all the others down)."""
    table = schema.nodes
    now = tx.clock.now()
    query = select(table).where(table.c.state == UP, table.c.id != me).order_by(table.c.heartbeat)
    silent = [row.id for row in tx.connection.execute(query).all() if not _alive(row, now)]
    declared: list[DownNode] = []
    for ident in silent:
        again = select(table).where(table.c.id == ident, table.c.state == UP)
        if tx.connection.dialect.name == "postgresql":
            again = again.with_for_update(skip_locked=True)
        row = tx.connection.execute(again).first()
        if row is None or _alive(row, now):
            continue  # another node is declaring it, it beat meanwhile, or it is gone
        if connected_since is not None and (now - connected_since).total_seconds() <= row.timeout:
            continue
        moved = tx.connection.execute(
            update(table)
            .where(table.c.id == row.id, table.c.state == UP, table.c.heartbeat == row.heartbeat)
            .values(state=DOWN, down_since=now)
        )
        if moved.rowcount != 1:
            continue
        groups = queue.mark_node_down(tx, row.id)
        age = (now - row.heartbeat).total_seconds()
        alert = alerts.raise_alert(
            tx,
            title=f"Node {row.name} is down",
            message=(
                f"node {row.name!r} ({row.id}, pid {row.pid} on {row.host}) has sent no heartbeat for "
                f"{age:.0f}s (timeout {row.timeout:g}s): {len(groups)} run(s) marked Never Finished"
            ),
            incident=f"node-down:{row.id}",
        )
        jobs: list[tuple[str, list[str]]] = []
        for group in groups:
            job = tx.get("jobs", str(group.get("job_id"))) if group.get("job_id") else None
            if job is not None:
                jobs.append((str(job["_id"]), [str(ident) for ident in job.get("destination", [])]))
        alert_ids = [str(group["alert_id"]) for group in groups if group.get("alert_id")]
        if alert is not None:
            alert_ids.insert(0, alert.id)
        declared.append(DownNode(row.id, row.name, row.host, row.pid, groups, alert_ids, jobs))
    return declared


def node_back(tx: Transaction, node: str) -> None:
    """Close the node-down incident of ``node`` (it registered again)."""
    alerts.resolve(tx, f"node-down:{node}")


# --- removal -----------------------------------------------------------------------------------------


def remove(tx: Transaction, ident: str) -> dict[str, Any]:
    """Remove a node that is down from the catalog; return it. Its Pending groups (runs it will never
    claim) end as 103 Aborted. Raises NotFoundError, ConflictError while it is alive or still has
    jobs (move them first: ``manageBackupJob`` with ``node``)."""
    row = _find(tx, ident, lock=True)
    now = tx.clock.now()
    if _alive(row, now):
        raise ConflictError(
            f"node {row.name!r} ({row.id}) is up (heartbeat {(now - row.heartbeat).total_seconds():.0f}s "
            "ago): stop its snapkeep serve first, or wait until it is declared down"
        )
    owned = _job_counts(tx).get(row.id, 0)
    if owned:
        raise ConflictError(
            f"node {row.name!r} ({row.id}) still has {owned} Backup Job(s): move them to another node "
            "(manageBackupJob node=...) or delete them first"
        )
    answer = present(row, now)
    groups = schema.queue_groups
    pending = tx.connection.execute(
        select(groups.c.id).where(groups.c.node == row.id, groups.c.status == int(QueueStatus.PENDING))
    ).scalars()
    for group_id in list(pending):
        queue.request_stop(tx, str(group_id))
    tx.connection.execute(delete(schema.nodes).where(schema.nodes.c.id == row.id))
    alerts.resolve(tx, f"node-down:{row.id}")
    return answer
