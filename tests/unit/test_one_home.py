"""Each concept has one home (docs/architecture.md), checked on the source text.

- The API's integer codes (queue, item and log types and statuses, hook positions, structures, job
  types, alert levels) are defined only in ``jobs/codes.py``.
- Queue groups and items are written only by the ``jobs/queue`` package; logs only by ``jobs/logs.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "snapkeep"
CODES = SOURCE / "jobs" / "codes.py"

#: names the API shows beside the numbers: a table of them anywhere else is a second definition
LABELS = ("Partially Completed", "Never Finished", "Backup Account", "Incremental", "Directories")
#: finished queue statuses other than 100 (which also means "per cent" in the code)
STATUS_NUMBERS = {101, 102, 103, 104}


def modules() -> list[Path]:
    return sorted(path for path in SOURCE.rglob("*.py") if "migrations" not in path.parts)


#: layers below the API whose numbers are other protocols' (SFTP's packet types 101-105, say)
WIRE_LAYERS = ("storage", "engine")


def test_codes_are_defined_only_in_the_codes_module() -> None:
    offenders = []
    for path in modules():
        if path == CODES or path.relative_to(SOURCE).parts[0] in WIRE_LAYERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Constant):
                continue
            if node.value in LABELS or (type(node.value) is int and node.value in STATUS_NUMBERS):
                offenders.append(f"{path.relative_to(SOURCE)}:{node.lineno}: {node.value!r}")
    assert not offenders, "codes defined outside jobs/codes.py:\n" + "\n".join(offenders)


def _written_tables(tree: ast.AST) -> set[str]:
    """Tables a module inserts into, updates or deletes from: ``schema.T.insert()``, ``update(...)``
    and ``delete(...)`` of ``schema.T`` or of a local name bound to ``schema.T``."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "schema"
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound[target.id] = node.value.attr
    written = set()

    def table_of(expression: ast.expr) -> str | None:
        if (
            isinstance(expression, ast.Attribute)
            and isinstance(expression.value, ast.Name)
            and expression.value.id == "schema"
        ):
            return expression.attr
        if isinstance(expression, ast.Name):
            return bound.get(expression.id)
        return None

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Name) and function.id in ("update", "delete") and node.args:
            table = table_of(node.args[0])
        elif isinstance(function, ast.Attribute) and function.attr in ("insert", "update", "delete"):
            table = table_of(function.value)
        else:
            table = None
        if table is not None:
            written.add(table)
    return written


def test_queue_and_log_tables_have_one_writer_each() -> None:
    owners = {
        "queue_groups": "jobs/queue/",
        "queue_items": "jobs/queue/",
        "logs": "jobs/logs.py",
        "log_items": "jobs/logs.py",
    }
    found: dict[str, set[str]] = {table: set() for table in owners}
    for path in modules():
        for table in _written_tables(ast.parse(path.read_text())) & set(owners):
            found[table].add(str(path.relative_to(SOURCE)))
    for table, writers in found.items():
        assert writers, f"no writer of {table} found: the check itself is broken"
        strangers = [writer for writer in writers if not writer.startswith(owners[table])]
        assert not strangers, f"{table} is written outside {owners[table]}: {strangers}"
