"""What the reliability series share: running snapkeep as a child, trees to back up, and digests."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Fast key derivation for throw-away repositories (the format stores the parameters).
FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
PASSWORD = "reliability trials"
BOOT = "import sys; from snapkeep.cli.main import main; sys.exit(main(sys.argv[1:]))"


def snapkeep_command(*args: str) -> list[str]:
    """The argv that runs ``snapkeep ARGS`` with this interpreter (no installed script needed)."""
    return [sys.executable, "-c", BOOT, *args]


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "SNAPKEEP_PASSWORD": PASSWORD, "SNAPKEEP_LOG_LEVEL": "warning", **extra}


def snapkeep(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``snapkeep ARGS`` to completion; never raises for a failing command."""
    return subprocess.run(
        snapkeep_command(*args),
        capture_output=True,
        text=True,
        env=env or environment(),
        timeout=timeout,
        check=False,
    )


def digest(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below ``root``: type, mode, size, mtime (ns) and a content hash."""
    found: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISDIR(info.st_mode):
                found[rel] = ("dir", stat.S_IMODE(info.st_mode), info.st_mtime_ns)
            elif stat.S_ISLNK(info.st_mode):
                found[rel] = ("link", os.readlink(path))
            else:
                content = hashlib.sha256(path.read_bytes()).hexdigest()
                found[rel] = ("file", stat.S_IMODE(info.st_mode), info.st_size, info.st_mtime_ns, content)
    return found


def make_tree(source: Path, rng: random.Random, *, files: int = 300, big: int = 4) -> None:
    """A few hundred files of mixed sizes and modes, ``big`` of them about 2 MiB."""
    for number in range(files):
        folder = source / f"d{number % 12}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.choice([0, 100, 2000, 9000, 40000]) + rng.randrange(1000)
        data = rng.randbytes(size) if number % 2 else (b"text %d " % number) * (size // 8)
        (folder / f"f{number}.dat").write_bytes(data)
        os.chmod(folder / f"f{number}.dat", rng.choice([0o644, 0o600, 0o755]))
    for number in range(big):
        (source / f"big{number}.bin").write_bytes(rng.randbytes(2 * 1024 * 1024 + rng.randrange(65536)))


def mutate(source: Path, rng: random.Random, round_: int) -> None:
    """Rewrite one big file and a few small ones, add two: every backup has new data to send."""
    (source / f"big{round_ % 4}.bin").write_bytes(rng.randbytes(2 * 1024 * 1024 + rng.randrange(65536)))
    for _ in range(5):
        path = source / f"d{rng.randrange(12)}" / f"f{rng.randrange(300)}.dat"
        path.write_bytes(rng.randbytes(rng.randrange(1, 30000)))
    for extra in range(2):
        (source / f"d{round_ % 12}" / f"new{round_}_{extra}.dat").write_bytes(rng.randbytes(5000))


def fresh(path: Path) -> Path:
    """``path`` as an empty folder."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def has_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" in text


@dataclass
class Outcome:
    """One trial or case of a series, as reported in docs/RELIABILITY.md."""

    series: str
    name: str
    ok: bool
    detail: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_line(text: str, limit: int = 160) -> str:
    """The last non-empty line of a command's output (notes left out), shortened for a table cell."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("note: ")]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def joined(parts: Sequence[str]) -> str:
    return "; ".join(part for part in parts if part)
