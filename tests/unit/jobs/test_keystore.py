"""The key store: one random password per encrypted job, sealed in the catalog, stable once created."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from snapkeep.errors import ConfigError, NotFoundError, ValidationError
from snapkeep.jobs import sealing
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.keystore import KeyStore
from snapkeep.jobs.migrations import schema

JOB = "6b0a0000aaaaaaaaaaaaaaaa"
OTHER = "6b0a0000bbbbbbbbbbbbbbbb"


def test_created_once_and_sealed(catalog) -> None:
    keys = KeyStore(catalog)
    assert not keys.has(JOB)
    first = keys.get_or_create(JOB)
    assert len(first) == 64
    assert keys.get_or_create(JOB) == first == keys.get(JOB)
    assert KeyStore(catalog).get_or_create(OTHER) != first
    with catalog.transaction(write=False) as tx:
        stored = dict(tx.connection.execute(select(schema.job_keys.c.job_id, schema.job_keys.c.sealed)).all())
    assert set(stored) == {JOB, OTHER}
    assert all(sealing.is_sealed(token) and first not in token for token in stored.values())
    assert catalog.home is not None
    assert (catalog.home / "master.key").exists()


def test_a_key_moved_to_another_job_does_not_open(catalog) -> None:
    keys = KeyStore(catalog)
    keys.get_or_create(JOB)
    keys.get_or_create(OTHER)
    table = schema.job_keys
    with catalog.transaction() as tx:
        token = tx.connection.execute(select(table.c.sealed).where(table.c.job_id == JOB)).scalar_one()
        tx.connection.execute(update(table).where(table.c.job_id == OTHER).values(sealed=token))
    assert keys.get(JOB)
    with pytest.raises(ConfigError, match=f"job-key/{OTHER}: the sealed value does not open"):
        keys.get(OTHER)


def test_missing_and_malformed(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "home")
    try:
        keys = KeyStore(catalog)
        with pytest.raises(NotFoundError, match="no repository password for Backup Job"):
            keys.get(JOB)
        with pytest.raises(ValidationError, match="job: must be a job ID"):
            keys.get("../etc/passwd")
        assert not (tmp_path / "home" / "master.key").exists(), "no master key before one is needed"
    finally:
        catalog.close()
