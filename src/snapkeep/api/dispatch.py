"""The dispatcher: ``Api.call(function, params, caller) -> envelope`` (API.md sections 1-2).

The one place errors become envelopes: a bad request never raises, it answers ``success: 0`` with a
message naming the field. ``params`` may be nested values (Python, a JSON body) or flat bracket pairs
(``{"destination[0]": "ID"}``); both are normalised here. The function table is built from the
``FUNCTIONS`` lists of the modules in ``snapkeep.api.functions``.
"""

from __future__ import annotations

import difflib
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from snapkeep.api import envelope, jetbackup
from snapkeep.api.functions import (
    accounts,
    alerts,
    backups,
    destinations,
    filters,
    hooks,
    jobs,
    logs,
    nodes,
    queue,
    reindex,
    restore,
    schedules,
    settings,
    users,
)
from snapkeep.api.functions.base import CallContext, Caller, FunctionSpec, ParamSpec
from snapkeep.api.params import check_sizes, decode_pairs, decode_query, is_flat, normalise
from snapkeep.api.permissions import decide, expand_abbreviations
from snapkeep.clock import SYSTEM, Clock
from snapkeep.errors import AccessDenied, ParameterError, SnapkeepError
from snapkeep.jobs.catalog import Catalog

log = logging.getLogger(__name__)

FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name: spec
    for module in (
        jobs,
        destinations,
        schedules,
        hooks,
        filters,
        queue,
        alerts,
        logs,
        backups,
        restore,
        reindex,
        settings,
        accounts,
        users,
        nodes,
    )
    for spec in module.FUNCTIONS
}

# transport keys a door may leave in the parameters (``GET /?api=1&function=...``)
TRANSPORT_KEYS = ("api", "function")


def normalise_params(params: Mapping[str, Any] | str | bytes | None) -> dict[str, Any]:
    """Nested params from nested values, flat bracket pairs or a query string. Raises ParameterError."""
    if params is None:
        return {}
    if isinstance(params, str | bytes):
        params = decode_query(params)
    if not isinstance(params, Mapping):
        raise ParameterError(field="(parameters)", problem="must be an object of name/value pairs")
    if is_flat(params):
        pairs: list[tuple[str, str]] = []
        for key, value in params.items():
            values = value if isinstance(value, list) else [value]
            pairs.extend((str(key), "" if item is None else str(item)) for item in values)
        result = decode_pairs(pairs)
    else:
        result = check_sizes(normalise(params))
    for key in TRANSPORT_KEYS:
        result.pop(key, None)
    return dict(result)


class Api:
    """The API over one catalog."""

    def __init__(self, catalog: Catalog, *, clock: Clock = SYSTEM) -> None:
        self.catalog = catalog
        self.clock = clock

    def call(
        self,
        function: str,
        params: Mapping[str, Any] | str | bytes | None = None,
        caller: Caller | None = None,
    ) -> dict[str, Any]:
        """Run ``function`` and return its envelope. Never raises for a bad request."""
        spec = FUNCTIONS.get(function)
        if spec is None:
            close = difflib.get_close_matches(str(function), FUNCTIONS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return envelope.failure(f"function: unknown function {function!r}{hint}")
        context = CallContext(self.catalog, caller or Caller(), self.clock)
        who = context.caller
        try:
            decoded = normalise_params(params)
            context.warnings.extend(jetbackup.strip_ignored(function, decoded))
            # The one decision point (api.permissions): before the handler, so a refused call
            # writes nothing; an object the caller may not see is "not found" like a missing one.
            expand_abbreviations(lambda: self.catalog.transaction(write=False), who, function, decoded)
            decide(lambda: self.catalog.transaction(write=False), who, function, decoded)
            message, data = spec.handler(context, decoded)
        except AccessDenied as error:
            log.warning(
                "permission denied: %s for user %s (%s): %s", function, who.name, who.role, error.reason
            )
            return envelope.failure(f"permission denied: {function}")
        except SnapkeepError as error:
            return envelope.failure(error.message)
        except Exception:  # a bug: log the traceback under an incident id, answer only the id
            # The answer names no exception class, message or path (attack report LOW-11): those
            # are for the log, which the administrator reads by the incident id.
            incident = secrets.token_hex(4)
            log.exception("%s failed (incident %s)", function, incident)
            return envelope.failure(f"{function}: internal error (logged as {incident})")
        return envelope.success(message, data, context.warnings)


__all__ = ["FUNCTIONS", "Api", "Caller", "FunctionSpec", "ParamSpec", "normalise_params"]
