"""Turn a location string into a store, through a table of URL schemes.

``open_store("/backups/job")`` and ``open_store("file:///backups/job")`` give a ``LocalStore``;
``open_store("memory://name")`` gives the process-wide ``MemoryStore`` of that name (the same object
on every call, so tests and tools can share it). ``sftp://`` and ``s3://`` (``s3+http://`` for a plain
HTTP endpoint) open the remote stores as ``storage.remote_locations`` describes.
"""

from __future__ import annotations

import importlib
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

from snapkeep.errors import ConfigError
from snapkeep.storage.base import Store
from snapkeep.storage.local import LocalStore
from snapkeep.storage.memory import MemoryStore

#: An opener takes the location as given and the caller's options.
Opener = Callable[..., Store]

_memory_stores: dict[str, MemoryStore] = {}
_memory_lock = threading.Lock()


def _open_local(location: str, **options: Any) -> Store:
    if location.startswith("file://"):
        parsed = urllib.parse.urlsplit(location)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"location {location!r}: file:// URLs must name a local path (file:///path)")
        path = urllib.parse.unquote(parsed.path)
    else:
        path = location
    if not path:
        raise ConfigError(f"location {location!r}: empty path")
    return LocalStore(path, **options)


def _open_memory(location: str, **options: Any) -> Store:
    name = location[len("memory://") :]
    if not name:
        raise ConfigError(f"location {location!r}: memory:// needs a name (memory://NAME)")
    with _memory_lock:
        store = _memory_stores.get(name)
        if store is None:
            store = _memory_stores[name] = MemoryStore(name, **options)
        return store


def _remote(function: str) -> Opener:
    """An opener from ``storage.remote_locations``, imported on first use so that opening a local
    repository never pays for importing paramiko and boto3."""

    def open_remote(location: str, **options: Any) -> Store:
        module = importlib.import_module("snapkeep.storage.remote_locations")
        opener: Opener = getattr(module, function)
        return opener(location, **options)

    return open_remote


#: scheme -> opener; "" is a plain path.
SCHEMES: dict[str, Opener] = {
    "": _open_local,
    "file": _open_local,
    "memory": _open_memory,
    "sftp": _remote("open_sftp"),
    "s3": _remote("open_s3"),
    "s3+http": _remote("open_s3"),
    "s3+https": _remote("open_s3"),
}


def register_scheme(scheme: str, opener: Opener) -> None:
    """Install (or replace) the opener for ``scheme://`` locations."""
    SCHEMES[scheme.lower()] = opener


def scheme_of(location: str) -> str:
    """The URL scheme of ``location`` in lower case, or ``""`` for a plain path."""
    head, separator, _ = location.partition("://")
    if not separator or "/" in head or not head.isascii() or not head.replace("+", "").isalnum():
        return ""
    return head.lower()


def open_store(location: str, **options: Any) -> Store:
    """Open the store at ``location``; ``options`` go to the backend's constructor.

    Raises ``ConfigError`` for an empty location, an unknown scheme or a scheme whose backend is
    not available, and the backend's ``StorageError`` when it cannot open the place.
    """
    if not location:
        raise ConfigError("store location is empty")
    scheme = scheme_of(location)
    opener = SCHEMES.get(scheme)
    if opener is None:
        known = ", ".join(f"{name}://" for name in sorted(SCHEMES) if name)
        raise ConfigError(f"location {location!r}: unknown scheme {scheme!r} (known: a path, {known})")
    return opener(location, **options)


def forget_memory_store(name: str) -> None:
    """Drop the named process-wide memory store (tests use it to start clean)."""
    with _memory_lock:
        _memory_stores.pop(name, None)
