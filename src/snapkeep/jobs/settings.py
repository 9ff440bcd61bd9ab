"""Settings every server on one catalog shares, in the catalog's ``settings`` table; this module is
the only one that reads or writes that table.

======================  ==============================================================  ===============
key                     value (JSON)                                                    API functions
======================  ==============================================================  ===============
``performance``         ``{"backup_forks": 1-10, "queueable_forks": 1-10}``, each 2      *Performance
``timezone``            an IANA zone name such as ``"Europe/Berlin"``; ``""`` or absent:  *General
                        the server's own zone
``logs_ttl``            days a finished run's log is kept (default 30; 0 keeps it)      *General
``notify.email``        the e-mail channel (``EmailSettings``); absent: none            *Notification
``notify.webhook``      the webhook channel (``WebhookSettings``); absent: none         *Notification
``integrity``           ``{"enabled", "cycle_days", "bytes_per_run", "hour"}``: the        *Integrity
                        scheduled integrity check (``Integrity``; docs/maintenance.md)
======================  ==============================================================  ===============

What belongs to one server stays in that server's ``<home>/config.toml`` (``jobs.accounts``): its
account provider and its database connections (their passwords belong to the host), and the data
directory itself (``--home``).

Interface
---------
``performance(tx) -> Performance``, ``general(tx) -> General``, ``notification(tx) -> Notification``
    the typed values; an absent key is its default. ``general`` does not check the zone name again
    (``schedule.zone`` does when it is used), so a zone that has left the system's database can still
    be read and replaced.
``save_performance(tx, changes)``, ``save_general(tx, changes)`` -> the new value
    ``changes`` (strings or numbers, as the API receives them) are merged over the stored value and
    validated whole; a ValidationError names every bad field and nothing is written.
``integrity(tx) -> Integrity``, ``save_integrity(tx, changes) -> Integrity``
    the integrity check's settings, read and merged like ``performance``.
``save_notification(tx, *, email=None, webhook=None) -> Notification``
    replaces the channels given (each validated whole; ``{}`` removes one; None keeps it).
``every_value(tx)``, ``restore_values(tx, values)``
    every stored key as it is, and back (``snapkeep dr export`` / ``dr import``).
``update_notification(tx, *, email=None, webhook=None) -> Notification``
    merges the fields given over the stored channel (``{}`` removes it); ``SECRET_MASK`` sent as the
    password keeps the stored one while the SMTP host, port and username stay the same (otherwise the
    password must be given again: a caller could send it to a server of its own).
``seal_secrets(tx, master, *, reseal=False) -> int``
    seals the SMTP password and the webhook URL stored in clear (catalogs from before sealing, on
    ``Catalog.open``); ``reseal`` also seals another master key's tokens again (``dr import``).

Secrets at rest: the SMTP password and the webhook URL (which often carries the hook's token or a
user and password) are stored sealed with the master key (``jobs.sealing``, purposes
``settings/email/password`` and ``settings/webhook/url``); ``notification`` opens them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError
from sqlalchemy import delete, select

from snapkeep.engine.fs.globs import check_glob
from snapkeep.errors import ValidationError
from snapkeep.jobs import sealing
from snapkeep.jobs.catalog import Transaction
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.models import notification as channel_models
from snapkeep.jobs.models.base import Flag, Strict, as_int, integer, shown, validate
from snapkeep.jobs.models.destination import SECRET_MASK

PERFORMANCE_KEY = "performance"
TIMEZONE_KEY = "timezone"
LOGS_TTL_KEY = "logs_ttl"
DOWNLOADS_TTL_KEY = "downloads_ttl"
DEFAULT_DOWNLOADS_TTL = 7
EMAIL_KEY, WEBHOOK_KEY = "notify.email", "notify.webhook"
INTEGRITY_KEY = "integrity"
GIB = 1024**3
DEFAULT_LOGS_TTL = 30


# --- the table ------------------------------------------------------------------------------------


def _read(tx: Transaction, key: str, *, lock: bool = False) -> Any:
    table = schema.settings
    query = select(table.c.value).where(table.c.key == key)
    if lock:
        query = query.with_for_update()
    return tx.connection.execute(query).scalar_one_or_none()


def _write(tx: Transaction, key: str, value: Any) -> None:
    """Store ``value`` under ``key``; None removes the key."""
    table = schema.settings
    tx.connection.execute(delete(table).where(table.c.key == key))
    if value is not None:
        tx.connection.execute(table.insert().values(key=key, value=value))


def every_value(tx: Transaction) -> dict[str, Any]:
    """Every stored setting by key, as stored (``dr export``)."""
    table = schema.settings
    return {str(row.key): row.value for row in tx.connection.execute(select(table.c.key, table.c.value))}


def restore_values(tx: Transaction, values: Mapping[str, Any]) -> None:
    """Store settings exactly as ``every_value`` gave them (``dr import`` into an empty catalog)."""
    for key, value in values.items():
        _write(tx, str(key), value)


# --- performance ----------------------------------------------------------------------------------

Forks = Annotated[int, integer(1, 10)]


_Group = TypeVar("_Group", bound=Strict)


class Performance(Strict):
    """How many runs may go at once."""

    model_config = ConfigDict(frozen=True)

    backup_forks: Forks = Field(2, description="backups that may run at once (1-10)")
    queueable_forks: Forks = Field(2, description="restores and downloads that may run at once (1-10)")


def _load_group(tx: Transaction, key: str, model: type[_Group]) -> _Group:
    """A setting stored as one object under ``key``, as ``model``. Raises ValidationError when the
    stored value is not valid (the message names ``key``)."""
    stored = _read(tx, key)
    return validate(model, stored if isinstance(stored, dict) else {}, prefix=key)


def _save_group(tx: Transaction, key: str, model: type[_Group], changes: Mapping[str, Any]) -> _Group:
    """Merge ``changes`` over the object stored under ``key``, validate it as ``model`` and store it.
    Raises ValidationError."""
    stored = _read(tx, key, lock=True)
    current = stored if isinstance(stored, dict) else {}
    value = validate(model, {**current, **changes})
    _write(tx, key, value.model_dump())
    return value


def performance(tx: Transaction) -> Performance:
    """The ``performance`` setting. Raises ValidationError when the stored value is not valid."""
    return _load_group(tx, PERFORMANCE_KEY, Performance)


def save_performance(tx: Transaction, changes: Mapping[str, Any]) -> Performance:
    """Merge ``changes`` over the ``performance`` setting and store it. Raises ValidationError."""
    return _save_group(tx, PERFORMANCE_KEY, Performance, changes)


# --- the scheduled integrity check --------------------------------------------------------------


class Integrity(Strict):
    """The scheduled integrity check: every pack and archive is read whole once per cycle."""

    model_config = ConfigDict(frozen=True)

    enabled: Flag = Field(True, description="run the integrity check every day (1) or never (0)")
    cycle_days: Annotated[int, integer(1, 3650)] = Field(
        30, description="days within which every pack and archive is read once (1-3650)"
    )
    bytes_per_run: Annotated[int, integer(1024 * 1024, 2**50)] = Field(
        GIB, description="at most this many bytes read per repository per run (at least 1 MiB)"
    )
    hour: Annotated[int, integer(0, 23)] = Field(
        3, description="hour of the day (in the General time zone) the daily check starts (0-23)"
    )


def integrity(tx: Transaction) -> Integrity:
    """The ``integrity`` setting. Raises ValidationError when the stored value is not valid."""
    return _load_group(tx, INTEGRITY_KEY, Integrity)


def save_integrity(tx: Transaction, changes: Mapping[str, Any]) -> Integrity:
    """Merge ``changes`` over the ``integrity`` setting and store it. Raises ValidationError."""
    return _save_group(tx, INTEGRITY_KEY, Integrity, changes)


# --- general --------------------------------------------------------------------------------------


def _zone_name(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise PydanticCustomError("zone", "must be text (got {got})", {"got": shown(value)})
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "zone",
            "unknown time zone {got} (use an IANA name like Europe/Berlin, or empty for the server's zone)",
            {"got": shown(value)},
        ) from None
    return value


class General(Strict):
    """The time zone schedules run in, how long run logs are kept, and how long a finished download
    can be fetched."""

    model_config = ConfigDict(frozen=True)

    timezone: Annotated[str, BeforeValidator(_zone_name)] = Field(
        "", description="IANA time zone of the schedules, e.g. Europe/Berlin (empty: the server's zone)"
    )
    logs_ttl: Annotated[int, integer(0, 36500)] = Field(
        DEFAULT_LOGS_TTL, description="days a finished run's log is kept (0: forever)"
    )
    downloads_ttl: Annotated[int, integer(1, 3650)] = Field(
        DEFAULT_DOWNLOADS_TTL, description="days a finished download can be fetched; then its file is removed"
    )


def _stored_general(tx: Transaction, *, lock: bool = False) -> dict[str, Any]:
    zone, days = _read(tx, TIMEZONE_KEY, lock=lock), _read(tx, LOGS_TTL_KEY, lock=lock)
    downloads = _read(tx, DOWNLOADS_TTL_KEY, lock=lock)
    stored: dict[str, Any] = {}
    if zone is not None:
        stored["timezone"] = zone
    if days is not None:
        stored["logs_ttl"] = days
    if downloads is not None:
        stored["downloads_ttl"] = downloads
    return stored


def general(tx: Transaction) -> General:
    """The general settings. Raises ValidationError when ``logs_ttl`` is stored as a non-number."""
    stored = _stored_general(tx)
    days = as_int(stored.get("logs_ttl", DEFAULT_LOGS_TTL))
    if days is None or days < 0:
        raise ValidationError(field="logs_ttl", problem=f"stored value {shown(stored['logs_ttl'])} is bad")
    downloads = as_int(stored.get("downloads_ttl", DEFAULT_DOWNLOADS_TTL))
    if downloads is None or downloads < 1:
        raise ValidationError(
            field="downloads_ttl", problem=f"stored value {shown(stored['downloads_ttl'])} is bad"
        )
    return General.model_construct(
        timezone=str(stored.get("timezone") or ""), logs_ttl=days, downloads_ttl=downloads
    )


def timezone(tx: Transaction) -> str:
    """The ``timezone`` setting ("" = the server's zone)."""
    return general(tx).timezone


def save_general(tx: Transaction, changes: Mapping[str, Any]) -> General:
    """Merge ``changes`` over the general settings and store them. Raises ValidationError."""
    value = validate(General, {**_stored_general(tx, lock=True), **changes})
    _write(tx, TIMEZONE_KEY, value.timezone)
    _write(tx, LOGS_TTL_KEY, value.logs_ttl)
    _write(tx, DOWNLOADS_TTL_KEY, value.downloads_ttl)
    return value


# --- notification channels ------------------------------------------------------------------------

#: the channels' models live in ``jobs.models.notification``; these names are kept for callers
EmailSettings = channel_models.EmailSettings
WebhookSettings = channel_models.WebhookSettings


@dataclass(frozen=True)
class Notification:
    """The notification channels; None where a channel is not set up."""

    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None


CHANNELS: dict[str, tuple[str, type[EmailSettings] | type[WebhookSettings]]] = {
    "email": (EMAIL_KEY, EmailSettings),
    "webhook": (WEBHOOK_KEY, WebhookSettings),
}


#: channel -> its sealed fields (their values are stored as tokens)
SEALED_FIELDS: dict[str, tuple[str, ...]] = {"email": ("password",), "webhook": ("url",)}
#: channel -> the fields that say where its secret goes: a masked password is kept only while they stay
ENDPOINT_FIELDS: dict[str, tuple[str, ...]] = {"email": ("host", "port", "username")}


def _purpose(name: str, field: str) -> str:
    return f"settings/{name}/{field}"


def _stored(name: str, model: EmailSettings | WebhookSettings, master: sealing.MasterKey) -> dict[str, Any]:
    document = model.model_dump()
    if isinstance(model, EmailSettings):
        document["password"] = model.password.get_secret_value()
    for field in SEALED_FIELDS[name]:
        value = document.get(field)
        if isinstance(value, str) and value:
            document[field] = master.seal(value, _purpose(name, field))
    return document


def _opened(name: str, stored: Any) -> Any:
    """A stored channel with its sealed fields opened (ConfigError when one does not open)."""
    if not isinstance(stored, dict):
        return stored
    opened = dict(stored)
    for field in SEALED_FIELDS[name]:
        value = opened.get(field)
        if isinstance(value, str):
            opened[field] = sealing.open_value(value, _purpose(name, field))
    return opened


def notification(tx: Transaction) -> Notification:
    """The notification channels. Raises ValidationError when a stored channel is no longer valid,
    ConfigError when a sealed field does not open."""
    email, webhook = _opened("email", _read(tx, EMAIL_KEY)), _opened("webhook", _read(tx, WEBHOOK_KEY))
    return Notification(
        email=validate(EmailSettings, email, prefix="email") if email else None,
        webhook=validate(WebhookSettings, webhook, prefix="webhook") if webhook else None,
    )


def seal_secrets(tx: Transaction, master: sealing.MasterKey, *, reseal: bool = False) -> int:
    """Seal the channels' secrets stored in clear (and, with ``reseal``, another master key's tokens
    again with ``master``); return how many values changed."""
    changed = 0
    for name, (key, _) in CHANNELS.items():
        stored = _read(tx, key, lock=True)
        if not isinstance(stored, dict):
            continue
        document = dict(stored)
        for field in SEALED_FIELDS[name]:
            value = document.get(field)
            if not isinstance(value, str) or not value:
                continue
            purpose = _purpose(name, field)
            document[field] = master.reseal(value, purpose) if reseal else master.seal_value(value, purpose)
        if document != stored:
            changed += sum(1 for field in SEALED_FIELDS[name] if document.get(field) != stored.get(field))
            _write(tx, key, document)
    return changed


def has_clear_secret(tx: Transaction) -> bool:
    """Whether a channel's secret is stored in clear (a catalog from before sealing)."""
    for name, (key, _) in CHANNELS.items():
        stored = _read(tx, key)
        if isinstance(stored, dict) and any(
            isinstance(stored.get(field), str) and stored[field] and not sealing.is_sealed(stored[field])
            for field in SEALED_FIELDS[name]
        ):
            return True
    return False


def save_notification(
    tx: Transaction, *, email: Mapping[str, Any] | None = None, webhook: Mapping[str, Any] | None = None
) -> Notification:
    """Validate and store whole channels (``{}`` removes one, None keeps it). Raises ValidationError
    naming every bad field (``email[host]``) of both channels before anything is written."""
    checked: dict[str, EmailSettings | WebhookSettings | None] = {}
    problems: list[ValidationError] = []
    for name, given in (("email", email), ("webhook", webhook)):
        if given is None:
            continue
        _, model = CHANNELS[name]
        try:
            checked[name] = validate(model, given, prefix=name) if given else None
        except ValidationError as error:
            problems.append(error)
    if problems:
        message = "; ".join(problem.message for problem in problems)
        raise ValidationError(message, field=problems[0].field, problem="invalid")
    master = sealing.master_for(tx) if any(checked.values()) else None
    documents: dict[str, dict[str, Any] | None] = {
        CHANNELS[name][0]: None if value is None or master is None else _stored(name, value, master)
        for name, value in checked.items()
    }
    for key, document in documents.items():
        _write(tx, key, document)
    return notification(tx)


def _merged(tx: Transaction, name: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    if not changes:
        return {}
    key, _ = CHANNELS[name]
    stored = _opened(name, _read(tx, key, lock=True))
    stored = dict(stored) if isinstance(stored, dict) else {}
    merged = {**stored, **changes}
    if merged.get("password") == SECRET_MASK:
        moved = [
            field
            for field in ENDPOINT_FIELDS.get(name, ())
            if str(merged.get(field, "")).strip() != str(stored.get(field, "")).strip()
        ]
        if moved and stored.get("password"):
            raise ValidationError(
                field=f"{name}[password]",
                problem=f"must be given again when {' and '.join(moved)} change"
                + ("s" if len(moved) == 1 else "")
                + " (a stored password is only kept for the same server)",
            )
        merged["password"] = stored.get("password", "")
    return merged


def update_notification(
    tx: Transaction, *, email: Mapping[str, Any] | None = None, webhook: Mapping[str, Any] | None = None
) -> Notification:
    """Merge the fields given over the stored channels (``{}`` removes one, None keeps it); a masked
    password keeps the stored one. Raises ValidationError naming every bad field."""
    return save_notification(
        tx,
        email=None if email is None else _merged(tx, "email", email),
        webhook=None if webhook is None else _merged(tx, "webhook", webhook),
    )


# --- account exclude lists (issue 13: manageAccountExcludeList) -----------------------------------

ACCOUNT_EXCLUDES_KEY = "account_excludes"
#: patterns per list and lists per account, bounded: each is matched against every path of a run
MAX_ACCOUNT_EXCLUDES = 256
ALL_JOBS = ""


def account_excludes(tx: Transaction, username: str) -> dict[str, list[str]]:
    """An account's exclude lists: ``{"": for every job, JOB_ID: for that job}`` (globs relative to
    its home, like the provider's ``excludes``)."""
    stored = _read(tx, ACCOUNT_EXCLUDES_KEY) or {}
    lists = stored.get(username) if isinstance(stored, dict) else None
    return {str(job): [str(p) for p in patterns] for job, patterns in (lists or {}).items()}


def excludes_for_run(tx: Transaction, username: str, job_id: str) -> list[str]:
    """The exclude globs an account adds to a run of ``job_id``: its list for every job, then the job's."""
    lists = account_excludes(tx, username)
    return [*lists.get(ALL_JOBS, []), *lists.get(job_id, [])]


def save_account_excludes(
    tx: Transaction, username: str, job_id: str, patterns: list[str]
) -> dict[str, list[str]]:
    """Set an account's exclude list for one job (``job_id``) or every job (""); an empty list removes it.
    Raises ValidationError naming ``list[i]`` for a bad glob or too many."""
    if len(patterns) > MAX_ACCOUNT_EXCLUDES:
        raise ValidationError(field="list", problem=f"at most {MAX_ACCOUNT_EXCLUDES} patterns")
    for index, pattern in enumerate(patterns):
        try:
            check_glob(pattern)
        except ValidationError as error:
            raise ValidationError(
                field=f"list[{index}]", problem=error.fields.get("problem", error.message)
            ) from None
    stored = dict(_read(tx, ACCOUNT_EXCLUDES_KEY, lock=True) or {})
    lists = dict(stored.get(username) or {})
    if patterns:
        lists[job_id] = list(dict.fromkeys(patterns))
    else:
        lists.pop(job_id, None)
    if lists:
        stored[username] = lists
    else:
        stored.pop(username, None)
    _write(tx, ACCOUNT_EXCLUDES_KEY, stored or None)
    return lists
