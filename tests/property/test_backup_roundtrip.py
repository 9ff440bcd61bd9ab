"""Random trees -> backup -> restore -> identical, metadata included.

Runs for encrypted and plain repositories on MemoryStore and LocalStore. Compared per entry: type,
mode, owner (as root), mtime in ns, size, content, symlink target, xattrs, hard-link identity,
sparse-ness (a file with a big hole must come back with a hole).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from tests.property.strategies import Dir, describe_tree, materialize, trees

from snapkeep.engine.backup import backup
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import RestoreOptions, restore
from snapkeep.storage.base import Store
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore

AS_ROOT = os.geteuid() == 0
FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@pytest.fixture(scope="module", params=["memory-encrypted", "memory-plain", "local-encrypted", "local-plain"])
def repository(request: pytest.FixtureRequest) -> Iterator[Repository]:
    backend, mode = request.param.split("-")
    with tempfile.TemporaryDirectory() as folder:
        store: Store = MemoryStore() if backend == "memory" else LocalStore(os.path.join(folder, "repo"))
        password = "correct horse" if mode == "encrypted" else None
        repo = Repository.init(store, password=password, kdf_params=FAST_KDF)
        yield repo
        repo.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=trees)
def test_restore_is_identical(repository: Repository, spec: Dir) -> None:
    with tempfile.TemporaryDirectory() as work:
        source = os.path.join(work, "source").encode()
        target = os.path.join(work, "target").encode()
        os.mkdir(source)
        materialize(spec, source, as_root=AS_ROOT)
        expected = describe_tree(source)

        snapshot = backup(repository, [source])
        assert snapshot.stats["warning_count"] == 0, snapshot.stats["warnings"]
        # identical means fifos and set-user-ID bits too: asked for (docs/restores.md)
        result = restore(
            repository,
            repository.load_snapshot(snapshot.id),
            target,
            options=RestoreOptions(special_files=True),
        )

        assert result.failures == []
        restored = target + source
        assert describe_tree(restored) == expected
