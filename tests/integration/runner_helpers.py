"""Shared setup for the runner tests: a SQLite catalog on the real clock, objects made through the
API, a source tree to back up, and snapshots of a tree (content, mode) to compare restores with."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

from snapkeep.api.dispatch import Api
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.runs import execute_group


class World:
    """A data directory, its catalog and API, a source folder and a backup folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.source = root / "source"
        self.backups = root / "backups"
        self.catalog = Catalog.open(self.home)
        self.api = Api(self.catalog)

    def ok(self, function: str, params: dict[str, Any] | None = None) -> Any:
        answer = self.api.call(function, params or {})
        assert answer["success"] == 1, (function, params, answer["message"])
        return answer["data"]

    def fails(self, function: str, params: dict[str, Any]) -> str:
        answer = self.api.call(function, params)
        assert answer["success"] == 0, (function, params, answer)
        return str(answer["message"])

    def destination(self, path: Path | None = None, **fields: Any) -> dict[str, Any]:
        options = {"path": str(path or self.backups)}
        return self.ok(
            "manageDestination",
            {
                "action": "create",
                "name": f"Disk {len(self.ok('listDestinations')['destinations'])}",
                "type": "Local",
                "options": options,
                **fields,
            },
        )

    def job(self, destination: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        destination = destination or self.destination()
        params = {
            "action": "create",
            "name": "Folders",
            "type": 2,
            "destination": [destination["_id"]],
            "contains": 511,
            "structure": 1,
            "include_list": [str(self.source)],
            **fields,
        }
        return self.ok("manageBackupJob", params)

    def run(self, job: dict[str, Any], stop: threading.Event | None = None) -> tuple[int, dict[str, Any]]:
        self.ok("runBackupJobManually", {"_id": job["_id"]})
        group = self.ok("listQueueGroups", {"type": 1, "find": {"data._id": job["_id"]}})["groups"][0]
        status = execute_group(self.catalog, self.home, group["_id"], stop=stop or threading.Event())
        return status, self.ok("getQueueGroup", {"_id": group["_id"]})

    def log_text(self, group: dict[str, Any]) -> str:
        return str(self.ok("getLog", {"_id": group["data"]["log_id"], "content": 1})["content"])

    def close(self) -> None:
        self.catalog.close()


def make_tree(root: Path, version: int) -> None:
    """A small tree whose contents depend on ``version``: text, binary, modes, a symlink, a subfolder."""
    (root / "sub" / "deep").mkdir(parents=True, exist_ok=True)
    (root / "a.txt").write_text(f"alpha version {version}\n" * 50)
    (root / "sub" / "b.bin").write_bytes(os.urandom(3000 + version))
    script = root / "sub" / "run.sh"
    script.write_text(f"#!/bin/sh\necho {version}\n")
    script.chmod(0o750 if version % 2 else 0o700)
    (root / "sub" / "deep" / f"only-in-{version}.txt").write_text(str(version))
    private = root / "private.key"
    private.write_text("secret")
    private.chmod(0o600)
    link = root / "link"
    if link.is_symlink():
        link.unlink()
    link.symlink_to("a.txt")


def tree_state(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry below ``root``: (kind, permission bits, content or link target)."""
    state: dict[str, tuple[str, int, bytes]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            relative = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                state[relative] = ("link", 0, os.readlink(path).encode())
            elif stat.S_ISDIR(info.st_mode):
                state[relative] = ("dir", stat.S_IMODE(info.st_mode), b"")
            else:
                state[relative] = ("file", stat.S_IMODE(info.st_mode), path.read_bytes())
    return state
