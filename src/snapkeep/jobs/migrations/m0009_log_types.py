"""Migration 9: logs take JetBackup 5's type numbers (issue 13, conformance review D4).

Logs used the queue's numbers (2 Restore, 4 Download, 8 Reindex); JetBackup's log types are
1 Backup, 2 Download, 3 Restore, 4 System, 5 Reindex, so a JetBackup script asking for
``find[type]=2`` got restores. One UPDATE moves every stored log at once.

Frozen: once released, this file never changes. A later migration alters what it made.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

NAME = "log types"


def upgrade(connection: Connection) -> None:
    """Renumber stored logs: 2 Restore -> 3, 4 Download -> 2, 8 Reindex -> 5."""
    connection.execute(
        text("UPDATE logs SET type = CASE type WHEN 2 THEN 3 WHEN 4 THEN 2 WHEN 8 THEN 5 ELSE type END")
    )
