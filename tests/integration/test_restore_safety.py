"""Restore safety through every door (docs/restores.md): CLI ``--target``, CLI ``--in-place``, the API
with each overwrite policy, merge=0, dry run, and a download.

The backup holds a symlink that points outside (``out -> <outside>``) and an inside one
(``link -> same.txt``). Before each restore the target holds a locally edited file (newer than the
backup) and, where the backup has the folder ``data``, a planted symlink to the outside folder.
Every test asserts that nothing outside changed, that the edited file was kept or replaced exactly
as the defaults table says, and the counts the run's log gives.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from click.testing import CliRunner
from tests.conftest import require_server
from tests.integration.runner_helpers import World
from tests.integration.test_account_runs import (
    Site,
    accounts_job,
    backup_of,
    items_of,
    servers_answer,
)
from tests.integration.test_account_runs import restore as account_restore

from snapkeep.api.dispatch import Api, Caller
from snapkeep.api.functions.restore import DOWNLOAD_DAYS
from snapkeep.cli import restore_cmd
from snapkeep.cli.main import cli
from snapkeep.clock import FrozenClock
from snapkeep.engine.fs.safe_target import Placer
from snapkeep.jobs.runs import execute_group

OLD = 1_000_000_000
NEW = 2_000_000_000
EDIT = b"LOCAL EDIT\n"
BACKED_UP = b"backed up version\n"


def fingerprint(folder: Path) -> dict[str, tuple[int, int, int, bytes]]:
    seen: dict[str, tuple[int, int, int, bytes]] = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        info = path.lstat()
        content = (
            os.readlink(path).encode()
            if stat.S_ISLNK(info.st_mode)
            else path.read_bytes()
            if stat.S_ISREG(info.st_mode)
            else b""
        )
        seen[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns, content)
    return seen


class Safety:
    """A world with one incremental backup of the source, and an outside folder to watch."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.outside = world.root / "outside"
        (self.outside / "sub").mkdir(parents=True)
        (self.outside / "passwd").write_bytes(b"root:x:0:0")
        (self.outside / "sub" / "file.txt").write_bytes(b"outside")
        source = world.source
        (source / "data").mkdir(parents=True)
        (source / "edited.txt").write_bytes(BACKED_UP)
        (source / "same.txt").write_bytes(b"identical\n" * 50)
        (source / "data" / "file.txt").write_bytes(b"data file")
        (source / "data" / "file.txt").chmod(0o640)
        (source / "link").symlink_to("same.txt")
        (source / "out").symlink_to(self.outside)  # a symlink the backup itself holds
        for path in [*source.rglob("*"), source]:
            os.utime(path, ns=(OLD, OLD), follow_symlinks=False)
        job = world.job()
        status, group = world.run(job)
        assert status == 100, world.log_text(group)
        self.backup_id = world.ok("listBackups", {"account_id": job["_id"]})["backups"][0]["_id"]
        self.before = fingerprint(self.outside)

    def inside(self, target: Path) -> Path:
        return target / str(self.world.source).lstrip("/")

    def prepare(self, base: Path) -> None:
        """``base`` (the source's place in a target) holds a restored copy, then a local edit and
        a planted outside symlink where the backup has the folder ``data``."""
        (base / "edited.txt").write_bytes(EDIT)
        os.utime(base / "edited.txt", ns=(NEW, NEW))
        for entry in sorted((base / "data").iterdir()):
            entry.unlink()
        (base / "data").rmdir()
        (base / "data").symlink_to(self.outside)

    def restored_target(self, name: str) -> Path:
        target = self.world.root / name
        status, _ = self.api_restore({"target": str(target), "overwrite": "always"})
        assert status == 100
        self.prepare(self.inside(target))
        return target

    def api_restore(self, options: dict[str, Any], **extra: Any) -> tuple[int, dict[str, Any]]:
        group = self.world.ok(
            "addQueueItems", {"type": 2, "snapshot_id": self.backup_id, "options": options, **extra}
        )
        status = execute_group(self.world.catalog, self.world.home, group["_id"], stop=threading.Event())
        return status, self.world.ok("getQueueGroup", {"_id": group["_id"]})

    def cli(self, *args: str, input: str | None = None) -> Any:
        return CliRunner().invoke(
            cli, ["--home", str(self.world.home), *args], input=input, catch_exceptions=False
        )

    def last_log(self) -> str:
        group = self.world.ok("listQueueGroups", {"type": 2})["groups"][0]
        return self.world.log_text(group)

    def assert_outside_intact(self) -> None:
        assert fingerprint(self.outside) == self.before


@pytest.fixture
def safety(tmp_path: Path) -> Iterator[Safety]:
    world = World(tmp_path)
    world.source.mkdir()
    yield Safety(world)
    world.close()


def summary(written: int, overwritten: int, skipped: int, removed: int = 0) -> str:
    return f"{written} written, {overwritten} overwritten, {skipped} skipped, {removed} removed"


# --- API, each policy ------------------------------------------------------------------------------

#: policy -> (edited.txt afterwards, whether data/ is a folder again, the log's counts)
POLICIES = {
    # existing edited, same, link, out and the planted data link replaced; data/file.txt new
    "always": (BACKED_UP, True, summary(1, 5, 0)),
    # identical same.txt, link and out kept; edited and the planted link replaced
    "if-changed": (BACKED_UP, True, summary(1, 2, 3)),
    # the edit and the planted link are newer than the backup: kept; the rest (equal times) replaced
    "if-newer": (EDIT, False, summary(0, 3, 2)),
    "never": (EDIT, False, summary(0, 0, 5)),
}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_api_restore_with_each_policy(safety: Safety, policy: str) -> None:
    target = safety.restored_target(f"api-{policy}")
    base = safety.inside(target)
    edited, folder_again, counts = POLICIES[policy]
    status, group = safety.api_restore({"target": str(target), "overwrite": policy})
    log = safety.world.log_text(group)
    assert status == 100, log
    safety.assert_outside_intact()
    assert (base / "edited.txt").read_bytes() == edited
    assert (base / "data").is_symlink() != folder_again
    if folder_again:
        assert (base / "data" / "file.txt").read_bytes() == b"data file"
    assert os.readlink(base / "out") == str(safety.outside)
    assert f"{counts}" in log, log
    if policy == "never":
        assert f"skip {safety.world.source}/edited.txt" in log


def test_api_default_with_merge_1_keeps_existing_files(safety: Safety) -> None:
    target = safety.restored_target("api-default")
    status, group = safety.api_restore({"target": str(target)})
    log = safety.world.log_text(group)
    assert status == 100, log
    assert "overwrite never" in log
    assert (safety.inside(target) / "edited.txt").read_bytes() == EDIT  # API.md: existing files are kept
    assert summary(0, 0, 5) in log
    safety.assert_outside_intact()


def test_api_merge_0_clears_then_restores(safety: Safety) -> None:
    target = safety.restored_target("api-merge0")
    base = safety.inside(target)
    (base / "local-only.txt").write_bytes(b"not in the backup")
    wanted = str(safety.world.source)
    status, group = safety.api_restore(
        {"target": str(target), "merge": 0}, files={safety.backup_id: {wanted: "Directory"}}
    )
    log = safety.world.log_text(group)
    assert status == 100, log
    safety.assert_outside_intact()  # the planted data -> outside link was removed, not followed
    assert (base / "edited.txt").read_bytes() == BACKED_UP
    assert not (base / "local-only.txt").exists()
    assert (base / "data" / "file.txt").read_bytes() == b"data file"
    assert summary(5, 0, 0, 1) in log
    assert f"remove {wanted}" in log


def test_api_merge_0_on_a_symlink_the_backup_restored(safety: Safety) -> None:
    """merge=0 of ``out`` (a restored symlink to outside) removes the link, never its target."""
    target = safety.restored_target("api-merge0-link")
    out = f"{safety.world.source}/out"
    status, group = safety.api_restore(
        {"target": str(target), "merge": 0}, files={safety.backup_id: {out: "File"}}
    )
    assert status == 100, safety.world.log_text(group)
    safety.assert_outside_intact()
    assert os.readlink(safety.inside(target) / "out") == str(safety.outside)


def test_api_dry_run_writes_nothing_and_lists(safety: Safety) -> None:
    target = safety.restored_target("api-dry")
    safety.inside(target)
    before = fingerprint(target)
    status, group = safety.api_restore({"target": str(target), "merge": 0, "dry_run": 1})
    log = safety.world.log_text(group)
    assert status == 100, log
    assert fingerprint(target) == before
    safety.assert_outside_intact()
    assert "dry run, would be: " in log
    assert f"remove {safety.world.source}" in log
    assert f"overwrite {safety.world.source}/edited.txt" in log


def test_api_refuses_unknown_policy_and_flags(safety: Safety) -> None:
    message = safety.world.fails(
        "addQueueItems", {"type": 2, "snapshot_id": safety.backup_id, "options": {"overwrite": "sometimes"}}
    )
    assert "options[overwrite]" in message
    assert "if-changed" in message
    message = safety.world.fails(
        "addQueueItems", {"type": 4, "snapshot_id": safety.backup_id, "options": {"dry_run": 1}}
    )
    assert "options[dry_run]" in message


# --- CLI ---------------------------------------------------------------------------------------------


def test_cli_restore_needs_a_target(safety: Safety) -> None:
    neither = safety.cli("restore", safety.backup_id)
    assert neither.exit_code == 2
    assert "--target DIR" in neither.output
    assert "--in-place" in neither.output
    both = safety.cli("restore", safety.backup_id, "--target", str(safety.world.root / "t"), "--in-place")
    assert both.exit_code == 2
    assert "exclude each other" in both.output
    piped = safety.cli("restore", safety.backup_id, "--in-place")
    assert piped.exit_code == 2
    assert "needs --yes" in piped.output
    assert (safety.world.source / "edited.txt").read_bytes() == BACKED_UP
    # a dry run writes nothing: no confirmation needed, even without a terminal
    (safety.world.source / "edited.txt").write_bytes(EDIT)
    dry = safety.cli("restore", safety.backup_id, "--in-place", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"overwrite {safety.world.source}/edited.txt" in dry.output
    assert "dry run, would be: 0 written, 1 overwritten, 4 skipped" in dry.output
    assert (safety.world.source / "edited.txt").read_bytes() == EDIT


def test_cli_target_replaces_the_edit(safety: Safety) -> None:
    target = safety.restored_target("cli-target")
    result = safety.cli("restore", safety.backup_id, "--target", str(target))
    assert result.exit_code == 0, result.output
    safety.assert_outside_intact()
    assert (safety.inside(target) / "edited.txt").read_bytes() == BACKED_UP
    assert not (safety.inside(target) / "data").is_symlink()
    assert summary(1, 5, 0) in safety.last_log()


def test_cli_names_a_path_the_backup_does_not_hold_before_the_run(safety: Safety) -> None:
    """Review F11: a --path that is not in the backup is an error before anything is queued (exit 2,
    naming it), not a failed run; a path that is there restores."""
    source = safety.world.source
    target = safety.restored_target("cli-paths")
    groups_before = safety.world.ok("listQueueGroups", {"type": 2})["total"]
    wrong = safety.cli(
        "restore", safety.backup_id, "--target", str(target),
        "--path", f"{source}/edited.txt", "--path", f"{source}/no-such-file", "--path", "/nowhere/at/all",
    )  # fmt: skip
    assert wrong.exit_code == 2, wrong.output
    assert f"not in backup {safety.backup_id}: {source}/no-such-file, /nowhere/at/all" in wrong.output
    assert safety.world.ok("listQueueGroups", {"type": 2})["total"] == groups_before, "nothing queued"
    right = safety.cli(
        "restore", safety.backup_id, "--target", str(target), "--path", f"{source}/edited.txt/"
    )
    assert right.exit_code == 0, right.output
    assert (safety.inside(target) / "edited.txt").read_bytes() == BACKED_UP


def test_cli_dry_run_prints_the_list(safety: Safety) -> None:
    target = safety.restored_target("cli-dry")
    before = fingerprint(target)
    result = safety.cli("restore", safety.backup_id, "--target", str(target), "--dry-run")
    assert result.exit_code == 0, result.output
    assert fingerprint(target) == before
    assert f"overwrite {safety.world.source}/edited.txt" in result.output
    assert f"write {safety.world.source}/data/file.txt" in result.output
    assert "dry run, would be: " + summary(1, 5, 0) in result.output


def test_cli_in_place_asks_on_a_terminal(safety: Safety, monkeypatch: pytest.MonkeyPatch) -> None:
    safety.prepare(safety.world.source)
    monkeypatch.setattr(restore_cmd, "_interactive", lambda: True)
    refused = safety.cli("restore", safety.backup_id, "--in-place", input="n\n")
    assert refused.exit_code == 1
    assert "over the original paths" in refused.output
    assert (safety.world.source / "edited.txt").read_bytes() == EDIT
    accepted = safety.cli("restore", safety.backup_id, "--in-place", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert (safety.world.source / "edited.txt").read_bytes() == BACKED_UP
    safety.assert_outside_intact()


def test_cli_in_place_with_yes_is_if_changed(safety: Safety) -> None:
    safety.prepare(safety.world.source)  # the original place: edited, data -> outside
    same_before = (safety.world.source / "same.txt").stat().st_mtime_ns
    result = safety.cli("restore", safety.backup_id, "--in-place", "--yes")
    assert result.exit_code == 0, result.output
    safety.assert_outside_intact()
    assert (safety.world.source / "edited.txt").read_bytes() == BACKED_UP
    assert (safety.world.source / "data" / "file.txt").read_bytes() == b"data file"
    assert (safety.world.source / "same.txt").stat().st_mtime_ns == same_before
    log = safety.last_log()
    assert "overwrite if-changed" in log
    assert summary(1, 2, 3) in log


# --- download ----------------------------------------------------------------------------------------


def test_download_keeps_metadata_inside_and_is_private(safety: Safety) -> None:
    group = safety.world.ok("addQueueItems", {"type": 4, "snapshot_id": safety.backup_id})
    assert execute_group(safety.world.catalog, safety.world.home, group["_id"], stop=threading.Event()) == 100
    done = safety.world.ok("getQueueGroup", {"_id": group["_id"]})
    path = Path(done["data"]["file"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with (
        path.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as archive,
    ):
        members = {member.name: member for member in archive}
    prefix = str(safety.world.source).lstrip("/")
    out = members[f"{prefix}/out"]
    assert out.issym()
    assert out.linkname == str(safety.outside)
    data = members[f"{prefix}/data/file.txt"]
    assert data.mode & 0o777 == 0o640
    assert int(data.mtime) == OLD // 1_000_000_000
    assert (data.uid, data.gid) == (os.getuid(), os.getgid())
    safety.assert_outside_intact()
    assert not (safety.world.home / "downloads" / f".{group['_id']}").exists()


def test_download_file_rule_pending_then_ready_then_expired(safety: Safety) -> None:
    """``downloadBackupFile``: not ready while pending, the file once finished, the caller's own
    only (a non-admin user sees another's download as missing), removed and "not found" after
    ``DOWNLOAD_DAYS``."""
    world = safety.world
    group = world.ok("addQueueItems", {"type": 4, "snapshot_id": safety.backup_id})
    assert "not ready" in world.fails("downloadBackupFile", {"_id": group["_id"]})
    assert execute_group(world.catalog, world.home, group["_id"], stop=threading.Event()) == 100
    ready = world.ok("downloadBackupFile", {"_id": group["_id"]})
    assert Path(ready["file"]).stat().st_size == ready["size"] > 0
    stranger = world.api.call(
        "downloadBackupFile",
        {"_id": group["_id"]},
        Caller(id="5" * 24, name="bob", role="account", accounts=frozenset({"bob"})),
    )
    assert stranger["success"] == 0
    assert "not found" in stranger["message"].lower()
    later = FrozenClock(dt.datetime.now(dt.UTC) + dt.timedelta(days=DOWNLOAD_DAYS, hours=1))
    expired = Api(world.catalog, clock=later).call("downloadBackupFile", {"_id": group["_id"]})
    assert expired["success"] == 0
    assert "expired" in expired["message"]
    assert not Path(ready["file"]).exists()


# --- snapkeep repo restore ---------------------------------------------------------------------------


def test_repo_restore_policies_dry_run_and_special_files(tmp_path: Path) -> None:
    """``repo restore`` (target required by its arguments): ``always`` by default, ``--overwrite``,
    ``--dry-run``; from an unencrypted repository a set-user-ID bit only with ``--special-files``."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root")
    before = fingerprint(outside)
    source = tmp_path / "source"
    (source / "data").mkdir(parents=True)
    (source / "edited.txt").write_bytes(BACKED_UP)
    (source / "tool").write_bytes(b"#!/bin/sh\n")
    (source / "tool").chmod(0o4755)
    (source / "out").symlink_to(outside)
    (source / "data" / "f").write_bytes(b"f")
    repo = str(tmp_path / "repo")

    def run(*args: str) -> Any:
        return CliRunner().invoke(
            cli, ["--home", str(tmp_path / "home"), "repo", *args], catch_exceptions=False
        )

    assert run("init", repo, "--no-encryption").exit_code == 0
    assert run("backup", repo, str(source)).exit_code == 0
    target = tmp_path / "target"
    first = run("restore", repo, "latest", str(target))
    assert first.exit_code == 0, first.output
    base = target / str(source).lstrip("/")
    assert stat.S_IMODE((base / "tool").stat().st_mode) == 0o755  # unencrypted: no set-user-ID
    assert "set-user/group-ID" in first.output
    (base / "edited.txt").write_bytes(EDIT)
    os.utime(base / "edited.txt", ns=(NEW, NEW))
    (base / "data" / "f").unlink()
    (base / "data").rmdir()
    (base / "data").symlink_to(outside)

    dry = run("restore", repo, "latest", str(target), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"overwrite {source}/edited.txt" in dry.output
    assert (base / "edited.txt").read_bytes() == EDIT
    kept = run("restore", repo, "latest", str(target), "--overwrite", "never", "--json")
    assert kept.exit_code == 0, kept.output
    assert (base / "edited.txt").read_bytes() == EDIT
    assert (base / "data").is_symlink()
    replaced = run("restore", repo, "latest", str(target), "--special-files")
    assert replaced.exit_code == 0, replaced.output
    assert (base / "edited.txt").read_bytes() == BACKED_UP
    assert (base / "data" / "f").read_bytes() == b"f"
    assert stat.S_IMODE((base / "tool").stat().st_mode) == 0o4755
    assert fingerprint(outside) == before


# --- Accounts: restores into a hosting account ---------------------------------------------------


@pytest.fixture
def hosting(tmp_path: Path) -> Iterator[tuple[World, Site]]:
    """test_account_runs' world and three hosting accounts (real MariaDB and PostgreSQL)."""
    require_server(servers_answer(), "MariaDB at 127.0.0.1:3306 and PostgreSQL at 127.0.0.1:5432")
    made_world = World(tmp_path)
    made = Site(tmp_path, made_world.home)
    try:
        made.build()
        yield made_world, made
    finally:
        made.drop()
        made_world.close()


def test_account_restore_never_follows_a_symlink_the_account_holds(
    hosting: tuple[World, Site], tmp_path: Path
) -> None:
    """The account replaced ``public_html`` with a link to outside: a restore of a file below it
    is refused for that path, merge=1 keeps the link, ``if-changed`` replaces it with the folder;
    nothing outside changes, and the counts are in the log."""
    world, site = hosting
    alice = site.user("alice")
    status, group = world.run(accounts_job(world, site))
    assert status == 100, world.log_text(group)
    backup = backup_of(world, alice)
    homedir = items_of(world, backup["_id"])["homedir"]["_id"]
    home = site.account_home("alice")
    outside = tmp_path / "outside-account"
    outside.mkdir()
    (outside / "index.php").write_text("outside")
    before = fingerprint(outside)
    shutil.rmtree(home / "public_html")
    (home / "public_html").symlink_to(outside)
    (home / "docs" / "notes.md").write_text("edited by the account")

    below_link = {backup["_id"]: {str(home / "public_html" / "index.php"): "File"}}
    status, done = account_restore(
        world, {"snapshot_id": backup["_id"], "files": below_link, "options": {"merge": 0}}
    )
    log = world.log_text(done)
    assert status == 102, log
    assert "not restored" in log
    assert "symlink" in log
    assert fingerprint(outside) == before

    status, done = account_restore(world, {"items": [homedir]})
    log = world.log_text(done)
    assert status == 100, log
    assert (home / "public_html").is_symlink()
    assert (home / "docs" / "notes.md").read_text() == "edited by the account"
    assert "(kept existing)" in log
    assert "0 overwritten" in log
    assert fingerprint(outside) == before

    status, done = account_restore(world, {"items": [homedir], "options": {"overwrite": "if-changed"}})
    log = world.log_text(done)
    assert status == 100, log
    assert not (home / "public_html").is_symlink()
    assert (home / "public_html" / "index.php").read_text().startswith("<?php")
    assert (home / "docs" / "notes.md").read_text() == "# notes\n"
    assert "2 overwritten" in log  # public_html (the link) and docs/notes.md; the rest identical
    assert fingerprint(outside) == before


def test_account_placer_copies_across_file_systems_without_following(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When staging and the account are on different file systems (``EXDEV``), the placer
    copies: files with their mode and times, links as links, never special files."""
    staged = tmp_path / "staged" / "site"
    (staged / "sub").mkdir(parents=True)
    (staged / "sub" / "a.txt").write_bytes(b"a" * 3_000_000)
    (staged / "sub" / "a.txt").chmod(0o640)
    os.utime(staged / "sub" / "a.txt", ns=(OLD, OLD))
    (staged / "link").symlink_to("/etc/passwd")
    os.mkfifo(staged / "pipe")
    root = tmp_path / "account"
    root.mkdir()
    real_rename = os.rename

    def cross_device(source: Any, destination: Any, **kwargs: Any) -> None:
        if str(source).startswith(str(tmp_path / "staged")):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(source, destination, **kwargs)

    monkeypatch.setattr(os, "rename", cross_device)
    placer = Placer("always", None)
    placer.place_below(root, ["site"], staged)
    copied = root / "site"
    assert (copied / "sub" / "a.txt").read_bytes() == b"a" * 3_000_000
    assert stat.S_IMODE((copied / "sub" / "a.txt").stat().st_mode) == 0o640
    assert (copied / "sub" / "a.txt").stat().st_mtime_ns == OLD
    assert os.readlink(copied / "link") == "/etc/passwd"
    assert not (copied / "pipe").exists()
    assert placer.changes.counts["write"] == 1


# --- special files and the tar structures through the API --------------------------------------


@pytest.mark.parametrize("encrypted", [0, 1])
def test_api_special_files_only_when_asked(tmp_path: Path, encrypted: int) -> None:
    """A set-user-ID file comes back without the bit (a warning in the log, the run Partial)
    unless ``options[special_files]=1``, from an unencrypted and an encrypted repository alike."""
    world = World(tmp_path)
    try:
        world.source.mkdir()
        tool = world.source / "tool"
        tool.write_bytes(b"#!/bin/sh\n")
        tool.chmod(0o4755)
        job = world.job(encrypted=encrypted)
        assert world.run(job)[0] == 100
        backup_id = world.ok("listBackups", {"account_id": job["_id"]})["backups"][0]["_id"]
        modes = {}
        for asked in (0, 1):
            target = tmp_path / f"restored-{asked}"
            options = {"target": str(target), "special_files": asked}
            group = world.ok("addQueueItems", {"type": 2, "snapshot_id": backup_id, "options": options})
            execute_group(world.catalog, world.home, group["_id"], stop=threading.Event())
            done = world.ok("getQueueGroup", {"_id": group["_id"]})
            restored = target / str(tool).lstrip("/")
            modes[asked] = (stat.S_IMODE(restored.stat().st_mode), done["status"], world.log_text(done))
        assert modes[1][:2] == (0o4755, 100)
        assert modes[0][:2] == (0o755, 101)
        assert "set-user/group-ID" in modes[0][2]
    finally:
        world.close()


@pytest.mark.parametrize("structure", [2, 4], ids=["archived", "compressed"])
def test_api_tar_structures_policies_and_planted_link(tmp_path: Path, structure: int) -> None:
    """Archived/Compressed through the API: merge=1 keeps the edit; ``if-changed`` replaces it and
    keeps identical files; a planted link where the archive has a folder is kept by ``never`` and
    refused (the restore fails, nothing written through it) by ``always``."""
    world = World(tmp_path)
    try:
        world.source.mkdir()
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "x").write_bytes(b"x")
        before = fingerprint(outside)
        source = world.source
        (source / "data").mkdir()
        (source / "data" / "f").write_bytes(b"f")
        (source / "edited.txt").write_bytes(BACKED_UP)
        (source / "same.txt").write_bytes(b"same")
        for path in [*source.rglob("*"), source]:
            os.utime(path, ns=(OLD, OLD), follow_symlinks=False)
        job = world.job(structure=structure)
        assert world.run(job)[0] == 100
        backup_id = world.ok("listBackups", {"account_id": job["_id"]})["backups"][0]["_id"]

        def restore(options: dict[str, Any]) -> tuple[int, str]:
            group = world.ok("addQueueItems", {"type": 2, "snapshot_id": backup_id, "options": options})
            status = execute_group(world.catalog, world.home, group["_id"], stop=threading.Event())
            return status, world.log_text(world.ok("getQueueGroup", {"_id": group["_id"]}))

        target = tmp_path / "target"
        base = target / str(source).lstrip("/")
        assert restore({"target": str(target), "overwrite": "always"})[0] == 100
        (base / "edited.txt").write_bytes(EDIT)
        os.utime(base / "edited.txt", ns=(NEW, NEW))
        status, log = restore({"target": str(target)})
        assert status == 100, log
        assert (base / "edited.txt").read_bytes() == EDIT
        assert summary(0, 0, 3) in log
        status, log = restore({"target": str(target), "overwrite": "if-changed"})
        assert status == 100, log
        assert (base / "edited.txt").read_bytes() == BACKED_UP
        assert summary(0, 1, 2) in log

        shutil.rmtree(base / "data")
        (base / "data").symlink_to(outside)
        status, log = restore({"target": str(target), "overwrite": "never"})
        assert status == 100, log
        assert (base / "data").is_symlink()
        status, log = restore({"target": str(target), "overwrite": "always"})
        assert status == 102, log
        assert "symlink" in log
        assert fingerprint(outside) == before
    finally:
        world.close()


def test_dry_run_runs_no_restore_hooks(safety: Safety, tmp_path: Path, trusted_dir: Path) -> None:
    world = safety.world
    seen = tmp_path / "hook-ran"
    script = trusted_dir / "hook.sh"
    script.write_text(f"#!/bin/sh\necho $SNAPKEEP_HOOK_STAGE >> {seen}\n")
    script.chmod(0o755)
    for stage in (1, 2):
        world.ok(
            "manageHook",
            {
                "action": "create",
                "name": f"h{stage}",
                "script": str(script),
                "position_type": stage,
                "position": 2,
            },
        )
    status, _ = safety.api_restore({"target": str(tmp_path / "dry"), "dry_run": 1})
    assert status == 100
    assert not seen.exists()
    assert not (tmp_path / "dry").exists()
    status, _ = safety.api_restore({"target": str(tmp_path / "real")})
    assert status == 100
    assert seen.read_text().split() == ["pre", "post"]
