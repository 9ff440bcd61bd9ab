"""The transport's own figures for one restore: requests, bytes, bytes per request, by kind of object.

Runs ``snapkeep repo restore LOCATION latest TARGET`` in this process with every store the command
opens wrapped in a counter (``storage.registry.BACKENDS``), then prints one line, ``COUNTS`` and a
JSON document: calls, bytes and summed seconds per operation (reads of packs below 64 KiB apart:
folder listings, when each is read alone), the distribution of read sizes, and the wall time.
Credentials come from the environment, as for the CLI (``SNAPKEEP_PASSWORD``, ``SNAPKEEP_SFTP_*``,
``SNAPKEEP_S3_*``).

    .venv/bin/python bench/restore_counts.py sftp://u@127.0.0.1:2222/srv/repo /tmp/target
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from snapkeep.storage import registry  # noqa: E402
from snapkeep.storage.base import Store  # noqa: E402
from snapkeep.storage.wrappers import StoreWrapper  # noqa: E402

SMALL = 64 * 1024


class CountingStore(StoreWrapper):
    """Counts every call and the bytes it moved; thread-safe."""

    def __init__(self, inner: Store, counts: dict[str, Any]) -> None:
        super().__init__(inner)
        self.counts = counts
        self.lock = threading.Lock()

    def _add(self, operation: str, size: int, seconds: float) -> None:
        with self.lock:
            entry = self.counts.setdefault(operation, {"calls": 0, "bytes": 0, "seconds": 0.0})
            entry["calls"] += 1
            entry["bytes"] += size
            entry["seconds"] += seconds

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        start = time.perf_counter()
        data = super().load(name, offset, length)
        kind = "load pack" if name.startswith("data/") else "load other"
        if kind == "load pack" and len(data) < SMALL:
            kind = "load pack <64KiB"
        self._add(kind, len(data), time.perf_counter() - start)
        with self.lock:
            sizes: Counter[str] = self.counts.setdefault("read_sizes", Counter())
            sizes[_bucket(len(data))] += 1
        return data

    def list(self, prefix: str = "") -> Any:
        start = time.perf_counter()
        found = list(super().list(prefix))
        self._add("list", 0, time.perf_counter() - start)
        return iter(found)

    def stat(self, name: str) -> Any:
        start = time.perf_counter()
        info = super().stat(name)
        self._add("stat", 0, time.perf_counter() - start)
        return info


def _bucket(size: int) -> str:
    for limit, label in ((4096, "<4K"), (SMALL, "<64K"), (1 << 20, "<1M"), (4 << 20, "<4M")):
        if size < limit:
            return label
    return ">=4M"


def main(argv: list[str]) -> int:
    location, target = argv
    counts: dict[str, Any] = {}
    for kind, opener in list(registry.BACKENDS.items()):
        registry.BACKENDS[kind] = lambda params, opener=opener: CountingStore(opener(params), counts)
    from snapkeep.cli.main import cli

    start = time.perf_counter()
    try:
        cli.main(["repo", "restore", location, "latest", target], standalone_mode=False)
    finally:
        counts["wall_s"] = round(time.perf_counter() - start, 2)
        for entry in counts.values():
            if isinstance(entry, dict) and "calls" in entry and entry["calls"]:
                entry["seconds"] = round(entry["seconds"], 2)
                entry["bytes_per_call"] = entry["bytes"] // entry["calls"]
        print("COUNTS " + json.dumps(counts, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
