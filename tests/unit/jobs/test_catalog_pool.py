"""The PostgreSQL connection pool of one process (``SNAPKEEP_CATALOG_POOL``, docs/nodes.md)."""

from __future__ import annotations

import pytest

from snapkeep.errors import ConfigError
from snapkeep.jobs.catalog import DEFAULT_POOL, POOL_VARIABLE, Catalog, pool_size


def test_the_pool_is_size_plus_overflow() -> None:
    assert pool_size("") == DEFAULT_POOL == (4, 4)
    assert pool_size("2+2") == (2, 2)
    assert pool_size(" 8 ") == (8, 0)
    for bad in ("0+1", "x", "2+-1", "2+101", "101"):
        with pytest.raises(ConfigError, match=f"{POOL_VARIABLE} must be SIZE\\+OVERFLOW"):
            pool_size(bad)


def test_a_postgresql_catalog_opens_with_the_configured_pool(
    tmp_path, postgres_url, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(POOL_VARIABLE, "3+1")
    catalog = Catalog.open(tmp_path / "home", postgres_url)
    try:
        pool = catalog.engine.pool
        assert (pool.size(), pool._max_overflow) == (3, 1)  # type: ignore[attr-defined]
    finally:
        catalog.close()
