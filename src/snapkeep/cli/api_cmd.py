"""``snapkeep api -F FUNCTION -D "QUERY" [-O json|plain]``: the API from the command line.

``-D`` is a URL query string with PHP brackets (API.md section 1). The envelope is printed as JSON or
as an indented ``key: value`` tree (empty and false values print blank). Exit status: 0 when
``success`` is 1, 2 otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import click

from snapkeep.api import envelope
from snapkeep.api.dispatch import Api
from snapkeep.api.params import decode_query
from snapkeep.cli.main import Context
from snapkeep.errors import ParameterError
from snapkeep.jobs.catalog import Catalog

FAILURE_EXIT = 2


def plain_lines(value: Any, indent: int = 0) -> list[str]:
    """The indented ``key: value`` tree of a decoded envelope."""
    lines: list[str] = []
    pad = "  " * indent
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(item, dict | list) and item:
            lines.append(f"{pad}{key}:")
            lines.extend(plain_lines(item, indent + 1))
        elif item is None or item is False or item == "" or isinstance(item, dict | list):
            lines.append(f"{pad}{key}:")
        elif item is True:
            lines.append(f"{pad}{key}: 1")
        else:
            lines.append(f"{pad}{key}: {item}")
    return lines


def render(answer: dict[str, Any], output: str) -> str:
    """The envelope as the ``-O`` format asks."""
    if output == "plain":
        return "\n".join(plain_lines(answer))
    return json.dumps(answer, indent=2, ensure_ascii=False)


@click.command("api")
@click.option("-F", "--function", "function", required=True, help="API function, e.g. listBackupJobs.")
@click.option(
    "-D", "--data", "data", default="", help='Parameters as a URL query string: "sort[name]=1&limit=10".'
)
@click.option(
    "-O", "--output", "output", type=click.Choice(["json", "plain"]), default="json", show_default=True
)
@click.pass_obj
def api_command(obj: Context, function: str, data: str, output: str) -> None:
    """Call one API function and print its answer (exit 0 on success, 2 otherwise)."""
    # Arguments that were not valid UTF-8 reach us as surrogate escapes: give the decoder the bytes.
    raw = data.encode("utf-8", errors="surrogateescape")
    catalog = Catalog.open(obj.home, obj.catalog_url)
    try:
        try:
            params = decode_query(raw)
        except ParameterError as error:
            answer = envelope.failure(error.message)
        else:
            answer = Api(catalog).call(function, params)
    finally:
        catalog.close()
    click.echo(render(answer, output))
    if not envelope.is_success(answer):
        raise click.exceptions.Exit(FAILURE_EXIT)
