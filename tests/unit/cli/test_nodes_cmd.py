"""``snapkeep nodes list|show|remove`` against a real SQLite catalog (issue 16, docs/nodes.md)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path

from click.testing import CliRunner

from snapkeep.cli.main import cli
from snapkeep.clock import FrozenClock
from snapkeep.jobs import nodes
from snapkeep.jobs.catalog import Catalog


def _register(home: Path, name: str, *, when: _dt.datetime) -> str:
    catalog = Catalog.open(home, clock=FrozenClock(when))
    try:
        with catalog.transaction() as tx:
            me = nodes.Me(id=nodes.local_id(home), name=name, timeout=60.0, api="https://10.0.0.7:3035")
            nodes.register(tx, dataclasses.replace(me, tls_fingerprint="AB:CD:EF"))
    finally:
        catalog.close()
    return nodes.local_id(home)


def test_nodes_are_listed_shown_and_a_down_one_removed(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(cli, ["--home", str(tmp_path), "nodes", "list"])
    assert empty.exit_code == 0, empty.output
    assert "No node has registered on this catalog yet" in empty.output
    ident = _register(tmp_path, "web1", when=_dt.datetime.now(_dt.UTC))
    listed = runner.invoke(cli, ["--home", str(tmp_path), "nodes", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [node] = json.loads(listed.output)["nodes"]
    assert (node["_id"], node["name"], node["state"], node["alive"]) == (ident, "web1", "up", 1)
    shown = runner.invoke(cli, ["--home", str(tmp_path), "nodes", "show", "web1"])
    assert shown.exit_code == 0, shown.output
    assert ident in shown.output
    assert "up" in shown.output
    assert "https://10.0.0.7:3035" in shown.output
    assert "AB:CD:EF" in shown.output
    alive = runner.invoke(cli, ["--home", str(tmp_path), "nodes", "remove", "web1"])
    assert alive.exit_code != 0
    assert "is up" in alive.output
    # its last heartbeat an hour ago: past its timeout, so it may go
    _register(tmp_path, "web1", when=_dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=1))
    removed = runner.invoke(cli, ["--home", str(tmp_path), "nodes", "remove", "web1"])
    assert removed.exit_code == 0, removed.output
    assert f"Node 'web1' ({ident}) removed from the catalog." in removed.output
    missing = runner.invoke(cli, ["--home", str(tmp_path), "nodes", "show", "web1"])
    assert missing.exit_code != 0
    assert "Node not found: web1" in missing.output
