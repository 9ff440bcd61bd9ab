"""Random trees -> Archived/Compressed archive -> restore -> identical, metadata included.

Runs for the Archived (tar) and Compressed (tar.zst) structures, each plain and encrypted, the
encrypted ones inside a real repository (its config and keys shared with the tar structures).
Compared per entry: type, mode, owner (as root), mtime in ns, size, content, symlink target,
xattrs, hard-link identity and sparse-ness (a file with a big hole comes back with a hole).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from tests.property.strategies import Dir, describe_tree, materialize, trees

from snapkeep.engine.archive import delete_archive, list_archives, write_archive
from snapkeep.engine.archive.reader import ArchiveRestore
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import RestoreOptions
from snapkeep.storage.memory import MemoryStore

AS_ROOT = os.geteuid() == 0
FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@pytest.fixture(
    scope="module",
    params=["archived-plain", "archived-encrypted", "compressed-plain", "compressed-encrypted"],
)
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[Repository, bool]]:
    structure, mode = request.param.split("-")
    password = "correct horse" if mode == "encrypted" else None
    repository = Repository.init(MemoryStore(), password=password, kdf_params=FAST_KDF)
    yield repository, structure == "compressed"
    repository.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=trees)
def test_archive_restore_is_identical(setup: tuple[Repository, bool], spec: Dir) -> None:
    repository, compressed = setup
    with tempfile.TemporaryDirectory() as work:
        source = os.path.join(work, "source").encode()
        target = os.path.join(work, "target").encode()
        os.mkdir(source)
        materialize(spec, source, as_root=AS_ROOT)
        expected = describe_tree(source)

        manifest = write_archive(repository, [os.fsdecode(source)], compressed=compressed)
        assert manifest.stats["warnings"] == []
        assert manifest.id in {archive.id for archive in list_archives(repository)}
        # identical means fifos and set-user-ID bits too: asked for (docs/restores.md)
        special = RestoreOptions(special_files=True)
        result = ArchiveRestore(repository, manifest, target, options=special).run()

        assert result.warnings == []
        assert describe_tree(target + source) == expected
        delete_archive(repository, manifest.id)  # keep the in-memory store small
        assert manifest.id not in {archive.id for archive in list_archives(repository)}
