"""``KeyStore.put``/``all``/``has``: keys that come from elsewhere (``keys import``, ``dr import``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapkeep.errors import ConflictError, ValidationError
from snapkeep.jobs.keystore import MAX_PASSWORD, KeyStore

JOB = "0123456789abcdef01234567"


def test_put_stores_0600_once_and_never_replaces(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    assert keys.all() == {}
    assert not keys.has(JOB)
    assert keys.put(JOB, "  secret-one\n") is True
    assert keys.get(JOB) == "secret-one"
    assert keys.path(JOB).stat().st_mode & 0o777 == 0o600
    assert keys.folder.stat().st_mode & 0o777 == 0o700
    assert keys.put(JOB, "secret-one") is False  # the same key again: nothing to do
    with pytest.raises(ConflictError, match="never replaced"):
        keys.put(JOB, "secret-two")
    assert keys.get(JOB) == "secret-one"
    assert keys.all() == {JOB: "secret-one"}
    keys.remove(JOB)
    assert not keys.has(JOB)


@pytest.mark.parametrize("bad", ["", "   ", "two\nlines", "é-not-ascii", "x" * (MAX_PASSWORD + 1)])
def test_put_refuses_what_is_not_one_printable_password(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError, match="password"):
        KeyStore(tmp_path).put(JOB, bad)
    assert not KeyStore(tmp_path).has(JOB)


def test_put_refuses_a_malformed_job_id(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="job"):
        KeyStore(tmp_path).put("../etc/passwd", "secret")
