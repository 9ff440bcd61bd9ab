"""Account components: what each ``contains`` bit backs up, and where it goes in the snapshot.

``account_sources(account, contains, options, excludes)`` answers, per component, what to feed the
engine; ``write_account(layout, sources)`` feeds it to an ``engine.backup.composed.LayoutBackup``. The fixed
layout inside an account's snapshot (each component's folder is present whenever its bit is set,
empty when the account has nothing of that kind):

==========  ===================  ===================================================================
bit         folder               contents
==========  ===================  ===================================================================
1           ``config/``          ``account.json``: the account record (``Account.to_record``)
2           ``homedir/``         the home folder (job ``exclude_list`` + account ``excludes``, both
                                 relative to the home unless absolute; the mail root is left out
                                 when it lies inside the home: it is the email component's)
4           ``databases/``       ``<engine>/<name>.sql``: one streamed dump per database
8           ``email/``           the mail root, filtered by ``options`` (``sources.mail``)
16          ``cron/``            ``crontab``: the account's crontab file
32          ``domains/``         ``domains.json`` (names and zone files) and ``<domain>.db`` zones
64          ``certificates/``    each certificate file under its own name
128         ``database_users/``  ``<engine>.sql``: CREATE USER/ROLE and GRANT statements
256         ``ftp/``             ``accounts.json`` and the FTP files listed for the account
==========  ===================  ===================================================================

Per-component failures (a dump that fails, a server that does not answer for users) are returned
by ``write_account`` as ``ComponentFailure``; the account's backup then goes on without that item.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from snapkeep.clock import SYSTEM, Clock
from snapkeep.engine.backup import BackupOptions
from snapkeep.engine.backup.composed import LayoutBackup, find_layout_parent
from snapkeep.engine.backup.parents import AUTO_PARENT, resolve_parent
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.errors import DatabaseError, DumpError
from snapkeep.sources.accounts.base import Account, Database
from snapkeep.sources.databases import DumpStream, database_size, open_dump
from snapkeep.sources.dbclient import DatabaseSettings
from snapkeep.sources.dbusers import users_sql
from snapkeep.sources.mail import includes_databases, mail_excludes

COMPONENTS: tuple[tuple[int, str], ...] = (
    (1, "config"),
    (2, "homedir"),
    (4, "databases"),
    (8, "email"),
    (16, "cron"),
    (32, "domains"),
    (64, "certificates"),
    (128, "database_users"),
    (256, "ftp"),
)
COMPONENT_BITS = {name: bit for bit, name in COMPONENTS}
ALL_COMPONENTS = 511


@dataclass(frozen=True, slots=True)
class PathItem:
    """Copy the file or folder ``source`` to ``target`` in the snapshot, skipping ``excludes``."""

    target: str
    source: str
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DataItem:
    """Store what ``produce()`` returns as the file ``target`` (may raise ``DatabaseError``)."""

    target: str
    produce: Callable[[], bytes]


@dataclass(frozen=True, slots=True)
class DumpItem:
    """Stream a dump of ``database`` to ``target``; skipped when larger than ``max_size`` (> 0)."""

    target: str
    database: Database
    max_size: int = 0


Item = PathItem | DataItem | DumpItem


@dataclass(slots=True)
class Component:
    """One ``contains`` bit of one account: its folder in the snapshot and its items."""

    bit: int
    name: str
    items: list[Item] = field(default_factory=list)


@dataclass(slots=True)
class AccountSources:
    """Everything an account's backup reads, component by component."""

    account: Account
    contains: int
    options: int
    components: list[Component]
    settings: DatabaseSettings

    @property
    def names(self) -> list[str]:
        """The component names, in layout order (a snapshot's ``components``)."""
        return [component.name for component in self.components]


@dataclass(frozen=True, slots=True)
class ComponentFailure:
    """An item that could not be backed up; the account's backup is Partially Completed."""

    component: str
    target: str
    message: str


def home_excludes(account: Account, patterns: list[str] | tuple[str, ...]) -> list[str]:
    """Exclude globs made absolute: a pattern with a leading ``/`` stays, any other is relative to
    the account's home (``cache/**`` -> ``/home/alice/cache/**``)."""
    home = account.home.rstrip("/")
    return [pattern if pattern.startswith("/") else f"{home}/{pattern}" for pattern in patterns if pattern]


def _inside(path: str, folder: str) -> bool:
    folder = folder.rstrip("/")
    return path.rstrip("/") != folder and path.startswith(folder + "/")


def _unique_name(path: str, taken: set[str]) -> str:
    name = os.path.basename(path.rstrip("/")) or "file"
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{number}-{name}"
    taken.add(candidate)
    return candidate


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"


def account_sources(
    account: Account,
    contains: int,
    options: int,
    excludes: list[str] | tuple[str, ...] = (),
    *,
    settings: DatabaseSettings | None = None,
    exclude_db_by_size: int = 0,
) -> AccountSources:
    """What to back up for ``account`` under a job's ``contains``, ``options``, ``exclude_list``
    and ``mysql_exclude_db_by_size``. Pure: nothing is read yet. Raises ``ValidationError`` for an
    ``options`` value API.md does not define."""
    settings = settings or DatabaseSettings()
    globs = home_excludes(account, [*excludes, *account.excludes])
    with_databases = includes_databases(options)
    mail_root = account.mail_root.rstrip("/")
    builders: dict[str, Callable[[], list[Item]]] = {
        "config": lambda: [
            DataItem(
                "config/account.json",
                lambda: _json({"account": account.to_record(), "contains": contains, "options": options}),
            )
        ],
        "homedir": lambda: [
            PathItem(
                "homedir",
                account.home,
                tuple(globs + ([mail_root] if mail_root and _inside(mail_root, account.home) else [])),
            )
        ],
        "databases": lambda: (
            [
                DumpItem(f"databases/{database.engine}/{database.name}.sql", database, exclude_db_by_size)
                for database in account.databases
            ]
            if with_databases
            else []
        ),
        "email": lambda: (
            [PathItem("email", mail_root, tuple(globs + mail_excludes(mail_root, options)))]
            if mail_root
            else []
        ),
        "cron": lambda: [PathItem("cron/crontab", account.cron_file)] if account.cron_file else [],
        "domains": lambda: _domain_items(account),
        "certificates": lambda: _file_items("certificates", account.certificates),
        "database_users": lambda: _user_items(account, settings),
        "ftp": lambda: [
            DataItem(
                "ftp/accounts.json",
                lambda: _json([asdict(ftp) for ftp in account.ftp_accounts]),
            ),
            *_file_items("ftp", account.ftp_files, taken={"accounts.json"}),
        ],
    }
    components = [
        Component(bit, name, builders[name]())
        for bit, name in COMPONENTS
        if contains & bit and (name != "databases" or with_databases)
    ]
    return AccountSources(account, contains, options, components, settings)


def _domain_items(account: Account) -> list[Item]:
    listing = [{"name": domain.name, "zone_file": domain.zone_file} for domain in account.domains]
    items: list[Item] = [DataItem("domains/domains.json", lambda: _json(listing))]
    taken = {"domains.json"}
    for domain in account.domains:
        if domain.zone_file:
            items.append(PathItem(f"domains/{_unique_name(domain.name + '.db', taken)}", domain.zone_file))
    return items


def _file_items(folder: str, paths: tuple[str, ...], *, taken: set[str] | None = None) -> list[Item]:
    taken = set(taken or ())
    return [PathItem(f"{folder}/{_unique_name(path, taken)}", path) for path in paths]


def _user_items(account: Account, settings: DatabaseSettings) -> list[Item]:
    engines = sorted({user.engine for user in account.database_users})

    def producer(engine: str) -> Callable[[], bytes]:
        users = [user for user in account.database_users if user.engine == engine]
        return lambda: users_sql(settings, users).get(engine, b"")

    return [DataItem(f"database_users/{engine}.sql", producer(engine)) for engine in engines]


# --- feeding the engine -------------------------------------------------------------------------


def write_dump(layout: LayoutBackup, item: DumpItem, settings: DatabaseSettings) -> int:
    """Stream one dump into ``layout`` and place it once it proved complete; returns its size.
    Raises ``DumpError`` (nothing placed) when the dump fails and ``DatabaseError`` when the server
    cannot be asked."""
    stream: DumpStream = open_dump(settings, item.database)
    with stream:
        node = layout.add_stream(item.target, stream)
        size = stream.finish()
    layout.commit(item.target, node)
    return size


def write_account(layout: LayoutBackup, sources: AccountSources) -> list[ComponentFailure]:
    """Add every component of ``sources`` to ``layout`` (not saved yet). Returns the items that
    failed (dumps, users); databases skipped for their size are warnings in the snapshot's stats.
    Storage and repository errors propagate: they are fatal for the destination."""
    failures: list[ComponentFailure] = []
    settings = sources.settings
    for component in sources.components:
        if all(item.target != component.name for item in component.items):
            layout.add_folder(component.name)  # present (maybe empty) even when items fail
        for item in component.items:
            try:
                if isinstance(item, PathItem):
                    layout.add_path(item.target, item.source, excludes=item.excludes)
                elif isinstance(item, DataItem):
                    layout.add_bytes(item.target, item.produce())
                elif item.max_size and (size := database_size(settings, item.database)) > item.max_size:
                    limit = f"mysql_exclude_db_by_size ({item.max_size})"
                    layout.warn("/" + item.target, f"database skipped: {size} bytes is more than {limit}")
                else:
                    write_dump(layout, item, settings)
            except (DumpError, DatabaseError) as error:
                failures.append(ComponentFailure(component.name, item.target, str(error)))
    return failures


@dataclass(slots=True)
class AccountBackup:
    """One account's saved snapshot and the items that failed (empty: Completed)."""

    snapshot: Snapshot
    failures: list[ComponentFailure]

    @property
    def partial(self) -> bool:
        """Whether some item failed or was skipped with a warning (Partially Completed)."""
        return bool(self.failures) or bool(self.snapshot.stats.get("warning_count"))


def backup_account(
    repository: Repository,
    sources: AccountSources,
    *,
    job_id: str | None = None,
    tags: list[str] | tuple[str, ...] = (),
    parent: Snapshot | str | None = AUTO_PARENT,
    progress: Progress | None = None,
    options: BackupOptions | None = None,
    clock: Clock = SYSTEM,
    extra: dict[str, object] | None = None,
) -> AccountBackup:
    """Back up one account into ``repository`` as one snapshot (``account`` = its username,
    ``components`` = the component names) and return it with the failed items, which are also
    listed in ``stats["failures"]``. ``parent="auto"`` reuses the newest snapshot of the same job
    and account. Storage, repository and abort errors propagate and nothing is saved."""
    username = sources.account.username
    parent_snapshot = resolve_parent(
        repository, parent, lambda: find_layout_parent(repository, job_id=job_id, account=username)
    )
    layout = LayoutBackup(repository, parent=parent_snapshot, progress=progress, options=options, clock=clock)
    try:
        failures = write_account(layout, sources)
    except BaseException:
        layout.abort()
        raise
    fields = dict(extra or {})
    previous = fields.get("stats")
    fields["stats"] = {
        **(previous if isinstance(previous, dict) else {}),
        "failures": [asdict(failure) for failure in failures],
        "contains": sources.contains,
        "options": sources.options,
    }
    snapshot = layout.save(tags=tags, job_id=job_id, account=username, components=sources.names, extra=fields)
    return AccountBackup(snapshot, failures)
