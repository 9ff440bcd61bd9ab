"""``snapkeep settings show [SECTION]`` and ``snapkeep settings set KEY=VALUE ...``: the settings every
server on the catalog shares (performance, general, notification), for people.

Both call the dispatcher in-process as the root caller (``getSettings*`` / ``manageSettings*``), so
they validate and mask exactly as the API does: the SMTP password is shown as ``SK|HIDDEN|********``.
A key is a parameter of one section, optionally prefixed with the section and with dots into objects:
``timezone=Europe/Berlin``, ``general.logs_ttl=14``, ``backup_forks=3``,
``notification.email.host=smtp.example.com`` (or ``email.host=...``), ``email.recipients=a@x,b@x``;
``notification.webhook=`` removes the webhook channel. One ``set`` changes one section, in one call,
so it is applied whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import click
from rich.table import Table

from snapkeep.api.dispatch import FUNCTIONS
from snapkeep.cli.jobs_cmd import call
from snapkeep.cli.main import Context
from snapkeep.cli.output import NONE_SHOWN, console

# section -> (get function, manage function)
SECTIONS: dict[str, tuple[str, str]] = {
    "performance": ("getSettingsPerformance", "manageSettingsPerformance"),
    "general": ("getSettingsGeneral", "manageSettingsGeneral"),
    "notification": ("getSettingsNotification", "manageSettingsNotification"),
    "integrity": ("getSettingsIntegrity", "manageSettingsIntegrity"),
}
NOT_SET_UP = "(not set up)"
SERVER_ZONE = "(the server's zone)"


def parameters(section: str) -> list[str]:
    """The top-level keys ``set`` accepts for ``section``."""
    return [parameter.name for parameter in FUNCTIONS[SECTIONS[section][1]].parameters]


def _section_of(key: str) -> tuple[str, list[str]]:
    """The section a dotted key belongs to, and its path inside that section."""
    parts = key.split(".")
    if parts[0] in SECTIONS:
        section, path = parts[0], parts[1:]
        if not path or path[0] not in parameters(section):
            known = ", ".join(parameters(section))
            raise click.UsageError(f"{key}: unknown setting of {section} (known: {known})")
        return section, path
    for section in SECTIONS:
        if parts[0] in parameters(section):
            return section, parts
    known = "; ".join(f"{section}: {', '.join(parameters(section))}" for section in SECTIONS)
    raise click.UsageError(f"{key}: unknown setting (known: {known})")


def _assign(params: dict[str, Any], path: list[str], value: str, key: str) -> None:
    target = params
    for part in path[:-1]:
        inner = target.setdefault(part, {})
        if not isinstance(inner, dict):
            raise click.UsageError(f"{key}: conflicts with an earlier {part}=")
        target = inner
    if path[-1] in target:
        raise click.UsageError(f"{key}: given twice")
    target[path[-1]] = value


def parse_assignments(assignments: Iterable[str]) -> tuple[str, dict[str, Any]]:
    """``["timezone=UTC", "logs_ttl=7"]`` -> ``("general", {"timezone": "UTC", "logs_ttl": "7"})``.
    Raises click.UsageError for a malformed or unknown key, or keys of several sections."""
    sections: set[str] = set()
    params: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator or not key:
            raise click.UsageError(f"{assignment!r}: expected KEY=VALUE")
        section, path = _section_of(key)
        sections.add(section)
        if len(sections) > 1:
            raise click.UsageError(
                f"{key}: one section at a time ({' and '.join(sorted(sections))} given); "
                "run `snapkeep settings set` once per section"
            )
        _assign(params, path, value, key)
    return sections.pop(), params


def _rows(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _rows(f"{prefix}.{key}" if prefix else str(key), inner)
    elif isinstance(value, list):
        yield prefix, ", ".join(str(item) for item in value) or NONE_SHOWN
    elif value is None:
        yield prefix, NOT_SET_UP
    else:
        yield prefix, str(value) if value != "" else NONE_SHOWN


def settings_table(section: str, data: Mapping[str, Any]) -> Table:
    """One section as a setting/value table (nested keys dotted, as ``set`` takes them)."""
    table = Table(title=f"Settings: {section}", show_header=False)
    table.add_column("Setting", style="bold")
    table.add_column("Value", overflow="fold")
    for key, value in _rows("", data):
        if section == "general" and key == "timezone" and value == NONE_SHOWN:
            value = SERVER_ZONE
        table.add_row(key, value)
    return table


@click.group("settings")
def settings_group() -> None:
    """Settings shared by every server on the catalog: performance, general, notification, integrity."""


@settings_group.command("show")
@click.argument("section", required=False, type=click.Choice(list(SECTIONS)))
@click.pass_obj
def show_command(context: Context, section: str | None) -> None:
    """Show one SECTION of the settings, or all of them (secrets masked)."""
    for name in [section] if section else list(SECTIONS):
        console().print(settings_table(name, call(context, SECTIONS[name][0], {})))


@settings_group.command("set")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.pass_obj
def set_command(context: Context, assignments: tuple[str, ...]) -> None:
    """Change settings of one section, e.g. `timezone=Europe/Berlin logs_ttl=14`,
    `backup_forks=3`, `notification.webhook.url=https://...`; `notification.email=` removes the
    e-mail channel. Lists take commas: `email.recipients=a@example.com,b@example.com`."""
    section, params = parse_assignments(assignments)
    console().print(settings_table(section, call(context, SECTIONS[section][1], params)))
