"""The benchmark's data: generate it once with ``make_dataset.py``, copy, mutate, warm, digest, measure size.

The pristine tree lives in ``bench/work/data`` with a stamp file beside it recording how it was generated
(seed, size, accounts, the generator's hash); a later run with the same parameters reuses it. Every run
works on a copy (``bench/work/tree``), so ``mutate --day 1`` never spoils the pristine tree.
Errors raise ``DatasetError`` with the step and the generator's message.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SCRIPT = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "make_dataset.py"
SIZE_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
STAMP_NAME = "data.stamp.json"


class DatasetError(RuntimeError):
    """A step on the data set (generate, copy, mutate, digest) failed."""


@dataclass
class TreeInfo:
    """Counts of a tree: regular files, directories, other entries (links, fifos...) and file bytes."""

    files: int
    directories: int
    others: int
    bytes: int


def parse_size(text: str) -> int:
    """``"2G"`` -> 2147483648; accepts K, M, G, T (binary) and an optional trailing ``B`` / ``iB``.

    Raises ValueError naming the text when it is not a size.
    """
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, suffix = cleaned, ""
    if cleaned and cleaned[-1] in SIZE_SUFFIXES:
        number, suffix = cleaned[:-1], cleaned[-1]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"size {text!r} is not a number with an optional K/M/G/T suffix") from None
    if value <= 0:
        raise ValueError(f"size {text!r} must be positive")
    return int(value * SIZE_SUFFIXES[suffix])


def _run_script(script: Path, arguments: list[str], step: str) -> dict[str, Any]:
    try:
        completed = subprocess.run(
            [sys.executable, str(script), *arguments], capture_output=True, text=True, check=False
        )
    except OSError as error:
        raise DatasetError(f"{step}: cannot run {script}: {error}") from error
    if completed.returncode != 0:
        message = completed.stderr.strip().splitlines()[-3:]
        raise DatasetError(f"{step}: {script.name} exited {completed.returncode}: {' | '.join(message)}")
    try:
        result: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{step}: {script.name} printed no JSON: {completed.stdout[-300:]!r}") from error
    return result


def script_hash(script: Path) -> str:
    """SHA-256 of the generator, so a changed generator invalidates a stamped data set."""
    return hashlib.sha256(script.read_bytes()).hexdigest()


def ensure_dataset(
    data: Path, *, script: Path, seed: int, size: int, accounts: int, log: Any = print
) -> dict[str, Any]:
    """Return the stamp of a pristine data set at ``data``, generating it unless a matching one exists.

    A tree at ``data`` without a matching stamp is deleted and generated anew.
    Raises DatasetError when the generator fails.
    """
    wanted = {"seed": seed, "size": size, "accounts": accounts, "generator_sha256": script_hash(script)}
    stamp_path = data.parent / STAMP_NAME
    if data.is_dir() and stamp_path.is_file():
        try:
            stamp: dict[str, Any] = json.loads(stamp_path.read_text())
        except (OSError, json.JSONDecodeError):
            stamp = {}
        if all(stamp.get(key) == value for key, value in wanted.items()):
            log(f"data set: reusing {data} (seed {seed}, {size} bytes target)")
            return stamp
    if data.exists():
        log(f"data set: {data} has no matching stamp, generating it anew")
        shutil.rmtree(data)
    stamp_path.unlink(missing_ok=True)
    log(f"data set: generating {size} bytes (seed {seed}, {accounts} accounts) into {data}")
    start = time.perf_counter()
    summary = _run_script(
        script,
        ["generate", str(data), "--seed", str(seed), "--size", str(size), "--accounts", str(accounts)],
        "generate",
    )
    info = tree_info(data)
    stamp = {
        **wanted,
        "generated_s": round(time.perf_counter() - start, 1),
        "files": info.files,
        "directories": info.directories,
        "others": info.others,
        "bytes": info.bytes,
        "generator_summary": summary,
    }
    stamp_path.write_text(json.dumps(stamp, indent=1) + "\n")
    return stamp


def working_copy(source: Path, destination: Path, set_aside: list[Path] | None = None) -> float:
    """Replace ``destination`` with an exact copy of ``source`` (owners, modes, times, hard links).

    With ``set_aside``, an existing ``destination`` is renamed next to itself and appended there
    for the caller to delete once nothing more is measured: deleting its 80,000 files would tax
    every file created in the next minutes (ext4 without a journal, see
    ``run.Bench.remove_restores``), the restores of this run included. Without it, it is deleted.
    Returns the seconds the copy took. Raises DatasetError when ``cp`` fails.
    """
    if destination.exists():
        if set_aside is None:
            remove_tree(destination)
        else:
            aside = destination.with_name(f"{destination.name}.old-{time.time_ns()}")
            destination.rename(aside)
            set_aside.append(aside)
    start = time.perf_counter()
    completed = subprocess.run(
        ["cp", "-a", "--reflink=auto", str(source), str(destination)], capture_output=True, text=True
    )
    if completed.returncode != 0:
        raise DatasetError(f"copy {source} -> {destination}: {completed.stderr.strip()}")
    return time.perf_counter() - start


def mutate(tree: Path, *, script: Path, seed: int, day: int) -> dict[str, Any]:
    """Apply ``make_dataset.py mutate --day DAY`` to ``tree``; returns its JSON summary."""
    return _run_script(script, ["mutate", str(tree), "--seed", str(seed), "--day", str(day)], "mutate")


def digest(tree: Path, *, script: Path, owner: bool, mtime: bool) -> dict[str, Any]:
    """``make_dataset.py digest`` of ``tree``: paths, types, modes, sizes, contents (+ owners, mtimes)."""
    arguments = ["digest", str(tree)] + (["--owner"] if owner else []) + (["--mtime"] if mtime else [])
    return _run_script(script, arguments, f"digest {tree}")


def tree_info(root: Path) -> TreeInfo:
    """Count the entries under ``root`` (not following symlinks); bytes are regular files' sizes."""
    info = TreeInfo(0, 0, 0, 0)
    for directory, directories, files in os.walk(root):
        info.directories += len(directories)
        for name in files:
            status = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(status.st_mode):
                info.files += 1
                info.bytes += status.st_size
            else:
                info.others += 1
        for name in directories:
            if os.path.islink(os.path.join(directory, name)):
                info.directories -= 1
                info.others += 1
    return info


def warm(root: Path) -> tuple[int, float]:
    """Read every regular file under ``root`` once, so every tool starts with the same warm page cache.

    Returns (bytes read, seconds). Unreadable files are skipped: the tools will meet them too.
    """
    start = time.perf_counter()
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    continue
                with open(path, "rb", buffering=0) as handle:
                    while chunk := handle.read(1 << 20):
                        total += len(chunk)
            except OSError:
                continue
    return total, time.perf_counter() - start


def disk_usage(root: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of everything under ``root``, like ``du -sb`` and ``du -s``.

    Hard-linked files count once. A missing ``root`` counts as (0, 0).
    """
    apparent = allocated = 0
    seen: set[tuple[int, int]] = set()
    for directory, directories, files in os.walk(root):
        for name in directories + files:
            status = os.lstat(os.path.join(directory, name))
            key = (status.st_dev, status.st_ino)
            if key in seen:
                continue
            seen.add(key)
            apparent += status.st_size if not stat.S_ISDIR(status.st_mode) else 0
            allocated += status.st_blocks * 512
    return apparent, allocated


def find_restored_root(target: Path, source: Path) -> Path | None:
    """Where a tool put the restored copy of ``source`` inside ``target``.

    restic and borg recreate the absolute path below the target; other tools may use the base name or
    restore the contents straight into the target. Returns None when none of these exists.
    """
    candidates = [target / source.relative_to(source.anchor), target / source.name]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    if target.is_dir() and any(target.iterdir()):
        return target
    return None


def remove_tree(path: Path) -> None:
    """Delete ``path`` (a tree, a file or nothing), making read-only folders writable first if needed."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink():

        def make_writable(function: Any, failed: str, _info: Any) -> None:
            parent = os.path.dirname(failed)
            os.chmod(parent, 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
            function(failed)

        shutil.rmtree(path, onerror=make_writable)
    else:
        path.unlink()
