"""snapkeep.api: the JetBackup-5-compatible API (API.md).

params      the bracket parameter syntax: decode and encode
envelope    the answer of every call
dispatch    ``Api.call`` and the function table (``FUNCTIONS``)
functions/  one module per object (see ``functions/__init__``)
http        the HTTP door (FastAPI on uvicorn); openapi: the function table as OpenAPI

``call(function, params, caller)`` uses a default ``Api`` over the catalog of ``SNAPKEEP_HOME`` /
``SNAPKEEP_CATALOG_URL`` (the same defaults as the command line), opened on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from snapkeep.api.dispatch import FUNCTIONS, Api, Caller
from snapkeep.home import default_home
from snapkeep.jobs.catalog import Catalog

_default: Api | None = None
_lock = threading.Lock()


def default_api() -> Api:
    """The process-wide Api over the default catalog (opened once). Raises CatalogError/ConfigError."""
    global _default
    with _lock:
        if _default is None:
            catalog = Catalog.open(default_home(), os.environ.get("SNAPKEEP_CATALOG_URL") or None)
            _default = Api(catalog)
        return _default


def call(
    function: str, params: Mapping[str, Any] | None = None, caller: Caller | None = None
) -> dict[str, Any]:
    """Call an API function on the default catalog and return its envelope."""
    return default_api().call(function, params or {}, caller)


__all__ = ["FUNCTIONS", "Api", "Caller", "call", "default_api", "default_home"]
