"""``probe`` on the backends that need no server (SFTP and S3 are probed in their contract modules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapkeep.errors import StorageError
from snapkeep.storage.base import Store
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.probe import PROBE_PREFIX, probe
from snapkeep.storage.wrappers import FaultyStore, ReadOnlyStore


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_probe_passes_and_leaves_nothing(kind: str, tmp_path: Path) -> None:
    store: Store = MemoryStore() if kind == "memory" else LocalStore(tmp_path / "destination")
    report = probe(store)
    assert report.ok, report.message
    assert report.failed_step is None
    assert report.error is None
    assert [step.name for step in report.steps] == ["write", "read", "list", "delete"]
    assert "all work" in report.message
    assert list(store.list()) == []


def test_read_only_destination_fails_at_write() -> None:
    report = probe(ReadOnlyStore(MemoryStore()))
    assert not report.ok
    assert report.failed_step == "write"
    assert [step.name for step in report.steps] == ["write"]
    assert "write failed: store is read-only" in report.message


@pytest.mark.parametrize("operation", ["load", "list", "delete"])
def test_a_failing_step_is_named_and_the_probe_object_removed(operation: str) -> None:
    inner = MemoryStore()
    report = probe(FaultyStore(inner, operations={operation}, fail_on_call=1))
    step = {"load": "read", "list": "list", "delete": "delete"}[operation]
    assert (report.ok, report.failed_step) == (False, step)
    assert isinstance(report.error, StorageError)
    assert "injected fault" in report.message
    assert [item.name for item in inner.list(PROBE_PREFIX)] == [], "nothing partial is left behind"


def test_corrupted_read_back_fails_the_read_step() -> None:
    class Corrupting(MemoryStore):
        def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
            data = super().load(name, offset, length)
            return bytes([data[0] ^ 1]) + data[1:]

    report = probe(Corrupting())
    assert report.failed_step == "read"
    assert "differ from the 4096 bytes written" in report.message
