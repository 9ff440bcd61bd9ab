"""Performance settings (API.md section 6): getSettingsPerformance, manageSettingsPerformance.

``backup_forks`` caps how many backups run at once and ``queueable_forks`` how many restores and
downloads; each 1-10, default 2. The daemon reads them when it sizes its worker pools.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from snapkeep.api.functions.base import CallContext, FunctionSpec, Result, param_specs
from snapkeep.errors import ValidationError
from snapkeep.jobs import settings
from snapkeep.jobs.models.base import Strict, integer, validate

Forks = Annotated[int, integer(1, 10)]


class PerformanceParams(Strict):
    backup_forks: Forks | None = Field(None, description="backups that may run at once (1-10)")
    queueable_forks: Forks | None = Field(
        None, description="restores and downloads that may run at once (1-10)"
    )


def get_performance(context: CallContext, params: dict[str, Any]) -> Result:
    for key in params:
        raise ValidationError(field=str(key), problem="unknown field")
    with context.catalog.transaction(write=False) as tx:
        answer = settings.performance(tx)
    return "Performance Settings Retrieved Successfully", answer


def manage_performance(context: CallContext, params: dict[str, Any]) -> Result:
    options = validate(PerformanceParams, params)
    values = {key: value for key, value in options.model_dump().items() if value is not None}
    with context.catalog.transaction() as tx:
        answer = settings.save_performance(tx, values)
    return "Performance Settings Modified Successfully", answer


FUNCTIONS = [
    FunctionSpec("getSettingsPerformance", "The performance settings", [], get_performance),
    FunctionSpec(
        "manageSettingsPerformance",
        "Change backup_forks and queueable_forks",
        param_specs(PerformanceParams),
        manage_performance,
    ),
]
