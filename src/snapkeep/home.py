"""The data directory (DESIGN.md section 7): where the catalog, master key, logs and run files live.

The data directory holds the catalog (with its SQLite WAL and shared-memory files), the master key
the catalog's secrets are sealed with, run logs (which name paths) and download archives (which hold
backed-up files, root-only ones included): nothing in it is for other users. ``make_private``
creates it 0700 and ``tighten`` brings an existing one to 0700 folders and 0600 files whatever the
umask of the process that made them (docs/secrets.md).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tomllib
from pathlib import Path

#: the folders of a data directory whose files ``tighten`` brings to 0600 (one level deep)
PRIVATE_FOLDERS = ("logs", "downloads", "keys")
#: the files of a data directory ``tighten`` brings to 0600 when they exist
PRIVATE_FILES = ("catalog.db", "catalog.db-wal", "catalog.db-shm", "master.key", "config.toml")


#: files that may name the data directory (``home = "/path"``), first found wins (issue 14)
CONFIG_FILES = (Path("/etc/snapkeep/snapkeep.toml"), Path("~/.config/snapkeep/snapkeep.toml"))


def configured_home() -> tuple[Path, str] | None:
    """The data directory a config file names, and which file: the first of ``CONFIG_FILES`` that
    exists and holds ``home``. A file that cannot be read or parsed is skipped (the default then
    applies, and ``snapkeep`` says which home it uses when it would create one)."""
    for candidate in CONFIG_FILES:
        path = candidate.expanduser()
        try:
            with path.open("rb") as handle:
                value = tomllib.load(handle).get("home")
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if isinstance(value, str) and value.startswith("/"):
            return Path(value), str(path)
    return None


def default_home() -> Path:
    """``SNAPKEEP_HOME``, else the ``home`` of /etc/snapkeep/snapkeep.toml or
    ~/.config/snapkeep/snapkeep.toml, else /var/lib/snapkeep as root, else ~/.local/share/snapkeep."""
    configured = os.environ.get("SNAPKEEP_HOME")
    if configured:
        return Path(configured).expanduser().absolute()
    from_file = configured_home()
    if from_file is not None:
        return from_file[0]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/snapkeep")
    return Path.home() / ".local" / "share" / "snapkeep"


def make_private(folder: Path) -> None:
    """Create ``folder`` (and missing parents) and give it mode 0700 whatever the umask. Raises
    OSError."""
    Path(folder).mkdir(mode=0o700, parents=True, exist_ok=True)
    _restrict(Path(folder), 0o700)


def create_private(path: Path) -> None:
    """Create the empty file ``path`` with mode 0600 unless it exists (for files another library
    creates with its own mode, such as the SQLite catalog: its WAL and shared-memory files get the
    catalog's mode). Raises OSError (not for an existing file)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return  # an existing file keeps its owner; ``tighten`` takes loose modes away
    try:
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` of ``path`` creating it 0600 (also under a loose umask; an existing looser file is
    tightened). Raises OSError."""
    descriptor = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        if stat.S_IMODE(os.fstat(descriptor).st_mode) & 0o077:
            os.fchmod(descriptor, 0o600)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def _restrict(path: Path, mode: int) -> None:
    """Take group and other permissions away from ``path`` (never following a symlink)."""
    with contextlib.suppress(OSError):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & 0o077:
            return
        os.chmod(path, mode)


def tighten(home: Path) -> None:
    """Bring an existing data directory to 0700 (itself and its private folders) and 0600 (its
    files, and the files directly in its private folders). Best effort: what cannot be changed (a
    file of another owner) is left as it is."""
    home = Path(home)
    _restrict(home, 0o700)
    for name in PRIVATE_FILES:
        _restrict(home / name, 0o600)
    for name in PRIVATE_FOLDERS:
        folder = home / name
        if not folder.is_dir() or folder.is_symlink():
            continue
        _restrict(folder, 0o700)
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    _restrict(Path(entry.path), 0o700)
                elif entry.is_file(follow_symlinks=False):
                    _restrict(Path(entry.path), 0o600)
