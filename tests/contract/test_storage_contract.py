"""The store contract run against every backend available without a server, bare and wrapped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.contract.store_contract import StoreContract

from snapkeep.clock import FrozenClock
from snapkeep.storage.base import Store
from snapkeep.storage.local import LocalStore
from snapkeep.storage.locations import open_location
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.registry import forget_memory_store
from snapkeep.storage.wrappers import FaultyStore, LimitedStore, RetryingStore


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        with MemoryStore() as store:
            yield store


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        with LocalStore(tmp_path / "destination") as store:
            yield store


class TestLocalStoreOpenedByURL(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        with open_location(f"file://{tmp_path}/by-url") as store:
            yield store


class TestNamedMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        forget_memory_store("contract")
        with open_location("memory://contract") as store:
            yield store
        forget_memory_store("contract")


class TestRetryingLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        with RetryingStore(LocalStore(tmp_path / "destination"), attempts=3, clock=FrozenClock()) as store:
            yield store


class TestRetryingOverTransientFaults(StoreContract):
    """Every fifth read or stat fails transiently; the retry layer must hide it completely."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        faulty = FaultyStore(MemoryStore(), operations={"load", "stat"}, rate=0.2, seed=7, transient=True)
        with RetryingStore(faulty, attempts=20, clock=FrozenClock(), seed=1) as store:
            yield store


class TestLimitedMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        with LimitedStore(MemoryStore(), max_concurrent=3) as store:
            yield store


class TestLimitedLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        with LimitedStore(LocalStore(tmp_path / "destination"), max_concurrent=2) as store:
            yield store
