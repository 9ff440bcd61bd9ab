"""``KeyStore.put``/``all``/``has``: keys that come from elsewhere (``keys import``, ``dr import``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapkeep.errors import ConflictError, ValidationError
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.keystore import MAX_PASSWORD, KeyStore

JOB = "0123456789abcdef01234567"


@pytest.fixture
def keys(tmp_path: Path):
    catalog = Catalog.open(tmp_path / "home")
    yield KeyStore(catalog)
    catalog.close()


def test_put_stores_once_and_never_replaces(keys: KeyStore) -> None:
    assert keys.all() == {}
    assert not keys.has(JOB)
    assert keys.put(JOB, "  secret-one\n") is True
    assert keys.get(JOB) == "secret-one"
    assert keys.put(JOB, "secret-one") is False  # the same key again: nothing to do
    with pytest.raises(ConflictError, match="never replaced"):
        keys.put(JOB, "secret-two")
    assert keys.get(JOB) == "secret-one"
    assert keys.all() == {JOB: "secret-one"}
    keys.remove(JOB)
    assert not keys.has(JOB)


@pytest.mark.parametrize("bad", ["", "   ", "two\nlines", "é-not-ascii", "x" * (MAX_PASSWORD + 1)])
def test_put_refuses_what_is_not_one_printable_password(keys: KeyStore, bad: str) -> None:
    with pytest.raises(ValidationError, match="password"):
        keys.put(JOB, bad)
    assert not keys.has(JOB)


def test_put_refuses_a_malformed_job_id(keys: KeyStore) -> None:
    with pytest.raises(ValidationError, match="job"):
        keys.put("../etc/passwd", "secret")
