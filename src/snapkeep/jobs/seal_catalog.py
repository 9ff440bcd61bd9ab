"""Sealing what older catalogs and data directories keep in clear, when the catalog is opened.

Before catalog version 7, destination secrets and notification credentials were stored in clear in
the catalog, and job repository keys were files in ``<home>/keys/``. ``seal_catalog`` (called by
``Catalog.open``, after the migrations) seals every clear secret in place and moves the key files
into the catalog's ``job_keys`` table, sealed. It is idempotent and cheap when there is nothing to
do (it reads the destinations and two settings, and looks for ``keys/``), and crash-safe: each step is
one transaction, and a key file is removed only after the transaction holding its sealed copy has
committed, so a crash at any point leaves every key either in the file, in the catalog, or in both
(the next open finishes the move). The master key is made only when something needs sealing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from snapkeep.errors import ConfigError
from snapkeep.jobs import destinations, keystore, sealing, settings
from snapkeep.jobs.catalog import Catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sealed:
    """What one ``seal_catalog`` sealed."""

    destinations: int = 0
    settings: int = 0
    keys: int = 0

    def __bool__(self) -> bool:
        return bool(self.destinations or self.settings or self.keys)


def seal_catalog(catalog: Catalog) -> Sealed:
    """Seal the clear secrets of ``catalog`` and move ``<home>/keys/`` into it; return the counts.
    Never keeps the catalog from opening for want of a master key: when none can be had (a configured
    file that is missing, or a home without a key on a catalog sealed with one) nothing is sealed and
    a warning says why. A key file that cannot be read, or differs from the catalog's key, is left
    where it is with a warning."""
    home = catalog.home
    if home is None:
        return Sealed()
    # a home without a key on a catalog with sealed values (another server's, on a shared PostgreSQL
    # catalog) gets no key made, which would seal new values with a second one
    sealing.probe_with(catalog.engine, find_sealed)
    with catalog.transaction(write=False) as tx:
        every = tx.all("destinations")
        clear = [item for item in every if destinations.has_clear_secret(item)]
        clear_settings = settings.has_clear_secret(tx)
    has_files = keystore.has_key_files(home)
    if not clear and not clear_settings and not has_files:
        return Sealed()
    try:
        master = sealing.master_of(catalog.engine)
    except ConfigError as error:
        log.warning("secrets of %s not sealed yet: %s", home, error)
        return Sealed()
    sealed_destinations = sealed_settings = 0
    if clear or clear_settings:
        with catalog.transaction() as tx:
            for item in clear:
                current = tx.get("destinations", str(item["_id"]), lock=True)
                if current is None or not destinations.has_clear_secret(current):
                    continue
                document = {key: value for key, value in current.items() if key != "_id"}
                document["options"] = destinations.seal_options(
                    master, str(current["type"]), current.get("options") or {}
                )
                tx.replace("destinations", str(item["_id"]), document)
                sealed_destinations += 1
            sealed_settings = settings.seal_secrets(tx, master)
    moved = keystore.import_key_files(catalog, master) if has_files else 0
    done = Sealed(sealed_destinations, sealed_settings, moved)
    if done:
        log.warning(
            "sealed with the master key %s: %d destinations, %d notification secrets, %d job keys "
            "(from %s); back the master key up apart from the catalog (docs/secrets.md)",
            master.path,
            done.destinations,
            done.settings,
            done.keys,
            home / keystore.FOLDER,
        )
    return done


def find_sealed(engine: Any) -> str | None:
    """The key id of one sealed value of the catalog on ``engine`` (job keys, destinations,
    settings), or None."""
    with Catalog(engine).transaction(write=False) as tx:
        candidates: list[Any] = list(keystore.every_sealed(tx).values())
        for item in tx.all("destinations"):
            candidates.extend((item.get("options") or {}).values())
        for value in settings.every_value(tx).values():
            if isinstance(value, dict):
                candidates.extend(value.values())
    for value in candidates:
        if sealing.is_sealed(value):
            key_id = str(value)[len(sealing.PREFIX) :].partition(":")[0]
            if len(key_id) == sealing.KEY_ID_SIZE:
                return key_id
    return None
