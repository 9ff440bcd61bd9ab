"""Corruption: one flipped byte in a pack, an index file or a snapshot file (encrypted and plain).

``snapkeep repo check --read-data`` must exit non-zero and name the damaged object and the snapshots
and files it affects; undamaged files still restore; a damaged file fails loudly, never silently wrong.
The commands run through the real command root (``snapkeep.cli.main``) in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from snapkeep.cli.repo_maint_cmd import check_command
from snapkeep.engine.backup import backup
from snapkeep.engine.data.snapshot import Snapshot
from snapkeep.engine.data.tree import Tree
from snapkeep.engine.format import INDEX_PREFIX, SNAPSHOTS_PREFIX, pack_name
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import restore
from snapkeep.storage.local import LocalStore

FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
PASSWORD = "corruption test"
#: Runs the real command root (its `repo` group holds every repository command).
BOOT = "import sys; from snapkeep.cli.main import main; sys.exit(main(sys.argv[1:]))"


def snapkeep(*args: str, password: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "SNAPKEEP_PASSWORD"}
    if password is not None:
        env["SNAPKEEP_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-c", BOOT, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


class Setup:
    """Snapshot 1 holds keep/a.txt and keep/b.txt; snapshot 2 adds victim.bin (own index file)."""

    def __init__(self, tmp_path: Path, password: str | None) -> None:
        self.password = password
        self.repo = tmp_path / "repo"
        self.source = tmp_path / "source"
        (self.source / "keep").mkdir(parents=True)
        self.files = {
            "keep/a.txt": b"alpha " * 500,
            "keep/b.txt": os.urandom(20000),
            "victim.bin": os.urandom(30000),
        }
        (self.source / "keep" / "a.txt").write_bytes(self.files["keep/a.txt"])
        (self.source / "keep" / "b.txt").write_bytes(self.files["keep/b.txt"])
        self.store = LocalStore(self.repo)
        repository = Repository.init(self.store, password=password, kdf_params=FAST)
        self.first = backup(repository, [str(self.source)])
        indexes = {info.name for info in self.store.list(INDEX_PREFIX)}
        (self.source / "victim.bin").write_bytes(self.files["victim.bin"])
        self.second = backup(repository, [str(self.source)])
        (self.second_index,) = {info.name for info in self.store.list(INDEX_PREFIX)} - indexes
        self.repository = repository

    def node(self, snapshot: Snapshot, rel: str):  # type: ignore[no-untyped-def]
        tree_id = bytes.fromhex(snapshot.tree)
        node = None
        for part in os.fsencode(self.source / rel).strip(b"/").split(b"/"):
            node = Tree.decode(self.repository.load_blob(tree_id)).by_name()[part]
            tree_id = node.subtree or tree_id
        return node

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``snapkeep repo ARGS`` on this repository (the path is inserted after the sub-command)."""
        return snapkeep("repo", args[0], str(self.repo), *args[1:], password=self.password)

    def flip(self, name: str, offset: int) -> None:
        path = self.repo / name
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))

    def inside(self, target: Path, rel: str) -> Path:
        return target / (self.source / rel).relative_to("/")


@pytest.fixture(params=["secret", None], ids=["encrypted", "plain"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Setup:
    return Setup(tmp_path, PASSWORD if request.param else None)


def test_flipped_byte_in_a_pack(setup: Setup, tmp_path: Path) -> None:
    blob_id = setup.node(setup.second, "victim.bin").content[0]
    location = setup.repository.lookup(blob_id)
    setup.flip(pack_name(location.pack_id), location.offset + location.length // 2)

    assert setup.run("check").returncode == 0
    result = setup.run("check", "--read-data")
    assert result.returncode == 8, result.stdout + result.stderr
    assert f"pack {location.pack_id}" in result.stderr
    assert f"blob {blob_id.hex()}" in result.stderr
    assert f"snapshot {setup.second.id[:12]} {setup.source}/victim.bin" in result.stderr
    assert setup.first.id[:12] not in result.stderr
    assert "1 ERRORS" in result.stdout or "ERRORS" in result.stdout

    good = setup.run("restore", setup.second.id[:10], str(tmp_path / "good"),
        "--include", str(setup.source / "keep"))  # fmt: skip
    assert good.returncode == 0, good.stderr
    for rel in ("keep/a.txt", "keep/b.txt"):
        assert setup.inside(tmp_path / "good", rel).read_bytes() == setup.files[rel]

    bad = setup.run("restore", setup.second.id[:10], str(tmp_path / "bad"))
    assert bad.returncode != 0, bad.stderr
    assert "victim.bin" in bad.stderr, bad.stderr
    victim = setup.inside(tmp_path / "bad", "victim.bin")
    assert not victim.exists() or victim.read_bytes() != setup.files["victim.bin"]
    assert not victim.exists(), "a file whose content failed verification is removed, never left wrong"
    assert setup.inside(tmp_path / "bad", "keep/b.txt").read_bytes() == setup.files["keep/b.txt"]


def test_flipped_byte_in_an_index_file(setup: Setup, tmp_path: Path) -> None:
    setup.flip(setup.second_index, 40)
    index_id = setup.second_index.split("/")[1]
    result = setup.run("check", "--read-data")
    assert result.returncode == 8, result.stdout + result.stderr
    assert f"index {index_id}" in result.stderr
    assert f"snapshot {setup.second.id[:12]} {setup.source}/victim.bin" in result.stderr
    assert f"snapshot {setup.first.id[:12]}" not in result.stderr, "snapshot 1 is intact"

    # Opening recovers the blobs the damaged file listed from the packs' sealed trailers, so
    # every snapshot still restores exactly.
    for snapshot, folder in ((setup.first, "first"), (setup.second, "second")):
        restored = setup.run("restore", snapshot.id, str(tmp_path / folder))
        assert restored.returncode == 0, restored.stdout + restored.stderr
    for rel in ("keep/a.txt", "keep/b.txt"):
        assert setup.inside(tmp_path / "first", rel).read_bytes() == setup.files[rel]
    repository = Repository.open(LocalStore(setup.repo), password=setup.password)
    assert repository.damaged_index_files == [index_id]
    second = restore(repository, repository.load_snapshot(setup.second.id), str(tmp_path / "again"))
    assert second.ok, second.failures


def test_flipped_byte_in_a_snapshot_file(setup: Setup, tmp_path: Path) -> None:
    setup.flip(f"{SNAPSHOTS_PREFIX}{setup.second.id}", 20)
    result = setup.run("check", "--read-data", "--json")
    assert result.returncode == 8, result.stderr
    report = json.loads(result.stdout)
    assert [(p["kind"], p["name"]) for p in report["problems"]] == [("snapshot", setup.second.id)]
    assert report["affected"] == [
        {"snapshot": setup.second.id, "path": "*", "reason": "the snapshot file is damaged"}
    ]

    good = setup.run("restore", setup.first.id[:10], str(tmp_path / "one"))
    assert good.returncode == 0, good.stderr
    assert setup.inside(tmp_path / "one", "keep/b.txt").read_bytes() == setup.files["keep/b.txt"]
    bad = setup.run("restore", setup.second.id[:10], str(tmp_path / "two"))
    assert bad.returncode == 8, bad.stderr
    assert setup.second.id in bad.stderr, bad.stderr


def test_check_command_in_process_clean_subset_and_bad_percentage(setup: Setup) -> None:
    runner = CliRunner()
    env = {"SNAPKEEP_PASSWORD": setup.password} if setup.password else {}
    clean = runner.invoke(check_command, [str(setup.repo), "--read-data-subset", "50%", "--json"], env=env)
    assert clean.exit_code == 0, clean.output
    report = json.loads(clean.output)
    assert report["ok"]
    assert report["packs_read"] >= 1
    assert report["problems"] == []
    wrong = runner.invoke(check_command, [str(setup.repo), "--read-data-subset", "150%"], env=env)
    assert wrong.exit_code == 2
    assert "at most 100%" in wrong.output
