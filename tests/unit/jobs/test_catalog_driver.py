"""The PostgreSQL driver is the optional extra ``snapkeep[postgres]``: a PostgreSQL catalog URL without
it is a clear configuration error, not an ImportError traceback."""

from __future__ import annotations

import sys

import pytest

from snapkeep.errors import ConfigError
from snapkeep.jobs.catalog import Catalog


def test_a_postgresql_url_without_the_driver_names_the_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # ``import psycopg`` now raises ImportError
    with pytest.raises(ConfigError, match=r"psycopg driver: pip install 'snapkeep\[postgres\]'"):
        Catalog.open(tmp_path / "home", "postgresql://snapkeep@127.0.0.1:1/catalog")
