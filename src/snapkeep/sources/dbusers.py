"""Database users and their grants as SQL that recreates them.

MariaDB: ``SHOW CREATE USER`` (made ``CREATE USER IF NOT EXISTS``, so a restore over an existing user
goes on) and every ``SHOW GRANTS`` line. PostgreSQL: each role from ``pg_authid`` (attributes and
password hash, created only when missing), its role memberships and its database-level privileges
(table privileges travel inside each database's ``pg_dump``). The text is what the
``database_users/`` component stores; ``restore_users`` feeds it back through the client.

Also here: the discovery queries the ``linux`` provider uses (databases and users by the hosting
naming convention, PostgreSQL databases by owner). Every failure raises ``DatabaseError``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from snapkeep.errors import DatabaseError
from snapkeep.sources.accounts.base import MARIADB, POSTGRESQL, Database, DatabaseUser
from snapkeep.sources.databases import load_sql
from snapkeep.sources.dbclient import (
    DatabaseSettings,
    like_prefix,
    mariadb_literal,
    mariadb_query,
    postgres_identifier,
    postgres_literal,
    postgres_query,
)

_CREATE_USER = re.compile(r"^CREATE USER (?!IF NOT EXISTS)", re.IGNORECASE)
_SYSTEM_DATABASES = {"information_schema", "mysql", "performance_schema", "sys"}


def mariadb_user_sql(settings: DatabaseSettings, user: DatabaseUser) -> str:
    """``CREATE USER IF NOT EXISTS`` and ``GRANT`` statements for one MariaDB user."""
    account = f"{mariadb_literal(user.name)}@{mariadb_literal(user.host or '%')}"
    created = mariadb_query(settings, f"SHOW CREATE USER {account}", what=f"user {user.name}@{user.host}")
    grants = mariadb_query(settings, f"SHOW GRANTS FOR {account}", what=f"grants of {user.name}@{user.host}")
    lines = [f"-- MariaDB user {user.name}@{user.host or '%'}"]
    lines += [_CREATE_USER.sub("CREATE USER IF NOT EXISTS ", row[0]) + ";" for row in created if row]
    lines += [row[0] + ";" for row in grants if row]
    return "\n".join(lines) + "\n"


def postgres_role_sql(settings: DatabaseSettings, user: DatabaseUser) -> str:
    """Statements that recreate one PostgreSQL role: attributes, password hash, memberships,
    database privileges. Raises ``DatabaseError`` when the role does not exist."""
    name = postgres_literal(user.name)
    rows = postgres_query(
        settings,
        "SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, "
        "rolconnlimit, COALESCE(rolpassword, ''), COALESCE(rolvaliduntil::text, '') "
        f"FROM pg_authid WHERE rolname = {name}",
        what=f"role {user.name}",
    )
    if not rows:
        raise DatabaseError(engine=POSTGRESQL, what=f"role {user.name}", reason="no such role")
    row = rows[0]
    flags = [
        ("SUPERUSER", row[0]),
        ("INHERIT", row[1]),
        ("CREATEROLE", row[2]),
        ("CREATEDB", row[3]),
        ("LOGIN", row[4]),
        ("REPLICATION", row[5]),
    ]
    role = postgres_identifier(user.name)
    options = " ".join(word if value == "t" else "NO" + word for word, value in flags)
    options += f" CONNECTION LIMIT {int(row[6])}"
    if row[7]:
        options += f" PASSWORD {postgres_literal(row[7])}"
    if row[8]:
        options += f" VALID UNTIL {postgres_literal(row[8])}"
    lines = [
        f"-- PostgreSQL role {user.name}",
        f"DO $$ BEGIN CREATE ROLE {role}; EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
        f"ALTER ROLE {role} WITH {options};",
    ]
    members = postgres_query(
        settings,
        "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        f"JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = {name} ORDER BY 1",
        what=f"memberships of {user.name}",
    )
    lines += [f"GRANT {postgres_identifier(member[0])} TO {role};" for member in members]
    privileges = postgres_query(
        settings,
        "SELECT d.datname, a.privilege_type FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a "
        f"JOIN pg_roles r ON r.oid = a.grantee WHERE r.rolname = {name} ORDER BY 1, 2",
        what=f"database privileges of {user.name}",
    )
    lines += [
        f"GRANT {privilege} ON DATABASE {postgres_identifier(database)} TO {role};"
        for database, privilege in privileges
    ]
    return "\n".join(lines) + "\n"


def users_sql(settings: DatabaseSettings, users: Sequence[DatabaseUser]) -> dict[str, bytes]:
    """Per engine, the SQL that recreates ``users`` (engines without users are left out)."""
    texts: dict[str, list[str]] = {}
    for user in users:
        if user.engine == MARIADB:
            texts.setdefault(MARIADB, []).append(mariadb_user_sql(settings, user))
        elif user.engine == POSTGRESQL:
            texts.setdefault(POSTGRESQL, []).append(postgres_role_sql(settings, user))
        else:
            raise DatabaseError(
                engine=user.engine, what=f"user {user.name}", reason="unknown database engine"
            )
    return {engine: "\n".join(parts).encode() for engine, parts in texts.items()}


def restore_users(settings: DatabaseSettings, engine: str, sql: bytes) -> None:
    """Run the statements of a ``database_users/<engine>.sql`` file. Raises ``DatabaseError``."""
    load_sql(settings, engine, [sql], what="restore of database users")


# --- discovery (the linux provider) -------------------------------------------------------------


def mariadb_databases_of(settings: DatabaseSettings, username: str) -> list[Database]:
    """MariaDB databases named ``<username>_*`` (the hosting convention)."""
    sql = (
        "SELECT schema_name FROM information_schema.schemata "
        f"WHERE schema_name LIKE {mariadb_literal(like_prefix(username + '_'))} ORDER BY 1"
    )
    rows = mariadb_query(settings, sql, what=f"databases of {username}")
    return [Database(MARIADB, row[0]) for row in rows if row and row[0] not in _SYSTEM_DATABASES]


def mariadb_users_of(settings: DatabaseSettings, username: str) -> list[DatabaseUser]:
    """MariaDB users named ``<username>`` or ``<username>_*``, with every host they exist for."""
    sql = (
        "SELECT User, Host FROM mysql.user WHERE "
        f"User = {mariadb_literal(username)} OR User LIKE {mariadb_literal(like_prefix(username + '_'))} "
        "ORDER BY 1, 2"
    )
    rows = mariadb_query(settings, sql, what=f"users of {username}")
    return [DatabaseUser(MARIADB, row[0], row[1]) for row in rows if len(row) == 2]


def postgres_databases_of(settings: DatabaseSettings, username: str) -> list[Database]:
    """PostgreSQL databases owned by the role named ``username`` (none when no such role)."""
    sql = (
        "SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
        f"WHERE r.rolname = {postgres_literal(username)} AND NOT d.datistemplate ORDER BY 1"
    )
    rows = postgres_query(settings, sql, what=f"databases of {username}")
    return [Database(POSTGRESQL, row[0]) for row in rows if row]


def postgres_role_exists(settings: DatabaseSettings, username: str) -> bool:
    """Whether a PostgreSQL role named ``username`` exists."""
    rows = postgres_query(
        settings, f"SELECT 1 FROM pg_roles WHERE rolname = {postgres_literal(username)}", what="role lookup"
    )
    return bool(rows)
