"""Issue 13's "Show": a JetBackup-style admin shell script (``jetbackup_admin.sh``) runs unchanged
against a real ``snapkeep serve``, through ``snapkeep api`` and over HTTP with curl, with the real
MariaDB and PostgreSQL servers holding the accounts' databases. The script checks every answer; this
test then checks what it did: the dropped database is back row for row, and the downloaded archive
holds the file as it was.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from tests.conftest import require_server
from tests.e2e.conftest import Instance, Server
from tests.integration.test_account_runs import Site, mariadb_checksum, servers_answer

SCRIPT = Path(__file__).with_name("jetbackup_admin.sh")


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    """A SQLite data directory (overrides the two-backend fixture of conftest)."""
    return Instance("sqlite", tmp_path_factory.mktemp("e2e-jetbackup") / "home", None)


@pytest.fixture
def site(instance: Instance, tmp_path: Path) -> Iterator[Site]:
    require_server(servers_answer(), "MariaDB at 127.0.0.1:3306 and PostgreSQL at 127.0.0.1:5432")
    made = Site(tmp_path, instance.home)
    try:
        made.build()
        yield made
    finally:
        made.drop()


@pytest.mark.parametrize("structure", ["1", "4"])  # Incremental, Compressed
def test_a_jetbackup_admin_script_runs_unchanged(
    server: Server, site: Site, tmp_path: Path, structure: str
) -> None:
    alice = site.user("alice")
    database = f"{alice}_wp"
    rows = mariadb_checksum(database)
    report = "/docs/2024/report.txt"
    content = (site.account_home("alice") / report.lstrip("/")).read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    env = server.instance.env(
        URL=server.base_url,
        TOKEN=server.token,
        BACKUPS=str(tmp_path / "backups"),
        ACCOUNT=alice,
        DATABASE=database,
        FILE=report,
        OUT=str(out),
        STRUCTURE=structure,
        LOSE_DATABASE=f"mariadb --protocol=TCP -h 127.0.0.1 -P 3306 -u root -e 'DROP DATABASE `{database}`'",
    )
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("all checks passed")
    assert mariadb_checksum(database) == rows
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO((out / "download.tar.zst").read_bytes()))
    with tarfile.open(fileobj=raw, mode="r|") as archive:
        found = {member.name: archive.extractfile(member).read() for member in archive if member.isfile()}  # type: ignore[union-attr]
    assert [data for name, data in found.items() if name.endswith("report.txt")] == [content]
