"""Trees for restore tests that split a restore among processes (``engine.restore.processes``):
enough folders at one depth to split, the entries that need care across processes, and a
description of a restored tree to compare with its source."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from snapkeep.engine.backup import processes as backup_processes
from snapkeep.engine.restore import processes

#: More than ``processes.MIN_TASKS`` folders at depth 2 below the source.
SITES = 20


def make_sites(root: Path, files: int = 12) -> Path:
    """``SITES`` folders of files and subfolders, a read-only folder, symlinks and two hard-link
    groups: one inside a folder, one across two folders (restored by different processes)."""
    source = root / "source"
    for site in range(SITES):
        folder = source / "home" / f"site{site:02}"
        (folder / "deep" / "er").mkdir(parents=True)
        for number in range(files):
            (folder / f"f{number}.txt").write_bytes(f"{site}-{number}\n".encode() * (number + 1) * 40)
        (folder / "deep" / "er" / "big.bin").write_bytes(os.urandom(300_000 + site))
        (folder / "link").symlink_to("f0.txt")
        os.utime(folder / "f1.txt", ns=(1_500_000_000_000_000_000, 1_500_000_000_123_456_789))
    (source / "home" / "site00" / "f0.txt").chmod(0o640)
    os.link(source / "home" / "site00" / "f1.txt", source / "home" / "site00" / "same.txt")
    os.link(source / "home" / "site01" / "f2.txt", source / "home" / "site19" / "across.txt")
    (source / "home" / "site02" / "empty").touch()
    os.link(source / "home" / "site02" / "empty", source / "home" / "site17" / "empty-too")
    locked = source / "home" / "site05" / "locked"
    locked.mkdir()
    (locked / "inside.txt").write_bytes(b"kept")
    locked.chmod(0o555)
    for folder in sorted(source.rglob("*"), reverse=True):
        if folder.is_dir() and not folder.is_symlink():
            os.utime(folder, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000 + len(folder.name)))
    return source


def describe(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below ``root``: type, mode, size, mtime (not of symlinks), content, link group."""
    entries: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        relative = str(path.relative_to(root))
        if stat.S_ISLNK(info.st_mode):
            entries[relative] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            entries[relative] = ("dir", stat.S_IMODE(info.st_mode), info.st_mtime_ns)
        else:
            group = inodes.setdefault(info.st_ino, relative) if info.st_nlink > 1 else ""
            entries[relative] = (
                "file",
                stat.S_IMODE(info.st_mode),
                info.st_mtime_ns,
                path.read_bytes(),
                group,
            )
    return entries


def restored_root(target: Path, source: Path) -> Path:
    return target / source.relative_to(source.anchor)


def workers_take_first(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The planning process takes its first folder only once every worker has asked for one, so
    on these small trees the workers surely restore some (the back of the list: site19 first);
    returns how many folders the workers were given, one figure per restore."""
    given: list[int] = []
    original_take = processes.Splitter.take
    original_finish = processes.Splitter.finish

    def take(self: processes.Splitter) -> object:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            worker.ready or worker.dropped or worker.process.poll() is not None for worker in self._workers
        ):
            time.sleep(0.01)
        return original_take(self)

    def finish(self: processes.Splitter) -> None:
        original_finish(self)
        given.append(sum(len(worker.given) for worker in self._workers))

    monkeypatch.setattr(processes.Splitter, "take", take)
    monkeypatch.setattr(processes.Splitter, "finish", finish)
    return given


def backup_workers_take_first(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The same for a shared backup (``engine.backup.processes``): the workers start at the first
    file to read and the backing-up process walks its next task folder only once every worker has
    asked for one (the back of the list: site19 first); returns how many task folders the workers
    backed up, one figure per shared backup."""
    given: list[int] = []
    monkeypatch.setattr(backup_processes, "SHARE_AFTER_FILES", 0)
    original_walk = backup_processes.SharedBackupWalk.walk_folder
    original_wait = backup_processes.SharedBackupWalk.wait_for_all

    def walk_folder(self: backup_processes.SharedBackupWalk, frame: object, parent: object = None) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            worker.ready or worker.dropped or worker.process.poll() is not None for worker in self._workers
        ):
            time.sleep(0.01)
        original_walk(self, frame, parent)  # type: ignore[arg-type]

    def wait_for_all(self: backup_processes.SharedBackupWalk) -> None:
        original_wait(self)
        given.append(len(self.remote_folders))

    monkeypatch.setattr(backup_processes.SharedBackupWalk, "walk_folder", walk_folder)
    monkeypatch.setattr(backup_processes.SharedBackupWalk, "wait_for_all", wait_for_all)
    return given


def live_workers(module: bytes) -> list[int]:
    """The worker processes of ``module`` (its name in their command line) still alive, not
    zombies, below this process."""
    found = []
    for pid in _children(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if module in command and state != "Z":
            found.append(pid)
    return found


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for thread in os.listdir(f"/proc/{pid}/task"):
        try:
            found.extend(
                int(part) for part in Path(f"/proc/{pid}/task/{thread}/children").read_text().split()
            )
        except OSError:
            continue
    return found
