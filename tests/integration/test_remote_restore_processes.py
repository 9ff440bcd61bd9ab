"""A restore from a real SFTP server or S3 bucket shared among processes: each worker opens its own
connection from the store's parameters (host key pinned, the same credentials) and the result is
the same as one process's."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from restore_trees import backup_workers_take_first, describe, make_sites, restored_root, workers_take_first
from servers import RcloneS3Server, SshServer
from snapkeep.engine.backup import backup
from snapkeep.engine.data.tree import decode_entries
from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import processes, restore
from snapkeep.storage.base import Store
from snapkeep.storage.locations import Credentials, open_location
from snapkeep.storage.wrappers import LimitedStore, RetryingStore

FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@pytest.fixture
def sftp_store(sshd: SshServer, tmp_path: Path) -> Iterator[Store]:
    key_file = tmp_path / "id"
    key_file.write_text(sshd.private_key)
    credentials = Credentials(key_file=str(key_file), fingerprint=sshd.fingerprint)
    folder = sshd.folder_for(secrets.token_hex(6))
    with open_location(
        f"sftp://{sshd.username}@127.0.0.1:{sshd.port}/{folder.lstrip('/')}", credentials
    ) as store:
        yield store


@pytest.fixture
def s3_store(s3_server: RcloneS3Server) -> Iterator[Store]:
    bucket = s3_server.make_bucket("split-" + secrets.token_hex(4))
    credentials = Credentials(access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    with open_location(f"s3+http://127.0.0.1:{s3_server.port}/{bucket}/jobs/split", credentials) as store:
        yield store


def _restores_alike(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = workers_take_first(monkeypatch)
    # As the service opens a remote destination: retried, at most N calls at once.
    wrapped = RetryingStore(LimitedStore(store, 4), attempts=2)
    repository = Repository.init(wrapped, password="secret", kdf_params=FAST_KDF)
    try:
        source = make_sites(tmp_path, files=6)
        snapshot = backup(repository, [str(source)])
        # By default an S3 restore is shared (one process per core), one from SFTP is not.
        shared_by_default = getattr(store.params, "kind", "") == "s3" and (os.cpu_count() or 1) > 1
        assert (processes.default_processes(repository) > 1) == shared_by_default
        result = restore(repository, snapshot, str(tmp_path / "out"), processes=2)
    finally:
        repository.close()
    assert result.processes == 2
    assert given[-1] >= 1  # the worker restored folders over its own connection
    assert result.ok, result.failures
    assert describe(restored_root(tmp_path / "out", source)) == describe(source)


def test_a_restore_from_sftp_is_shared_with_a_worker_on_its_own_session(
    sftp_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _restores_alike(sftp_store, tmp_path, monkeypatch)


def test_a_restore_from_s3_is_shared_with_a_worker_on_its_own_client(
    s3_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _restores_alike(s3_store, tmp_path, monkeypatch)


def test_a_remote_restore_is_shared_as_the_operator_asks_unless_bandwidth_is_limited(
    s3_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``default_processes`` looks at the store only (the repository around it does not matter)."""
    plain = SimpleNamespace(store=RetryingStore(LimitedStore(s3_store, 4)))
    limited = SimpleNamespace(store=LimitedStore(s3_store, 4, bytes_per_second=10_000_000))
    monkeypatch.delenv(processes.PROCESSES_VARIABLE, raising=False)
    cores = min(processes.MAX_PROCESSES, os.cpu_count() or 1)
    assert processes.default_processes(plain) == cores  # type: ignore[arg-type]  # S3: shared by default
    monkeypatch.setenv(processes.PROCESSES_VARIABLE, "1")
    assert processes.default_processes(plain) == 1  # type: ignore[arg-type]
    monkeypatch.setenv(processes.PROCESSES_VARIABLE, "3")
    assert processes.default_processes(plain) == 3  # type: ignore[arg-type]
    assert processes.default_processes(limited) == 1  # type: ignore[arg-type]  # each would get the whole limit


def _backs_up_alike(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup shared with a worker on its own connection saves the snapshot one process saves,
    its packs spooled through temporary files (``Store.spools_packs``)."""
    remote_folders = backup_workers_take_first(monkeypatch)
    wrapped = RetryingStore(LimitedStore(store, 4), attempts=2)
    assert wrapped.spools_packs
    repository = Repository.init(wrapped, password="secret", kdf_params=FAST_KDF)
    try:
        source = make_sites(tmp_path, files=200)
        shared = backup(repository, [str(source)], parent=None, processes=2)
        alone = backup(repository, [str(source)], parent=None, processes=1)
        # The folders above the source (/tmp...) change while servers run: compare the source's tree.
        assert _tree_of(repository, alone.tree, source) == _tree_of(repository, shared.tree, source)
        # Every blob the worker found is stored and indexed: new now are at most the listings of
        # the folders above the source.
        assert alone.stats["new_blobs"] <= len(source.parts) - 1
        result = restore(repository, shared, str(tmp_path / "out"), processes=1)
    finally:
        repository.close()
    assert remote_folders == [remote_folders[0]]
    assert remote_folders[0] >= 1  # the worker backed up folders over its own connection
    assert result.ok, result.failures
    assert describe(restored_root(tmp_path / "out", source)) == describe(source)


def test_a_backup_to_s3_is_shared_with_a_worker_on_its_own_client(
    s3_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _backs_up_alike(s3_store, tmp_path, monkeypatch)


def test_a_backup_to_sftp_is_shared_with_a_worker_on_its_own_session_when_asked(
    sftp_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _backs_up_alike(sftp_store, tmp_path, monkeypatch)


def _tree_of(repository: Repository, root: str, folder: Path) -> bytes:
    """The tree ID of ``folder`` in the snapshot whose root tree is ``root``."""
    tree = bytes.fromhex(root)
    for name in folder.parts[1:]:
        entries = {entry["name"]: entry for entry in decode_entries(repository.load_blob(tree))}
        tree = bytes.fromhex(entries[name]["subtree"])
    return tree
