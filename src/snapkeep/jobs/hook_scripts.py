"""Which files may run as a hook: the trust rule for hook scripts (attack report LOW-14).

A hook runs with the service's privileges (root on a hosting server), so whoever can change the
script, or swap the folder it sits in, can run anything as root. The rule is OpenSSH's ``StrictModes``
rule for its ``AuthorizedKeysCommand`` (``safe_path``), which is also what cron and sudo ask of the
files they run:

- the path is absolute and plain: no NUL, no empty, ``.`` or ``..`` component, at most 4096 characters;
- the script is a regular file (not a symbolic link, not a folder), owned by a trusted user and not
  writable by group or others;
- every folder from the script's folder up to ``/`` is owned by a trusted user and not writable by
  group or others. A sticky folder such as ``/tmp`` is **not** accepted: anyone may create entries in
  it, and the rule is kept simple enough to state in one line;
- trusted users are root (uid 0) and the user the service runs as (when that is not root, its own
  files are no less trusted than the service itself).

Symbolic links among the folders (``/bin -> usr/bin``) are followed one step at a time, and every
folder met on the way, including the one holding each link, is checked.

``verify_script(path)`` checks all of it and answers the real path to execute (folder links resolved);
``open_script(path)`` does the same, then opens that real path without following a last symbolic link
and checks the opened file again with ``fstat``, so the object checked is the object opened. The
caller executes the real path while holding the descriptor. What remains is the window between that
``fstat`` and ``execve``: only a trusted user can replace the file or its folder in it, since nobody
else may write any folder of the chain, and a trusted user can run anything anyway.
"""

from __future__ import annotations

import os
import stat

MAX_PATH = 4096
MAX_LINKS = 40  # as the kernel's own limit on symbolic links in one lookup


class UnsafeScript(ValueError):
    """A hook script that must not run; ``reason`` says why in a phrase ("is writable by others")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def trusted_owners() -> frozenset[int]:
    """Root, and the user this process runs as."""
    return frozenset({0, os.geteuid()})


def check_path_text(path: str) -> list[str]:
    """The components of ``path`` when it is an absolute plain path; raises UnsafeScript otherwise."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise UnsafeScript("must be an absolute path starting with /")
    if "\x00" in path:
        raise UnsafeScript("must not contain a NUL byte")
    if len(path) > MAX_PATH:
        raise UnsafeScript(f"must be at most {MAX_PATH} characters")
    parts = path[1:].split("/")
    for part in parts:
        if part in ("", ".", ".."):
            shown = "an empty" if not part else f"a {part!r}"
            raise UnsafeScript(f"must not contain {shown} path component")
    return parts


def _owner_and_mode(info: os.stat_result, what: str) -> None:
    if info.st_uid not in trusted_owners():
        raise UnsafeScript(f"{what} is owned by uid {info.st_uid}, not by root or the service's user")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = (
            "group and others"
            if info.st_mode & stat.S_IWGRP and info.st_mode & stat.S_IWOTH
            else ("group" if info.st_mode & stat.S_IWGRP else "others")
        )
        raise UnsafeScript(f"{what} is writable by {who} (mode {stat.S_IMODE(info.st_mode):04o})")


def _lstat(path: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        raise UnsafeScript(f"{path} does not exist") from None
    except OSError as error:
        raise UnsafeScript(f"{path} cannot be examined: {error.strerror or error}") from None


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def resolve_folder(parts: list[str]) -> str:
    """The real path of the folder ``/parts[0]/.../parts[-1]``, checking every folder met (and the
    folder holding each symbolic link) on the way; raises UnsafeScript."""
    _owner_and_mode(_lstat("/"), "folder /")
    current = "/"
    pending = list(parts)
    links = 0
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":  # only from a link's target: the path given has none
            current = os.path.dirname(current) or "/"
            continue
        candidate = _join(current, name)
        info = _lstat(candidate)
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise UnsafeScript(f"{candidate}: too many symbolic links")
            try:
                target = os.readlink(candidate)
            except OSError as error:  # replaced since the lstat
                raise UnsafeScript(f"{candidate} cannot be examined: {error.strerror or error}") from None
            if target.startswith("/"):
                current = "/"
            pending[:0] = target.split("/")
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafeScript(f"{candidate} is not a folder")
        _owner_and_mode(info, f"folder {candidate}")
        current = candidate
    return current


def _check_file(info: os.stat_result, path: str) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeScript(f"{path} is a symbolic link (name the script itself)")
    if stat.S_ISDIR(info.st_mode):
        raise UnsafeScript(f"{path} is a folder, not a script")
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeScript(f"{path} is not a regular file")
    _owner_and_mode(info, path)
    if not info.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        raise UnsafeScript(f"{path} is not executable")


def verify_script(path: str) -> str:
    """Check ``path`` against the trust rule; the real path to execute. Raises UnsafeScript."""
    parts = check_path_text(path)
    real = _join(resolve_folder(parts[:-1]), parts[-1])
    _check_file(_lstat(real), real)
    return real


def open_script(path: str) -> tuple[str, int]:
    """``verify_script``, then open the real path without following a symbolic link and check the
    opened file itself. Answers ``(real path, descriptor)``; the caller closes the descriptor after
    starting the script. Raises UnsafeScript."""
    real = verify_script(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        descriptor = os.open(real, flags)
    except OSError as error:
        raise UnsafeScript(f"{real} cannot be opened: {error.strerror or error}") from None
    try:
        _check_file(os.fstat(descriptor), real)
    except BaseException:
        os.close(descriptor)
        raise
    return real, descriptor
