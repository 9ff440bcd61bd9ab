"""Restores of Accounts backups (``addQueueItems`` type 2 of a backup whose ``account`` is set).

What is restored, by what the request names (``jobs.restores.enqueue`` records it; ``runs.restore`` runs it):

* the backup (``snapshot_id``): the whole account, every component in its snapshot or archive
  (Incremental, or Archived/Compressed: both are read through ``runs.account_content``);
* a component item (``items[]`` = an ID from ``getBackupItems``): that component only;
* ``files[ITEM][PATH]``: those paths only. A path is the account's real path (``/home/alice/www``,
  under the home recorded with the backup) or a path inside the backup's layout
  (``/homedir/www``, ``/databases/mariadb/alice_wp`` with or without ``.sql``, ``/email/.Junk``);
  under a component item, a path without a component is inside that component.

Where it goes: ``homedir/`` into the home of the target account (``options[target_account]``,
default the backup's own account; looked up with the account provider, or in the backup's
``config/account.json`` when the account no longer exists), ``email/`` into its mail root,
``cron/crontab`` to its cron file, zones, certificates and FTP files to the target account's file of
the same name. Databases are recreated on their server from the stored dump, under
``options[database_name]`` when one database is restored, else under the same name (to another
account, a ``<old user>_`` prefix becomes ``<new user>_``); a PostgreSQL database is owned by the
account's role. Database users and grants (``database_users/``) are recreated before PostgreSQL
and after MariaDB databases, for the backup's own account only.

Existing data is never overwritten unless ``options[merge]=0``: with merge 1 (default) an existing
file or database is kept (and named in the log); with merge 0 existing files the backup has are
replaced and an existing database is dropped and recreated. ``options[overwrite]`` chooses another
policy for files (``engine.fs.restore_policy``: ``if-changed`` compares contents, ``if-newer``
times); the counts of files written, overwritten and kept go to the log. Files the backup does not
have are always left alone. Files restored to another account are given the owner of its home (as
root). Fifos, device nodes and set-user/group-ID bits are never created in an account.

Files are restored into a private staging folder, then moved into the account through folder
descriptors opened without following symlinks (``engine.fs.safe_target.Placer``): a symlink the account
holds where a folder belongs stops that path (named in the log), never leads outside. A dry run
(``options[dry_run]=1``) lists what would be written, overwritten or kept and changes nothing
(databases included). Raises nothing: every problem is a line in the run's log and the item's status.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from snapkeep.clock import Clock
from snapkeep.engine.fs.restore_policy import ALWAYS, NEVER, SKIP, Changes
from snapkeep.engine.fs.safe_target import Placer
from snapkeep.engine.progress import Progress
from snapkeep.engine.repository import Repository
from snapkeep.errors import NotFoundError, SnapkeepError, UnsafePathError, ValidationError
from snapkeep.jobs import accounts, backups
from snapkeep.jobs.backups import BackupRecord
from snapkeep.jobs.codes import QueueStatus
from snapkeep.jobs.logs import RunLog
from snapkeep.jobs.runs.account_content import AccountContent, open_content
from snapkeep.sources.accounts.base import MARIADB, POSTGRESQL, Account, Database
from snapkeep.sources.components import COMPONENT_BITS
from snapkeep.sources.databases import drop_database, restore_database
from snapkeep.sources.dbclient import DatabaseSettings
from snapkeep.sources.dbusers import postgres_role_exists, restore_users

COMPLETED, PARTIAL, FAILED = QueueStatus.COMPLETED, QueueStatus.PARTIAL, QueueStatus.FAILED
STAGING = "restores"


def entry_paths(row: BackupRecord, ident: str, paths: Sequence[str]) -> list[str]:
    """The layout paths (``/homedir/www``) a request names for account backup ``row`` through
    ``ident`` (the backup or one of its component items); [] = the whole account. Raises
    ValidationError naming ``files[ident][path]`` for a path that is in no component."""
    component = backups.component_of(row, ident)
    home = str(row.document.get("home") or "").rstrip("/")
    chosen: list[str] = []
    for path in paths:
        parts = [part for part in path.split("/") if part and part != "."]
        if home and (path.rstrip("/") == home or path.startswith(home + "/")):
            parts = ["homedir", *[part for part in path[len(home) :].split("/") if part]]
        elif not parts or parts[0] not in COMPONENT_BITS:
            if component is None:
                raise ValidationError(
                    field=f"files[{ident}][{path}]",
                    problem=f"names no component of the backup (a path under {home or 'the home'} or "
                    "/homedir, /databases, /email ...)",
                )
            parts = [component, *parts]
        if ".." in parts:
            raise ValidationError(field=f"files[{ident}][{path}]", problem="must not contain '..'")
        if parts[0] == "databases" and len(parts) == 3 and not parts[2].endswith(".sql"):
            parts[2] += ".sql"
        chosen.append("/" + "/".join(parts))
    if not chosen and component is not None:
        chosen.append(f"/{component}")
    return chosen


def check_options(rows: Sequence[BackupRecord], options: Mapping[str, Any]) -> dict[str, str]:
    """The account options of a restore request (``database_name``, ``target_account``). Raises
    ValidationError when they are given for a backup that is not an account's."""
    extra = {key: str(options.get(key) or "") for key in ("database_name", "target_account")}
    for key, value in extra.items():
        if value and any(not row.account for row in rows):
            raise ValidationError(field=f"options[{key}]", problem="applies to Accounts backups only")
    return {key: value for key, value in extra.items() if value}


class AccountRestore:
    """The restore of one account backup (one queue item); ``run()`` returns its status."""

    def __init__(
        self,
        home: Path,
        group_id: str,
        run_log: RunLog,
        row: BackupRecord,
        options: Mapping[str, Any],
        clock: Clock,
    ) -> None:
        self.home = Path(home)
        self.group_id = group_id
        self.log = run_log
        self.row = row
        self.options = options
        self.clock = clock
        self.merge = bool(int(options.get("merge", 1)))
        self.overwrite = str(options.get("overwrite") or (NEVER if self.merge else ALWAYS))
        self.dry_run = bool(int(options.get("dry_run", 0)))
        self.changes = Changes()
        self.problems: list[str] = []
        self.done: list[str] = []
        self.settings = DatabaseSettings()

    def run(self, repository: Repository, paths: Sequence[str], progress: Progress) -> QueueStatus:
        """Restore ``paths`` (layout paths, [] = everything) of the row's snapshot or archive."""
        content = open_content(repository, self.row)
        config = accounts.load_config(self.home)
        self.settings = accounts.database_settings(config)
        target = self.target_account(content, config)
        wanted = list(paths) or [f"/{name}" for name in content.components]
        dumps = self.dumps(content, wanted)
        files = [
            path for path in wanted if path.split("/")[1] not in ("databases", "database_users", "config")
        ]
        same = target.username == self.row.account
        users = [path for path in wanted if path.split("/")[1] == "database_users"]
        if dumps and not users and "database_users" in content.components and same:
            engines = sorted({engine for engine, _ in dumps})
            users = [f"/database_users/{engine}.sql" for engine in engines]
        if users and not same:
            self.log.info(f"database users of {self.row.account} are not recreated for {target.username}")
            users = []
        if self.dry_run:
            for engine, name in dumps:
                self.log.info(f"dry run: database {engine} {name!r} would be restored")
            dumps, users = [], []
        self.users(content, users, POSTGRESQL)
        if len(dumps) > 1 and self.options.get("database_name"):
            self.problems.append("options[database_name]: names one database, but the restore has several")
        else:
            for engine, name in dumps:
                self.database(content, engine, name, target)
        self.users(content, users, MARIADB)
        if files:
            self.files(content, files, target, progress)
        if "/config" in wanted:
            self.log.info("config/account.json is the account's record; it is kept in the backup only")
        for problem in self.problems:
            self.log.error(f"backup {self.row.id}: {problem}")
        if not self.problems:
            return COMPLETED
        return PARTIAL if self.done else FAILED

    # --- the target account ---------------------------------------------------------------------

    def target_account(self, content: AccountContent, config: Mapping[str, Any]) -> Account:
        name = str(self.options.get("target_account") or self.row.account)
        with contextlib.suppress(NotFoundError):
            found = accounts.provider(self.home, config)
            if found is not None:
                return found.get_account(name)
        if name == self.row.account and "config" in content.components:
            record = json.loads(content.read("config/account.json"))
            self.log.info(f"account {name} is no longer listed: using the backup's own record")
            return Account.from_record(record["account"])
        raise NotFoundError(kind="Account", ident=name)

    # --- databases ------------------------------------------------------------------------------

    def dumps(self, content: AccountContent, wanted: list[str]) -> list[tuple[str, str]]:
        """(engine, database name) of every dump the wanted paths cover."""
        found: list[tuple[str, str]] = []
        for path in wanted:
            parts = path.strip("/").split("/")
            if parts[0] != "databases":
                continue
            if len(parts) == 3:
                found.append((parts[1], parts[2].removesuffix(".sql")))
                continue
            for engine in [parts[1]] if len(parts) == 2 else [MARIADB, POSTGRESQL]:
                found += [(engine, name) for name in content.dumps(engine)]
        return sorted(set(found))

    def database(self, content: AccountContent, engine: str, name: str, target: Account) -> None:
        new_name = str(self.options.get("database_name") or "")
        if not new_name:
            source, prefix = self.row.account, f"{self.row.account}_"
            new_name = (
                f"{target.username}_{name[len(prefix) :]}"
                if target.username != source and name.startswith(prefix)
                else name
            )
        owner = ""
        if engine == POSTGRESQL:
            roles = [user.name for user in target.database_users if user.engine == POSTGRESQL]
            roles.sort(key=lambda role: role != target.username)
            for role in roles:
                if postgres_role_exists(self.settings, role):
                    owner = role
                    break
        try:
            dump = Guarded(content.stream(f"databases/{engine}/{name}.sql"))
            restore_database(
                self.settings, Database(engine, new_name), dump, owner=owner, replace=not self.merge
            )
            if dump.error is not None:  # the dump read back was damaged: never leave half a database
                drop_database(self.settings, Database(engine, new_name))
                raise dump.error
        except SnapkeepError as error:
            self.problems.append(f"database {engine} {name!r} -> {new_name!r}: {error.message}")
            return
        self.done.append(f"database {new_name}")
        self.log.info(
            f"database {engine} {name!r} restored as {new_name!r}{f' (owner {owner})' if owner else ''}"
        )

    def users(self, content: AccountContent, paths: list[str], engine: str) -> None:
        for path in paths:
            if path.strip("/") not in (f"database_users/{engine}.sql", "database_users"):
                continue
            try:
                sql = content.read(f"database_users/{engine}.sql")
            except NotFoundError:
                continue
            try:
                restore_users(self.settings, engine, sql)
            except SnapkeepError as error:
                self.problems.append(f"database users ({engine}): {error.message}")
                continue
            self.done.append(f"users {engine}")
            self.log.info(f"database users and grants ({engine}) recreated")

    # --- files ----------------------------------------------------------------------------------

    def files(self, content: AccountContent, paths: list[str], target: Account, progress: Progress) -> None:
        staging = self.home / STAGING / f".{self.group_id}-{self.row.id}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True, mode=0o700)
        try:
            problems, unread = content.extract(staging, paths, progress)
            for path, message in problems[:50]:
                self.log.warning(f"backup {self.row.id}: {path}: {message}")
            if unread:
                self.problems.append(f"{unread} files could not be read from the backup")
            owner = None
            if target.username != self.row.account and os.geteuid() == 0:
                with contextlib.suppress(OSError):
                    info = os.stat(target.home)
                    owner = (info.st_uid, info.st_gid)
            for path in expand(staging, paths):
                destination = self.destination(path, target)
                staged = staging / path.strip("/")
                if destination is None:
                    self.problems.append(f"{path}: account {target.username} has no place for it")
                    continue
                if not os.path.lexists(staged):
                    continue
                mover = Placer(self.overwrite, owner, dry_run=self.dry_run)
                try:
                    mover.place_below(destination[0], destination[1], staged)
                except (UnsafePathError, OSError) as error:
                    reason = error.message if isinstance(error, UnsafePathError) else error.strerror or error
                    self.problems.append(f"{path}: not restored: {reason}")
                    continue
                self.done.append(path)
                where = Path(destination[0], *destination[1])
                verb = "would be restored" if self.dry_run else "restored"
                self.log.info(f"{path} {verb} to {where}: {mover.changes.summary()}")
                for action, item in mover.changes.entries[:20] if not self.dry_run else mover.changes.entries:
                    self.log.info(f"  {action} {item}" + (" (kept existing)" if action == SKIP else ""))
                for action, count in mover.changes.counts.items():
                    self.changes.counts[action] = self.changes.counts.get(action, 0) + count
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def destination(self, path: str, target: Account) -> tuple[Path, tuple[str, ...]] | None:
        """Where a layout path goes for ``target``: a folder of the account (its home, its mail
        root, the folder of a zone or certificate file) and the path below it; None when the account
        has no such place."""
        parts = path.strip("/").split("/")
        component, rest = parts[0], tuple(parts[1:])
        if component == "homedir":
            return Path(target.home), rest
        if component == "email":
            return (Path(target.mail_root), rest) if target.mail_root else None
        if component == "cron":
            return _as_place(target.cron_file) if target.cron_file and rest else None
        if not rest:
            return None
        if component == "domains":
            names = {f"{domain.name}.db": domain.zone_file for domain in target.domains if domain.zone_file}
            return _as_place(names[rest[0]]) if rest[0] in names else None
        files = target.certificates if component == "certificates" else target.ftp_files
        by_name = (
            {os.path.basename(path): path for path in files} if component in ("certificates", "ftp") else {}
        )
        return _as_place(by_name[rest[0]]) if rest[0] in by_name else None


class Guarded:
    """Chunks read back from a backup, handed to a database client: a read error (damage found
    after some chunks were fed) ends the chunks and is kept in ``error`` instead of being raised
    inside the client's feeding loop, so the caller can drop the half-loaded database."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.error: SnapkeepError | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.chunks
        except SnapkeepError as error:
            self.error = error


def _as_place(file: str) -> tuple[Path, tuple[str, ...]]:
    return Path(file).parent, (Path(file).name,)


#: Metadata files of a component that have no place of their own on the host.
LISTINGS = {"domains/domains.json", "ftp/accounts.json"}


def expand(staging: Path, paths: Sequence[str]) -> list[str]:
    """Whole ``cron``, ``domains``, ``certificates`` and ``ftp`` components as their files (each
    goes to its own place); other paths unchanged."""
    expanded: list[str] = []
    for path in paths:
        name = path.strip("/")
        if name in ("cron", "domains", "certificates", "ftp") and (staging / name).is_dir():
            children = sorted(f"{name}/{child.name}" for child in (staging / name).iterdir())
            expanded += [f"/{child}" for child in children if child not in LISTINGS]
        elif name not in LISTINGS:
            expanded.append(path)
    return expanded
