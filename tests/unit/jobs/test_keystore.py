"""The key store: one random password per encrypted job, 0600, stable once created."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from snapkeep.errors import NotFoundError, ValidationError
from snapkeep.jobs.keystore import KeyStore

JOB = "6b0a0000aaaaaaaaaaaaaaaa"


def test_created_once_with_private_modes(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    assert not keys.path(JOB).exists()
    first = keys.get_or_create(JOB)
    assert len(first) == 64
    assert keys.get_or_create(JOB) == first == keys.get(JOB)
    assert stat.S_IMODE((tmp_path / "keys" / JOB).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert KeyStore(tmp_path).get_or_create("6b0a0000bbbbbbbbbbbbbbbb") != first
    assert list((tmp_path / "keys").glob(".*")) == [], "no temporary files left behind"


def test_missing_and_malformed(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    with pytest.raises(NotFoundError, match="no repository password for Backup Job"):
        keys.get(JOB)
    with pytest.raises(ValidationError, match="job: must be a job ID"):
        keys.get("../etc/passwd")
