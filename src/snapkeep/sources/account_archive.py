"""An account's backup as one Archived or Compressed archive (Accounts jobs of structure 2 or 4).

The archive holds the same layout as the account's Incremental snapshot (``sources.components``:
``config/account.json``, ``homedir/``, ``databases/<engine>/<name>.sql``, ``email/``, ``cron/``,
``domains/``, ``certificates/``, ``database_users/``, ``ftp/``), written by the archive engine's
``LayoutTarWriter`` in one pass: files are read from the host as the tar is streamed to the
destination, database dumps are read from the dump's pipe in parts of at most 4 MiB
(``engine.archive.layout``). Nothing of the account is copied to local disk first.

The members are written small components first (config, database users, databases, cron, domains,
certificates, ftp) and the bulky ones last (email, homedir): reading one dump back for a restore
then stops before the account's files (``archive.layout.read_member``).

A dump that fails (``DumpError``) or a server that cannot be asked (``DatabaseError``) is a
``ComponentFailure``, as in the Incremental path: the item is not listed as complete (a failed
dump never appears as a complete ``.sql``), the archive goes on, the manifest's
``stats["failures"]`` names it, and the backup is Partially Completed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from snapkeep.clock import SYSTEM, Clock
from snapkeep.engine.archive import ArchiveDestination, ArchiveManifest, write_layout_archive
from snapkeep.engine.archive.layout import PART_SIZE, LayoutTarWriter
from snapkeep.engine.progress import Progress
from snapkeep.errors import DatabaseError, DumpError
from snapkeep.sources.components import AccountSources, ComponentFailure, DataItem, PathItem
from snapkeep.sources.databases import database_size, open_dump

#: The order components are written in an archive: small first, the account's files last.
ARCHIVE_ORDER = (
    "config",
    "database_users",
    "databases",
    "cron",
    "domains",
    "certificates",
    "ftp",
    "email",
    "homedir",
)


@dataclass(slots=True)
class AccountArchive:
    """One account's stored archive and the items that failed (empty: Completed)."""

    manifest: ArchiveManifest
    failures: list[ComponentFailure]

    @property
    def partial(self) -> bool:
        """Whether some item failed or was skipped with a warning (Partially Completed)."""
        return bool(self.failures) or bool(self.manifest.stats.get("warnings"))


def _members(writer: LayoutTarWriter, sources: AccountSources, stats: dict[str, Any]) -> Iterator[bytes]:
    """The tar pieces of every component of ``sources``; failed items go to ``stats["failures"]``."""
    settings = sources.settings
    for component in sorted(sources.components, key=lambda found: ARCHIVE_ORDER.index(found.name)):
        if all(item.target != component.name for item in component.items):
            yield from writer.folder(component.name)  # present (maybe empty) even when items fail
        for item in component.items:
            try:
                if isinstance(item, PathItem):
                    yield from writer.path(item.target, item.source, item.excludes)
                    if item.target == component.name and not writer.written(component.name):
                        yield from writer.folder(component.name)  # its source is missing: empty
                elif isinstance(item, DataItem):
                    yield from writer.data(item.target, item.produce())
                elif item.max_size and (size := database_size(settings, item.database)) > item.max_size:
                    limit = f"mysql_exclude_db_by_size ({item.max_size})"
                    writer.warn(
                        os.fsencode("/" + item.target), f"database skipped: {size} bytes is more than {limit}"
                    )
                else:
                    with open_dump(settings, item.database) as dump:
                        yield from writer.piped(item.target, dump.read, dump.finish)
            except (DumpError, DatabaseError) as error:
                failure = ComponentFailure(component.name, item.target, str(error))
                stats["failures"].append(asdict(failure))


def archive_account(
    destination: ArchiveDestination,
    sources: AccountSources,
    *,
    compressed: bool,
    job_id: str = "",
    tags: list[str] | tuple[str, ...] = (),
    progress: Progress | None = None,
    part_size: int | None = None,
    clock: Clock = SYSTEM,
) -> AccountArchive:
    """Back up one account into ``destination`` as one archive (manifest ``account`` = its
    username, ``components`` = the component names in layout order) and return it with the failed
    items. ``part_size``: the largest piece of a dump held in memory (default ``PART_SIZE``, 4 MiB).
    Storage and abort errors propagate and no manifest is written (nothing is listed)."""
    stats: dict[str, Any] = {"failures": [], "contains": sources.contains, "options": sources.options}
    host_paths = sorted(
        {
            item.source
            for component in sources.components
            for item in component.items
            if isinstance(item, PathItem)
        }
    )
    manifest = write_layout_archive(
        destination,
        lambda writer: _members(writer, sources, stats),
        compressed=compressed,
        sources=host_paths,
        tags=tags,
        progress=progress,
        job_id=job_id,
        account=sources.account.username,
        components=sources.names,
        stats=stats,
        part_size=part_size or PART_SIZE,
        clock=clock,
    )
    failures = [ComponentFailure(**failure) for failure in stats["failures"]]
    return AccountArchive(manifest, failures)
