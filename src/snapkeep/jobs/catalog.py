"""The catalog: jobs, destinations, schedules, hooks, filters, queue, logs, alerts, tokens, settings.

SQLAlchemy Core on SQLite (``<home>/catalog.db``, WAL) by default, or PostgreSQL by URL. Migrations
run on open. Every write happens inside ``transaction()``: one database transaction, so a request that
fails half-way leaves the catalog as it was. SQLAlchemy errors become ``CatalogError`` here.

Managed objects are documents: ``{"_id": ..., **fields}``; the columns that queries need (name, type,
group) are derived from the document on every write.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, select, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from snapkeep.clock import SYSTEM, Clock
from snapkeep.errors import CatalogError, ConfigError, NotFoundError, SnapkeepError
from snapkeep.home import create_private, make_private, tighten
from snapkeep.ids import new_id
from snapkeep.jobs import migrations, sealing
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.migrations.m0006_users import ROOT_ID

# document kind -> the columns copied from the document on every write
DOCUMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "jobs": ("name", "owner", "node"),
    "destinations": ("name", "type", "owner"),
    "schedules": ("name", "type", "owner"),
    "hooks": ("name", "owner"),
    "account_filters": ("group_id", "name", "type", "owner"),
}
#: The user ID of root (``jobs.users``): the owner of objects stored without one.
ROOT_OWNER = ROOT_ID


def catalog_url(home: Path, url: str | None) -> str:
    """The SQLAlchemy URL for a catalog: SQLite in ``home`` unless ``url`` names PostgreSQL.

    Raises ConfigError for a URL of another kind.
    """
    if not url:
        return f"sqlite:///{home / 'catalog.db'}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql+psycopg://") or url.startswith("sqlite:"):
        return url
    raise ConfigError(f"catalog URL must start with postgresql:// (got {url.split('://')[0]}://...)")


#: ``SIZE+OVERFLOW`` connections one process keeps to a PostgreSQL catalog (docs/nodes.md: the
#: nodes together must stay under ``max_connections``)
POOL_VARIABLE = "SNAPKEEP_CATALOG_POOL"
DEFAULT_POOL = (4, 4)


def pool_size(value: str | None = None) -> tuple[int, int]:
    """The connection pool of a PostgreSQL catalog: (kept open, more when busy), from
    ``SNAPKEEP_CATALOG_POOL`` (``SIZE+OVERFLOW``, e.g. ``4+4``; default 4+4). Raises ConfigError."""
    text = os.environ.get(POOL_VARIABLE, "") if value is None else value
    if not text.strip():
        return DEFAULT_POOL
    size, _, overflow = text.strip().partition("+")
    try:
        parsed = (int(size), int(overflow or 0))
    except ValueError:
        parsed = (0, -1)
    if not 1 <= parsed[0] <= 100 or not 0 <= parsed[1] <= 100:
        raise ConfigError(
            f"{POOL_VARIABLE} must be SIZE+OVERFLOW with SIZE 1-100 and OVERFLOW 0-100 (got {text!r})"
        )
    return parsed


@dataclass(frozen=True)
class JobState:
    """A job's document with the state kept in its row's columns (what the scheduler reads)."""

    id: str
    document: dict[str, Any]
    created: _dt.datetime
    running: bool
    last_run: _dt.datetime | None
    next_run: _dt.datetime | None


class Transaction:
    """One open database transaction with document helpers. Obtain from ``Catalog.transaction``."""

    def __init__(self, connection: Connection, clock: Clock, home: Path | None = None) -> None:
        self.connection = connection
        self.clock = clock
        #: the data directory of the catalog (its node, keys and downloads); None when opened without
        self.home = home

    def _row_to_object(self, kind: str, row: Any) -> dict[str, Any]:
        item: dict[str, Any] = {"_id": row.id, **row.document}
        if "owner" in DOCUMENT_COLUMNS.get(kind, ()):
            item["owner"] = row.owner  # the column is the truth (documents of old exports have none)
        if kind == "jobs":
            item["node"] = row.node or ""  # the column is the truth (adopted rows: jobs.nodes)
            item["running"] = bool(row.running)
            item["last_run"] = row.last_run
            item["next_run"] = row.next_run
        return item

    def get(self, kind: str, ident: str, *, lock: bool = False) -> dict[str, Any] | None:
        """The object with ID ``ident``, or None. ``lock`` holds its row until the transaction ends."""
        table = schema.TABLES[kind]
        query = select(table).where(table.c.id == ident)
        if lock:
            query = query.with_for_update()
        row = self.connection.execute(query).first()
        return None if row is None else self._row_to_object(kind, row)

    def require(self, kind: str, ident: str, label: str, *, lock: bool = False) -> dict[str, Any]:
        """Like ``get`` but raises NotFoundError("<label> not found: <id>")."""
        item = self.get(kind, ident, lock=lock)
        if item is None:
            raise NotFoundError(kind=label, ident=ident)
        return item

    def all(self, kind: str, **equal: Any) -> list[dict[str, Any]]:
        """Every object of ``kind`` (in creation order), optionally where columns equal values."""
        table = schema.TABLES[kind]
        query = select(table).order_by(table.c.created, table.c.id)
        for column, value in equal.items():
            query = query.where(table.c[column] == value)
        return [self._row_to_object(kind, row) for row in self.connection.execute(query)]

    def ids(self, kind: str) -> list[str]:
        """The IDs of every object of ``kind``, in creation order."""
        table = schema.TABLES[kind]
        return [
            str(ident)
            for ident in self.connection.execute(
                select(table.c.id).order_by(table.c.created, table.c.id)
            ).scalars()
        ]

    def created(self, kind: str, ident: str) -> _dt.datetime | None:
        """When object ``ident`` of ``kind`` was created (None when it does not exist)."""
        table = schema.TABLES[kind]
        moment: _dt.datetime | None = self.connection.execute(
            select(table.c.created).where(table.c.id == ident)
        ).scalar_one_or_none()
        return moment

    def job_state(self, ident: str, *, lock: bool = False) -> JobState | None:
        """Job ``ident`` with its run state, or None. ``lock`` holds its row until the transaction ends."""
        jobs = schema.jobs
        query = select(jobs).where(jobs.c.id == ident)
        row = self.connection.execute(query.with_for_update() if lock else query).first()
        if row is None:
            return None
        return JobState(
            id=row.id,
            document={"_id": row.id, **dict(row.document or {}), "node": row.node or ""},
            created=row.created,
            running=bool(row.running),
            last_run=row.last_run,
            next_run=row.next_run,
        )

    def _columns(self, kind: str, document: dict[str, Any]) -> dict[str, Any]:
        return {
            column: document.get(column, ROOT_OWNER)
            if column == "owner"
            else (document.get(column) or None)
            if column == "node"  # a node ID; None for documents from before nodes
            else document[column]
            for column in DOCUMENT_COLUMNS[kind]
        }

    def insert(self, kind: str, document: dict[str, Any], ident: str | None = None) -> str:
        """Store a new object; return its (new) ID."""
        ident = ident or new_id(self.clock)
        now = self.clock.now()
        values = {"id": ident, "created": now, "modified": now, "document": document}
        if kind == "jobs":
            values["running"] = 0
        self.connection.execute(
            schema.TABLES[kind].insert().values(**values, **self._columns(kind, document))
        )
        return ident

    def replace(self, kind: str, ident: str, document: dict[str, Any]) -> None:
        """Overwrite an object's document. Raises NotFoundError when it is gone."""
        table = schema.TABLES[kind]
        result = self.connection.execute(
            update(table)
            .where(table.c.id == ident)
            .values(document=document, modified=self.clock.now(), **self._columns(kind, document))
        )
        if result.rowcount != 1:
            raise NotFoundError(kind=kind, ident=ident)

    def remove(self, kind: str, ident: str) -> None:
        """Delete an object. Raises NotFoundError when it is gone."""
        table = schema.TABLES[kind]
        if self.connection.execute(delete(table).where(table.c.id == ident)).rowcount != 1:
            raise NotFoundError(kind=kind, ident=ident)

    def set_job_running(self, ident: str, running: bool) -> bool:
        """Set a job's ``running`` flag; False when it already had that value (or the job is gone)."""
        jobs = schema.jobs
        result = self.connection.execute(
            update(jobs)
            .where(jobs.c.id == ident, jobs.c.running == (0 if running else 1))
            .values(running=1 if running else 0)
        )
        return bool(result.rowcount == 1)

    def set_job_times(
        self, ident: str, *, last_run: _dt.datetime | None = None, next_run: _dt.datetime | None = None
    ) -> None:
        """Record a job's last and next run times."""
        jobs = schema.jobs
        self.connection.execute(
            update(jobs).where(jobs.c.id == ident).values(last_run=last_run, next_run=next_run)
        )

    def object_from_row(self, kind: str, row: Any) -> dict[str, Any]:
        """The object ``get`` and ``all`` make of a full row of ``kind``'s table (for queries built
        elsewhere, such as the paged lists of ``jobs.listing``)."""
        return self._row_to_object(kind, row)


class Catalog:
    """The open catalog database. Use ``Catalog.open``; ``close`` when done."""

    def __init__(self, engine: Engine, *, clock: Clock = SYSTEM, home: Path | None = None) -> None:
        self.engine = engine
        self.clock = clock
        #: the data directory the catalog was opened for (keys, logs, downloads live there)
        self.home = home

    @classmethod
    def open(cls, home: Path, url: str | None = None, *, clock: Clock = SYSTEM) -> Catalog:
        """Open (creating ``home`` and the database when needed) and migrate the catalog.

        Raises ConfigError for an unsupported URL or a PostgreSQL URL without the ``psycopg`` driver
        (the ``postgres`` extra), CatalogError when the database cannot be opened or migrated.
        """
        target = catalog_url(Path(home), url)
        try:
            if target.startswith("sqlite"):
                # 0700 home, 0600 catalog whatever the umask: SQLite gives the WAL and shared-memory
                # files the catalog's mode, and they hold what the catalog holds
                make_private(Path(home))
                if not url:
                    create_private(Path(home) / "catalog.db")
                engine = create_engine(target, connect_args={"timeout": 30})
                _sqlite_setup(engine)
            else:
                size, overflow = pool_size()
                engine = create_engine(target, pool_pre_ping=True, pool_size=size, max_overflow=overflow)
            tighten(Path(home))
            # several processes may open a catalog that needs a migration at once (serve and a
            # command): on SQLite each migration takes the write lock when it begins, so the others
            # wait for it instead of failing with "database is locked"
            immediate = (
                engine.execution_options(sqlite_immediate=True) if target.startswith("sqlite") else engine
            )
            migrations.apply(immediate, clock=clock)
        except OSError as error:
            raise CatalogError(f"cannot create the data directory {home}: {error.strerror}") from None
        except ImportError as error:  # the driver is the optional extra snapkeep[postgres]
            raise ConfigError(
                f"a PostgreSQL catalog needs the psycopg driver: pip install 'snapkeep[postgres]' ({error})"
            ) from None
        except SQLAlchemyError as error:
            where = make_url(target).render_as_string(hide_password=True)
            raise CatalogError(f"cannot open the catalog {where}: {_reason(error)}") from None
        catalog = cls(engine, clock=clock, home=Path(home))
        # secrets are sealed with the master key outside the catalog; older catalogs and key
        # folders are sealed here, once (a local import: seal_catalog uses this module)
        from snapkeep.jobs.seal_catalog import seal_catalog

        sealing.bind(engine, Path(home))
        try:
            seal_catalog(catalog)
        except BaseException:
            engine.dispose()
            raise
        return catalog

    def close(self) -> None:
        """Release every database connection."""
        self.engine.dispose()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Transaction]:
        """One transaction: committed when the block ends, rolled back when it raises.

        SQLAlchemy errors are raised as CatalogError; snapkeep errors pass through unchanged.
        """
        try:
            with self.engine.connect() as connection:
                if write and self.engine.dialect.name == "sqlite":
                    connection = connection.execution_options(sqlite_immediate=True)
                with connection.begin():
                    yield Transaction(connection, self.clock, self.home)
        except SnapkeepError:
            raise
        except SQLAlchemyError as error:
            raise CatalogError(f"catalog error: {_reason(error)}") from None

    # --- tokens (``jobs.users`` owns them; these are the doors the CLI and tests use) ------------

    def create_token(self, user: str = "root", *, name: str = "", expires: _dt.datetime | None = None) -> str:
        """Create an API token for the user called ``user``; return ``USER:SECRET`` (only its hash
        is stored). Raises NotFoundError for an unknown user."""
        from snapkeep.jobs import users  # users imports this module

        with self.transaction() as tx:
            _ident, token = users.create_token(tx, users.named(tx, user), name=name, expires=expires)
        return token

    def verify_token(self, bearer: str, *, kind: str = "api") -> str | None:
        """The user ID a ``USER:SECRET`` bearer string belongs to, or None when it is not valid
        (``kind`` "session" checks a panel session instead of an API token)."""
        from snapkeep.jobs import users

        with self.transaction(write=False) as tx:
            found = users.check_token(tx, bearer, kind=kind)
        if found is None:
            return None
        if found.touch:
            with self.transaction() as tx:
                users.touch_token(tx, found.token_id)
        return found.user_id

    def count_tokens(self) -> int:
        """How many API tokens exist."""
        with self.transaction(write=False) as tx:
            return int(tx.connection.execute(select(func.count()).select_from(schema.tokens)).scalar_one())

    # --- inspection ---------------------------------------------------------------------------

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table (sorted), for tests and support: equal dumps = equal catalogs."""
        result: dict[str, list[dict[str, Any]]] = {}
        with self.transaction(write=False) as tx:
            for name, table in sorted(schema.TABLES.items()):
                rows = [dict(row._mapping) for row in tx.connection.execute(select(table))]
                result[name] = sorted(rows, key=repr)
            result["schema_migrations"] = [
                dict(row._mapping) for row in tx.connection.execute(select(migrations.schema_migrations))
            ]
        return result


def _reason(error: SQLAlchemyError) -> str:
    original = getattr(error, "orig", None)
    return str(original if original is not None else error).strip().splitlines()[0]


def _sqlite_setup(engine: Engine) -> None:
    """WAL, foreign keys, and real transactions (BEGIN IMMEDIATE for writes) on SQLite."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
