"""Time each overwrite policy of the incremental restore (docs/restores.md, "Figures").

    .venv/bin/python bench/restore_policies.py [--files 200] [--size-mib 1]

Backs up ``files`` random files of ``size-mib`` each into an encrypted LocalStore repository in a
temporary folder, then restores into one target: new, ``always`` over itself, ``if-changed`` (every
file identical: hashed, not rewritten), ``never``, and a dry run. Prints seconds, counts and the peak
RSS; removes everything afterwards.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from snapkeep.engine.backup import backup
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import RestoreOptions, restore
from snapkeep.storage.local import LocalStore

FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size-mib", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="snapkeep-policies-"))
    try:
        source = root / "source"
        source.mkdir()
        for number in range(args.files):
            (source / f"f{number}.bin").write_bytes(os.urandom(args.size_mib * 1024 * 1024))
        repository = Repository.init(LocalStore(root / "repo"), password="bench", kdf_params=FAST_KDF)
        snapshot = backup(repository, [str(source)])
        target = root / "target"
        runs = [
            ("always, new target", RestoreOptions()),
            ("always, over itself", RestoreOptions()),
            ("if-changed, all identical", RestoreOptions(overwrite="if-changed")),
            ("never", RestoreOptions(overwrite="never")),
            ("dry run, if-changed", RestoreOptions(overwrite="if-changed", dry_run=True)),
        ]
        print(f"{args.files} files of {args.size_mib} MiB")
        for name, options in runs:
            start = time.perf_counter()
            result = restore(repository, snapshot, str(target), options=options)
            print(f"{name:27} {time.perf_counter() - start:6.2f} s  {result.changes.summary()}")
        repository.close()
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
