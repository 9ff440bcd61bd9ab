"""Settings functions: get and manage the Performance, General and Notification settings.

Every setting lives in the catalog (``jobs.settings``), so servers sharing a catalog share them.

- **Performance** (API.md section 6): ``backup_forks`` caps how many backups run at once and
  ``queueable_forks`` how many restores and downloads; each 1-10, default 2. The daemon re-reads them
  when it sizes its worker pools.
- **General**: ``timezone`` (an IANA name; empty: the server's zone), the zone schedules run in, and
  ``logs_ttl``, the days a finished run's log is kept (default 30, 0 = forever), as JetBackup 5 names it,
  and ``downloads_ttl``, the days a finished download can be fetched (default 7; then its file goes).
- **Notification**: the ``email`` and ``webhook`` channels, each an object or null when not set up.
  The SMTP password comes back as ``SK|HIDDEN|********``.
- **Integrity**: the scheduled integrity check (docs/maintenance.md): ``enabled`` (1/0), ``cycle_days``
  (every pack and archive is read once within it, default 30), ``bytes_per_run`` (the most read from
  one repository per run, default 1 GiB) and ``hour`` (when the daily check starts, default 3).

Every manage function changes only the fields it is given and answers the whole new value. A
notification channel's fields are merged over the stored ones; the masked password sent back keeps the
stored one; an empty ``email`` or ``webhook`` (``email=``, ``{}`` or null) removes that channel.
Nothing is written when a field is bad, and the error names it (``email[port]: must be at most 65535``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from snapkeep.api.functions.base import CallContext, FunctionSpec, Result, boolean, no_parameters, param_specs
from snapkeep.jobs import settings
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.models.base import Strict, objectish, validate
from snapkeep.jobs.models.destination import SECRET_MASK

Channel = Annotated[dict[str, Any] | None, BeforeValidator(objectish)]


class NotificationParams(Strict):
    email: Channel = Field(
        None,
        description="e-mail channel: host, port, security (none/starttls/ssl), username, password,"
        " sender, recipients[], levels[], timeout, enabled; empty removes it",
    )
    webhook: Channel = Field(
        None, description="webhook channel: url, levels[], timeout, enabled; empty removes it"
    )


def _email(channel: settings.EmailSettings | None) -> dict[str, Any] | None:
    if channel is None:
        return None
    answer = channel.model_dump()
    answer["enabled"] = boolean(channel.enabled)
    answer["password"] = SECRET_MASK if channel.password.get_secret_value() else ""
    return answer


def _webhook(channel: settings.WebhookSettings | None) -> dict[str, Any] | None:
    if channel is None:
        return None
    return {**channel.model_dump(), "enabled": boolean(channel.enabled)}


def present_notification(value: settings.Notification) -> dict[str, Any]:
    """The channels in API shape: flags 1/0, the password masked."""
    return {"email": _email(value.email), "webhook": _webhook(value.webhook)}


def _save_notification(tx: Transaction, params: dict[str, Any]) -> dict[str, Any]:
    options = validate(NotificationParams, params)
    return present_notification(
        settings.update_notification(tx, email=options.email, webhook=options.webhook)
    )


def present_integrity(value: settings.Integrity) -> dict[str, Any]:
    """The integrity settings in API shape (the flag as 1/0)."""
    return {**value.model_dump(), "enabled": boolean(value.enabled)}


@dataclass(frozen=True)
class SettingsKind:
    """One group of settings: its ``getSettingsX`` and ``manageSettingsX`` functions."""

    name: str  # in function names and messages: "Performance"
    read: Callable[[Transaction], dict[str, Any]]
    save: Callable[[Transaction, dict[str, Any]], dict[str, Any]]
    fields: type[BaseModel]
    get_summary: str
    manage_summary: str

    def get(self, context: CallContext, params: dict[str, Any]) -> Result:
        no_parameters(params)
        with context.catalog.transaction(write=False) as tx:
            answer = self.read(tx)
        return f"{self.name} Settings Retrieved Successfully", answer

    def manage(self, context: CallContext, params: dict[str, Any]) -> Result:
        with context.catalog.transaction() as tx:
            answer = self.save(tx, params)
        return f"{self.name} Settings Modified Successfully", answer

    def functions(self) -> list[FunctionSpec]:
        return [
            FunctionSpec(f"getSettings{self.name}", self.get_summary, [], self.get),
            FunctionSpec(
                f"manageSettings{self.name}",
                self.manage_summary,
                param_specs(self.fields, optional=True),
                self.manage,
            ),
        ]


KINDS = [
    SettingsKind(
        "Performance",
        read=lambda tx: settings.performance(tx).model_dump(),
        save=lambda tx, params: settings.save_performance(tx, params).model_dump(),
        fields=settings.Performance,
        get_summary="The performance settings",
        manage_summary="Change backup_forks and queueable_forks",
    ),
    SettingsKind(
        "General",
        read=lambda tx: settings.general(tx).model_dump(),
        save=lambda tx, params: settings.save_general(tx, params).model_dump(),
        fields=settings.General,
        get_summary="The general settings: time zone, log retention",
        manage_summary="Change the time zone and how long run logs are kept",
    ),
    SettingsKind(
        "Notification",
        read=lambda tx: present_notification(settings.notification(tx)),
        save=_save_notification,
        fields=NotificationParams,
        get_summary="The notification channels (e-mail, webhook), secrets masked",
        manage_summary="Set up, change or remove the e-mail and webhook notification channels",
    ),
    SettingsKind(
        "Integrity",
        read=lambda tx: present_integrity(settings.integrity(tx)),
        save=lambda tx, params: present_integrity(settings.save_integrity(tx, params)),
        fields=settings.Integrity,
        get_summary="The scheduled integrity check's settings",
        manage_summary="Change the integrity check's cycle, bytes per run, hour, or turn it off",
    ),
]
FUNCTIONS = [function for kind in KINDS for function in kind.functions()]
