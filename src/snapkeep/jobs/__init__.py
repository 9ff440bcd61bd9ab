"""snapkeep.jobs: the domain layer (docs/architecture.md has the map).

Glossary
--------
catalog      the SQL database (SQLite or PostgreSQL) behind every object; ``catalog.Catalog``
migrations   the ordered, recorded schema changes applied when the catalog opens
document     a managed object's fields stored as JSON beside the columns queries need
codes        every integer code the API presents (``codes``: statuses, types, positions, levels)
models       pydantic models of jobs, destinations, schedules, hooks and account filters
queue        queue groups (one per requested run) and their items; the only writer of both
run          the execution of one queue group (``runs``: a job's backup, a restore, a download)
log          a run's log: a row, its items and a text file (``logs``, the only writer of them)
target       a destination's repository opened for a run (``runs.common.open_target`` through
             ``repositories``, which owns destination -> store -> repository)
settings     what every server on a catalog shares (``settings``); a server's own is config.toml
"""
