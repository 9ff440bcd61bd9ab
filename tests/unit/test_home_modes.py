"""``home.tighten``/``make_private``/``create_private``/``open_private``: a private data directory
whatever the umask, never following a symlink out of it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from snapkeep import home as data_home


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_private_files_and_folders_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        folder = tmp_path / "home" / "logs"
        data_home.make_private(folder)
        data_home.create_private(tmp_path / "home" / "catalog.db")
        descriptor = data_home.open_private(folder / "run.log", os.O_WRONLY | os.O_APPEND)
        os.close(descriptor)
    finally:
        os.umask(old)
    assert mode(folder) == 0o700
    assert mode(tmp_path / "home" / "catalog.db") == 0o600
    assert mode(folder / "run.log") == 0o600
    (folder / "run.log").chmod(0o644)  # an existing loose file is tightened when opened again
    os.close(data_home.open_private(folder / "run.log", os.O_WRONLY | os.O_APPEND))
    assert mode(folder / "run.log") == 0o600


def test_tighten_fixes_loose_modes_and_leaves_symlink_targets_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "logs" / "sub").mkdir(parents=True)
    (home / "downloads").mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    outside.chmod(0o644)
    (home / "logs" / "link").symlink_to(outside)
    (home / "downloads" / "a.tar.zst").write_bytes(b"x")
    (home / "catalog.db").write_bytes(b"")
    (home / "master.key").write_text("00" * 32)
    for path, loose in [
        (home, 0o755),
        (home / "logs", 0o777),
        (home / "logs" / "sub", 0o755),
        (home / "downloads", 0o755),
        (home / "downloads" / "a.tar.zst", 0o644),
        (home / "catalog.db", 0o666),
        (home / "master.key", 0o640),
    ]:
        path.chmod(loose)
    data_home.tighten(home)
    assert mode(home) == 0o700
    assert mode(home / "logs") == 0o700
    assert mode(home / "logs" / "sub") == 0o700
    assert mode(home / "downloads") == 0o700
    assert mode(home / "downloads" / "a.tar.zst") == 0o600
    assert mode(home / "catalog.db") == 0o600
    assert mode(home / "master.key") == 0o600
    assert mode(outside) == 0o644, "a symlink's target is never changed"
    data_home.tighten(tmp_path / "missing")  # nothing there: nothing to do, no error
