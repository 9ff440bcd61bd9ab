"""snapkeep.jobs: the domain layer.

Glossary
--------
catalog      the SQL database (SQLite or PostgreSQL) behind every object; ``catalog.Catalog``
migrations   the ordered, recorded schema changes applied when the catalog opens
document     a managed object's fields stored as JSON beside the columns queries need
models       pydantic models of jobs, destinations, schedules, hooks and account filters
queue        queue groups (one per requested run) and their items
"""
